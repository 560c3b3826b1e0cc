//! The rolling strategy in the machine and in routing: batches replaced
//! through actions, traffic following the instances the hook has done, the
//! hold counted from a batch's return, and a failed batch reverting every
//! instance touched, latest first.

mod common;

use common::*;
use rollgate_core::Timestamp;
use rollgate_core::config::Config;
use rollgate_core::hold::Hold;
use rollgate_core::plan::Plan;
use rollgate_core::plan::strategy::{Rolling, Strategy};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::rehearsal::Rehearsal;
use rollgate_core::rollout::{
    ActionRun, Command, Effect, Input, InstanceOp, Rejection, RollbackCategory, RollbackCause, Rollout, Stage,
};
use rollgate_core::routing::{RoutingInputs, desired};
use rollgate_core::weight::Weight;

const CONFIG: &str = r#"
[services.fraud]
route = { path_prefix = "/fraud" }
protocol = "json"
stable = "v1"
health = { path = "/health" }
[services.fraud.deploy]
command = ["./deploy.sh"]
[services.fraud.versions.v1]
endpoints = ["http://a:1", "http://b:1", "http://c:1", "http://d:1"]
artifact = { uri = "s3://m/v1", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
owner = "ml"
[services.fraud.versions.v2]
endpoints = ["http://s:1"]
artifact = { uri = "s3://m/v2", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
owner = "ml"
"#;

fn config() -> Config {
    Config::parse("rollgate.toml", CONFIG).unwrap()
}

fn plan(max_surge: usize) -> Plan {
    let rolling = Rolling { max_surge, interval: Hold::from_secs(600), ..Rolling::default() };
    rollgate_core::plan::strategy::apply(Plan { strategy: Strategy::Rolling, rolling, ..Plan::default() })
}

fn started(plan: Plan) -> (Rehearsal, Timestamp) {
    let now = at(THURSDAY);
    let mut command = start(plan.clone(), true);
    let config = config();
    let endpoints = |v: &str| -> Vec<String> {
        config.services["fraud"].versions[v].endpoints.iter().map(|e| e.get_ref().clone()).collect()
    };
    let pool = rollgate_core::rollout::pool_for(&config, "fraud", &plan, endpoints("v1"), &endpoints("v2")).unwrap();
    if let Input::Start { pool: p, .. } = &mut command.input {
        *p = pool;
    }
    let mut r = Rehearsal::new();
    r.send(command, now).unwrap();
    (r, now)
}

/// Passes the people's gates (not the instances': those are the hook's).
fn pass_people(r: &mut Rehearsal, now: Timestamp) {
    for _ in 0..64 {
        let state = r.state().unwrap().clone();
        let next = rollgate_core::rollout::rehearsal::inputs_to_pass(&state, now)
            .into_iter()
            .find(|c| !matches!(c.input, Input::ActionRun { .. }));
        let Some(command) = next else { return };
        if r.send(command, now).is_err() {
            return;
        }
    }
}

/// Time passes to the end of the current hold, and the people's gates are passed.
fn past_the_hold(r: &mut Rehearsal) -> Timestamp {
    let now = r.state().unwrap().hold_ends_at().unwrap();
    let _ = r.send(Command::new(Actor::system(), Input::Timer), now);
    pass_people(r, now);
    now
}

fn hook(r: &mut Rehearsal, action: &str, ok: bool, now: Timestamp) -> Result<Vec<Effect>, Rejection> {
    let run = ActionRun {
        ok,
        attempt: 1,
        via: "command ./deploy.sh".into(),
        detail: if ok { "exit code 0".into() } else { "health check http://b:1/health failed".into() },
        gave_up: !ok,
        details: serde_json::Value::Null,
    };
    r.send(Command::new(Actor::system(), Input::ActionRun { action: action.into(), run }), now)
}

fn routed(r: &Rollout, now: Timestamp) -> (Vec<String>, Vec<String>, Vec<(String, Weight)>) {
    let config = config();
    let rollouts = [r.clone()];
    let routing = desired(&RoutingInputs {
        config: &config,
        registered: &[],
        rollouts: &rollouts,
        staging: &[],
        flags: &Default::default(),
        now,
    });
    let fraud = &routing.services["fraud"];
    let of = |v: &str| fraud.versions.get(v).map(|v| v.endpoints.clone()).unwrap_or_default();
    (of("v1"), of("v2"), fraud.split.clone())
}

fn urls(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("http://{n}:1")).collect()
}

fn instance_actions(r: &Rollout) -> Vec<(String, Vec<String>)> {
    r.actions
        .iter()
        .filter_map(|a| match &a.effect {
            Effect::Instances { endpoints, .. } => Some((a.id.clone(), endpoints.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn each_batch_is_out_of_service_until_its_hook_is_done_then_held_and_judged() {
    let (mut r, mut now) = started(plan(0));
    assert_eq!(r.state().unwrap().plan.canary.steps.len(), 4, "three batches, the fourth in full deployment");
    pass_people(&mut r, now);
    let state = r.state().unwrap().clone();
    assert_eq!(state.stage, Stage::Canary { step: 0 });
    assert_eq!(instance_actions(&state), [("replace-1".to_string(), urls(&["a"]))]);
    // Instance a is out (draining, being redeployed): nobody is sent to it, and the candidate has none yet.
    let (stable, candidate, split) = routed(&state, now);
    assert_eq!((stable, candidate), (urls(&["b", "c", "d"]), vec![]));
    assert_eq!(split.iter().find(|(v, _)| v == "v2").map(|(_, w)| *w), Some(Weight::ZERO));
    // The hold waits for the batch: a healthy verdict alone does not move on.
    assert!(r.state().unwrap().gates(now).iter().any(|g| g.blocks() && g.to_string().contains("not back in service")));
    now = now.checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
    hook(&mut r, "replace-1", true, now).unwrap();
    let state = r.state().unwrap().clone();
    let (stable, candidate, _) = routed(&state, now);
    assert_eq!((stable, candidate), (urls(&["b", "c", "d"]), urls(&["a"])));
    assert_eq!(state.weight, Weight::from_percent(25.0).unwrap());
    assert_eq!(state.hold_ends_at(), now.checked_add(jiff::SignedDuration::from_secs(600)).ok());
    // Healthy before the interval is over: still batch 1; after it, batch 2 starts.
    pass_people(&mut r, now);
    assert_eq!(r.state().unwrap().stage, Stage::Canary { step: 0 });
    now = past_the_hold(&mut r);
    assert_eq!(r.state().unwrap().stage, Stage::Canary { step: 1 });
    // The rest, batch by batch; the last is replaced in full deployment.
    for batch in 2..=3 {
        hook(&mut r, &format!("replace-{batch}"), true, now).unwrap();
        now = past_the_hold(&mut r);
    }
    let state = r.state().unwrap().clone();
    assert_eq!(state.stage, Stage::Full);
    assert_eq!(state.hold_ends_at(), None, "the window waits for the last batch");
    assert_eq!(routed(&state, now).1, urls(&["a", "b", "c"]), "d is out, being replaced");
    hook(&mut r, "replace-4", true, now).unwrap();
    let state = r.state().unwrap().clone();
    let (stable, candidate, _) = routed(&state, now);
    assert_eq!((stable, candidate), (vec![], urls(&["a", "b", "c", "d"])));
    now = past_the_hold(&mut r);
    let state = r.state().unwrap().clone();
    assert_eq!(state.stage, Stage::Completed);
    // Completed: the pool serves v2 (not v2's configured surge endpoint).
    let (_, candidate, split) = routed(&state, now);
    assert_eq!(candidate, urls(&["a", "b", "c", "d"]));
    assert_eq!(split, [("v2".to_string(), Weight::FULL)]);
}

#[test]
fn a_batch_that_does_not_come_back_healthy_reverts_every_touched_instance_latest_first() {
    let (mut r, now) = started(plan(0));
    pass_people(&mut r, now);
    hook(&mut r, "replace-1", true, now).unwrap();
    let later = past_the_hold(&mut r);
    assert_eq!(r.state().unwrap().stage, Stage::Canary { step: 1 });
    let effects = hook(&mut r, "replace-2", false, later).unwrap();
    let state = r.state().unwrap().clone();
    let Stage::RolledBack { cause: RollbackCause::Rollgate { check, detail }, .. } = &state.stage else {
        panic!("{:?}", state.stage)
    };
    assert!(check.starts_with("replace-2"), "{check}");
    assert!(detail.contains("health check"), "{detail}");
    let order: Vec<(InstanceOp, Vec<String>, String)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Instances { op, endpoints, version, .. } => Some((*op, endpoints.clone(), version.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [(InstanceOp::Revert, urls(&["b"]), "v1".to_string()), (InstanceOp::Revert, urls(&["a"]), "v1".to_string())]
    );
    // Until an instance's revert is done it serves nobody; then it is v1's again.
    let (stable, candidate, _) = routed(&state, later);
    assert_eq!((stable, candidate), (urls(&["c", "d"]), vec![]));
    hook(&mut r, "revert-2", true, later).unwrap();
    let (stable, _, _) = routed(r.state().unwrap(), later);
    assert_eq!(stable, urls(&["b", "c", "d"]));
    hook(&mut r, "revert-1", true, later).unwrap();
    let (stable, _, split) = routed(r.state().unwrap(), later);
    assert_eq!(stable, urls(&["a", "b", "c", "d"]));
    assert_eq!(split, [("v1".to_string(), Weight::FULL)]);
}

#[test]
fn a_surge_serves_before_any_old_instance_leaves_and_leaves_after_the_last() {
    let (mut r, now) = started(plan(1));
    pass_people(&mut r, now);
    let state = r.state().unwrap().clone();
    // Only the surge so far: all four old instances still serve.
    assert_eq!(instance_actions(&state), [("surge".to_string(), urls(&["s"]))]);
    assert_eq!(routed(&state, now).0, urls(&["a", "b", "c", "d"]));
    hook(&mut r, "surge", true, now).unwrap();
    let state = r.state().unwrap().clone();
    // max_unavailable 1 + max_surge 1: two old instances go at a time; never fewer than three serve.
    assert_eq!(instance_actions(&state).last().unwrap(), &("replace-1".to_string(), urls(&["a", "b"])));
    let (stable, candidate, _) = routed(&state, now);
    assert_eq!((stable.len() + candidate.len(), candidate), (3, urls(&["s"])));
    hook(&mut r, "replace-1", true, now).unwrap();
    let later = past_the_hold(&mut r);
    // The last batch, in full deployment: the surge still serves while c and d are out.
    let state = r.state().unwrap().clone();
    assert_eq!(state.stage, Stage::Full);
    assert_eq!(routed(&state, later).1, urls(&["a", "b", "s"]));
    hook(&mut r, "replace-2", true, later).unwrap();
    let state = r.state().unwrap().clone();
    assert_eq!(instance_actions(&state).last().unwrap(), &("unsurge".to_string(), urls(&["s"])));
    assert_eq!(routed(&state, later).1, urls(&["a", "b", "c", "d"]), "the surge instance left the pool");
}

#[test]
fn a_person_rolling_back_mid_batch_cancels_the_replacement_and_reverts() {
    let (mut r, now) = started(plan(0));
    pass_people(&mut r, now);
    hook(&mut r, "replace-1", true, now).unwrap();
    let later = past_the_hold(&mut r);
    assert!(r.state().unwrap().action("replace-2").is_some_and(|a| !a.is_closed()), "batch 2 is being replaced");
    let rollback = Input::Rollback { category: RollbackCategory::Quality, reason: "worse".into(), full: false };
    r.send(Command::new(alice(), rollback), later).unwrap();
    let state = r.state().unwrap().clone();
    assert!(matches!(state.stage, Stage::RolledBack { kind: rollgate_core::rollout::RollbackKind::Full, .. }));
    assert!(matches!(
        state.action("replace-2").unwrap().status,
        rollgate_core::rollout::ActionStatus::Cancelled { .. }
    ));
    let open: Vec<&str> = state.open_actions().map(|a| a.id.as_str()).collect();
    assert_eq!(open, ["revert-2", "revert-1"]);
    // A late report of the cancelled replacement is refused: it cannot put b back as v2's.
    assert!(matches!(hook(&mut r, "replace-2", true, later), Err(Rejection::ActionDone { .. })));
    assert_eq!(routed(r.state().unwrap(), later).0, urls(&["c", "d"]));
}

#[test]
fn a_rolling_plan_needs_its_pool_and_refuses_canary_steps_it_would_never_run() {
    let now = at(THURSDAY);
    let refused = Rehearsal::new().send(start(plan(0), true), now).unwrap_err();
    assert!(refused.to_string().contains("must name the stable version's instances"), "{refused}");
    let mut twice = start(plan(0), true);
    if let Input::Start { pool, .. } = &mut twice.input {
        *pool = Some(rollgate_core::rollout::Pool { instances: urls(&["a", "b", "a"]), surge: Vec::new() });
    }
    let refused = Rehearsal::new().send(twice, now).unwrap_err();
    assert!(refused.to_string().contains("instance http://a:1 is named twice"), "{refused}");
    let mut with_steps = plan(0);
    with_steps.canary.steps.remove(0);
    assert!(with_steps.problems().iter().any(|p| p.message.contains("canary steps would never run")));
    let frozen = Plan { rolling: Rolling { max_unavailable: 0, ..Rolling::default() }, ..plan(0) };
    assert!(frozen.problems().iter().any(|p| p.message.contains("no instance could ever be replaced")));
    // A surge needs endpoints of the candidate to start on.
    let config = config();
    let err = rollgate_core::rollout::pool_for(&config, "fraud", &plan(2), urls(&["a"]), &urls(&["s"])).unwrap_err();
    assert!(err.contains("max_surge is 2"), "{err}");
}
