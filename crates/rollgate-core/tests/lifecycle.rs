//! The default plan walked end to end on a virtual clock, and the rules the
//! machine enforces along the way.

mod common;

use common::*;
use jiff::SignedDuration;
use rollgate_core::clock::{Clock, ManualClock};
use rollgate_core::event::replay;
use rollgate_core::plan::Plan;
use rollgate_core::roles::{Actor, ApprovalKind, Role};
use rollgate_core::rollout::rehearsal::Rehearsal;
use rollgate_core::rollout::{
    ActionRun, ActionStatus, Command, Effect, Input, NotificationKind, Rejection, RollbackCategory, RollbackKind,
    Stage, Verdict,
};
use rollgate_core::weight::Weight;

fn canary_weights(effects: &[Effect]) -> Vec<Weight> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetWeights { candidate_weight, .. } => Some(*candidate_weight),
            _ => None,
        })
        .collect()
}

/// Drives a rollout to the end: pass every gate that inputs can pass, then
/// jump the clock to the next timer; returns (hours since start, weight) of each weight change.
fn drive_to_the_end(r: &mut Rehearsal, clock: &ManualClock) -> Vec<(i64, Weight)> {
    let started = clock.now();
    let mut changes = Vec::new();
    let mut seen = 0;
    for _ in 0..1000 {
        r.pass_gates(clock.now());
        for event in &r.events()[seen..] {
            let body = event.decode().unwrap();
            let hours = (body.at - started).as_hours();
            changes.extend(canary_weights(&body.effects).into_iter().map(|w| (hours, w)));
        }
        seen = r.events().len();
        if r.state().unwrap().is_terminal() {
            break;
        }
        let Some(next) = r.next_timer(clock.now()) else {
            break;
        };
        clock.set(next);
        let _ = r.send(Command::new(Actor::system(), Input::Timer), clock.now());
    }
    changes
}

#[test]
fn the_default_plan_runs_its_48_hour_canary_on_a_virtual_clock() {
    let clock = ManualClock::new(at(THURSDAY));
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), clock.now()).unwrap();
    let wall = std::time::Instant::now();
    let changes = drive_to_the_end(&mut r, &clock);
    eprintln!("48-hour canary rehearsed in {:?} of wall time", wall.elapsed());
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Completed);
    // Pre-deployment and staging pass at hour 0; the canary steps follow
    // the guide's hours 0 / 4 / 12 / 24 / 48.
    let expected: Vec<(i64, Weight)> = [(0, 1.0), (4, 5.0), (12, 25.0), (24, 50.0), (48, 100.0)]
        .into_iter()
        .map(|(h, p)| (h, Weight::from_percent(p).unwrap()))
        .collect();
    assert_eq!(changes, expected);
    // Completed after the 24h observation at 100%.
    assert_eq!((clock.now() - at(THURSDAY)).as_hours(), 72);
    // The log alone rebuilds the same state.
    assert_eq!(replay(r.events()).unwrap().as_ref(), Some(state));
}

#[test]
fn a_hold_interrupted_by_a_pause_still_ends_at_its_recorded_time() {
    let clock = ManualClock::new(at(THURSDAY));
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), clock.now()).unwrap();
    r.pass_gates(clock.now());
    assert_eq!(r.state().unwrap().stage, Stage::Canary { step: 0 });
    clock.advance(SignedDuration::from_hours(1));
    r.send(Command::new(alice(), Input::Pause { reason: "looking at a dashboard".into() }), clock.now()).unwrap();
    clock.advance(SignedDuration::from_hours(4));
    // Paused: time passes, nothing moves.
    assert_eq!(r.send(Command::new(Actor::system(), Input::Timer), clock.now()), Err(Rejection::Unchanged));
    let effects = r.send(Command::new(alice(), Input::Resume), clock.now()).unwrap();
    // The 4h hold has ended (it counts from the step's start) and the verdict is healthy: 5% at once.
    assert_eq!(canary_weights(&effects), [Weight::from_percent(5.0).unwrap()]);
}

#[test]
fn the_requester_cannot_approve_and_approvers_need_the_right_kind() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    let alice_as_approver = Actor::new("alice", [Role::Deployer, Role::Approver(ApprovalKind::Technical)]);
    let own =
        r.send(Command::new(alice_as_approver, Input::Approve { kind: ApprovalKind::Technical, comment: None }), now);
    assert!(matches!(own, Err(Rejection::SeparationOfDuties { .. })), "{own:?}");
    let wrong_kind = r.send(
        Command::new(
            approver("bob", ApprovalKind::Security),
            Input::Approve { kind: ApprovalKind::Technical, comment: None },
        ),
        now,
    );
    assert!(matches!(wrong_kind, Err(Rejection::Forbidden { .. })), "{wrong_kind:?}");
    r.send(
        Command::new(
            approver("bob", ApprovalKind::Technical),
            Input::Approve { kind: ApprovalKind::Technical, comment: Some("ok".into()) },
        ),
        now,
    )
    .unwrap();
    let gate =
        r.state().unwrap().gates(now).into_iter().find(|g| g.to_string().starts_with("approval.technical")).unwrap();
    assert!(gate.passed(), "{gate}");
}

#[test]
fn a_missing_gate_blocks_promotion_and_says_which_and_why() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    let failed = Input::Evidence {
        gate: "validation.bias".into(),
        passed: false,
        summary: "demographic parity difference 0.12 > 0.05".into(),
        details: serde_json::Value::Null,
    };
    r.send(Command::new(Actor::system(), failed), now).unwrap();
    let Err(Rejection::Blocked { stage, gates }) = r.send(Command::new(alice(), Input::Promote), now) else {
        panic!("promotion past missing gates must be refused");
    };
    assert_eq!(stage, "pre-deployment");
    let bias = gates.iter().find(|g| g.to_string().starts_with("validation.bias")).unwrap();
    assert!(bias.to_string().contains("failed: demographic parity difference 0.12 > 0.05"), "{bias}");
    let card = gates.iter().find(|g| g.to_string().starts_with("documentation.model_card")).unwrap();
    assert!(card.to_string().contains("pending: no evidence yet: Model card complete"), "{card}");
}

#[test]
fn a_gate_that_takes_only_rollgates_evidence_does_not_pass_on_a_persons() {
    let plan: Plan =
        toml::from_str("[pre_deployment.infrastructure]\nendpoints_healthy = { source = \"rollgate\" }\n").unwrap();
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(plan, true), now).unwrap();
    let evidence = || Input::Evidence {
        gate: "infrastructure.endpoints_healthy".into(),
        passed: true,
        summary: "all endpoints answer".into(),
        details: serde_json::Value::Null,
    };
    let status = |r: &Rehearsal| {
        let gates = r.state().unwrap().gates(now);
        gates.into_iter().find(|g| g.to_string().starts_with("infrastructure.endpoints_healthy")).unwrap().to_string()
    };
    r.send(Command::new(alice(), evidence()), now).unwrap();
    let by_hand = status(&r);
    assert!(
        by_hand.contains("pending: the plan accepts only evidence recorded by rollgate itself; alice's"),
        "{by_hand}"
    );
    r.send(Command::new(Actor::system(), evidence()), now).unwrap();
    assert!(status(&r).contains("passed (all endpoints answer (by rollgate"), "{}", status(&r));
}

#[test]
fn friday_starts_are_refused_and_force_promote_needs_an_admin_and_a_reason() {
    let friday = at("2026-11-27T10:00:00Z");
    let refused = rollgate_core::rollout::step(None, &start(Plan::default(), true), friday);
    assert!(matches!(refused, Err(Rejection::WindowClosed(_))), "{refused:?}");

    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    let by_deployer = r.send(Command::new(alice(), Input::ForcePromote { reason: "hotfix".into() }), now);
    assert!(matches!(by_deployer, Err(Rejection::Forbidden { .. })));
    let no_reason = r.send(Command::new(dana_admin(), Input::ForcePromote { reason: " ".into() }), now);
    assert!(matches!(no_reason, Err(Rejection::ReasonRequired { .. })));
    r.send(Command::new(dana_admin(), Input::ForcePromote { reason: "security hotfix, INC-42".into() }), now).unwrap();
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Staging);
    let forced = &state.overrides[0];
    assert_eq!(forced.by, "dana");
    assert!(forced.bypassed.iter().any(|g| g.starts_with("validation.performance")), "{:?}", forced.bypassed);
}

#[test]
fn traffic_steps_wait_for_a_freeze_to_end_and_say_so() {
    let window =
        r#"freezes = [{ from = "2026-11-26T11:00:00Z", until = "2026-11-27T08:00:00Z", reason = "launch event" }]"#;
    let plan = Plan { window: toml::from_str(window).unwrap(), ..Plan::default() };
    let clock = ManualClock::new(at(THURSDAY));
    let mut r = Rehearsal::new();
    r.send(start(plan, true), clock.now()).unwrap();
    r.pass_gates(clock.now());
    assert_eq!(r.state().unwrap().stage, Stage::Canary { step: 0 });
    clock.advance(SignedDuration::from_hours(4)); // 13:00, inside the freeze
    let effects = r.send(Command::new(Actor::system(), Input::Timer), clock.now()).unwrap();
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Canary { step: 0 });
    let waiting = state.waiting_for_window.as_ref().expect("the rollout says it is waiting");
    assert!(waiting.reason.contains("launch event"), "{}", waiting.reason);
    assert!(effects.contains(&Effect::ScheduleTimer { at: at("2026-11-27T08:00:00Z") }), "{effects:?}");
    clock.set(at("2026-11-27T08:00:00Z"));
    let effects = r.send(Command::new(Actor::system(), Input::Timer), clock.now()).unwrap();
    assert_eq!(canary_weights(&effects), [Weight::from_percent(5.0).unwrap()]);
}

#[test]
fn a_judge_rollback_is_quick_and_keeps_the_candidate_running() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    r.pass_gates(now);
    let verdict =
        Verdict::Rollback { trigger: "error_rate".into(), evidence: serde_json::json!({"canary_errors": 40}) };
    let effects = r.send(Command::new(Actor::system(), Input::Verdict { verdict }), now).unwrap();
    assert_eq!(canary_weights(&effects), [Weight::ZERO]);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Retire { .. } | Effect::Redeploy { .. })));
    let state = r.state().unwrap();
    assert!(matches!(state.stage, Stage::RolledBack { kind: RollbackKind::Quick, .. }));
    // Terminal stays terminal.
    assert!(matches!(r.send(Command::new(alice(), Input::Resume), now), Err(Rejection::Terminal { .. })));
}

#[test]
fn a_manual_full_rollback_redeploys_stable_and_retires_the_candidate() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    r.pass_gates(now);
    let rollback = Input::Rollback {
        category: RollbackCategory::HarmfulOutputs,
        reason: "toxic answers on eval set".into(),
        full: true,
    };
    let effects = r.send(Command::new(alice(), rollback), now).unwrap();
    assert!(effects.contains(&Effect::Redeploy { service: "fraud".into(), version: "v1".into() }));
    assert!(effects.contains(&Effect::Retire { service: "fraud".into(), version: "v2".into() }));
    assert_eq!(r.state().unwrap().weight, Weight::ZERO);
    // Both are kept as actions, in order, pending until something records them done.
    let ids: Vec<&str> = r.state().unwrap().open_actions().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["redeploy-v1", "retire-v2"]);
}

fn run(ok: bool, attempt: u32, gave_up: bool) -> ActionRun {
    ActionRun {
        ok,
        attempt,
        via: "command ./deploy.sh".into(),
        detail: if ok { "exit code 0".into() } else { "exit code 1: no capacity".into() },
        gave_up,
        details: serde_json::Value::Null,
    }
}

#[test]
fn actions_are_done_only_when_a_run_or_a_person_says_so_even_after_the_end() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    r.pass_gates(now);
    let rollback = Input::Rollback { category: RollbackCategory::Security, reason: "leak".into(), full: true };
    r.send(Command::new(alice(), rollback), now).unwrap();
    let system = |input| Command::new(Actor::system(), input);
    let ran = |action: &str, run: ActionRun| Input::ActionRun { action: action.into(), run };

    // A failed run is recorded and the action stays pending; the last allowed one hands it to a person.
    r.send(system(ran("redeploy-v1", run(false, 1, false))), now).unwrap();
    assert_eq!(r.state().unwrap().action("redeploy-v1").unwrap().status, ActionStatus::Pending);
    let effects = r.send(system(ran("redeploy-v1", run(false, 2, true))), now).unwrap();
    let told = effects.iter().any(|e| {
        matches!(e, Effect::Notify { kind: NotificationKind::ActionNeeded, message }
        if message.contains("deploy version v1 of fraud again") && message.contains("confirm-effect r1 redeploy-v1"))
    });
    assert!(told, "{effects:?}");
    assert!(matches!(r.state().unwrap().action("redeploy-v1").unwrap().status, ActionStatus::WaitingForPerson { .. }));
    // Only a deployer or admin confirms, with a note; once.
    let confirm = |note: &str| Input::ConfirmAction { action: "redeploy-v1".into(), note: note.into() };
    assert!(matches!(r.send(system(confirm("done")), now), Err(Rejection::Forbidden { .. })));
    assert!(matches!(r.send(Command::new(alice(), confirm(" ")), now), Err(Rejection::ReasonRequired { .. })));
    r.send(Command::new(alice(), confirm("kubectl rollout undo")), now).unwrap();
    assert!(matches!(r.send(Command::new(alice(), confirm("again")), now), Err(Rejection::ActionDone { .. })));
    // A hook's success is recorded once; a second report of it is refused.
    r.send(system(ran("retire-v2", run(true, 1, false))), now).unwrap();
    assert!(matches!(r.send(system(ran("retire-v2", run(true, 2, false))), now), Err(Rejection::ActionDone { .. })));
    assert!(matches!(r.send(system(ran("archive", run(true, 1, false))), now), Err(Rejection::UnknownAction { .. })));
    let state = r.state().unwrap();
    assert_eq!(state.open_actions().count(), 0);
    assert_eq!(state.action("redeploy-v1").unwrap().runs.len(), 2);
    assert_eq!(replay(r.events()).unwrap().as_ref(), Some(state), "the log rebuilds the actions");
}

#[test]
fn in_full_deployment_a_rollback_after_the_warm_time_redeploys() {
    let mut plan = Plan::default();
    plan.full.keep_warm = "1h".parse().unwrap();
    let clock = ManualClock::new(at(THURSDAY));
    let mut r = Rehearsal::new();
    r.send(start(plan, true), clock.now()).unwrap();
    while r.state().unwrap().stage != Stage::Full {
        r.pass_gates(clock.now());
        let next = r.next_timer(clock.now()).unwrap();
        clock.set(next);
        let _ = r.send(Command::new(Actor::system(), Input::Timer), clock.now());
    }
    let warm = r.state().unwrap().warm.clone().unwrap();
    assert_eq!(warm.version, "v1");
    assert_eq!(r.state().unwrap().warm_at(clock.now()), Some(&warm));
    clock.advance(SignedDuration::from_hours(2));
    assert_eq!(r.state().unwrap().warm_at(clock.now()), None);
    let quick = Input::Rollback { category: RollbackCategory::Quality, reason: "drift".into(), full: false };
    let effects = r.send(Command::new(alice(), quick), clock.now()).unwrap();
    assert!(matches!(r.state().unwrap().stage, Stage::RolledBack { kind: RollbackKind::Full, .. }));
    assert!(effects.contains(&Effect::Redeploy { service: "fraud".into(), version: "v1".into() }));
}

#[test]
fn the_next_timer_is_the_end_of_the_current_hold() {
    let now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(Plan::default(), true), now).unwrap();
    r.pass_gates(now);
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Canary { step: 0 });
    assert_eq!(state.next_timer(now), Some(now + SignedDuration::from_hours(4)));
    assert_eq!(state.hold_ends_at(), Some(now + SignedDuration::from_hours(4)));
    assert_eq!(state.next_timer(now + SignedDuration::from_hours(4)), None, "only moments after now");
}

#[test]
fn shadow_mirrors_and_stops_and_cannot_be_skipped_when_required() {
    let mut plan = Plan::default();
    plan.shadow.mode = rollgate_core::plan::ShadowMode::Required;
    let refused = rollgate_core::rollout::step(None, &start(plan.clone(), true), at(THURSDAY));
    assert!(matches!(refused, Err(Rejection::InvalidStart(_))), "{refused:?}");

    let clock = ManualClock::new(at(THURSDAY));
    let mut r = Rehearsal::new();
    r.send(start(plan, false), clock.now()).unwrap();
    r.pass_gates(clock.now());
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Shadow);
    assert_eq!(state.mirroring, Some(Weight::FULL));
    assert_eq!(state.weight, Weight::ZERO);
    clock.advance(SignedDuration::from_hours(4));
    r.send(Command::new(Actor::system(), Input::Timer), clock.now()).unwrap_or_default();
    r.pass_gates(clock.now());
    let state = r.state().unwrap();
    assert_eq!(state.stage, Stage::Canary { step: 0 });
    assert_eq!(state.mirroring, None);
}
