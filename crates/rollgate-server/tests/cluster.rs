//! Replicas on PostgreSQL in one process: one leads (runs the reconciler),
//! a follower serves the API and its commands reach the leader's reconciler,
//! and when the leader stops the follower takes the lease with a new token
//! and carries out what the log asks.

mod common;

use common::{Api, Setup, source, wait_for};
use reqwest::StatusCode;
use rollgate_core::config::EXAMPLE;
use rollgate_core::roles::Role;
use rollgate_server::cluster::ClusterSettings;
use rollgate_server::notify::RetryPolicy;
use rollgate_store::EventStore;
use serde_json::{Value, json};
use std::time::Duration;

async fn replica(setup: &Setup) -> Api {
    replica_ticking(setup, Duration::from_millis(50)).await
}

/// A replica whose controller (and, as a follower, its periodic re-read of the log) runs every `tick`.
async fn replica_ticking(setup: &Setup, tick: Duration) -> Api {
    let mut options = setup.options(Vec::new(), RetryPolicy::default());
    options.tick = tick;
    options.config = source(EXAMPLE);
    options.cluster = ClusterSettings { lease: Duration::from_millis(1500), renew: Duration::from_millis(200) };
    let server = rollgate_server::start(options).await.unwrap();
    Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() }
}

async fn cluster_of(api: &Api, token: &str) -> Value {
    api.get("/api/v1/cluster", token).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_a_followers_commands_reach_it_and_the_follower_takes_over() {
    let (setup, db) = Setup::postgres(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let (one, two) = (replica(&setup).await, replica(&setup).await);
    // Both see the same leader among two members.
    let agreed = wait_for(Duration::from_secs(10), || async {
        let (a, b) = (cluster_of(&one, &alice).await, cluster_of(&two, &alice).await);
        a["leader"]["id"].is_string()
            && a["leader"] == b["leader"]
            && a["members"].as_array().map(Vec::len) == Some(2)
            && b["members"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    assert!(agreed, "{} / {}", cluster_of(&one, &alice).await, cluster_of(&two, &alice).await);
    let view = cluster_of(&one, &alice).await;
    assert_eq!(view["store"], "postgres");
    let token = view["token"].as_i64().expect("a fencing token");
    let one_leads = view["leader"]["id"] == view["self"]["id"];
    let (leader, follower) = if one_leads { (one, two) } else { (two, one) };
    let follower_id = cluster_of(&follower, &alice).await["self"]["id"].clone();
    assert_eq!(cluster_of(&follower, &alice).await["self"]["leader"], false);

    // A command sent to the follower is recorded in the shared log; the leader's reconciler acts on it.
    let start = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" });
    let (status, body) = follower.post("/api/v1/rollouts", &alice, start).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let by_rollgate = || async {
        let events = follower.get("/api/v1/rollouts/r1/events", &alice).await.1;
        events.as_array().map_or(0, |e| e.iter().filter(|e| e["actor"] == "rollgate").count())
    };
    assert!(
        wait_for(Duration::from_secs(10), || async { by_rollgate().await > 0 }).await,
        "the leader's reconciler recorded its own checks of the follower's rollout"
    );

    // The leader stops: the follower takes the lease under a new token and carries out the log's effects.
    leader.stop().await;
    let took_over = wait_for(Duration::from_secs(10), || async {
        let v = cluster_of(&follower, &alice).await;
        v["leader"]["id"] == follower_id && v["token"].as_i64().unwrap_or(0) > token
    })
    .await;
    assert!(took_over, "{}", cluster_of(&follower, &alice).await);
    let (status, body) = follower.post("/api/v1/rollouts/r1/abort", &alice, json!({ "reason": "failover test" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let head = setup.store.read("r1").await.unwrap().len() as u64;
    let carried_out =
        wait_for(Duration::from_secs(10), || async { setup.store.effects_done("r1").await.unwrap() >= head }).await;
    assert!(carried_out, "the new leader carried out the abort's effects");
    let view: Value = follower.get("/api/v1/rollouts/r1", &alice).await.1;
    assert_eq!(view["stage"], "aborted");
    follower.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_routes_a_weight_change_as_soon_as_the_database_announces_it() {
    let (setup, db) = Setup::postgres(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let leader = replica(&setup).await;
    let leads = wait_for(Duration::from_secs(10), || async {
        let v = cluster_of(&leader, &alice).await;
        v["leader"]["id"] == v["self"]["id"]
    })
    .await;
    assert!(leads, "{}", cluster_of(&leader, &alice).await);
    // The follower re-reads the log only every 10 minutes: only the announcement can move it sooner.
    let follower = replica_ticking(&setup, Duration::from_secs(600)).await;
    let start = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" });
    assert_eq!(leader.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    common::force_into_canary(&leader, "r1", &alice, &dana).await;
    let weight = leader.get("/api/v1/rollouts/r1", &alice).await.1["candidate_percent"].as_f64().unwrap();
    assert!(weight > 0.0);
    let on_candidate = |routing: &Value| {
        routing["applied"]["services"]["fraud-scorer"]["split"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pair| pair[0] == "v2")
            .map(|pair| pair[1].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    let followed = wait_for(Duration::from_secs(10), || async {
        on_candidate(&follower.get("/api/v1/routing", &alice).await.1) == weight
    })
    .await;
    assert!(followed, "{}", follower.get("/api/v1/routing", &alice).await.1["applied"]);
    follower.stop().await;
    leader.stop().await;
    db.drop_now().await;
}
