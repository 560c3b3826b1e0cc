//! What the machine decides after a rollout: a watch of the version every
//! rollback brings back (automatic or manual, quick or full), recorded once;
//! the ticket closed with the outcome however the rollout ends.

mod common;

use common::*;
use rollgate_core::plan::{ChecklistKind, Plan};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::rehearsal::Rehearsal;
use rollgate_core::rollout::{
    Command, Effect, Input, NotificationKind, Rejection, RollbackCategory, Stage, Verdict, WatchBaseline,
};
use rollgate_core::{Timestamp, hold::Hold};

fn with_ticket(plan: Plan) -> Command {
    let mut command = start(plan, true);
    if let Input::Start { ticket, .. } = &mut command.input {
        *ticket = Some("https://tracker.example.com/OPS-42".into());
    }
    command
}

/// A rollout in its first canary step.
fn in_canary(plan: Plan) -> (Rehearsal, Timestamp) {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(with_ticket(plan), now).unwrap();
    r.pass_gates(now);
    (r, now)
}

fn system(input: Input) -> Command {
    Command::new(Actor::system(), input)
}

fn baseline() -> WatchBaseline {
    WatchBaseline { requests: 500, error_rate: 0.01, bad_output_rate: 0.0, latency_ms: Some(20.0), complaint_rate: 0.0 }
}

fn close_ticket(effects: &[Effect]) -> Option<(String, String)> {
    effects.iter().find_map(|e| match e {
        Effect::CloseTicket { outcome, summary, .. } => Some((outcome.clone(), summary.clone())),
        _ => None,
    })
}

#[test]
fn every_rollback_opens_a_watch_of_the_version_that_came_back() {
    // Automatic and quick.
    let (mut r, now) = in_canary(Plan::default());
    let verdict = Verdict::Rollback { trigger: "error_rate".into(), evidence: serde_json::Value::Null };
    let effects = r.send(system(Input::Verdict { verdict }), now).unwrap();
    let watch = r.state().unwrap().watch.clone().unwrap();
    assert_eq!((watch.version.as_str(), watch.full, watch.until), ("v1", false, at("2026-11-26T09:30:00Z")));
    let (outcome, summary) = close_ticket(&effects).unwrap();
    assert_eq!(outcome, "rolled_back");
    assert!(summary.contains("the judge's error_rate trigger fired"), "{summary}");
    // Manual and full.
    let (mut r, now) = in_canary(Plan::default());
    let rollback = Input::Rollback { category: RollbackCategory::Security, reason: "leak".into(), full: true };
    r.send(Command::new(alice(), rollback), now).unwrap();
    assert!(r.state().unwrap().watch.as_ref().unwrap().full);
    // A plan without a watch opens none.
    let mut plan = Plan::default();
    plan.rollback.watch = Hold::ZERO;
    let (mut r, now) = in_canary(plan);
    let rollback = Input::Rollback { category: RollbackCategory::Other, reason: "no".into(), full: false };
    r.send(Command::new(alice(), rollback), now).unwrap();
    assert!(r.state().unwrap().watch.is_none());
}

#[test]
fn a_watch_takes_one_baseline_and_one_result_from_the_system_only() {
    let (mut r, now) = in_canary(Plan::default());
    let rollback = Input::Rollback { category: RollbackCategory::Quality, reason: "worse".into(), full: false };
    r.send(Command::new(alice(), rollback), now).unwrap();
    let baseline = baseline();
    let as_alice = Command::new(alice(), Input::WatchBaseline { baseline: baseline.clone() });
    assert!(matches!(r.send(as_alice, now), Err(Rejection::Forbidden { .. })));
    r.send(system(Input::WatchBaseline { baseline: baseline.clone() }), now).unwrap();
    assert_eq!(r.send(system(Input::WatchBaseline { baseline }), now), Err(Rejection::Unchanged));
    let result = |stable| Input::WatchResult { stable, summary: "numbers".into(), details: serde_json::Value::Null };
    let effects = r.send(system(result(false)), now).unwrap();
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Notify { kind: NotificationKind::PreviousVersionUnhealthy, .. }))
    );
    assert_eq!(r.send(system(result(true)), now), Err(Rejection::Unchanged), "the first result stands");
    assert!(!r.state().unwrap().watch.as_ref().unwrap().result.as_ref().unwrap().stable);
}

#[test]
fn the_ticket_is_closed_with_the_outcome_and_never_holds_the_rollout() {
    // Aborted.
    let (mut r, now) = in_canary(Plan::default());
    let effects = r.send(Command::new(alice(), Input::Abort { reason: "wrong build".into() }), now).unwrap();
    assert_eq!(close_ticket(&effects).map(|(o, _)| o).as_deref(), Some("aborted"));
    assert_eq!(r.state().unwrap().open_actions().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["close-ticket"]);
    // Completed: the post-deployment checklist's ticket item does not hold the last step.
    let (mut r, mut now) = in_canary(Plan::default());
    while !r.state().unwrap().is_terminal() {
        r.pass_gates(now);
        now = r.next_timer(now).unwrap_or(now);
        r.send(system(Input::Timer), now).ok();
    }
    let state = r.state().unwrap();
    assert_eq!(state.stage.to_string(), "completed");
    let ticked = state.ticks.get(&ChecklistKind::PostDeployment).is_some_and(|t| t.contains_key("ticket_closed"));
    assert!(!ticked, "nobody ticked it: it held nothing");
    let ids: Vec<&str> = state.open_actions().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["archive", "close-ticket", "retire-v1"]);
    // The previous version is retired once its keep-warm time is over, not before.
    let warm_until = state.warm.as_ref().unwrap().until;
    assert_eq!(state.action("retire-v1").unwrap().not_before, Some(warm_until));
    assert!(!state.action("retire-v1").unwrap().is_due(now) && state.action("retire-v1").unwrap().is_due(warm_until));
    let outcome = state.actions.iter().find_map(|a| match &a.effect {
        Effect::CloseTicket { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(outcome.as_deref(), Some("completed"));
}

#[test]
fn a_ticket_must_be_one_line_of_reasonable_length() {
    for bad in ["", "  ", "OPS-1\nOPS-2", &"x".repeat(513)] {
        let mut command = start(Plan::default(), true);
        if let Input::Start { ticket, .. } = &mut command.input {
            *ticket = Some(bad.to_string());
        }
        assert!(matches!(Rehearsal::new().send(command, at(THURSDAY)), Err(Rejection::InvalidStart(_))), "{bad:?}");
    }
}

/// A rollout in full deployment.
fn in_full(plan: Plan) -> (Rehearsal, Timestamp) {
    let (mut r, now) = in_canary(plan);
    while r.state().unwrap().stage != Stage::Full {
        r.send(Command::new(dana_admin(), Input::ForcePromote { reason: "test".into() }), now).unwrap();
    }
    (r, now)
}

#[test]
fn full_deployment_takes_the_previous_versions_record_once_and_from_the_system_only() {
    let (mut r, now) = in_canary(Plan::default());
    assert_eq!(r.send(system(Input::ObserveBaseline { baseline: baseline() }), now), Err(Rejection::Unchanged));
    let (mut r, now) = in_full(Plan::default());
    let as_alice = Command::new(alice(), Input::ObserveBaseline { baseline: baseline() });
    assert!(matches!(r.send(as_alice, now), Err(Rejection::Forbidden { .. })));
    r.send(system(Input::ObserveBaseline { baseline: baseline() }), now).unwrap();
    let observed = r.state().unwrap().observed.clone().unwrap();
    assert_eq!((observed.of.as_str(), observed.baseline), ("v1", baseline()));
    assert_eq!(r.send(system(Input::ObserveBaseline { baseline: baseline() }), now), Err(Rejection::Unchanged));
}

#[test]
fn a_failed_post_deployment_check_tells_the_team_how_to_go_back_or_that_it_does() {
    let failed = || Input::Evidence {
        gate: "post_deployment.metrics_stable".into(),
        passed: false,
        summary: "errors: 30 of 100".into(),
        details: serde_json::Value::Null,
    };
    let message = |effects: Vec<Effect>| {
        effects.into_iter().find_map(|e| match e {
            Effect::Notify { kind: NotificationKind::RegressionAfterDeployment, message, .. } => Some(message),
            _ => None,
        })
    };
    let (mut r, now) = in_full(Plan::default());
    let told = message(r.send(system(failed()), now).unwrap()).unwrap();
    assert!(told.contains("errors: 30 of 100") && told.contains("`rollgate rollout rollback r1"), "{told}");
    assert!(told.contains("returns to v1, kept warm until"), "{told}");
    let mut plan = Plan::default();
    plan.full.rollback_on_regression = true;
    let (mut r, now) = in_full(plan);
    let told = message(r.send(system(failed()), now).unwrap()).unwrap();
    assert!(told.ends_with("rolling back to v1 (the plan says so)"), "{told}");
    // A person's failed evidence, or one outside full deployment, is no regression alarm.
    let (mut r, now) = in_full(Plan::default());
    assert_eq!(message(r.send(Command::new(alice(), failed()), now).unwrap()), None);
}
