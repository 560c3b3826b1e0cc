//! The judge wired in: real traffic through the in-process gateway to two
//! model servers; the controller feeds the gateway's measurements to the
//! judge, which calls a healthy canary healthy and rolls a failing one back
//! on its own, with the evidence in the event log.

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use common::*;
use rollgate_core::config::EXAMPLE;
use rollgate_core::event::EventBody;
use rollgate_core::roles::Role;
use rollgate_store::EventStore;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// A model server that answers 200, or 500 to every other request while `failing` is set.
async fn model(failing: Arc<AtomicBool>) -> String {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = Router::new().fallback(any(move || {
        let (failing, count) = (failing.clone(), count.clone());
        async move {
            let n = count.fetch_add(1, Ordering::Relaxed);
            if failing.load(Ordering::Relaxed) && n % 2 == 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"model crashed\"}")
            } else {
                (StatusCode::OK, "{\"score\":0.5}")
            }
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_judge_passes_a_healthy_canary_and_rolls_back_a_failing_one() {
    let (stable_fails, canary_fails) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (v1, v2) = (model(stable_fails).await, model(canary_fails.clone()).await);
    let text = EXAMPLE
        .replace("[\"http://127.0.0.1:9001\"]", &format!("[\"{v1}\"]"))
        .replace("[\"http://127.0.0.1:9002\", \"http://127.0.0.1:9003\"]", &format!("[\"{v2}\"]"))
        // A first step of 20% (then 22%) so that the test needs little traffic.
        .replace("{ percent = 1, hold = \"4h\" }", "{ percent = 20, hold = \"4h\" }")
        .replace("{ percent = 5, hold = \"8h\" }", "{ percent = 22, hold = \"8h\" }")
        .replace("latency_ratio = 1.5 ", "warm_up = \"1s\"\nlatency_ratio = 1.5 ");

    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(1)).await;
    api.post("/api/v1/rollouts", &alice, json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" })).await;
    for _ in 0..3 {
        api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "judge test" })).await;
    }
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    assert_eq!(view["stage"], "canary", "{view}");

    // Traffic runs in the background until the test ends.
    let url = format!("http://{}/v2/models/fraud/infer", front.addr);
    let traffic = tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            let _ = http.post(&url).body("{}").send().await;
        }
    });

    let verdict = || async {
        let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
        view
    };
    // The live report says healthy first; the state machine records it right after.
    let recorded =
        wait_for(Duration::from_secs(30), || async { verdict().await["gates"].to_string().contains("judge healthy") })
            .await;
    let view = verdict().await;
    assert!(recorded, "a healthy canary is called healthy once it has had enough traffic: {}", view["gates"]);
    assert_eq!(view["judge"]["verdict"]["verdict"], "healthy", "{}", view["judge"]);

    canary_fails.store(true, Ordering::Relaxed);
    let rolled_back = wait_for(Duration::from_secs(30), || async { verdict().await["stage"] == "rolled_back" }).await;
    traffic.abort();
    let view = verdict().await;
    assert!(rolled_back, "a canary failing half its requests is rolled back: {view}");
    assert_eq!(view["candidate_percent"], 0.0);

    // The log holds the rollback verdict with its numbers.
    let rollback = rollback_verdict(&setup, "r1", "error_rate").await;
    assert!(rollback.to_string().contains("\"trigger\":\"error_rate\""), "{rollback}");
    api.stop().await;
    front.shutdown().await;
}

#[tokio::test]
async fn a_chat_candidate_with_twice_the_time_to_first_token_is_rolled_back_on_that_trigger() {
    use rollgate_sim::model::{Faults, serve};
    // v2's first token comes after 40 ms instead of 20, its tokens a little faster:
    // the whole answer takes about as long (the latency trigger sees nothing).
    let chat = |first_ms: f64, token_ms: u64| Faults { latency_ms: first_ms, token_ms, ..Faults::default() };
    let v1 = serve("127.0.0.1:0".parse().unwrap(), "v1", 5, chat(20.0, 10)).await.unwrap();
    let v2 = serve("127.0.0.1:0".parse().unwrap(), "v2", 5, chat(40.0, 8)).await.unwrap();
    let plan = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"4h\" }, { percent = 100 }]\n\
                [plans.fast.rollback]\nwarm_up = \"1s\"\nttft_ratio = 1.5\n";
    let text = chat_config(&v1.url(), &v2.url(), plan);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;
    let (status, started) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "assistant", "candidate": "v2", "id": "c1" })).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    force_into_canary(&api, "c1", &alice, &dana).await;
    let traffic = stream_chat(&format!("http://{}/v1/chat/completions", front.addr), 16);
    let rolled_back = wait_for(Duration::from_secs(60), || async {
        api.get("/api/v1/rollouts/c1", &alice).await.1["stage"] == "rolled_back"
    })
    .await;
    traffic.iter().for_each(|t| t.abort());
    let view = api.get("/api/v1/rollouts/c1", &alice).await.1;
    assert!(rolled_back, "a candidate with twice the time to first token is rolled back: {}", view["judge"]);

    let rollback = rollback_verdict(&setup, "c1", "ttft").await;
    assert!(rollback.to_string().contains("first tokens slower than"), "{rollback}");
    // The latency trigger saw no such difference: it did not fire.
    let latency = trigger_report(&rollback, "latency").expect("the latency trigger's report");
    assert_eq!(latency["fired"], false, "{latency}");
    assert_eq!(trigger_report(&rollback, "ttft").expect("the ttft trigger's report")["fired"], true);
    api.stop().await;
    front.shutdown().await;
}

/// The report of trigger `name` anywhere in a verdict's evidence.
fn trigger_report(value: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    match value {
        serde_json::Value::Object(o) if o.get("trigger") == Some(&json!(name)) && o.contains_key("kind") => {
            Some(value.clone())
        }
        serde_json::Value::Object(o) => o.values().find_map(|v| trigger_report(v, name)),
        serde_json::Value::Array(a) => a.iter().find_map(|v| trigger_report(v, name)),
        _ => None,
    }
}

/// The rollback verdict in rollout `id`'s log, checked to be on `trigger` and to carry the judge's numbers.
async fn rollback_verdict(setup: &Setup, id: &str, trigger: &str) -> serde_json::Value {
    let events = setup.store.read(id).await.unwrap();
    let rollback = events
        .iter()
        .filter_map(|e| serde_json::from_str::<EventBody>(&e.body).ok())
        .map(|b| serde_json::to_value(&b).unwrap())
        .find(|b| b.to_string().contains("\"verdict\":\"rollback\""))
        .expect("a rollback verdict in the log");
    let text = rollback.to_string();
    assert!(text.contains(&format!("\"trigger\":\"{trigger}\"")), "rolled back on {trigger}: {text}");
    for number in ["e_value", "threshold", "canary_events", "baseline_events", "confidence"] {
        assert!(text.contains(number), "the evidence carries {number}: {text}");
    }
    rollback
}
