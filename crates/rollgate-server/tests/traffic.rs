//! Rollout effects reach the in-process gateway: weights and mirroring
//! follow the rollout, and a restarted server puts traffic back where the
//! log says it was.

mod common;

use common::*;
use rollgate_core::roles::Role;
use rollgate_core::weight::Weight;
use rollgate_gateway::Gateway;
use rollgate_server::dataplane::InProcess;
use rollgate_server::notify::RetryPolicy;
use rollgate_server::start;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn in_process(gateway: &Arc<Gateway>) -> Arc<InProcess> {
    Arc::new(InProcess::new(gateway.clone(), "http://127.0.0.1:9".into()))
}

/// The candidate's weight and the mirrored share of `fraud-scorer` in the gateway's table.
fn traffic(gateway: &Gateway) -> (Weight, Option<Weight>) {
    let table = gateway.table();
    let service = table.service("fraud-scorer").unwrap();
    let weight = service
        .version_index("v2")
        .and_then(|v2| service.weights.iter().find(|(i, _)| *i == v2))
        .map_or(Weight::ZERO, |(_, w)| *w);
    (weight, service.mirror.as_ref().map(|m| m.share))
}

#[tokio::test]
async fn the_gateway_follows_the_rollout_and_is_restored_after_a_restart() {
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let first = gateway(Duration::from_secs(1));
    let mut options = setup.options(Vec::new(), RetryPolicy::default());
    options.dataplane = Some(in_process(&first));
    let server = start(options).await.unwrap();
    let api = Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() };
    api.post("/api/v1/rollouts", &alice, json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" })).await;
    assert_eq!(traffic(&first), (Weight::ZERO, None));
    let force = || api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "test" }));
    force().await; // staging
    force().await; // shadow: mirror everything, serve nothing
    assert_eq!(traffic(&first), (Weight::ZERO, Some(Weight::FULL)));
    force().await; // canary step 1
    assert_eq!(traffic(&first), (Weight::from_percent(1.0).unwrap(), None));
    api.stop().await;

    // A new process, a new gateway: put back at 1% from the log.
    let second = gateway(Duration::from_secs(1));
    let mut options = setup.options(Vec::new(), RetryPolicy::default());
    options.dataplane = Some(in_process(&second));
    let server = start(options).await.unwrap();
    assert_eq!(traffic(&second), (Weight::from_percent(1.0).unwrap(), None));
    let api = Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() };
    let (status, _) =
        api.post("/api/v1/rollouts/r1/rollback", &alice, json!({ "category": "quality", "reason": "bad" })).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(traffic(&second), (Weight::ZERO, None), "a rollback takes the candidate's traffic at once");
    api.stop().await;
}
