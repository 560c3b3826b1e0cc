//! The desired routing, worked out from config, registry, rollouts and
//! staging runs: each rule of `rollgate_core::routing` on its own.

mod common;

use common::*;
use jiff::SignedDuration;
use rollgate_core::Timestamp;
use rollgate_core::config::Config;
use rollgate_core::plan::Plan;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::rehearsal::Rehearsal;
use rollgate_core::rollout::{Command, Input, RollbackCategory, Rollout, Stage};
use rollgate_core::routing::{
    RegisteredVersion, Role, Routing, RoutingInputs, ServiceRouting, StagingRoute, desired, serving_version,
};
use rollgate_core::weight::Weight;

const CONFIG: &str = r#"
[services.fraud]
route = { path_prefix = "/fraud" }
protocol = "json"
stable = "v1"
[services.fraud.versions.v1]
endpoints = ["http://127.0.0.1:9001"]
artifact = { uri = "s3://m/v1", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
owner = "ml"
[services.fraud.versions.v2]
endpoints = ["http://127.0.0.1:9002", "http://127.0.0.1:9003"]
artifact = { uri = "s3://m/v2", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
owner = "ml"
[services.fraud.versions.v0]
endpoints = ["http://127.0.0.1:9000"]
artifact = { uri = "s3://m/v0", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }
owner = "ml"
"#;

fn config(extra: &str) -> Config {
    Config::parse("rollgate.toml", &format!("{CONFIG}{extra}")).unwrap()
}

fn route(config: &Config, rollouts: &[Rollout], now: Timestamp) -> Routing {
    desired(&RoutingInputs { config, registered: &[], rollouts, staging: &[], flags: &Default::default(), now })
}

fn fraud(routing: &Routing) -> &ServiceRouting {
    &routing.services["fraud"]
}

fn pct(p: f64) -> Weight {
    Weight::from_percent(p).unwrap()
}

fn split(s: &ServiceRouting) -> Vec<(&str, Weight)> {
    s.split.iter().map(|(v, w)| (v.as_str(), *w)).collect()
}

/// A rollout of fraud v1 → v2 on a plan without holds' surprises, walked
/// through its gates by the rehearsal helper until it reaches `stage`.
fn rollout_at(stage: &Stage, plan: Plan) -> (Rollout, Timestamp) {
    let mut now = at(THURSDAY);
    let mut r = Rehearsal::new();
    r.send(start(plan, true), now).unwrap();
    for _ in 0..64 {
        if &r.state().unwrap().stage == stage {
            return (r.state().unwrap().clone(), now);
        }
        r.pass_gates(now);
        if &r.state().unwrap().stage == stage {
            return (r.state().unwrap().clone(), now);
        }
        now = r.next_timer(now).unwrap_or(now);
        let _ = r.send(Command::new(Actor::system(), Input::Timer), now);
    }
    panic!("never reached {stage}");
}

#[test]
fn without_rollouts_only_the_stable_version_is_routed() {
    let config = config("");
    let routing = route(&config, &[], at(THURSDAY));
    let s = fraud(&routing);
    assert_eq!(split(s), [("v1", Weight::FULL)]);
    assert_eq!(s.versions.keys().collect::<Vec<_>>(), ["v1"], "versions nobody routes to are not in the table");
    assert_eq!(s.versions["v1"].role, Role::Stable);
    assert_eq!((s.mirror.clone(), routing.next_change, routing.problems.len()), (None, None, 0));
}

#[test]
fn a_canary_step_splits_between_stable_and_candidate_candidate_first() {
    let config = config("");
    let (rollout, now) = rollout_at(&Stage::Canary { step: 1 }, Plan::default());
    let routing = route(&config, &[rollout], now);
    let s = fraud(&routing);
    assert_eq!(split(s), [("v2", pct(5.0)), ("v1", pct(95.0))]);
    assert_eq!(s.versions["v2"].role, Role::Candidate);
    assert_eq!(s.versions["v2"].endpoints, ["http://127.0.0.1:9002", "http://127.0.0.1:9003"]);
    assert_eq!(s.stable, "v1");
}

#[test]
fn a_registered_candidate_gets_its_registered_endpoints_and_an_unknown_one_is_a_problem() {
    let config = config("");
    let mut plan = Plan::default();
    plan.canary.steps.drain(..4);
    plan.canary.steps.insert(0, rollgate_core::plan::CanaryStep { percent: pct(10.0), hold: Some(hold("4h")) });
    let (mut rollout, now) = rollout_at(&Stage::Canary { step: 0 }, plan);
    rollout.candidate = "v3".into();
    let registered =
        [RegisteredVersion { service: "fraud".into(), name: "v3".into(), endpoints: vec!["http://10.0.0.3".into()] }];
    let routing = desired(&RoutingInputs {
        config: &config,
        registered: &registered,
        rollouts: &[rollout.clone()],
        staging: &[],
        flags: &Default::default(),
        now,
    });
    assert_eq!(split(fraud(&routing)), [("v3", pct(10.0)), ("v1", pct(90.0))]);
    assert_eq!(fraud(&routing).versions["v3"].endpoints, ["http://10.0.0.3"]);

    let unregistered = route(&config, &[rollout], now);
    assert_eq!(split(fraud(&unregistered)), [("v1", Weight::FULL)], "no share to a version without endpoints");
    assert!(unregistered.problems[0].contains("version `v3` is neither in the config nor registered"));
}

fn hold(text: &str) -> rollgate_core::hold::Hold {
    text.parse().unwrap()
}

#[test]
fn shadowing_mirrors_to_the_candidate_and_serves_it_nothing() {
    let config = config("");
    let (rollout, now) = {
        let mut now = at(THURSDAY);
        let mut r = Rehearsal::new();
        r.send(start(Plan::default(), false), now).unwrap();
        while r.state().unwrap().stage != Stage::Shadow {
            r.pass_gates(now);
            now += SignedDuration::from_secs(1);
        }
        (r.state().unwrap().clone(), now)
    };
    let s = route(&config, &[rollout], now).services.remove("fraud").unwrap();
    let mirror = s.mirror.clone().unwrap();
    let noise = Plan::default().shadow.noise_percent;
    assert_eq!((mirror.version.as_str(), mirror.share, mirror.noise), ("v2", Weight::FULL, noise));
    assert_eq!(split(&s), [("v2", Weight::ZERO), ("v1", Weight::FULL)]);
}

#[test]
fn after_completion_the_candidate_serves_and_the_previous_version_stays_warm_until_its_time() {
    let config = config("");
    let (completed, now) = rollout_at(&Stage::Completed, Plan::default());
    let warm = completed.warm.clone().unwrap();
    assert_eq!(warm.version, "v1");
    assert_eq!(serving_version(&config, std::slice::from_ref(&completed), "fraud").as_deref(), Some("v2"));

    let routing = route(&config, std::slice::from_ref(&completed), now);
    let s = fraud(&routing);
    assert_eq!(split(s), [("v2", Weight::FULL)]);
    assert_eq!(s.versions["v1"].role, Role::Warm);
    assert_eq!(routing.next_change, Some(warm.until), "the routing changes when the warm time runs out");

    let later = route(&config, &[completed], warm.until);
    assert_eq!(fraud(&later).versions.keys().collect::<Vec<_>>(), ["v2"], "gone once its time is over");
    assert_eq!(later.next_change, None);
}

#[test]
fn in_full_deployment_the_previous_version_leaves_the_table_when_its_warm_time_ends() {
    let config = config("");
    let mut plan = Plan::default();
    plan.full.keep_warm = hold("1h");
    let (full, now) = rollout_at(&Stage::Full, plan);
    let s = route(&config, std::slice::from_ref(&full), now).services.remove("fraud").unwrap();
    assert_eq!(split(&s), [("v2", Weight::FULL), ("v1", Weight::ZERO)]);
    let later = now + SignedDuration::from_hours(2);
    let s = route(&config, std::slice::from_ref(&full), later).services.remove("fraud").unwrap();
    assert_eq!(split(&s), [("v2", Weight::FULL)]);
    assert!(!s.versions.contains_key("v1"));
}

#[test]
fn a_quick_rollback_puts_everything_back_on_stable() {
    let config = config("");
    let (canary, now) = rollout_at(&Stage::Canary { step: 2 }, Plan::default());
    let back = rollgate_core::rollout::step(
        Some(&canary),
        &Command::new(
            alice(),
            Input::Rollback { category: RollbackCategory::Quality, reason: "bad".into(), full: false },
        ),
        now,
    )
    .unwrap()
    .state;
    let s = route(&config, &[back], now).services.remove("fraud").unwrap();
    assert_eq!(split(&s), [("v1", Weight::FULL)]);
    assert_eq!(s.versions.keys().collect::<Vec<_>>(), ["v1"]);
}

#[test]
fn the_static_split_and_mirror_apply_outside_rollouts_while_the_configured_stable_serves() {
    let config = config(
        r#"
[services.fraud.split]
v1 = 90
v0 = 10
[services.fraud.mirror]
version = "v2"
percent = 20
"#,
    );
    let routing = route(&config, &[], at(THURSDAY));
    let s = fraud(&routing);
    assert_eq!(split(s), [("v0", pct(10.0)), ("v1", pct(90.0))]);
    assert_eq!(
        s.mirror.as_ref().map(|m| (m.version.as_str(), m.share, m.noise)),
        Some(("v2", pct(20.0), Weight::ZERO))
    );
    assert_eq!((s.versions["v0"].role, s.versions["v2"].role), (Role::Split, Role::Shadow));

    let (completed, now) = rollout_at(&Stage::Completed, Plan::default());
    let after = route(&config, &[completed], now);
    assert_eq!(split(fraud(&after)), [("v2", Weight::FULL)], "a completed rollout ends the old split");
}

#[test]
fn a_staging_run_holds_its_service_and_nothing_else() {
    let config = config("");
    let staging = [StagingRoute { service: "fraud".into(), candidate: "v2".into(), weight: Weight::HALF }];
    let routing = desired(&RoutingInputs {
        config: &config,
        registered: &[],
        rollouts: &[],
        staging: &staging,
        flags: &Default::default(),
        now: at(THURSDAY),
    });
    assert_eq!(split(fraud(&routing)), [("v2", Weight::HALF), ("v1", Weight::HALF)]);
}

#[test]
fn a_rollout_of_a_service_the_config_lost_is_reported() {
    let (mut rollout, now) = rollout_at(&Stage::Canary { step: 0 }, Plan::default());
    rollout.service = "gone".into();
    let routing = route(&config(""), &[rollout], now);
    assert!(routing.problems.iter().any(|p| p.contains("service `gone`, which the config does not define")));
    assert_eq!(split(fraud(&routing)), [("v1", Weight::FULL)]);
}

#[test]
fn a_dark_launch_copies_its_percent_times_its_flags_share_and_nothing_without_the_flag() {
    let config = config("[services.fraud.mirror]\nversion = \"v2\"\npercent = 40\nflag = \"dark\"\n");
    let now = at(THURSDAY);
    let route_with = |flags: &rollgate_core::routing::FlagShares| {
        desired(&RoutingInputs { config: &config, registered: &[], rollouts: &[], staging: &[], flags, now })
    };
    let half = rollgate_core::routing::FlagShares::from([("dark".to_string(), Weight::HALF)]);
    let routing = route_with(&half);
    let mirror = fraud(&routing).mirror.clone().unwrap();
    assert_eq!((mirror.version.as_str(), mirror.share), ("v2", pct(20.0)));
    let killed = rollgate_core::routing::FlagShares::from([("dark".to_string(), Weight::ZERO)]);
    let routing = route_with(&killed);
    assert!(fraud(&routing).mirror.is_none() && routing.problems.is_empty(), "{:?}", routing.problems);
    let routing = route_with(&Default::default());
    assert!(fraud(&routing).mirror.is_none());
    assert!(routing.problems.iter().any(|p| p.contains("flag `dark` does not exist")), "{:?}", routing.problems);
}
