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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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

/// Waits until `api`'s replica sees two members, one of them leading.
async fn two_members_and_a_leader(api: &Api, token: &str) {
    let led = wait_for(Duration::from_secs(10), || async {
        let v = cluster_of(api, token).await;
        v["leader"]["id"].is_string() && v["members"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    assert!(led, "{}", cluster_of(api, token).await);
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

/// A TCP proxy in front of PostgreSQL that can be cut (every connection
/// dropped, new ones refused) and restored: a replica's network partition.
struct Partition {
    addr: String,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Partition {
    async fn start() -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (open, links) = (Arc::new(AtomicBool::new(true)), Arc::new(Mutex::new(Vec::new())));
        let (accepting, kept) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                kept.lock().unwrap().push(link);
            }
        });
        Partition { addr, open, links }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A fraud service whose v1 and v2 are served by named fake models, with a
/// 50% canary step held for an hour, for replicas with a short lease.
struct FraudCluster {
    _models: (common::NamedModel, common::NamedModel),
    config: String,
}

impl FraudCluster {
    async fn new() -> FraudCluster {
        let (v1, v2) = (common::named_model("v1").await, common::named_model("v2").await);
        let plan = "[plans.fast.canary]\nsteps = [{ percent = 50, hold = \"1h\" }, { percent = 100 }]\n";
        let config = common::fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], plan, "");
        FraudCluster { _models: (v1, v2), config }
    }

    fn options(&self, setup: &Setup) -> rollgate_server::ServerOptions {
        let mut options = setup.options(Vec::new(), RetryPolicy::default());
        options.config = source(&self.config);
        options.cluster = ClusterSettings { lease: Duration::from_millis(1500), renew: Duration::from_millis(200) };
        options
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_keeps_routing_and_rejoins() {
    let fraud = FraudCluster::new().await;
    let (setup, db) = Setup::postgres(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let (leader, _leader_front) = setup.start_options_with_gateway(fraud.options(&setup), Duration::from_secs(2)).await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            let v = cluster_of(&leader, &alice).await;
            v["leader"]["id"] == v["self"]["id"]
        })
        .await
    );
    // The other replica reaches PostgreSQL through a link that can be cut.
    let partition = Partition::start().await;
    let mut options = fraud.options(&setup);
    options.store = rollgate_store::AnyStore::open(&db.url_via(&partition.addr)).await.unwrap();
    let (cut_off, front) = setup.start_options_with_gateway(options, Duration::from_secs(2)).await;
    let cut_off_id = cluster_of(&cut_off, &alice).await["self"]["id"].clone();

    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(leader.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    common::force_into_canary(&leader, "r1", &alice, &dana).await;
    let both = |seen: &std::collections::BTreeMap<String, usize>| {
        seen.get("v1").copied().unwrap_or(0) > 50 && seen.get("v2").copied().unwrap_or(0) > 50 && seen.len() == 2
    };
    assert!(wait_for(Duration::from_secs(10), || async { both(&common::served_by(&front, 200).await) }).await);

    // Cut off: the replica's gateway goes on at the last weights while the leader rolls back.
    partition.cut();
    let rollback = json!({ "category": "other", "reason": "partition test", "full": false });
    assert_eq!(leader.post("/api/v1/rollouts/r1/rollback", &dana, rollback).await.0, StatusCode::OK);
    let (status, body) = cut_off.get("/api/v1/cluster", &alice).await;
    assert!(status.is_server_error(), "the cut-off replica cannot reach the database: {status} {body}");
    let seen = common::served_by(&front, 200).await;
    assert!(both(&seen), "the cut-off replica keeps routing at the last weights: {seen:?}");

    // Back on the network: it rejoins (it reads the lease again and sees the leader) and follows the rollback.
    partition.restore();
    let rejoined = wait_for(Duration::from_secs(20), || async {
        let view = cluster_of(&cut_off, &alice).await;
        view["self"]["id"] == cut_off_id
            && view["leader"]["id"].is_string()
            && common::served_by(&front, 20).await.keys().eq(["v1"].iter())
    })
    .await;
    assert!(rejoined, "{} / {:?}", cluster_of(&leader, &alice).await, common::served_by(&front, 20).await);
    cut_off.stop().await;
    leader.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_judge_counts_the_traffic_of_every_replicas_gateway() {
    let fraud = FraudCluster::new().await;
    let (setup, db) = Setup::postgres(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let replica = || setup.start_options_with_gateway(fraud.options(&setup), Duration::from_secs(2));
    let (one, one_front) = replica().await;
    let (two, two_front) = replica().await;
    two_members_and_a_leader(&one, &alice).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(one.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    common::force_into_canary(&one, "r1", &alice, &dana).await;
    let counted = || async {
        let judge = one.get("/api/v1/rollouts/r1", &alice).await.1["judge"].clone();
        (judge["canary_requests"].as_u64(), judge["baseline_requests"].as_u64())
    };
    let judging = wait_for(Duration::from_secs(10), || async { counted().await.0.is_some() }).await;
    assert!(judging, "the leader's judge watches the canary");
    let (canary_before, baseline_before) = counted().await;
    let (canary_before, baseline_before) = (canary_before.unwrap(), baseline_before.unwrap());

    // Requests through both replicas' gateways: the judge counts them all, not the leader's share.
    let (through_one, through_two) =
        (common::served_by(&one_front, 150).await, common::served_by(&two_front, 250).await);
    let sent =
        |version: &str| through_one.get(version).copied().unwrap_or(0) + through_two.get(version).copied().unwrap_or(0);
    assert_eq!(sent("v1") + sent("v2"), 400, "{through_one:?} {through_two:?}");
    assert!(sent("v2") > 0 && through_two.contains_key("v2"), "{through_one:?} {through_two:?}");
    let expected = (Some(canary_before + sent("v2") as u64), Some(baseline_before + sent("v1") as u64));
    let all_counted = wait_for(Duration::from_secs(10), || async { counted().await == expected }).await;
    assert!(all_counted, "the judge counted {:?}, the gateways served {expected:?}", counted().await);
    two.stop().await;
    one.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_shadow_comparison_takes_in_the_pairs_of_every_replicas_gateway() {
    // Two simulated models with one seed answer alike: every pair compares.
    let model = |name: &'static str| async move {
        let faults = rollgate_sim::model::Faults { latency_ms: 1.0, latency_sigma: 0.0, ..Default::default() };
        rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), name, 7, faults).await.unwrap()
    };
    let (v1, v2) = (model("v1").await, model("v2").await);
    let plan = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n\
                [plans.fast.checklists]\ndeployment_day = []\n[plans.fast.shadow]\nduration = \"1h\"\nnoise_percent = 0\n";
    let outputs = "outputs = { label = \"/label\", score = \"/score\" }\n";
    let config = common::fraud_config(&[("v1", &v1.url()), ("v2", &v2.url())], plan, outputs);
    let (setup, db) = Setup::postgres(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let replica = || {
        let mut options = setup.options(Vec::new(), RetryPolicy::default());
        options.config = source(&config);
        options.cluster = ClusterSettings { lease: Duration::from_millis(1500), renew: Duration::from_millis(200) };
        options.tick = Duration::from_millis(200);
        setup.start_options_with_gateway(options, Duration::from_secs(5))
    };
    let (one, one_front) = replica().await;
    let (two, two_front) = replica().await;
    two_members_and_a_leader(&one, &alice).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1" });
    assert_eq!(one.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    let in_shadow = wait_for(Duration::from_secs(10), || async {
        let stage = one.get("/api/v1/rollouts/r1", &alice).await.1["stage_label"].clone();
        if stage != "shadow" {
            one.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "the test starts in shadow" }))
                .await;
        }
        stage == "shadow"
    })
    .await;
    assert!(in_shadow, "{}", one.get("/api/v1/rollouts/r1", &alice).await.1);
    // Both gateways mirror once they route the shadow stage.
    for api in [&one, &two] {
        let mirroring = wait_for(Duration::from_secs(10), || async {
            let routing = api.get("/api/v1/routing", &alice).await.1;
            routing["applied"]["services"]["fraud"]["mirror"].is_object()
        })
        .await;
        assert!(mirroring, "{}", api.get("/api/v1/routing", &alice).await.1);
    }

    // Requests through both replicas' gateways: the comparison counts the pairs of both.
    let (through_one, through_two) = (common::served_by(&one_front, 60).await, common::served_by(&two_front, 90).await);
    assert_eq!((through_one.get("v1"), through_two.get("v1")), (Some(&60), Some(&90)), "production serves");
    let pairs = || async { one.get("/api/v1/rollouts/r1/shadow", &alice).await.1["pairs"].as_u64() };
    let all = wait_for(Duration::from_secs(20), || async { pairs().await == Some(150) }).await;
    assert!(all, "the comparison holds {:?} pairs; the two gateways mirrored 150", pairs().await);
    two.stop().await;
    one.stop().await;
    db.drop_now().await;
}
