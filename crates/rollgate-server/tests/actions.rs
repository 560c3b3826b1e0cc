//! Redeploy and retire after a full rollback go through the team's deploy
//! hook (a command or a signed webhook), in order, retried, each run in the
//! log; with no hook they wait for a person, who confirms them. Nothing is
//! shown done that was not done.

mod common;

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use common::*;
use reqwest::StatusCode;
use rollgate_core::event::EventBody;
use rollgate_core::roles::Role;
use rollgate_server::notify::signature;
use rollgate_store::EventStore;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PLAN: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";

struct Fleet {
    setup: Setup,
    api: Api,
    front: rollgate_gateway::RunningGateway,
    alice: String,
    v1: String,
}

/// A server whose config ends with `deploy` (a `[deploy]` section or
/// nothing), with rollout r1 (v1 → v2) in its canary.
async fn in_canary(deploy: &str) -> Fleet {
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let text = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], PLAN, "") + deploy;
    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    for _ in 0..2 {
        api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "test" })).await;
    }
    Fleet { setup, api, front, alice, v1: v1.url }
}

impl Fleet {
    async fn full_rollback(&self) -> Value {
        let body = json!({ "category": "harmful_outputs", "reason": "unsafe answers", "full": true });
        let (status, view) = self.api.post("/api/v1/rollouts/r1/rollback", &self.alice, body).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        view
    }

    async fn view(&self) -> Value {
        self.api.get("/api/v1/rollouts/r1", &self.alice).await.1
    }

    /// Waits until every action of r1 has the status `status`, then returns the view.
    async fn actions_become(&self, status: &str) -> Value {
        let reached = wait_for(Duration::from_secs(20), || async {
            let view = self.view().await;
            let actions = view["actions"].as_array().cloned().unwrap_or_default();
            !actions.is_empty() && actions.iter().all(|a| a["status"] == status)
        })
        .await;
        let view = self.view().await;
        assert!(reached, "the actions never all became {status}: {}", view["actions"]);
        view
    }

    /// The inputs of r1's log, as recorded.
    async fn inputs(&self) -> Vec<Value> {
        let events = self.setup.store.read("r1").await.unwrap();
        events
            .iter()
            .map(|e| serde_json::to_value(serde_json::from_str::<EventBody>(&e.body).unwrap().command.input).unwrap())
            .collect()
    }

    async fn stop(self) {
        self.api.stop().await;
        self.front.shutdown().await;
    }
}

#[tokio::test]
async fn a_full_rollback_runs_the_command_hook_redeploy_then_retire() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    let path = keys.path().display();
    let script =
        format!("echo \"$ROLLGATE_EFFECT $ROLLGATE_VERSION $ROLLGATE_IDEMPOTENCY_KEY\" >> {path}; echo deployed");
    let deploy = format!("[deploy]\ncommand = [\"sh\", \"-c\", {script:?}]\n");
    let fleet = in_canary(&deploy).await;
    let view = fleet.full_rollback().await;
    let ids: Vec<&str> = view["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["redeploy-v1", "retire-v2"]);
    let view = fleet.actions_become("done").await;
    assert_eq!(view["open_actions"], 0);
    assert!(view["actions"][0]["detail"].as_str().unwrap().contains("exit code 0: deployed"), "{}", view["actions"]);
    let ran = std::fs::read_to_string(keys.path()).unwrap();
    assert_eq!(ran, "redeploy v1 r1/redeploy-v1\nretire v2 r1/retire-v2\n", "in order, each once");
    fleet.stop().await;
}

/// One call a deploy webhook got: its body, idempotency key, and signature if it verified.
type Call = (Value, Option<String>, Option<String>);

/// A deploy webhook that fails its first call, then records and accepts.
#[derive(Default)]
struct Receiver {
    calls: Mutex<Vec<Call>>,
}

async fn receiver() -> (String, Arc<Receiver>) {
    let received = Arc::new(Receiver::default());
    let state = received.clone();
    let app = Router::new().route(
        "/deploy",
        post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let expected = signature(b"deploy key", body.as_bytes());
                let mut calls = state.calls.lock().unwrap();
                let first = calls.is_empty();
                let signed = header("x-rollgate-signature").filter(|s| *s == expected);
                calls.push((serde_json::from_str(&body).unwrap(), header("x-rollgate-idempotency-key"), signed));
                if first { (AxumStatus::SERVICE_UNAVAILABLE, "busy") } else { (AxumStatus::OK, "ok") }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/deploy", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test]
async fn a_webhook_hook_that_fails_first_is_retried_with_the_same_key_and_each_run_is_logged() {
    let (url, received) = receiver().await;
    // ROLLGATE_TEST_DEPLOY_KEY is set for the tests in .cargo/config.toml.
    assert_eq!(std::env::var("ROLLGATE_TEST_DEPLOY_KEY").as_deref(), Ok("deploy key"));
    let deploy = format!(
        "[deploy]\nwebhook = \"{url}\"\nsecret_env = \"ROLLGATE_TEST_DEPLOY_KEY\"\nattempts = 3\nbackoff = \"100ms\"\n"
    );
    let fleet = in_canary(&deploy).await;
    fleet.full_rollback().await;
    let view = fleet.actions_become("done").await;
    let calls = received.calls.lock().unwrap().clone();
    let seen: Vec<(&str, Option<&str>)> =
        calls.iter().map(|(body, key, _)| (body["effect"].as_str().unwrap(), key.as_deref())).collect();
    assert_eq!(
        seen,
        [("redeploy", Some("r1/redeploy-v1")), ("redeploy", Some("r1/redeploy-v1")), ("retire", Some("r1/retire-v2"))],
        "the failed redeploy is sent again with the same key, and retire waits for it"
    );
    assert!(calls.iter().all(|(_, _, signed)| signed.is_some()), "every call is signed with the hook's key");
    assert_eq!(calls[0].0["endpoints"], json!([fleet.v1]), "the hook is told where the version runs");
    let runs = &view["actions"][0]["runs"];
    assert_eq!((runs[0]["ok"].as_bool(), runs[1]["ok"].as_bool()), (Some(false), Some(true)), "{runs}");
    assert!(runs[0]["detail"].as_str().unwrap().starts_with("HTTP 503"), "{runs}");
    let inputs = fleet.inputs().await;
    let runs_logged = inputs.iter().filter(|i| i["type"] == "action_run").count();
    assert_eq!(runs_logged, 3, "two runs of redeploy and one of retire, each in the log");
    fleet.stop().await;
}

#[tokio::test]
async fn without_a_hook_the_actions_wait_for_a_person_who_confirms_them() {
    let fleet = in_canary("").await;
    fleet.full_rollback().await;
    let view = fleet.actions_become("waiting_for_person").await;
    assert_eq!(view["open_actions"], 2);
    let why = view["actions"][0]["detail"].as_str().unwrap();
    assert!(why.contains("no deploy hook is configured for service `fraud`"), "{why}");
    let second = view["actions"][1]["detail"].as_str().unwrap();
    assert!(second.ends_with("do it after redeploy-v1"), "the person is told the order: {second}");
    let notified = fleet.inputs().await.iter().filter(|i| i["type"] == "action_needs_person").count();
    assert_eq!(notified, 2, "each action handed to a person once, with a notification");

    let confirm = async |action: &str, note: &str| {
        let body = json!({ "note": note });
        fleet.api.post(&format!("/api/v1/rollouts/r1/actions/{action}/confirm"), &fleet.alice, body).await
    };
    let (status, view) = confirm("redeploy-v1", "kubectl rollout undo deploy/fraud").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["actions"][0]["status"], "done");
    assert!(view["actions"][0]["detail"].as_str().unwrap().starts_with("by alice"), "{}", view["actions"][0]);
    assert_eq!(view["open_actions"], 1);
    let (status, problem) = confirm("redeploy-v1", "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "confirmed once: {problem}");
    let (status, problem) = confirm("retire-v9", "what").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("its actions are redeploy-v1, retire-v2"), "{problem}");
    assert_eq!(confirm("retire-v2", "scaled v2 to zero").await.0, StatusCode::OK);
    assert_eq!(fleet.view().await["open_actions"], 0);
    fleet.stop().await;
}
