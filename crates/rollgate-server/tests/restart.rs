//! Stop the server in the middle of a hold, start it again: the rollout
//! continues and its hold ends when it would have without the outage.

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use rollgate_core::roles::{Actor, ApprovalKind, Role};
use rollgate_core::rollout::{Command, Input, Verdict};
use rollgate_server::notify::RetryPolicy;
use rollgate_store::Rollouts;
use serde_json::json;
use std::time::Duration;

/// One virtual hour every real second.
const SPEED: f64 = 3600.0;

#[tokio::test]
async fn a_hold_interrupted_by_a_restart_ends_on_time() {
    let setup = Setup::new(SPEED).await;
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
    judge.submit("r1", &healthy, rollgate_core::clock::Clock::now(&setup.clock)).await.unwrap();

    // Stop one virtual hour into the hold, stay down for about an hour, start again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    api.stop().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let (_, during) = api.get("/api/v1/rollouts/r1", &alice).await;
    assert_eq!(during["stage_label"], "canary step 1", "still holding right after the restart: {during}");
    let moved = wait_for(Duration::from_secs(20), || async {
        api.get("/api/v1/rollouts/r1", &alice).await.1["stage_label"] == "canary step 2"
    })
    .await;
    assert!(moved, "the rollout did not continue after the restart");
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    let entered: Timestamp =
        view["history"].as_array().unwrap().last().unwrap()["entered_at"].as_str().unwrap().parse().unwrap();
    // On time: at the recorded end of the hold, give or take a controller
    // tick (50 ms real = 3 virtual minutes) and scheduling; a hold that
    // restarted, or ignored the outage, would be an hour or more late.
    let late = entered - hold_ends;
    assert!(
        late >= SignedDuration::ZERO && late < SignedDuration::from_mins(30),
        "step 2 began {late:?} after the hold ended"
    );
    assert_eq!(view["candidate_percent"], 5.0);
    api.stop().await;
}
