//! The infrastructure gates proven by rollgate itself in pre-deployment:
//! against real model endpoints, a real Prometheus (or, without one, the
//! gateway's own series) and a real logging check command; what it cannot
//! prove stays pending for a person.

mod common;

use axum::routing::get;
use common::*;
use serde_json::Value;
use std::time::Duration;

const CANARY: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";
const GATES: [&str; 4] = [
    "infrastructure.endpoints_healthy",
    "infrastructure.monitoring_instrumented",
    "infrastructure.scaling_declared",
    "infrastructure.logging_enabled",
];

/// An exporter with one series for the candidate's version.
async fn exporter() -> String {
    let app =
        axum::Router::new().route("/metrics", get(|| async { "# TYPE model_up gauge\nmodel_up{version=\"v2\"} 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn evidence(view: &Value, gate: &str) -> Option<Value> {
    view["evidence"].as_array()?.iter().find(|e| e["gate"] == gate).cloned()
}

#[tokio::test]
async fn rollgate_proves_the_infrastructure_gates_it_can() {
    let prometheus = PrometheusServer::start(&exporter().await);
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let logging = "logging_check = { command = [\"sh\", \"-c\", \"test \\\"$ROLLGATE_VERSION\\\" = v2\"] }\n";
    let config = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], CANARY, logging)
        + "[services.fraud.versions.v2.scaling]\nmin_replicas = 2\nmax_replicas = 8\non = \"cpu 70%\"\n"
        + &format!("[metrics]\nprometheus = \"{}\"\n", prometheus.url);
    let s = Started::new(&config).await;
    let view = || async { s.api.get("/api/v1/rollouts/r1", &s.alice).await.1 };
    let all_passed = wait_for(Duration::from_secs(60), || async {
        let v = view().await;
        GATES.iter().all(|g| evidence(&v, g).is_some_and(|e| e["passed"] == true))
    })
    .await;
    let v = view().await;
    assert!(all_passed, "{}", v["evidence"]);
    for gate in GATES {
        assert_eq!(evidence(&v, gate).unwrap()["by"], "rollgate", "{gate}");
    }
    let summary = |gate: &str| evidence(&v, gate).unwrap()["summary"].as_str().unwrap().to_string();
    assert_eq!(summary("infrastructure.endpoints_healthy"), "all 1 endpoint(s) of v2 answer /healthz with 2xx");
    assert_eq!(summary("infrastructure.scaling_declared"), "v2 scales from 2 to 8 replicas on cpu 70%");
    assert_eq!(summary("infrastructure.monitoring_instrumented"), "Prometheus has 1 series for version v2");
    assert_eq!(summary("infrastructure.logging_enabled"), "`sh` exited 0");
    assert!(v2.probes.load(std::sync::atomic::Ordering::Relaxed) > 0, "the candidate's endpoint was probed");
    s.stop().await;
}

#[tokio::test]
async fn what_rollgate_cannot_prove_stays_pending_a_dead_endpoint_fails_and_the_gateway_proves_monitoring() {
    let v1 = named_model("v1").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = fraud_config(&[("v1", &v1.url), ("v2", &dead)], CANARY, "");
    let s = Started::new(&config).await;
    let view = || async { s.api.get("/api/v1/rollouts/r1", &s.alice).await.1 };
    let probed = wait_for(Duration::from_secs(30), || async {
        let v = view().await;
        GATES[..2].iter().all(|gate| evidence(&v, gate).is_some())
    })
    .await;
    let v = view().await;
    assert!(probed, "{}", v["evidence"]);
    let healthy = evidence(&v, "infrastructure.endpoints_healthy").unwrap();
    assert_eq!(healthy["passed"], false);
    assert!(
        healthy["summary"].as_str().unwrap().starts_with(&format!("1 of 1 endpoint(s) fail: {dead}/healthz")),
        "{healthy}"
    );
    // No Prometheus: the gateway in front of the models routes the candidate, so its own series count it.
    let measured = evidence(&v, "infrastructure.monitoring_instrumented").unwrap();
    assert_eq!((measured["passed"].as_bool(), measured["by"].as_str()), (Some(true), Some("rollgate")), "{measured}");
    assert!(measured["summary"].as_str().unwrap().starts_with("the gateway routes v2 and counts"), "{measured}");
    // No scaling, no logging check: nothing to prove with, so nothing is said.
    for gate in &GATES[2..] {
        assert!(evidence(&v, gate).is_none(), "{gate}: {}", v["evidence"]);
        let status = v["gates"].as_array().unwrap().iter().find(|g| g["gate"] == *gate).unwrap()["status"].clone();
        assert_eq!(status, "pending", "{gate}");
    }
    s.stop().await;
}
