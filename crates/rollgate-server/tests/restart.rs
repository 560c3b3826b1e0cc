//! Stop the server in the middle of a hold, start it again: the rollout
//! continues and its hold ends exactly when it would have without the
//! outage. On a manual clock: time moves only when the test moves it.

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use rollgate_core::clock::{Clock, ManualClock};
use rollgate_core::roles::{Actor, ApprovalKind, Role};
use rollgate_core::rollout::{Command, Input, Verdict};
use rollgate_server::notify::RetryPolicy;
use rollgate_store::Rollouts;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn restart_mid_hold(setup: Setup, clock: Arc<ManualClock>) {
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin, Role::Approver(ApprovalKind::Technical)]).await;
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    // The example's "careful" plan; an admin pushes it past pre-deployment, staging and shadow.
    let (status, _) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" })).await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..3 {
        let (status, view) =
            api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "restart test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    assert_eq!(view["stage_label"], "canary step 1", "{view}");
    let step_began: Timestamp = view["stage_entered_at"].as_str().unwrap().parse().unwrap();
    let hold_ends: Timestamp = view["hold_ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(hold_ends - step_began, SignedDuration::from_hours(4));

    // The judge (another writer on the same log) finds the canary healthy.
    let judge = Rollouts::new(setup.store.clone());
    let healthy = Command::new(Actor::system(), Input::Verdict { verdict: Verdict::Healthy });
    judge.submit("r1", &healthy, clock.now()).await.unwrap();

    // One hour into the hold the server stops; it stays down for another hour.
    clock.advance(SignedDuration::from_hours(1));
    api.stop().await;
    clock.advance(SignedDuration::from_hours(1));
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let (_, during) = api.get("/api/v1/rollouts/r1", &alice).await;
    assert_eq!(during["stage_label"], "canary step 1", "still holding right after the restart: {during}");
    // One minute before the hold ends, nothing moves…
    clock.set(hold_ends - SignedDuration::from_mins(1));
    let early = wait_for(Duration::from_millis(300), || async {
        api.get("/api/v1/rollouts/r1", &alice).await.1["stage_label"] != "canary step 1"
    })
    .await;
    assert!(!early, "the rollout moved before its hold ended");
    // …and at its end, the next step begins at that very moment.
    clock.set(hold_ends);
    let moved = wait_for(Duration::from_secs(20), || async {
        api.get("/api/v1/rollouts/r1", &alice).await.1["stage_label"] == "canary step 2"
    })
    .await;
    assert!(moved, "the rollout did not continue after the restart");
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    let entered: Timestamp =
        view["history"].as_array().unwrap().last().unwrap()["entered_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(entered, hold_ends, "step 2 began when the recorded hold ended, the outage notwithstanding");
    assert_eq!(view["candidate_percent"], 5.0);
    api.stop().await;
}

fn manual() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(THURSDAY.parse().unwrap()))
}

#[tokio::test]
async fn a_hold_interrupted_by_a_restart_ends_on_time() {
    let clock = manual();
    restart_mid_hold(Setup::with_clock(clock.clone()).await, clock).await;
}

#[tokio::test]
async fn a_hold_interrupted_by_a_restart_ends_on_time_on_postgres() {
    let clock = manual();
    let (mut setup, db) = Setup::postgres(1.0).await;
    setup.clock = clock.clone();
    restart_mid_hold(setup, clock).await;
    db.drop_now().await;
}
