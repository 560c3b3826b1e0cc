//! After a rollout: the version a rollback brought back is watched against
//! its own record (on a manual clock: the window ends when the test says);
//! full deployment holds the new version to the previous one's record, and a
//! blue-green switch is one route swap whose bake does the same; a rollout's
//! ticket is closed once through the ticket hook.

mod common;

use common::*;
use jiff::SignedDuration;
use reqwest::StatusCode;
use rollgate_core::clock::ManualClock;
use rollgate_core::roles::Role;
use rollgate_gateway::RunningGateway;
use rollgate_sim::model::{Faults, RunningModel};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const CANARY: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";

async fn model(name: &str) -> RunningModel {
    let faults = Faults { latency_ms: 1.0, latency_sigma: 0.0, ..Faults::default() };
    rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), name, 7, faults).await.unwrap()
}

struct World {
    api: Api,
    front: RunningGateway,
    clock: Arc<ManualClock>,
    alice: String,
    _setup: Setup,
}

/// v1 (at `v1_url`) stable and v2 in rollout `r1` on `plan`, forced through `promotions` stages (their gates are
/// other tests' subject); `extra` goes into the service's table, `after` after the config.
async fn started(plan: &str, v1_url: &str, v2_url: &str, extra: &str, after: &str, promotions: usize) -> World {
    let clock = Arc::new(ManualClock::new(THURSDAY.parse().unwrap()));
    let setup = Setup::with_clock(clock.clone()).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let config = fraud_config(&[("v1", v1_url), ("v2", v2_url)], plan, extra) + after;
    let (api, front) = setup.start_with_gateway(source(&config), Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true, "ticket": "OPS-42" });
    let (status, body) = api.post("/api/v1/rollouts", &alice, start).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for _ in 0..promotions {
        let (status, view) = api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    World { api, front, clock, alice, _setup: setup }
}

/// v1 stable, v2 a canary at 20% in rollout `r1`.
async fn in_canary(v1_url: &str, v2_url: &str, extra: &str, after: &str) -> World {
    started(CANARY, v1_url, v2_url, extra, after, 2).await
}

impl World {
    async fn view(&self) -> Value {
        self.api.get("/api/v1/rollouts/r1", &self.alice).await.1
    }

    async fn rollback(&self, full: bool) {
        let body = json!({ "category": "quality", "reason": "test", "full": full });
        let (status, view) = self.api.post("/api/v1/rollouts/r1/rollback", &self.alice, body).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }

    /// The view once `check` holds of it.
    async fn until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        view_until(&self.api, &self.alice, "r1", what, check).await
    }

    async fn baseline_recorded(&self) -> Value {
        self.until("the baseline was never recorded", |v| v["watch"]["baseline"].is_object()).await
    }

    async fn stop(self) {
        self.api.stop().await;
        self.front.shutdown().await;
    }
}

#[tokio::test]
async fn a_version_that_stays_healthy_after_the_rollback_is_stable_once_the_window_ends() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = in_canary(&v1.url(), &v2.url(), "", "").await;
    served_by(&w.front, 400).await;
    w.rollback(false).await;
    let view = w.baseline_recorded().await;
    let watch = &view["watch"];
    assert_eq!((watch["version"].as_str(), watch["status"].as_str()), (Some("v1"), Some("watching")));
    let before = watch["baseline"]["requests"].as_u64().unwrap();
    assert!(before >= 300, "v1's record before the rollback: {before} requests");
    assert!(view["outcome"].as_str().unwrap().contains("watching v1 until"), "{}", view["outcome"]);
    served_by(&w.front, 300).await;
    // One minute before the window ends it is still watching; at its end, stable.
    w.clock.advance(SignedDuration::from_mins(29));
    let early =
        wait_for(Duration::from_millis(300), || async { w.view().await["watch"]["status"] != "watching" }).await;
    assert!(!early, "the watch ended before its window: {}", w.view().await["watch"]);
    w.clock.advance(SignedDuration::from_mins(1));
    let view = w.until("the watch did not end", |v| v["watch"]["status"] == "stable").await;
    let outcome = view["outcome"].as_str().unwrap();
    assert!(outcome.contains("previous version v1 stable since"), "{outcome}");
    assert_eq!(view["watch"]["details"]["requests"], 300, "the watch counted what came after the rollback");
    assert!(view["watch"]["summary"].as_str().unwrap().starts_with("300 requests in 30m"), "{}", view["watch"]);
    w.stop().await;
}

#[tokio::test]
async fn a_version_that_fails_after_the_rollback_too_raises_the_alert_with_its_numbers() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = in_canary(&v1.url(), &v2.url(), "", "").await;
    served_by(&w.front, 400).await;
    w.rollback(false).await;
    w.baseline_recorded().await;
    // The old version breaks as well, long before the window ends.
    v1.set_faults(Faults { error_rate: 0.3, latency_ms: 1.0, latency_sigma: 0.0, ..Faults::default() });
    served_by(&w.front, 200).await;
    let view = w.until("no alert", |v| v["watch"]["status"] == "unhealthy").await;
    let summary = view["watch"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("errors: "), "{summary}");
    assert!(summary.contains("against 0.00% before the rollback"), "{summary}");
    // It spoke as soon as the evidence sufficed: a handful of errors where the record had none.
    let details = &view["watch"]["details"];
    let (errors, requests) = (details["errors"].as_u64().unwrap(), details["requests"].as_u64().unwrap());
    assert!(errors >= 3 && errors as f64 / requests as f64 > 0.05, "{errors} errors of {requests}");
    assert!(view["outcome"].as_str().unwrap().contains("ALERT: previous version v1 is not healthy either"));
    // The alert is an event of the log, with its notification.
    let (_, events) = w.api.get("/api/v1/rollouts/r1/events", &w.alice).await;
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["input"]["type"].as_str(), last["actor"].as_str()),
        (Some("watch_result"), Some("rollgate")),
        "{last}"
    );
    let notified = last["effects"].as_array().unwrap().iter().any(|e| e["kind"] == "previous_version_unhealthy");
    assert!(notified, "{last}");
    w.stop().await;
}

#[tokio::test]
async fn a_full_rollback_whose_redeployed_endpoint_serves_another_version_is_caught() {
    // The endpoint v1 came back on answers as v2 does: the redeploy put the wrong build there.
    let (wrong, v2) = (model("v2").await, model("v2").await);
    let probe = "version_probe = { path = \"/version\", pointer = \"/model\" }\n";
    let w = in_canary(&wrong.url(), &v2.url(), probe, "").await;
    served_by(&w.front, 200).await;
    w.rollback(true).await;
    w.baseline_recorded().await;
    // Before the redeploy is done nothing is said of the endpoints.
    assert_eq!(w.view().await["watch"]["status"], "watching");
    for action in ["redeploy-v1", "retire-v2"] {
        let path = format!("/api/v1/rollouts/r1/actions/{action}/confirm");
        let (status, view) = w.api.post(&path, &w.alice, json!({ "note": "done by hand" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    let view = w.until("the wrong version was not caught", |v| v["watch"]["status"] == "unhealthy").await;
    let summary = view["watch"]["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("endpoint {} serves `v2`, not `v1`", wrong.url())), "{summary}");
    w.stop().await;
}

/// The plan's full deployment: an hour of observation, the previous version warm for two.
fn observed(rollback_on_regression: bool) -> String {
    format!(
        "[plans.fast.full]\nobserve = \"1h\"\nkeep_warm = \"2h\"\nrollback_on_regression = {rollback_on_regression}\n"
    )
}

impl World {
    /// From the canary into full deployment, once the previous version's record is in the log.
    async fn promote_to_full(&self) -> Value {
        let dana = self._setup.token("dana-full", &[Role::Admin]).await;
        let (status, view) =
            self.api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["stage"], "full", "{view}");
        self.until("the previous version's record was never recorded", |v| v["observed"]["of"] == "v1").await
    }

    fn evidence(view: &Value) -> Option<Value> {
        view["evidence"].as_array().unwrap().iter().find(|e| e["gate"] == "post_deployment.metrics_stable").cloned()
    }

    fn item(view: &Value, id: &str) -> Value {
        let post = view["checklists"].as_array().unwrap().iter().find(|c| c["checklist"] == "post_deployment").unwrap();
        post["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone()
    }
}

#[tokio::test]
async fn full_deployment_held_to_the_previous_versions_record_passes_when_the_window_ends() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = in_canary(&v1.url(), &v2.url(), "", &observed(false)).await;
    served_by(&w.front, 400).await;
    let view = w.promote_to_full().await;
    let baseline = &view["observed"]["baseline"];
    assert!(baseline["requests"].as_u64().unwrap() >= 300, "v1's record: {baseline}");
    served_by(&w.front, 300).await;
    // A minute before the window ends nothing is recorded; at its end, passed by rollgate.
    w.clock.advance(SignedDuration::from_mins(59));
    let early = wait_for(Duration::from_millis(300), || async { World::evidence(&w.view().await).is_some() }).await;
    assert!(!early, "decided before the window ended: {:?}", World::evidence(&w.view().await));
    w.clock.advance(SignedDuration::from_mins(1));
    let view = w.until("no post-deployment evidence", |v| World::evidence(v).is_some()).await;
    let evidence = World::evidence(&view).unwrap();
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(true), Some("rollgate")), "{evidence}");
    assert!(evidence["summary"].as_str().unwrap().starts_with("300 requests in 1h: error rate 0.00%"), "{evidence}");
    // The items it proves tick themselves; the ones only a person can do wait.
    for id in ["metrics_in_range", "no_user_complaints"] {
        let item = World::item(&view, id);
        assert_eq!(item["done"], true, "{item}");
    }
    assert_eq!(World::item(&view, "documentation_updated")["done"], false);
    assert_eq!(view["stage"], "full", "the checklist's person-only items still hold it");
    w.stop().await;
}

#[tokio::test]
async fn a_regression_in_full_deployment_is_recorded_at_once_and_rolls_back_when_the_plan_says_so() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = in_canary(&v1.url(), &v2.url(), "", &observed(true)).await;
    served_by(&w.front, 400).await;
    w.promote_to_full().await;
    // The new version breaks once it has all the traffic.
    v2.set_faults(Faults { error_rate: 0.3, latency_ms: 1.0, latency_sigma: 0.0, ..Faults::default() });
    served_by(&w.front, 200).await;
    let view = w.until("no rollback", |v| v["stage"] == "rolled_back").await;
    let evidence = World::evidence(&view).unwrap();
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(false), Some("rollgate")), "{evidence}");
    let summary = evidence["summary"].as_str().unwrap();
    assert!(summary.starts_with("errors: ") && summary.contains("against 0.00% for v1 before"), "{summary}");
    assert!(view["outcome"].as_str().unwrap().contains("post_deployment"), "{}", view["outcome"]);
    // Traffic went back to the warm previous version at once.
    assert_eq!(served_by(&w.front, 20).await.get("v1"), Some(&20));
    // The log holds the failed check with its notification, then the rollback.
    let (_, events) = w.api.get("/api/v1/rollouts/r1/events", &w.alice).await;
    let events = events.as_array().unwrap();
    let failed = events.iter().position(|e| e["input"]["gate"] == "post_deployment.metrics_stable").unwrap();
    let told =
        events[failed]["effects"].as_array().unwrap().iter().find(|fx| fx["kind"] == "regression_after_deployment");
    let told = told.unwrap_or_else(|| panic!("{}", events[failed]));
    assert!(told["message"].as_str().unwrap().contains("rolling back to v1 (the plan says so)"), "{told}");
    assert_eq!(events[failed + 1]["input"]["verdict"]["trigger"], "post_deployment", "{}", events[failed + 1]);
    w.stop().await;
}

const BLUE_GREEN: &str = "strategy = \"blue-green\"\n[plans.fast.blue_green]\nbake = \"1h\"\n";

fn only(version: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    std::collections::BTreeMap::from([(version.to_string(), n)])
}

#[tokio::test]
async fn blue_green_green_takes_every_request_at_the_switch_and_bakes_against_blues_record() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = started(BLUE_GREEN, &v1.url(), &v2.url(), "", "", 1).await;
    assert_eq!(w.view().await["stage"], "staging");
    // Until the switch green serves no user.
    assert_eq!(served_by(&w.front, 300).await, only("v1", 300));
    let view = w.promote_to_full().await;
    assert_eq!((view["strategy"].as_str(), view["candidate_percent"].as_f64()), (Some("blue-green"), Some(100.0)));
    assert!(view["observed"]["baseline"]["requests"].as_u64().unwrap() >= 300, "blue's record: {}", view["observed"]);
    // One route swap: the very next request, and every one after it, is green's.
    assert_eq!(served_by(&w.front, 1).await, only("v2", 1));
    assert_eq!(served_by(&w.front, 299).await, only("v2", 299));
    // The bake passes at its end, not before; blue stays warm for a swap back.
    w.clock.advance(SignedDuration::from_mins(59));
    let early = wait_for(Duration::from_millis(300), || async { World::evidence(&w.view().await).is_some() }).await;
    assert!(!early, "decided before the bake ended: {:?}", World::evidence(&w.view().await));
    w.clock.advance(SignedDuration::from_mins(1));
    let view = w.until("the bake never passed", |v| World::evidence(v).is_some()).await;
    let evidence = World::evidence(&view).unwrap();
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(true), Some("rollgate")), "{evidence}");
    assert!(evidence["summary"].as_str().unwrap().starts_with("300 requests in 1h"), "{evidence}");
    assert_eq!(view["warm"]["version"], "v1", "{}", view["warm"]);
    w.stop().await;
}

#[tokio::test]
async fn blue_green_a_bad_green_is_swapped_back_to_blue_by_rollgate_with_its_numbers() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let w = started(BLUE_GREEN, &v1.url(), &v2.url(), "", "", 1).await;
    assert_eq!(served_by(&w.front, 400).await, only("v1", 400));
    w.promote_to_full().await;
    // Green breaks under real traffic; the bake's check swaps back without a person.
    v2.set_faults(Faults { error_rate: 0.4, latency_ms: 1.0, latency_sigma: 0.0, ..Faults::default() });
    served_by(&w.front, 200).await;
    let view = w.until("green was never swapped back", |v| v["stage"] == "rolled_back").await;
    assert!(view["outcome"].as_str().unwrap().contains("post_deployment"), "{}", view["outcome"]);
    let evidence = World::evidence(&view).unwrap();
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(false), Some("rollgate")), "{evidence}");
    assert!(evidence["summary"].as_str().unwrap().contains("against 0.00% for v1 before"), "{evidence}");
    // Swapped back: the very next request, and every one after it, is blue's.
    assert_eq!(served_by(&w.front, 1).await, only("v1", 1));
    assert_eq!(served_by(&w.front, 99).await, only("v1", 99));
    w.stop().await;
}

#[tokio::test]
async fn blue_green_blue_is_retired_through_the_deploy_hook_when_its_keep_warm_time_is_over_not_before() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let log = tempfile::NamedTempFile::new().unwrap();
    let script = format!("echo \"$ROLLGATE_EFFECT_ID $ROLLGATE_EFFECT $ROLLGATE_VERSION\" >> {}", log.path().display());
    let deploy = format!("[deploy]\ncommand = [\"sh\", \"-c\", {script:?}]\nattempts = 1\n");
    let plan = format!("{BLUE_GREEN}[plans.fast.full]\nkeep_warm = \"2h\"\n");
    let w = started(&plan, &v1.url(), &v2.url(), "", &deploy, 1).await;
    w.promote_to_full().await;
    let admin = w._setup.token("erin", &[Role::Admin]).await;
    let (status, view) = w.api.post("/api/v1/rollouts/r1/force-promote", &admin, json!({ "reason": "test" })).await;
    assert_eq!((status, view["stage"].as_str()), (StatusCode::OK, Some("completed")), "{view}");
    let retire = |v: &Value| v["actions"].as_array().unwrap().iter().find(|a| a["id"] == "retire-v1").cloned();
    assert_eq!(retire(&view).unwrap()["status"], "pending", "{view}");
    // Blue stays warm: an hour and a half later the hook has still not been asked to retire it.
    w.clock.advance(SignedDuration::from_mins(90));
    let early =
        wait_for(Duration::from_millis(1500), || async { !std::fs::read_to_string(log.path()).unwrap().is_empty() })
            .await;
    assert!(!early, "retired while still warm: {}", std::fs::read_to_string(log.path()).unwrap());
    // Its time over: retired through the hook, recorded done.
    w.clock.advance(SignedDuration::from_mins(30));
    let view = w.until("blue was never retired", |v| retire(v).is_some_and(|a| a["status"] == "done")).await;
    assert_eq!(std::fs::read_to_string(log.path()).unwrap(), "retire-v1 retire v1\n", "{view}");
    w.stop().await;
}

/// A webhook receiver that keeps every body it is sent.
async fn receiver() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: axum::body::Bytes| {
        let keep = keep.clone();
        async move {
            keep.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
            "ok"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tickets", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn a_rollouts_ticket_is_closed_once_through_the_hook_and_its_checklist_item_ticks_itself() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let (url, got) = receiver().await;
    let w = in_canary(&v1.url(), &v2.url(), "", &format!("[tickets]\nwebhook = \"{url}\"\n")).await;
    let item = |v: &Value| {
        let post = v["checklists"].as_array().unwrap().iter().find(|c| c["checklist"] == "post_deployment").unwrap();
        post["items"].as_array().unwrap().iter().find(|i| i["id"] == "ticket_closed").unwrap().clone()
    };
    let view = w.view().await;
    assert_eq!(view["ticket"], "OPS-42");
    assert_eq!(item(&view)["done"], false, "not before the end");
    let (status, _) = w.api.post("/api/v1/rollouts/r1/abort", &w.alice, json!({ "reason": "wrong build" })).await;
    assert_eq!(status, StatusCode::OK);
    let closed =
        |v: &Value| v["actions"].as_array().unwrap().iter().any(|a| a["id"] == "close-ticket" && a["status"] == "done");
    let view = w.until("the ticket hook did not run", closed).await;
    let calls = got.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one call: {calls:?}");
    let call = &calls[0];
    assert_eq!((call["effect"].as_str(), call["ticket"].as_str()), (Some("close_ticket"), Some("OPS-42")));
    assert_eq!(call["outcome"], "aborted");
    assert!(call["summary"].as_str().unwrap().contains("wrong build"), "{call}");
    assert!(call["link"].as_str().unwrap().ends_with("/api/v1/rollouts/r1"), "{call}");
    assert_eq!(call["idempotency_key"], "r1/close-ticket");
    let ticked = item(&view);
    assert_eq!(ticked["done"], true, "{ticked}");
    assert!(ticked["how"].as_str().unwrap().starts_with("OPS-42 closed by webhook"), "{ticked}");
    w.stop().await;
}

/// A stand-in for GitHub's issue API: keeps the comments posted and the issue's state.
async fn fake_github() -> (String, Arc<std::sync::Mutex<Vec<(String, String, Value)>>>) {
    use axum::extract::Path;
    use axum::routing::get;
    let calls: Arc<std::sync::Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let (list, post, patch) = (calls.clone(), calls.clone(), calls.clone());
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            get(move |Path((_, _, _)): Path<(String, String, String)>| {
                let bodies: Vec<Value> = list
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| c.0 == "POST")
                    .map(|c| json!({ "body": c.2["body"] }))
                    .collect();
                async move { axum::Json(bodies) }
            })
            .post(
                move |Path((owner, repo, number)): Path<(String, String, String)>, body: axum::Json<Value>| {
                    post.lock().unwrap().push(("POST".into(), format!("{owner}/{repo}#{number}"), body.0));
                    async { (axum::http::StatusCode::CREATED, "{}") }
                },
            ),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}",
            axum::routing::patch(
                move |Path((owner, repo, number)): Path<(String, String, String)>, body: axum::Json<Value>| {
                    patch.lock().unwrap().push(("PATCH".into(), format!("{owner}/{repo}#{number}"), body.0));
                    async { "{}" }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[tokio::test]
async fn the_example_github_hook_comments_once_and_closes_only_completed_rollouts() {
    let (api, calls) = fake_github().await;
    let script = format!("{}/../../docs/hooks/github-ticket.sh", env!("CARGO_MANIFEST_DIR"));
    let run = |outcome: &str| {
        tokio::process::Command::new("bash")
            .arg(&script)
            .env("GITHUB_API", &api)
            .env("GITHUB_TOKEN", "test-token")
            .env("ROLLGATE_TICKET", "https://github.com/acme/models/issues/42")
            .env("ROLLGATE_OUTCOME", outcome)
            .env("ROLLGATE_SUMMARY", "v2 rolled back (quick), v1 serves fraud again")
            .env("ROLLGATE_ROLLOUT", "r1")
            .env("ROLLGATE_SERVICE", "fraud")
            .env("ROLLGATE_LINK", "http://rollgate/api/v1/rollouts/r1")
            .env("ROLLGATE_IDEMPOTENCY_KEY", format!("r1/close-ticket-{outcome}"))
            .output()
    };
    for _ in 0..2 {
        let out = run("rolled_back").await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    {
        let seen = calls.lock().unwrap();
        assert_eq!(seen.len(), 1, "one comment for two runs with one key: {seen:?}");
        let (method, issue, body) = &seen[0];
        assert_eq!((method.as_str(), issue.as_str()), ("POST", "acme/models#42"));
        let text = body["body"].as_str().unwrap();
        assert!(
            text.contains("ended: **rolled_back**") && text.contains("rollgate:r1/close-ticket-rolled_back"),
            "{text}"
        );
    }
    let out = run("completed").await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = calls.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.0.as_str(), &last.2["state"]),
        ("PATCH", &json!("closed")),
        "a completed rollout closes the issue"
    );
}
