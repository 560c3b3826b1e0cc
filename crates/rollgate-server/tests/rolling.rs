//! A rolling rollout end to end: three simulated instances of v1 behind the
//! real gateway, a deploy-hook script that "redeploys" an instance by setting
//! its behaviour (and logs every call), a manual clock. The hook's log shows
//! the exact order of operations; traffic follows the instances the hook has
//! done; a batch that fails its health check stops the rollout and reverts
//! every touched instance in reverse order; the judge compares new instances
//! with old and rolls a bad batch back.

mod common;

use common::*;
use reqwest::StatusCode;
use rollgate_core::clock::ManualClock;
use rollgate_core::roles::Role;
use rollgate_gateway::RunningGateway;
use rollgate_sim::model::{Faults, RunningModel};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const FAST: &str = r#"{"latency_ms":1.0,"latency_sigma":0.0}"#;

struct World {
    api: Api,
    front: RunningGateway,
    alice: String,
    dana: String,
    hook_log: PathBuf,
    instances: Vec<RunningModel>,
    _dir: tempfile::TempDir,
    _setup: Setup,
}

/// The hook: logs `EFFECT_ID EFFECT VERSION ENDPOINTS`, then sets each
/// endpoint's behaviour: `v2_faults` for the candidate, fast and clean for
/// v1, and a hang (health check 503) for the action named `fail_at`.
fn hook_script(dir: &std::path::Path, log: &std::path::Path, v2_faults: &str, fail_at: &str) -> PathBuf {
    let path = dir.join("deploy.sh");
    let script = format!(
        r#"#!/bin/sh
echo "$ROLLGATE_EFFECT_ID $ROLLGATE_EFFECT $ROLLGATE_VERSION $ROLLGATE_ENDPOINTS" >> '{log}'
case "$ROLLGATE_EFFECT_ID:$ROLLGATE_VERSION" in
  {fail_at}:*) faults='{{"hang":true}}' ;;
  *:v2) faults='{v2_faults}' ;;
  *) faults='{FAST}' ;;
esac
for endpoint in $(echo "$ROLLGATE_ENDPOINTS" | tr ',' ' '); do
  curl -sf -X PUT -H 'content-type: application/json' -d "$faults" "$endpoint/_sim/faults" >/dev/null || exit 1
done
"#,
        log = log.display()
    );
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

async fn world(v2_faults: &str, fail_at: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let hook_log = dir.path().join("hook.log");
    let hook = hook_script(dir.path(), &hook_log, v2_faults, fail_at);
    let fast = Faults { latency_ms: 1.0, latency_sigma: 0.0, ..Faults::default() };
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances
            .push(rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), name, 7, fast.clone()).await.unwrap());
    }
    let surge = rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), "s", 7, fast).await.unwrap();
    let quoted = |urls: Vec<String>| urls.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    let pool = quoted(instances.iter().map(RunningModel::url).collect());
    let artifact = format!("artifact = {{ uri = \"s3://m/v\", sha256 = \"{}\" }}\nowner = \"ml\"\n", "a".repeat(64));
    let config = format!(
        "[services.fraud]\nroute = {{ path_prefix = \"/fraud\" }}\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"roll\"\n\
         sticky = {{ header = \"x-user-id\" }}\nhealth = {{ path = \"/health\", interval = \"200ms\" }}\n\
         [services.fraud.deploy]\ncommand = [\"{hook}\"]\nattempts = 1\ntimeout = \"20s\"\n\
         [services.fraud.versions.v1]\nendpoints = [{pool}]\n{artifact}\
         [services.fraud.versions.v2]\nendpoints = [\"{surge}\"]\n{artifact}\
         [plans.roll]\nstrategy = \"rolling\"\n\
         [plans.roll.rolling]\nmax_unavailable = 1\ninterval = \"1h\"\ndrain = \"5s\"\nhealth_timeout = \"2s\"\n",
        hook = hook.display(),
        surge = surge.url(),
    );
    std::mem::forget(surge);
    let clock = Arc::new(ManualClock::new(THURSDAY.parse().unwrap()));
    let setup = Setup::with_clock(clock).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let (api, front) = setup.start_with_gateway(source(&config), Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    let (status, body) = api.post("/api/v1/rollouts", &alice, start).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    World { api, front, alice, dana, hook_log, instances, _dir: dir, _setup: setup }
}

impl World {
    async fn view(&self) -> Value {
        self.api.get("/api/v1/rollouts/r1", &self.alice).await.1
    }

    async fn force_promote(&self) -> Value {
        let (status, view) =
            self.api.post("/api/v1/rollouts/r1/force-promote", &self.dana, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        view
    }

    async fn until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        view_until(&self.api, &self.alice, "r1", what, check).await
    }

    /// The action `id` once it is no longer pending.
    async fn action_done(&self, id: &str) -> Value {
        let view = self
            .until(&format!("{id} never finished"), |v| {
                v["actions"].as_array().unwrap().iter().any(|a| a["id"] == id && a["status"] != "pending")
            })
            .await;
        view["actions"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone()
    }

    fn hook_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.hook_log).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn url(&self, i: usize) -> String {
        self.instances[i].url()
    }

    /// For `n` requests: which instance (the model's name) served each version.
    async fn served(&self, n: usize) -> BTreeMap<String, BTreeMap<String, usize>> {
        let http = reqwest::Client::new();
        let mut seen: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for i in 0..n {
            let response = http
                .post(format!("http://{}/fraud/score", self.front.addr))
                .header("x-user-id", format!("u{i}"))
                .body("{}")
                .send()
                .await
                .unwrap();
            let version = response.headers().get("x-rollgate-version").map(|v| v.to_str().unwrap().to_string());
            let version = version.unwrap_or_else(|| format!("status {}", response.status()));
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let instance = body["model"].as_str().unwrap_or("?").to_string();
            *seen.entry(version).or_default().entry(instance).or_insert(0) += 1;
        }
        seen
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

fn names(served: &BTreeMap<String, BTreeMap<String, usize>>, version: &str) -> Vec<String> {
    served.get(version).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test]
async fn instances_are_replaced_one_at_a_time_and_traffic_follows_them() {
    let w = world(FAST, "none").await;
    // Before any instance is replaced, pre-deployment checks the candidate's own endpoint (the surge slot).
    let healthy = |v: &Value| {
        v["evidence"].as_array().unwrap().iter().find(|e| e["gate"] == "infrastructure.endpoints_healthy").cloned()
    };
    let view = w.until("the candidate's endpoints were never checked", |v| healthy(v).is_some()).await;
    let evidence = healthy(&view).unwrap();
    assert_eq!(evidence["passed"], true, "{evidence}");
    assert!(evidence["summary"].as_str().unwrap().contains("all 1 endpoint(s) of v2"), "{evidence}");
    w.force_promote().await; // pre-deployment → staging
    w.force_promote().await; // staging → batch 1
    let run = w.action_done("replace-1").await;
    assert_eq!(run["status"], "done", "{run}");
    let detail = run["detail"].as_str().unwrap();
    assert!(detail.contains("drained in") && detail.contains("1 instance(s) healthy"), "{detail}");
    let view = w.until("batch 1 never came back", |v| v["candidate_percent"].as_f64() == Some(33.33)).await;
    assert_eq!(view["stage"], "canary", "{view}");
    // v2 is served by the replaced instance only, v1 by the other two.
    let served = w.served(150).await;
    assert_eq!((names(&served, "v2"), names(&served, "v1")), (vec!["a".to_string()], vec!["b".into(), "c".into()]));
    // The batch is held its interval (from its return) with the judge's word: nothing moves on by itself.
    let gates = view["gates"].as_array().unwrap();
    assert!(
        gates.iter().any(|g| g["status"] == "pending" && g["gate"].as_str().unwrap_or("").starts_with("hold")),
        "{gates:?}"
    );
    w.force_promote().await;
    w.action_done("replace-2").await;
    // The last batch is replaced in full deployment, whose window runs from its return.
    let view = w.force_promote().await;
    assert_eq!(view["stage"], "full", "{view}");
    w.action_done("replace-3").await;
    let view = w.until("the window never started", |v| v["hold_ends_at"].is_string()).await;
    assert_eq!(view["hold_ends_at"], "2026-11-27T09:00:00Z", "the plan's 1d window: {view}");
    let served = w.served(90).await;
    assert_eq!(names(&served, "v2"), ["a", "b", "c"], "{served:?}");
    assert!(!served.contains_key("v1"), "{served:?}");
    let (a, b, c) = (w.url(0), w.url(1), w.url(2));
    assert_eq!(
        w.hook_calls(),
        [format!("replace-1 replace v2 {a}"), format!("replace-2 replace v2 {b}"), format!("replace-3 replace v2 {c}")]
    );
    w.stop().await;
}

#[tokio::test]
async fn a_failing_health_check_mid_rolling_stops_and_reverts_in_reverse_order() {
    let w = world(FAST, "replace-2").await;
    w.force_promote().await;
    w.force_promote().await;
    w.action_done("replace-1").await;
    w.force_promote().await;
    let failed = w.action_done("replace-2").await;
    assert_eq!(failed["status"], "cancelled", "{failed}");
    assert!(failed["runs"][0]["detail"].as_str().unwrap().contains("health check"), "{failed}");
    let view = w.until("never rolled back", |v| v["stage"] == "rolled_back").await;
    assert!(view["outcome"].as_str().unwrap().contains("replace-2"), "{}", view["outcome"]);
    w.action_done("revert-2").await;
    let reverted = w.action_done("revert-1").await;
    assert_eq!(reverted["status"], "done", "{reverted}");
    // The exact order: a and b replaced, b (which failed) reverted first, then a. Replace-3 never ran.
    let (a, b) = (w.url(0), w.url(1));
    assert_eq!(
        w.hook_calls(),
        [
            format!("replace-1 replace v2 {a}"),
            format!("replace-2 replace v2 {b}"),
            format!("revert-2 revert v1 {b}"),
            format!("revert-1 revert v1 {a}"),
        ]
    );
    // Every instance is v1's again and serves.
    let served = w.until_served_by_all_three().await;
    assert!(!served.contains_key("v2"), "{served:?}");
    w.stop().await;
}

impl World {
    /// Requests until all three instances serve v1 (the health prober lets b back in once it answers).
    async fn until_served_by_all_three(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let all =
            wait_for(Duration::from_secs(15), || async { names(&self.served(60).await, "v1") == ["a", "b", "c"] })
                .await;
        let last = self.served(60).await;
        assert!(all, "{last:?}");
        last
    }
}

#[tokio::test]
async fn the_judge_rolls_back_a_batch_whose_new_instances_fail_where_the_old_do_not() {
    let bad = r#"{"latency_ms":1.0,"latency_sigma":0.0,"error_rate":0.5}"#;
    let w = world(bad, "none").await;
    w.force_promote().await;
    w.force_promote().await;
    w.action_done("replace-1").await;
    w.until("batch 1 never came back", |v| v["candidate_percent"].as_f64() == Some(33.33)).await;
    let mut view = w.view().await;
    for _ in 0..20 {
        w.served(100).await;
        view = w.view().await;
        if view["stage"] == "rolled_back" {
            break;
        }
    }
    assert_eq!(view["stage"], "rolled_back", "{view}");
    assert!(view["outcome"].as_str().unwrap().contains("error"), "{}", view["outcome"]);
    let reverted = w.action_done("revert-1").await;
    assert_eq!(reverted["status"], "done", "{reverted}");
    let a = w.url(0);
    assert_eq!(w.hook_calls().last().unwrap(), &format!("revert-1 revert v1 {a}"));
    w.stop().await;
}
