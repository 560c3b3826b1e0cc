//! For random sequences of registrations, rollouts, promotions, rollbacks,
//! aborts and restarts, the route table the gateway has is the desired
//! routing computed afresh from the store (config, registry, rollouts).

mod common;

use common::*;
use proptest::prelude::*;
use rollgate_core::config::Config;
use rollgate_core::roles::Role;
use rollgate_core::routing::{RegisteredVersion, Routing, RoutingInputs, desired};
use rollgate_gateway::table::RouteTable;
use rollgate_store::{EventStore, Rollouts, is_rollout_stream};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Register(u8),
    Start { candidate: u8, skip_shadow: bool },
    Promote,
    Rollback { full: bool },
    Abort,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (3u8..6).prop_map(Op::Register),
        2 => ((2u8..6), any::<bool>()).prop_map(|(candidate, skip_shadow)| Op::Start { candidate, skip_shadow }),
        4 => Just(Op::Promote),
        1 => any::<bool>().prop_map(|full| Op::Rollback { full }),
        1 => Just(Op::Abort),
        1 => Just(Op::Restart),
    ]
}

/// What routing means for traffic: per service, each version's endpoints,
/// the shares in split order (those above 0), the mirror, the baseline arm.
type Shape = BTreeMap<String, (BTreeMap<String, Vec<String>>, Vec<(String, u16)>, Option<(String, u16)>, String)>;

fn shape_of_routing(routing: &Routing) -> Shape {
    routing
        .services
        .iter()
        .map(|(name, s)| {
            let versions = s.versions.iter().map(|(v, r)| (v.clone(), r.endpoints.clone())).collect();
            let split = s
                .split
                .iter()
                .filter(|(_, w)| w.basis_points() > 0)
                .map(|(v, w)| (v.clone(), w.basis_points()))
                .collect();
            let mirror = s.mirror.as_ref().map(|m| (m.version.clone(), m.share.basis_points()));
            (name.clone(), (versions, split, mirror, s.stable.clone()))
        })
        .collect()
}

fn shape_of_table(table: &RouteTable) -> Shape {
    table
        .services
        .iter()
        .map(|s| {
            let name = |i: usize| s.versions[i].name.to_string();
            let versions = s
                .versions
                .iter()
                .map(|v| (v.name.to_string(), v.endpoints.iter().map(|e| e.url.clone()).collect()))
                .collect();
            let split = s
                .weights
                .iter()
                .filter(|(_, w)| w.basis_points() > 0)
                .map(|(i, w)| (name(*i), w.basis_points()))
                .collect();
            let mirror = s.mirror.as_ref().map(|m| (name(m.version), m.share.basis_points()));
            let stable = s
                .versions
                .iter()
                .find(|v| v.arm == rollgate_gateway::stats::Arm::Stable)
                .map_or_else(String::new, |v| v.name.to_string());
            (s.name.to_string(), (versions, split, mirror, stable))
        })
        .collect()
}

/// The desired routing from the store alone, as a fresh process would compute it.
async fn desired_from_store(setup: &Setup, config: &Config) -> Routing {
    let rollouts = Rollouts::new(setup.store.clone());
    let mut all = Vec::new();
    for id in setup.store.streams().await.unwrap().into_iter().filter(|s| is_rollout_stream(s)) {
        all.extend(rollouts.load(&id).await.unwrap());
    }
    let registered: Vec<RegisteredVersion> = setup
        .store
        .read("@registry")
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let r: serde_json::Value = serde_json::from_str(&e.body).unwrap();
            let endpoints = r["version"]["endpoints"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().into());
            RegisteredVersion {
                service: r["service"].as_str().unwrap().into(),
                name: r["version"]["name"].as_str().unwrap().into(),
                endpoints: endpoints.collect(),
            }
        })
        .collect();
    let now = setup.clock.now();
    desired(&RoutingInputs {
        config,
        registered: &registered,
        rollouts: &all,
        staging: &[],
        flags: &Default::default(),
        now,
    })
}

async fn run(ops: Vec<Op>) {
    let text =
        fraud_config(&[("v1", "http://127.0.0.1:9001"), ("v2", "http://127.0.0.1:9002")], "auto_promote = false\n", "");
    let config = Config::parse("rollgate.toml", &text).unwrap();
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let (mut api, mut front) = setup.start_with_gateway(source(&text), Duration::from_secs(1)).await;
    let mut active: Option<String> = None;
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Register(v) => {
                let spec = json!({ "name": format!("v{v}"), "endpoints": [format!("http://127.0.0.1:90{v:02}")],
                                   "artifact_uri": "s3://m", "artifact_sha256": "d".repeat(64), "owner": "ml" });
                api.post("/api/v1/services/fraud/versions", &alice, spec).await;
            }
            Op::Start { candidate, skip_shadow } => {
                let id = format!("r{n}");
                let body = json!({ "service": "fraud", "candidate": format!("v{candidate}"), "id": id, "skip_shadow": skip_shadow });
                if api.post("/api/v1/rollouts", &alice, body).await.0 == reqwest::StatusCode::CREATED {
                    active = Some(id);
                }
            }
            Op::Promote | Op::Rollback { .. } | Op::Abort => {
                let Some(id) = &active else { continue };
                let (path, body) = match op {
                    Op::Promote => ("force-promote", json!({ "reason": "property" })),
                    Op::Rollback { full } => {
                        ("rollback", json!({ "category": "other", "reason": "property", "full": full }))
                    }
                    _ => ("abort", json!({ "reason": "property" })),
                };
                let token = if matches!(op, Op::Promote) { &dana } else { &alice };
                let (_, view) = api.post(&format!("/api/v1/rollouts/{id}/{path}"), token, body).await;
                if view["terminal"] == true {
                    active = None;
                }
            }
            Op::Restart => {
                api.stop().await;
                front.shutdown().await;
                (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(1)).await;
            }
        }
        let want = shape_of_routing(&desired_from_store(&setup, &config).await);
        let have = shape_of_table(&front.gateway.table());
        assert_eq!(have, want, "after {:?}", &ops[..=n]);
    }
    api.stop().await;
    front.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_applied_route_table_is_the_desired_routing(ops in prop::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(run(ops));
    }
}

#[test]
fn a_hand_picked_sequence_with_every_kind_of_step() {
    let ops = vec![
        Op::Register(3),
        Op::Start { candidate: 3, skip_shadow: false },
        Op::Promote,
        Op::Promote,
        Op::Restart,
        Op::Promote,
        Op::Rollback { full: true },
        Op::Start { candidate: 2, skip_shadow: true },
        Op::Promote,
        Op::Promote,
        Op::Promote,
        Op::Promote,
        Op::Restart,
        Op::Start { candidate: 3, skip_shadow: true },
        Op::Abort,
    ];
    tokio::runtime::Runtime::new().unwrap().block_on(run(ops));
}
