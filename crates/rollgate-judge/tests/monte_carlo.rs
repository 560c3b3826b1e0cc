//! Monte Carlo checks of the judge's promise: on a healthy canary, and on
//! one exactly at a trigger's limit, it rolls back at most its α share of
//! the time (within three standard errors), however often it looks; and it
//! does catch real faults. Sized to run in seconds; `rollgate bench judge`
//! is the full study.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_judge::JudgeConfig;
use rollgate_judge::ratio::{RATE_MULTIPLIERS, RatioTest, canary_share};
use rollgate_judge::sim::judges::{Rollgate, SimJudge};
use rollgate_judge::sim::scenario::{BUILT_IN, ScenarioFile, parse};
use rollgate_judge::sim::world::{World, splitmix64};

/// α plus three standard errors of a rate estimated from `runs` runs.
fn allowance(alpha: f64, runs: usize) -> f64 {
    alpha + 3.0 * (alpha * (1.0 - alpha) / runs as f64).sqrt()
}

#[test]
fn the_error_e_process_rejects_at_most_alpha_at_its_boundary_with_changing_weights() {
    // Events one at a time, looked at after each: the canary's share of
    // events is exactly π(w, ρ0), with w stepping up as in a rollout.
    let (alpha, runs): (f64, usize) = (0.05, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut rejected = 0;
    for _ in 0..runs {
        let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        'run: for w in [0.01, 0.05, 0.25, 0.5] {
            for _ in 0..150 {
                let canary = rng.random::<f64>() < canary_share(w, 2.0);
                test.add(w, u64::from(canary), u64::from(!canary));
                if test.log_e() >= (1.0 / alpha).ln() {
                    rejected += 1;
                    break 'run;
                }
            }
        }
    }
    let rate = rejected as f64 / runs as f64;
    assert!(rate <= allowance(alpha, runs), "rejected {rate} of boundary runs at α = {alpha}");
}

/// A shortened copy of the built-in scenarios (steps of `dwell_s`).
fn scenarios(dwell_s: u64) -> ScenarioFile {
    let mut file = parse(BUILT_IN).unwrap();
    file.settings.dwell_s = dwell_s;
    file
}

/// Share of `runs` runs of scenario `id` in which rollgate's judge rolls back.
fn rollback_rate(file: &ScenarioFile, id: &str, rate: u32, drift: bool, runs: u64) -> f64 {
    let scenario = file.scenarios.iter().find(|s| s.id == id).unwrap();
    let config = JudgeConfig::default();
    let mut rollbacks = 0;
    for run in 0..runs {
        let mut world = World::new(&file.settings, scenario, rate, drift, splitmix64(run ^ 0xA11CE), 1.5);
        let mut judge = Rollgate::new(config.clone());
        while let Some(tick) = world.next_tick() {
            if judge.observe(tick) {
                rollbacks += 1;
                break;
            }
        }
    }
    rollbacks as f64 / runs as f64
}

#[test]
fn a_healthy_canary_is_rarely_rolled_back_even_with_drift() {
    let file = scenarios(150);
    let runs = 300;
    let budget = JudgeConfig::default().false_rollback_budget;
    for (id, drift) in [("N0", false), ("N1", true), ("N2", true)] {
        let rate = rollback_rate(&file, id, 100, drift, runs);
        assert!(rate <= allowance(budget, runs as usize), "{id}: {rate} of healthy runs rolled back");
    }
}

#[test]
fn at_the_error_limit_rollbacks_stay_within_the_budget() {
    let file = scenarios(150);
    let runs = 300;
    let budget = JudgeConfig::default().false_rollback_budget;
    let rate = rollback_rate(&file, "B1", 100, true, runs);
    assert!(rate <= allowance(budget, runs as usize), "B1: {rate} of boundary runs rolled back");
}

#[test]
fn real_faults_are_caught() {
    let file = scenarios(150);
    for id in ["P3", "P6"] {
        let rate = rollback_rate(&file, id, 100, false, 30);
        assert!(rate >= 0.9, "{id}: only {rate} of faulty runs rolled back");
    }
}

/// How often each trigger fires over `runs` runs of scenario `id` (each run stops at its first rollback).
fn rollbacks_by_trigger(
    file: &ScenarioFile,
    id: &str,
    rate: u32,
    runs: u64,
) -> std::collections::BTreeMap<String, u64> {
    let scenario = file.scenarios.iter().find(|s| s.id == id).unwrap();
    let mut fired = std::collections::BTreeMap::new();
    for run in 0..runs {
        let mut world = World::new(&file.settings, scenario, rate, true, splitmix64(run ^ 0xB0B), 1.5);
        let mut judge = rollgate_judge::Judge::new(JudgeConfig::default());
        while let Some(t) = world.next_tick() {
            let bad = t.bad_outputs();
            if let rollgate_judge::Verdict::Rollback { trigger, .. } = judge.tick(&t.judge_tick(t.t * 1000, &bad)) {
                *fired.entry(trigger.clone()).or_insert(0) += 1;
                break;
            }
        }
    }
    fired
}

/// Each statistical trigger, with a canary exactly at its limit, fires at
/// most its own share of the false-rollback budget (within 3 standard errors).
#[test]
fn at_each_triggers_limit_it_fires_within_its_share_of_the_budget() {
    let mut file = scenarios(150);
    let boundaries = r#"
[[scenario]]
id = "BQ"
description = "boundary: bad outputs x1.25"
truth = "boundary"
bad_output_ratio = 1.25

[[scenario]]
id = "BC"
description = "boundary: complaints x2.0"
truth = "boundary"
complaint_ratio = 2.0
"#;
    file.scenarios.extend(parse(boundaries).unwrap().scenarios);
    let alphas = JudgeConfig::default().alphas();
    let runs = 300;
    for (id, trigger, alpha) in
        [("B2", "latency", alphas.latency), ("BQ", "quality", alphas.quality), ("BC", "complaints", alphas.complaints)]
    {
        let fired = rollbacks_by_trigger(&file, id, 100, runs);
        let rate = fired.get(trigger).copied().unwrap_or(0) as f64 / runs as f64;
        assert!(
            rate <= allowance(alpha, runs as usize),
            "{id}: the {trigger} trigger fired in {rate} of runs ({fired:?})"
        );
        let total = fired.values().sum::<u64>() as f64 / runs as f64;
        let budget = JudgeConfig::default().false_rollback_budget;
        assert!(total <= allowance(budget, runs as usize), "{id}: {total} of runs rolled back ({fired:?})");
    }
}

#[test]
fn quality_and_complaint_faults_are_caught_by_their_triggers() {
    // The benchmark's full ten-minute steps: complaints are rare events.
    let file = scenarios(600);
    for (id, trigger) in [("P10", "quality"), ("P11", "complaints")] {
        let fired = rollbacks_by_trigger(&file, id, 1000, 20);
        assert!(fired.get(trigger).copied().unwrap_or(0) >= 15, "{id} at 1000 rps: {fired:?}");
    }
}
