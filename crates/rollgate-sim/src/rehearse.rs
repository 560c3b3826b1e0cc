//! `rollgate rehearse`: a whole plan on a virtual clock, against simulated
//! traffic and a scenario of faults (the judge benchmark's format). Gates
//! that need people or CI are passed by stand-ins; holds and deploy windows
//! pass as the clock jumps; during the canary, traffic is simulated a minute
//! at a time and the real judge decides. A blue-green plan's bake holds green
//! to blue's record (an hour of blue alone, simulated before the switch) with
//! the same tests rollgate's post-deployment check makes. A 48-hour canary
//! takes well under a second. Pure: no sockets, no wall clock.

use jiff::{SignedDuration, Timestamp};
use rollgate_core::plan::gate_ids::POST_DEPLOYMENT_METRICS_STABLE;
use rollgate_core::plan::strategy::Strategy;
use rollgate_core::plan::{Plan, RollbackTriggers, ShadowMode};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::rehearsal::{Rehearsal, inputs_to_pass};
use rollgate_core::rollout::{Command, Input, Pool, Rollout, Stage, WatchBaseline};
use rollgate_judge::sim::scenario::{Scenario, Settings};
use rollgate_judge::sim::world::{ArmData, World};
use rollgate_judge::watch::{Since, rates};
use rollgate_judge::{Judge, JudgeConfig, Verdict};
use serde::Serialize;

/// Traffic is simulated in ticks this long while the candidate has traffic.
const TICK_S: u64 = 60;
/// Blue's record in a blue-green rehearsal: this long of blue alone before the switch.
const BLUE_RECORD_S: u64 = 3600;
/// The trigger a rollback by the bake's check names (as rollgate's post-deployment check does).
const BAKE_TRIGGER: &str = "post_deployment";

/// Green held to blue's record during a blue-green bake.
struct Bake {
    baseline: WatchBaseline,
    limit_us: Option<u32>,
    since: Since,
    regressed: bool,
}

impl Bake {
    fn new(blue: &ArmData, plan: &RollbackTriggers) -> Bake {
        let rate = |k: u64| k as f64 / blue.requests.max(1) as f64;
        let mut sample = blue.latencies_us.clone();
        sample.sort_unstable();
        let at = ((sample.len() as f64 - 1.0) * plan.latency_quantile).round().max(0.0) as usize;
        let quantile_us = sample.get(at).copied();
        let baseline = WatchBaseline {
            requests: blue.requests,
            error_rate: rate(blue.errors),
            bad_output_rate: rate(blue.bad_outputs),
            latency_ms: quantile_us.map(|us| f64::from(us) / 1000.0),
            // The simulation's complaints are not per version: not part of the rehearsed bake.
            complaint_rate: 0.0,
        };
        let limit_us = quantile_us.map(|us| (f64::from(us) * plan.latency_ratio) as u32);
        Bake { baseline, limit_us, since: Since::default(), regressed: false }
    }

    /// Green's next tick; what regressed against blue's record, once.
    fn add(&mut self, green: &ArmData, plan: &RollbackTriggers) -> Vec<String> {
        let s = &mut self.since;
        s.requests += green.requests;
        s.errors += green.errors;
        s.bad_outputs += green.bad_outputs;
        s.timed += green.latencies_us.len() as u64;
        s.slow += self.limit_us.map_or(0, |limit| green.latencies_us.iter().filter(|l| **l > limit).count() as u64);
        if self.regressed {
            return Vec::new();
        }
        let found = rates(plan, &self.baseline, &self.since, "for blue before the switch");
        self.regressed = !found.is_empty();
        found
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// Hours since the rollout started.
    pub hour: f64,
    pub at: String,
    pub stage: String,
    pub candidate_percent: f64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rehearsed {
    pub timeline: Vec<Moment>,
    /// completed, rolled_back, aborted, or stuck (with why).
    pub outcome: String,
    pub events: usize,
}

fn moment(r: &Rollout, started: Timestamp, now: Timestamp, note: String) -> Moment {
    Moment {
        hour: now.duration_since(started).as_secs_f64() / 3600.0,
        at: now.to_string(),
        stage: r.stage.to_string(),
        candidate_percent: r.weight.percent(),
        note,
    }
}

/// The rehearsal's traffic and, for a rolling plan, its stand-in instances.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Total requests a second.
    pub rate: u32,
    pub seed: u64,
    /// How many instances the stable version has (a rolling plan replaces them batch by batch).
    pub instances: usize,
}

/// Stand-in instances for a rolling rehearsal: `instance-1` …, and the surge's `surge-1` ….
fn stand_in_pool(plan: &Plan, instances: usize) -> Option<Pool> {
    (plan.strategy == Strategy::Rolling).then(|| Pool {
        instances: (1..=instances.max(1)).map(|i| format!("instance-{i}")).collect(),
        surge: (1..=plan.rolling.max_surge).map(|i| format!("surge-{i}")).collect(),
    })
}

/// What a rolling batch's stage means, in words, when it starts.
fn batch_note(r: &Rollout) -> String {
    let batches = r.plan.canary.steps.len();
    match (&r.stage, &r.instances) {
        (Stage::Canary { step }, Some(inst)) => {
            let surge = if *step == 0 && !inst.surge.is_empty() { "surge up, then " } else { "" };
            format!("batch {} of {batches}: {surge}{} instance(s) being replaced", step + 1, inst.batch)
        }
        (Stage::Full, Some(inst)) => {
            format!("batch {batches} of {batches}, the last: {} instance(s) being replaced", inst.out.len())
        }
        _ => String::new(),
    }
}

/// Runs the plan called `plan_name` from `start_at`, with `load`'s traffic.
pub fn rehearse(
    plan_name: &str,
    plan: &Plan,
    settings: &Settings,
    scenario: &Scenario,
    load: &Load,
    start_at: Timestamp,
) -> Rehearsed {
    let Load { rate, seed, instances } = *load;
    let mut rehearsal = Rehearsal::new();
    let start = Input::Start {
        rollout_id: "rehearsal".into(),
        service: "service".into(),
        candidate: "candidate".into(),
        stable: "stable".into(),
        plan_name: plan_name.into(),
        plan: Box::new(plan.clone()),
        // A shadow stage runs only when the plan requires it (its gates are passed by stand-ins).
        skip_shadow: plan.shadow.mode != ShadowMode::Required,
        ticket: None,
        pool: stand_in_pool(plan, instances),
    };
    let mut now = start_at;
    let mut timeline = Vec::new();
    if let Err(e) =
        rehearsal.send(Command::new(Actor::new("rehearsal", [rollgate_core::roles::Role::Deployer]), start), now)
    {
        return Rehearsed { timeline, outcome: format!("refused at the start: {e}"), events: 0 };
    }
    let config = JudgeConfig::from_plan(&plan.rollback);
    let mut judge = Judge::new(config.clone());
    let mut world = World::new(settings, scenario, rate, false, seed, config.latency_ratio);
    let mut last_stage = String::new();
    let mut judge_ms = 0u64;
    let mut bake: Option<Bake> = None;
    // Bounded: a plan that never ends must not loop forever.
    for _ in 0..1_000_000 {
        let Some(state) = rehearsal.state().cloned() else { break };
        let stage = state.stage.to_string();
        if stage != last_stage {
            timeline.push(moment(&state, start_at, now, batch_note(&state)));
            last_stage = stage;
        }
        if state.stage.is_terminal() {
            break;
        }
        // People and CI: every stand-in input that passes a gate (the judge speaks for itself).
        let stand_ins: Vec<Command> =
            inputs_to_pass(&state, now).into_iter().filter(|c| !matches!(c.input, Input::Verdict { .. })).collect();
        if let Some(command) = stand_ins.into_iter().next()
            && rehearsal.send(command.clone(), now).is_ok()
        {
            if let (Input::ActionRun { action, .. }, Some(after)) = (&command.input, rehearsal.state()) {
                timeline.push(moment(after, start_at, now, format!("{action} done (a stand-in for the deploy hook)")));
            }
            continue;
        }
        let judged = matches!(state.stage, Stage::Canary { .. } | Stage::Full) && state.weight.percent() > 0.0;
        if judged {
            let baking = state.plan.strategy == Strategy::BlueGreen && state.stage == Stage::Full;
            if baking && bake.is_none() {
                bake = Some(Bake::new(&world.advance(0.0, BLUE_RECORD_S).baseline, &state.plan.rollback));
            }
            let w = state.weight.percent() / 100.0;
            let t = world.advance(w, TICK_S);
            let regressions = match bake.as_mut().filter(|_| baking) {
                Some(b) => b.add(&t.canary, &state.plan.rollback),
                None => Vec::new(),
            };
            judge_ms += TICK_S * 1000;
            let bad = t.bad_outputs();
            let tick = t.judge_tick(judge_ms, &bad);
            judge.tick(&tick);
            let recorded = judge.news(state.verdict.as_ref().map(|v| &v.verdict)).is_some_and(|verdict| {
                rehearsal.send(Command::new(Actor::system(), Input::Verdict { verdict }), now).is_ok()
            });
            if recorded
                && let Verdict::Rollback { reason, .. } = judge.verdict()
                && let Some(after) = rehearsal.state()
            {
                timeline.push(moment(after, start_at, now, format!("the judge rolls back: {reason}")));
                last_stage = after.stage.to_string();
            }
            if !regressions.is_empty() {
                let summary = regressions.join("; ");
                let details = serde_json::json!({ "problems": regressions });
                let inputs = [
                    Input::Evidence {
                        gate: POST_DEPLOYMENT_METRICS_STABLE.into(),
                        passed: false,
                        summary: summary.clone(),
                        details: details.clone(),
                    },
                    Input::Verdict {
                        verdict: rollgate_core::rollout::Verdict::Rollback {
                            trigger: BAKE_TRIGGER.into(),
                            evidence: details,
                        },
                    },
                ];
                for input in inputs {
                    let _ = rehearsal.send(Command::new(Actor::system(), input), now);
                }
                if let Some(after) = rehearsal.state().filter(|s| s.stage.is_terminal()) {
                    timeline.push(moment(
                        after,
                        start_at,
                        now,
                        format!("green regressed against blue, swapped back: {summary}"),
                    ));
                    last_stage = after.stage.to_string();
                }
            }
            now += SignedDuration::from_secs(TICK_S as i64);
        } else {
            match rehearsal.next_timer(now) {
                Some(at) => now = at,
                None => {
                    return Rehearsed {
                        outcome: format!("stuck in {}: nothing left to wait for", state.stage),
                        events: rehearsal.events().len(),
                        timeline,
                    };
                }
            }
        }
        let _ = rehearsal.send(Command::new(Actor::system(), Input::Timer), now);
    }
    let outcome = rehearsal.state().map_or("not started".into(), |s| s.stage.to_string());
    Rehearsed { timeline, outcome, events: rehearsal.events().len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_judge::sim::scenario::{BUILT_IN, parse};

    fn run(id: &str) -> Rehearsed {
        run_plan(id, &Plan::default())
    }

    fn run_plan(id: &str, plan: &Plan) -> Rehearsed {
        let file = parse(BUILT_IN).unwrap();
        let scenario = file.scenarios.iter().find(|s| s.id == id).unwrap();
        let thursday: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        rehearse("plan", plan, &file.settings, scenario, &Load { rate: 100, seed: 7, instances: 4 }, thursday)
    }

    fn blue_green() -> Plan {
        rollgate_core::plan::strategy::apply(Plan { strategy: Strategy::BlueGreen, ..Plan::default() })
    }

    #[test]
    fn a_healthy_green_is_switched_to_at_once_and_completes_after_the_bake() {
        let done = run_plan("N0", &blue_green());
        assert_eq!(done.outcome, "completed", "{:#?}", done.timeline);
        let stages: Vec<(&str, f64)> = done.timeline.iter().map(|m| (m.stage.as_str(), m.candidate_percent)).collect();
        assert!(!stages.iter().any(|(s, _)| s.starts_with("canary")), "no canary steps: {stages:?}");
        let switched = done.timeline.iter().find(|m| m.stage == "full deployment").unwrap();
        let completed = done.timeline.iter().find(|m| m.stage == "completed").unwrap();
        assert_eq!(switched.candidate_percent, 100.0, "one switch to 100%");
        let bake = completed.hour - switched.hour;
        assert!((1.0..1.1).contains(&bake), "completes when the 1h bake passes: {bake} h");
    }

    #[test]
    fn a_bad_green_is_swapped_back_against_blues_record() {
        let done = run_plan("P3", &blue_green());
        assert_eq!(done.outcome, "rolled back (quick)", "{:#?}", done.timeline);
        let back = done
            .timeline
            .iter()
            .find(|m| m.note.contains("swapped back"))
            .unwrap_or_else(|| panic!("{:#?}", done.timeline));
        assert!(back.note.contains("errors:") && back.note.contains("for blue before the switch"), "{}", back.note);
        let switched = done.timeline.iter().find(|m| m.stage == "full deployment").unwrap();
        assert!(back.hour - switched.hour < 0.25, "within minutes of the switch: {back:?}");
    }

    #[test]
    fn a_healthy_canary_goes_through_the_default_48_hours() {
        let wall = std::time::Instant::now();
        let done = run("N0");
        eprintln!("48-hour default plan with traffic rehearsed in {:?}", wall.elapsed());
        assert_eq!(done.outcome, "completed", "{:#?}", done.timeline);
        let hours: Vec<(String, f64)> = done.timeline.iter().map(|m| (m.stage.clone(), m.hour)).collect();
        let step = |name: &str| hours.iter().find(|(s, _)| s == name).map(|(_, h)| *h).unwrap();
        // The guide's hours 0 / 4 / 12 / 24 / 48 (each step waits for its hold and a healthy judge).
        assert!(step("canary step 2") >= 4.0 && step("canary step 2") < 4.2, "{hours:?}");
        assert!(step("full deployment") >= 48.0 && step("full deployment") < 48.2, "{hours:?}");
        assert!(step("completed") >= 72.0, "keep warm 72 h: {hours:?}");
    }

    #[test]
    fn a_crash_like_fault_is_rolled_back_in_the_first_step() {
        let done = run("P3");
        assert_eq!(done.outcome, "rolled back (quick)", "{:#?}", done.timeline);
        let rollback = done.timeline.iter().find(|m| m.note.contains("rolls back")).unwrap();
        assert!(rollback.hour < 1.0, "within the first hour: {rollback:?}");
        assert!(rollback.note.contains("error rate"), "{}", rollback.note);
    }
}
