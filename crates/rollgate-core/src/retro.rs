//! The retrospective of a rollout, written from its log: what happened, in
//! order, who decided what and on which evidence, how a rollback went, what
//! is still open, and the questions a team asks itself afterwards. Pure: the
//! shell hands in the events and the stored reports; every number here is
//! read from them, never typed in.

use crate::event::RecordedEvent;
use crate::plan::ChecklistKind;
use crate::rollout::{Effect, Input, RollbackCause, Rollout, Stage, Verdict, checklist_items};
use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retro {
    pub rollout: String,
    pub service: String,
    pub stable: String,
    pub candidate: String,
    pub plan: String,
    pub requester: String,
    pub ticket: Option<String>,
    pub started_at: Timestamp,
    /// When the rollout ended (its last stage change), if it has.
    pub ended_at: Option<Timestamp>,
    /// `completed`, `rolled_back`, `aborted`, or the stage it is in.
    pub outcome: String,
    pub outcome_detail: String,
    pub stages: Vec<StageSpan>,
    pub timeline: Vec<Moment>,
    pub evidence: Vec<EvidenceLine>,
    pub approvals: Vec<Moment>,
    pub overrides: Vec<Moment>,
    /// Each time the judge's verdict changed, with its numbers.
    pub verdicts: Vec<VerdictLine>,
    /// What the staging drill measured, when it ran.
    pub drill: Option<serde_json::Value>,
    pub rollback: Option<RollbackLine>,
    /// Requests the candidate served (the judge's count), when the judge saw any.
    pub candidate_requests: Option<u64>,
    /// Requests the stable version served beside it while the judge watched.
    pub stable_requests: Option<u64>,
    /// Requests whose copies the candidate answered in shadow.
    pub shadow_pairs: Option<u64>,
    pub follow_ups: Vec<String>,
    pub questions: Vec<String>,
    /// The log the retrospective was written from: events and the head's hash.
    pub events: u64,
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSpan {
    pub stage: String,
    pub entered_at: Timestamp,
    pub left_at: Option<Timestamp>,
    /// Whole seconds in the stage (until it was left, or until the last event).
    pub seconds: i64,
}

/// One thing that happened: when, who, what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub at: Timestamp,
    pub by: String,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceLine {
    pub gate: String,
    pub passed: bool,
    pub by: String,
    pub at: Timestamp,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictLine {
    pub at: Timestamp,
    pub verdict: String,
    pub detail: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackLine {
    pub kind: String,
    pub cause: String,
    /// When the judge's verdict (or the person's command) was recorded.
    pub decided_at: Timestamp,
    /// When traffic left the candidate: the same event moved it (the gateway
    /// applies the routing before the command is answered).
    pub traffic_off_at: Timestamp,
    /// The candidate's weight just before.
    pub candidate_percent: f64,
    /// When the candidate first got user traffic (the first event that gave
    /// it a share), and how long it had users until the rollback.
    pub first_traffic_at: Option<Timestamp>,
    pub exposed_seconds: Option<i64>,
    /// The stage it was in.
    pub during: String,
    /// How the watch of the version that came back ended, if it has.
    pub watch: Option<String>,
}

/// The retrospective of `r` from its `events` (the whole stream, in order),
/// with the judge's and shadow's last stored reports when there are.
pub fn retrospective(
    r: &Rollout,
    events: &[RecordedEvent],
    judge: Option<&serde_json::Value>,
    shadow: Option<&serde_json::Value>,
) -> Retro {
    let bodies: Vec<_> = events.iter().filter_map(|e| e.decode().ok()).collect();
    let last_at = bodies.last().map_or(r.stage_entered_at, |b| b.at);
    let timeline = bodies
        .iter()
        .map(|b| Moment { at: b.at, by: b.command.actor.name.clone(), what: describe(&b.command.input) })
        .collect();
    let verdicts = bodies
        .iter()
        .filter_map(|b| match &b.command.input {
            Input::Verdict { verdict } => Some(verdict_line(b.at, verdict)),
            _ => None,
        })
        .collect();
    Retro {
        rollout: r.id.clone(),
        service: r.service.clone(),
        stable: r.stable.clone(),
        candidate: r.candidate.clone(),
        plan: r.plan_name.clone(),
        requester: r.requester.clone(),
        ticket: r.ticket.clone(),
        started_at: r.started_at,
        ended_at: r.is_terminal().then_some(r.stage_entered_at),
        outcome: outcome_name(&r.stage).into(),
        outcome_detail: r.stage.to_string(),
        stages: stages(r, last_at),
        timeline,
        evidence: r
            .evidence
            .iter()
            .map(|(gate, e)| EvidenceLine {
                gate: gate.clone(),
                passed: e.passed,
                by: e.by.clone(),
                at: e.at,
                summary: e.summary.clone(),
            })
            .collect(),
        approvals: r
            .approvals
            .iter()
            .map(|a| Moment {
                at: a.at,
                by: a.by.clone(),
                what: format!(
                    "approved ({}){}",
                    a.kind,
                    a.comment.as_ref().map_or(String::new(), |c| format!(": {c}"))
                ),
            })
            .collect(),
        overrides: r
            .overrides
            .iter()
            .map(|o| Moment {
                at: o.at,
                by: o.by.clone(),
                what: format!(
                    "forced past {} ({}), bypassing {} gate(s): {}",
                    o.from,
                    o.reason,
                    o.bypassed.len(),
                    // Each bypassed gate is "id: status: why"; its id says which.
                    o.bypassed.iter().map(|b| b.split(':').next().unwrap_or(b)).collect::<Vec<_>>().join(", ")
                ),
            })
            .collect(),
        verdicts,
        drill: r.evidence.get(crate::plan::gate_ids::STAGING_ROLLBACK_DRILL).map(|e| e.details.clone()),
        rollback: rollback(r, &bodies),
        candidate_requests: judge.and_then(|j| j["canary_requests"].as_u64()),
        stable_requests: judge.and_then(|j| j["baseline_requests"].as_u64()),
        shadow_pairs: shadow.and_then(|s| s["pairs"].as_u64()),
        follow_ups: follow_ups(r, events),
        questions: questions(r),
        events: events.len() as u64,
        head: events.last().map_or_else(String::new, |e| e.hash.clone()),
    }
}

fn outcome_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::Completed => "completed",
        Stage::RolledBack { .. } => "rolled_back",
        Stage::Aborted { .. } => "aborted",
        _ => "in progress",
    }
}

fn stages(r: &Rollout, last_at: Timestamp) -> Vec<StageSpan> {
    r.history
        .iter()
        .enumerate()
        .map(|(i, visit)| {
            let left_at = r.history.get(i + 1).map(|next| next.entered_at);
            let until = left_at.unwrap_or(if r.is_terminal() { visit.entered_at } else { last_at });
            StageSpan {
                stage: visit.stage.to_string(),
                entered_at: visit.entered_at,
                left_at,
                seconds: until.duration_since(visit.entered_at).as_secs(),
            }
        })
        .collect()
}

/// An input in words.
fn describe(input: &Input) -> String {
    match input {
        Input::Start { candidate, stable, plan_name, .. } => {
            format!("started {candidate} over {stable} on plan {plan_name}")
        }
        Input::Evidence { gate, passed, summary, .. } => {
            format!("{gate}: {} ({summary})", if *passed { "passed" } else { "failed" })
        }
        Input::Approve { kind, .. } => format!("approved ({kind})"),
        Input::Tick { checklist, item, .. } => format!("ticked {checklist}: {item}"),
        Input::Verdict { verdict } => format!("judge: {}", verdict_name(verdict)),
        Input::Timer => "time passed".into(),
        Input::Promote => "promoted".into(),
        Input::Pause { reason } => format!("paused: {reason}"),
        Input::Resume => "resumed".into(),
        Input::Abort { reason } => format!("aborted: {reason}"),
        Input::Rollback { category, reason, full } => {
            format!("rolled back ({}, {category}): {reason}", if *full { "full" } else { "quick" })
        }
        Input::ForcePromote { reason } => format!("forced a promotion: {reason}"),
        Input::ActionRun { action, run } => {
            format!("{action}: {} via {} ({})", if run.ok { "done" } else { "failed" }, run.via, run.detail)
        }
        Input::ActionNeedsPerson { action, why } => format!("{action}: handed to a person ({why})"),
        Input::ConfirmAction { action, note } => format!("{action}: confirmed by hand ({note})"),
        Input::WatchBaseline { baseline } => {
            format!("watch baseline: {} requests, error rate {:.2}%", baseline.requests, baseline.error_rate * 100.0)
        }
        Input::ObserveBaseline { baseline } => format!(
            "the previous version's record, held to in full deployment: {} requests, error rate {:.2}%",
            baseline.requests,
            baseline.error_rate * 100.0
        ),
        Input::WatchResult { stable, summary, .. } => {
            format!("watch: {} ({summary})", if *stable { "stable" } else { "not healthy" })
        }
    }
}

fn verdict_name(v: &Verdict) -> String {
    match v {
        Verdict::Healthy => "healthy".into(),
        Verdict::Hold { reason } => format!("hold ({reason})"),
        Verdict::Rollback { trigger, .. } => format!("roll back ({trigger})"),
    }
}

fn verdict_line(at: Timestamp, v: &Verdict) -> VerdictLine {
    let (verdict, detail, evidence) = match v {
        Verdict::Healthy => ("healthy", String::new(), serde_json::Value::Null),
        Verdict::Hold { reason } => ("hold", reason.clone(), serde_json::Value::Null),
        Verdict::Rollback { trigger, evidence } => ("rollback", format!("{trigger} trigger fired"), evidence.clone()),
    };
    VerdictLine { at, verdict: verdict.into(), detail, evidence }
}

/// The rollback, from the event that made it: when it was decided and what moved.
fn rollback(r: &Rollout, bodies: &[crate::event::EventBody]) -> Option<RollbackLine> {
    let Stage::RolledBack { kind, cause } = &r.stage else { return None };
    let event = bodies.iter().rev().find(|b| {
        matches!(&b.command.input, Input::Rollback { .. } | Input::Verdict { verdict: Verdict::Rollback { .. } })
    })?;
    // Every weight an earlier event set, with the event's time.
    let weights: Vec<(Timestamp, f64)> = bodies
        .iter()
        .take_while(|b| !std::ptr::eq(*b, event))
        .flat_map(|b| b.effects.iter().map(move |e| (b.at, e)))
        .filter_map(|(at, e)| match e {
            Effect::SetWeights { candidate_weight, .. } => Some((at, candidate_weight.percent())),
            _ => None,
        })
        .collect();
    let before = weights.last().map_or(0.0, |(_, percent)| *percent);
    let first_traffic_at = weights.iter().find(|(_, percent)| *percent > 0.0).map(|(at, _)| *at);
    let during = r.history.iter().rev().nth(1).map_or_else(String::new, |v| v.stage.to_string());
    let cause = match cause {
        RollbackCause::Judge { trigger } => format!("the judge's {trigger} trigger"),
        RollbackCause::Person { name, category, reason } => format!("{name} ({category}): {reason}"),
        RollbackCause::Rollgate { check, detail } => format!("rollgate's check {check}: {detail}"),
    };
    let watch = r.watch.as_ref().map(|w| match &w.result {
        None => format!("watching {} until {}", w.version, w.until),
        Some(result) if result.stable => format!("{} stable since {}: {}", w.version, w.from, result.summary),
        Some(result) => format!("{} not healthy either: {}", w.version, result.summary),
    });
    Some(RollbackLine {
        kind: kind.to_string(),
        cause,
        decided_at: event.at,
        traffic_off_at: event.at,
        candidate_percent: before,
        first_traffic_at,
        exposed_seconds: first_traffic_at.map(|at| event.at.duration_since(at).as_secs()),
        during,
        watch,
    })
}

/// What is still open: actions, a watch not ended, and for a completed
/// rollout the post-deployment items nobody did.
fn follow_ups(r: &Rollout, events: &[RecordedEvent]) -> Vec<String> {
    let mut out: Vec<String> = r.open_actions().map(|a| format!("action {} is {}", a.id, a.status)).collect();
    // An item counts as done if it is now, or was just before the event that
    // completed the rollout: a proof such as the judge's verdict belongs to
    // full deployment, and the completing event may be the last tick itself.
    if let Some(before) = state_before_completion(r, events) {
        let kind = ChecklistKind::PostDeployment;
        let done_before: Vec<bool> = checklist_items(&before, kind).iter().map(|(_, _, d)| d.is_some()).collect();
        for (i, (id, text, done)) in checklist_items(r, kind).into_iter().enumerate() {
            if done.is_none() && !done_before.get(i).copied().unwrap_or(false) {
                out.push(format!("checklist {kind}: {text} ({id}) is not done"));
            }
        }
    }
    if let Some(w) = r.watch.as_ref().filter(|w| w.is_open()) {
        out.push(format!("the watch of {} runs until {}", w.version, w.until));
    }
    out
}

/// For a completed rollout, its state just before the event that completed it.
fn state_before_completion(r: &Rollout, events: &[RecordedEvent]) -> Option<Rollout> {
    if r.stage != Stage::Completed {
        return None;
    }
    // The completing event happened at the moment the stage was entered; few events share it.
    (0..events.len()).filter(|&i| events[i].decode().is_ok_and(|b| b.at == r.stage_entered_at)).find_map(|i| {
        let after = crate::event::replay(&events[..=i]).ok().flatten()?;
        (after.stage == Stage::Completed).then(|| crate::event::replay(&events[..i]).ok().flatten()).flatten()
    })
}

/// The questions worth a team's hour, by how the rollout went.
fn questions(r: &Rollout) -> Vec<String> {
    let mut out = vec![
        "Which gate took longest to pass, and was the wait worth what it caught?".to_string(),
        "Did every check that passed test what it claims (look at the evidence above)?".to_string(),
    ];
    match &r.stage {
        Stage::RolledBack { cause: RollbackCause::Judge { trigger }, .. } => {
            out.push(format!("The {trigger} trigger rolled back: which earlier stage could have caught this?"));
            out.push("How many users met the candidate before the rollback, and what did they see?".into());
        }
        Stage::RolledBack { cause: RollbackCause::Rollgate { check, .. }, .. } => {
            out.push(format!("rollgate's check {check} failed: could staging have caught it before any instance?"));
        }
        Stage::RolledBack { cause: RollbackCause::Person { .. }, .. } => {
            out.push(
                "A person rolled back: what did they see that the judge did not, and can it become a trigger?".into(),
            );
        }
        Stage::Aborted { .. } => {
            out.push("Why was the rollout stopped, and what must change before trying again?".into())
        }
        Stage::Completed => {
            out.push("What would have made this rollout faster without making it riskier?".into());
        }
        _ => {}
    }
    if !r.overrides.is_empty() {
        out.push("Gates were forced: should the plan change, or should they not have been?".into());
    }
    out
}
