//! Properties of the state machine over random input sequences.

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rollgate_core::event::replay;
use rollgate_core::plan::{ChecklistKind, Plan};
use rollgate_core::roles::{Actor, ApprovalKind, Role};
use rollgate_core::rollout::rehearsal::{Rehearsal, inputs_to_pass};
use rollgate_core::rollout::{Command, Input, Rejection, RollbackCategory, Rollout, Stage, Verdict, checklist_items};
use rollgate_core::weight::Weight;

#[derive(Debug, Clone)]
enum Action {
    Evidence {
        gate: usize,
        passed: bool,
    },
    Approve {
        kind: usize,
        by_requester: bool,
    },
    Tick {
        list: usize,
        item: usize,
    },
    Verdict(u8),
    Wait {
        minutes: u32,
    },
    Promote,
    Pause,
    Resume,
    Abort,
    Rollback {
        full: bool,
    },
    ForcePromote {
        admin: bool,
    },
    /// Feed the first input that would pass an open gate.
    PassOne,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        20 => (0..40usize, any::<bool>()).prop_map(|(gate, passed)| Action::Evidence { gate, passed }),
        20 => (0..4usize, any::<bool>()).prop_map(|(kind, by_requester)| Action::Approve { kind, by_requester }),
        20 => (0..3usize, 0..10usize).prop_map(|(list, item)| Action::Tick { list, item }),
        30 => (0..3u8).prop_map(Action::Verdict),
        60 => (0..(30 * 60u32)).prop_map(|minutes| Action::Wait { minutes }),
        10 => Just(Action::Promote),
        5 => Just(Action::Pause),
        15 => Just(Action::Resume),
        1 => Just(Action::Abort),
        1 => any::<bool>().prop_map(|full| Action::Rollback { full }),
        2 => any::<bool>().prop_map(|admin| Action::ForcePromote { admin }),
        200 => Just(Action::PassOne),
    ]
}

fn command_for(action: &Action, state: &Rollout, now: Timestamp) -> Command {
    let system = Actor::system;
    match action {
        Action::Evidence { gate, passed } => {
            let ids = state.plan.gate_ids();
            let gate = ids[gate % ids.len()].clone();
            let input =
                Input::Evidence { gate, passed: *passed, summary: "random".into(), details: serde_json::Value::Null };
            Command::new(system(), input)
        }
        Action::Approve { kind, by_requester } => {
            let kind = ApprovalKind::ALL[kind % 4];
            let name = if *by_requester { "alice" } else { "bob" };
            Command::new(Actor::new(name, [Role::Approver(kind)]), Input::Approve { kind, comment: None })
        }
        Action::Tick { list, item } => {
            let checklist = ChecklistKind::ALL[list % 3];
            let items = checklist_items(state, checklist);
            let item = items[item % items.len()].0.clone();
            Command::new(alice(), Input::Tick { checklist, item, note: None })
        }
        Action::Verdict(v) => {
            let verdict = match v {
                0 => Verdict::Healthy,
                1 => Verdict::Hold { reason: "warming up".into() },
                _ => Verdict::Rollback { trigger: "error_rate".into(), evidence: serde_json::Value::Null },
            };
            Command::new(system(), Input::Verdict { verdict })
        }
        Action::Wait { .. } => Command::new(system(), Input::Timer),
        Action::Promote => Command::new(alice(), Input::Promote),
        Action::Pause => Command::new(alice(), Input::Pause { reason: "random pause".into() }),
        Action::Resume => Command::new(alice(), Input::Resume),
        Action::Abort => Command::new(alice(), Input::Abort { reason: "random abort".into() }),
        Action::Rollback { full } => Command::new(
            alice(),
            Input::Rollback { category: RollbackCategory::Quality, reason: "random".into(), full: *full },
        ),
        Action::ForcePromote { admin } => {
            let who = if *admin { dana_admin() } else { alice() };
            Command::new(who, Input::ForcePromote { reason: "random override".into() })
        }
        Action::PassOne => inputs_to_pass(state, now).into_iter().next().unwrap_or_else(|| {
            // Nothing left to feed: a manual plan waits for a promotion.
            let ready = !state.gates(now).iter().any(|g| g.blocks());
            Command::new(if ready { alice() } else { system() }, if ready { Input::Promote } else { Input::Timer })
        }),
    }
}

fn is_forward(from: &Stage, to: &Stage) -> bool {
    !to.is_terminal() || *to == Stage::Completed && *from != Stage::Completed
}

/// Independently of the machine's gate code: the gates of `left` hold in
/// `after`, the state right after the transition that left it at `now`.
fn gates_held(
    before: &Rollout,
    command: &Command,
    after: &Rollout,
    left: &Stage,
    entered: Timestamp,
    now: Timestamp,
) -> Result<(), String> {
    let plan = &after.plan;
    let evidence_ok = |ids: Vec<String>| {
        ids.into_iter()
            .filter(|id| plan.gate(id).unwrap().required)
            .all(|id| after.evidence.get(&id).is_some_and(|e| e.passed))
    };
    let held = |hold: SignedDuration| now >= entered.checked_add(hold).unwrap();
    let window_open = plan.window.check_traffic_change(now).is_ok();
    // The judge's word at the moment of leaving: the stage must have begun
    // before this transition, and its verdict (or this input's) be healthy.
    let stable = before.stage == *left
        && match &command.input {
            Input::Verdict { verdict: Verdict::Healthy } => true,
            Input::Verdict { .. } => false,
            _ => before.verdict.as_ref().is_some_and(|v| v.verdict == Verdict::Healthy),
        };
    // Entering the next stage clears the verdict; checklist items proved by
    // the judge are judged with the verdict the stage was left with.
    let mut at_exit = after.clone();
    at_exit.verdict = stable.then_some(rollgate_core::rollout::VerdictRecord { verdict: Verdict::Healthy, at: now });
    let checklist_done = |kind| checklist_items(&at_exit, kind).iter().all(|(_, _, done)| done.is_some());
    let category = |prefix: &str| plan.gate_ids().into_iter().filter(|id| id.starts_with(prefix)).collect::<Vec<_>>();
    let ok = match left {
        Stage::PreDeployment => {
            let p = &plan.pre_deployment;
            evidence_ok([category("validation."), category("documentation."), category("infrastructure.")].concat())
                && p.approvals.required().iter().all(|k| after.approvals.iter().any(|a| a.kind == *k))
                && checklist_done(ChecklistKind::PreDeployment)
        }
        Stage::Staging => {
            evidence_ok(category("staging."))
                && (!after.skip_shadow || (window_open && checklist_done(ChecklistKind::DeploymentDay)))
        }
        Stage::Shadow => {
            held(plan.shadow.duration.duration())
                && evidence_ok(category("shadow."))
                && window_open
                && checklist_done(ChecklistKind::DeploymentDay)
        }
        Stage::Canary { step } => held(plan.canary.steps[*step].hold.unwrap().duration()) && stable && window_open,
        Stage::Full => {
            held(plan.full.observe.duration())
                && stable
                && evidence_ok(category("post_deployment."))
                && checklist_done(ChecklistKind::PostDeployment)
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("left {left} at {now} without its gates")) }
}

fn plan_strategy() -> impl Strategy<Value = (Plan, bool)> {
    (any::<bool>(), any::<bool>()).prop_map(|(skip_shadow, manual)| {
        let mut plan = Plan { auto_promote: !manual, ..Plan::default() };
        // Shorter holds make far stages reachable within a sequence.
        for step in &mut plan.canary.steps {
            step.hold = step.hold.map(|_| "2h".parse().unwrap());
        }
        plan.full.observe = "3h".parse().unwrap();
        plan.shadow.duration = "1h".parse().unwrap();
        (plan, skip_shadow)
    })
}

/// Runs one generated sequence, checking the machine's invariants after each
/// input; returns every stage the rollout went through.
fn run(plan: Plan, skip_shadow: bool, actions: &[Action]) -> Result<Vec<Stage>, TestCaseError> {
    let mut now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(plan.clone(), skip_shadow), now).unwrap();
    let steps: Vec<Weight> = plan.canary.steps.iter().map(|s| s.percent).collect();
    for action in actions {
        if let Action::Wait { minutes } = action {
            now = now.checked_add(SignedDuration::from_mins(i64::from(*minutes))).unwrap();
        }
        let before = r.state().unwrap().clone();
        let command = command_for(action, &before, now);
        let result = r.send(command.clone(), now);
        let after = r.state().unwrap().clone();

        if before.is_terminal() {
            prop_assert!(
                matches!(result, Err(Rejection::Terminal { .. })),
                "terminal state accepted {:?}",
                command.input
            );
            prop_assert_eq!(&after, &before);
            continue;
        }
        if result.is_err() {
            prop_assert_eq!(&after, &before, "a refused input changed the state");
            continue;
        }
        // Traffic only ever takes the plan's step values, or 0.
        prop_assert!(after.weight == Weight::ZERO || steps.contains(&after.weight), "weight {}", after.weight);
        // Every way out short of completion leaves stable at 100%.
        if matches!(after.stage, Stage::RolledBack { .. } | Stage::Aborted { .. }) {
            prop_assert_eq!(after.weight, Weight::ZERO);
            prop_assert_eq!(after.mirroring, None);
        }
        // No stage is left past a missing or failed gate, except by an admin's recorded override.
        let forced = matches!(command.input, Input::ForcePromote { .. });
        let visits = &after.history[before.history.len() - 1..];
        for (i, pair) in visits.windows(2).enumerate() {
            let (left, next) = (&pair[0], &pair[1]);
            if !is_forward(&left.stage, &next.stage) || (forced && i == 0) {
                continue;
            }
            if let Err(why) = gates_held(&before, &command, &after, &left.stage, left.entered_at, now) {
                prop_assert!(
                    false,
                    "{} (input {:?}, gates {:?})",
                    why,
                    command.input.name(),
                    before.gates(now).iter().map(ToString::to_string).collect::<Vec<_>>()
                );
            }
        }
        if forced {
            prop_assert_eq!(after.overrides.len(), before.overrides.len() + 1);
        }
    }
    // Replaying the log reproduces the live state exactly.
    let replayed = replay(r.events()).unwrap();
    prop_assert_eq!(replayed.as_ref(), r.state());
    prop_assert!(rollgate_core::audit::verify_stream(r.events()).is_ok());
    Ok(r.state().unwrap().history.iter().map(|v| v.stage.clone()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants((plan, skip_shadow) in plan_strategy(), actions in prop::collection::vec(action(), 1..250)) {
        run(plan, skip_shadow, &actions)?;
    }
}

/// The invariants above mean little if the generated runs never get far:
/// a fixed sample of them must reach every stage, and every ending.
#[test]
fn generated_runs_reach_every_stage_and_ending() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (plan_strategy(), prop::collection::vec(action(), 1..250));
    let runs = 200;
    let mut reached = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..runs {
        let ((plan, skip_shadow), actions) = strategy.new_tree(&mut runner).unwrap().current();
        let mut this_run = std::collections::BTreeSet::new();
        for stage in run(plan, skip_shadow, &actions).unwrap() {
            let name = match stage {
                Stage::PreDeployment => continue,
                Stage::Staging => "staging",
                Stage::Shadow => "shadow",
                Stage::Canary { .. } => "canary",
                Stage::Full => "full",
                Stage::Completed => "completed",
                Stage::RolledBack { .. } => "rolled back",
                Stage::Aborted { .. } => "aborted",
            };
            this_run.insert(name);
        }
        for name in this_run {
            *reached.entry(name).or_default() += 1;
        }
    }
    for stage in ["staging", "shadow", "canary", "full", "completed", "rolled back", "aborted"] {
        let share = reached.get(stage).copied().unwrap_or(0) as f64 / runs as f64;
        assert!(share >= 0.02, "only {share:.3} of the generated runs reach {stage}: {reached:?}");
    }
}
