//! The staging stage run by the server: a plan that names a staging
//! environment gets its staging checks and its timed fault drill from
//! rollgate itself, against simulated model servers behind the in-process
//! gateway, and each check lands in the log as its gate's evidence.

mod common;

use common::*;
use rollgate_core::roles::Role;
use rollgate_gateway::RunningGateway;
use rollgate_server::ConfigSource;
use rollgate_sim::model::{Faults, RunningModel};
use serde_json::{Value, json};
use std::time::Duration;

const STAGING_GATES: [&str; 7] = [
    "staging.functional_tests",
    "staging.performance_under_load",
    "staging.integration",
    "staging.error_handling",
    "staging.monitoring_captures_issues",
    "staging.rollback_drill",
    "staging.no_blocking_issues",
];

async fn model(name: &str, error_rate: f64) -> RunningModel {
    let faults = Faults { error_rate, latency_ms: 1.0, ..Faults::default() };
    rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), name, 7, faults).await.unwrap()
}

const SIMULATOR_DRILL: &str = "{ error_rate = 0.5, detect_within = \"20s\" }";

/// Production has v1 and v2; staging has v1 and the versions in `staged`
/// (on the candidate's model); the plan's drill is `drill`.
fn config(stable: &RunningModel, candidate: &RunningModel, staged: &[&str], drill: &str) -> ConfigSource {
    let version = |service: &str, name: &str, model: &RunningModel| {
        format!(
            "[services.{service}.versions.{name}]\nendpoints = [\"{}\"]\nartifact = {{ uri = \"sim://{name}\", sha256 = \"{}\" }}\nowner = \"ml@example.com\"\n",
            model.url(),
            "a".repeat(64)
        )
    };
    let mut text = String::from(
        "[services.scorer]\nroute = { path_prefix = \"/score\" }\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"staged\"\n\
         [services.scorer-staging]\nroute = { path_prefix = \"/staging\" }\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"staged\"\n",
    );
    text += &version("scorer", "v1", stable);
    text += &version("scorer", "v2", candidate);
    text += &version("scorer-staging", "v1", stable);
    for name in staged {
        text += &version("scorer-staging", name, candidate);
    }
    text +=
        // A p99 bound no busy test machine misses: the load check's logic is what is tested, not this host.
        "[plans.staged.staging.environment]\nrate = 100\nduration = \"1s\"\nmax_p99_ms = 5000\nmax_error_rate = 0.1\n";
    text += &format!("drill = {drill}\n");
    source(&text)
}

struct World {
    setup: Setup,
    api: Api,
    front: RunningGateway,
    admin: String,
}

async fn world(config: ConfigSource) -> World {
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let admin = setup.token("dana", &[Role::Admin]).await;
    let (api, front) = setup.start_with_gateway(config, Duration::from_secs(2)).await;
    let (status, body) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "scorer", "candidate": "v2", "id": "r1" })).await;
    assert!(status.is_success(), "{body}");
    // Past pre-deployment (its gates are another test's business).
    api.post("/api/v1/rollouts/r1/force-promote", &admin, json!({ "reason": "staging test" })).await;
    World { setup, api, front, admin }
}

/// Waits until every staging gate has evidence; returns the rollout's view.
async fn staging_evidence(w: &World) -> Value {
    let view = || async { w.api.get("/api/v1/rollouts/r1", &w.admin).await.1 };
    let recorded = |v: &Value| {
        v["evidence"]
            .as_array()
            .map_or(0, |e| e.iter().filter(|e| e["gate"].as_str().is_some_and(|g| g.starts_with("staging."))).count())
    };
    let done = wait_for(Duration::from_secs(60), || async { recorded(&view().await) == STAGING_GATES.len() }).await;
    let v = view().await;
    assert!(done, "every staging gate gets evidence: {v}");
    v
}

fn evidence<'a>(view: &'a Value, gate: &str) -> &'a Value {
    view["evidence"].as_array().unwrap().iter().find(|e| e["gate"] == gate).unwrap()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap_or_else(|| panic!("a timestamp: {v}")).parse().unwrap()
}

#[tokio::test]
async fn the_server_stages_a_good_candidate_and_times_its_drill_against_the_log() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let w = world(config(&v1, &v2, &["v2"], SIMULATOR_DRILL)).await;
    let view = staging_evidence(&w).await;
    for gate in STAGING_GATES {
        let e = evidence(&view, gate);
        assert_eq!(e["passed"], true, "{gate}: {e}");
        assert_eq!(e["by"], "rollgate", "the server records its own checks: {e}");
    }
    // The drill's times: fault, then detection, then traffic off, all while
    // staging ran (after it was entered, before the evidence was recorded);
    // the durations it reports agree with its timestamps.
    let drill = evidence(&view, "staging.rollback_drill");
    let d = &drill["details"];
    let entered = view["history"].as_array().unwrap().iter().find(|v| v["stage"] == "staging").unwrap();
    let (fault, detected, off) = (ts(&d["fault_at"]), ts(&d["detected_at"]), ts(&d["traffic_off_at"]));
    assert!(
        ts(&entered["entered_at"]) <= fault && fault < detected && detected <= off && off <= ts(&drill["at"]),
        "{d}"
    );
    let logged = detected.duration_since(fault).as_secs_f64();
    let reported = d["fault_to_detection_s"].as_f64().unwrap();
    assert!((logged - reported).abs() < 1e-6, "fault → detection: {reported} s reported, {logged} s by the timestamps");
    assert!(d["requests_after_swap"].as_u64().unwrap() > 0 && d["served_by_candidate_after_swap"] == 0, "{d}");
    // The drill's fault was cleared: the candidate answers again.
    assert_eq!(v2.faults().error_rate, 0.0);
    // With every staging gate passed, the rollout has left staging.
    let moved = wait_for(Duration::from_secs(10), || async {
        w.api.get("/api/v1/rollouts/r1", &w.admin).await.1["stage"] != "staging"
    })
    .await;
    assert!(moved, "the rollout moves on from staging");
    w.api.stop().await;
    w.front.shutdown().await;
    drop(w.setup);
}

#[tokio::test]
async fn a_failing_candidate_or_a_missing_staging_version_fails_staging_and_says_why() {
    // The candidate fails 30% of requests in staging: more than the plan's 10% bound.
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.3).await);
    let w = world(config(&v1, &v2, &["v2"], SIMULATOR_DRILL)).await;
    let view = staging_evidence(&w).await;
    for gate in ["staging.functional_tests", "staging.performance_under_load", "staging.no_blocking_issues"] {
        assert_eq!(evidence(&view, gate)["passed"], false, "{gate}: {}", evidence(&view, gate));
    }
    assert!(evidence(&view, "staging.no_blocking_issues")["summary"].as_str().unwrap().contains("functional_tests"));
    assert_eq!(view["stage"], "staging", "a failed staging gate keeps the rollout in staging");
    w.api.stop().await;
    w.front.shutdown().await;

    // No staging endpoints for the candidate: nothing can run, and every gate says so.
    let w = world(config(&v1, &v2, &[], SIMULATOR_DRILL)).await;
    let view = staging_evidence(&w).await;
    for gate in STAGING_GATES {
        let e = evidence(&view, gate);
        assert_eq!(e["passed"], false, "{e}");
        assert!(e["summary"].as_str().unwrap().contains("has no version `v2`"), "{e}");
    }
    w.api.stop().await;
    w.front.shutdown().await;
}

#[tokio::test]
async fn the_drill_can_inject_its_fault_with_the_users_own_commands() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let dir = tempfile::tempdir().unwrap();
    let told = dir.path().join("told");
    // The commands set the fault through the simulator's API with curl, and note what they were told.
    let put =
        |faults: &str| format!("curl -fsS -X PUT \\\"$ROLLGATE_ENDPOINTS/_sim/faults\\\" -d '{faults}' >/dev/null");
    let inject = format!(
        "echo \\\"$ROLLGATE_SERVICE $ROLLGATE_CANDIDATE $ROLLGATE_ERROR_RATE\\\" > {} && {}",
        told.display(),
        put(r#"{\"error_rate\":0.5,\"latency_ms\":1}"#)
    );
    let clear = put(r#"{\"latency_ms\":1}"#);
    let drill = format!(
        "{{ inject = {{ command = {{ inject = \"{inject}\", clear = \"{clear}\" }} }}, error_rate = 0.5, detect_within = \"20s\" }}"
    );
    let w = world(config(&v1, &v2, &["v2"], &drill)).await;
    let view = staging_evidence(&w).await;
    for gate in ["staging.monitoring_captures_issues", "staging.rollback_drill"] {
        assert_eq!(evidence(&view, gate)["passed"], true, "{gate}: {}", evidence(&view, gate));
    }
    assert_eq!(std::fs::read_to_string(&told).unwrap().trim(), "scorer-staging v2 0.5", "the command's environment");
    assert_eq!(v2.faults().error_rate, 0.0, "the clear command ran");
    w.api.stop().await;
    w.front.shutdown().await;
}

#[tokio::test]
async fn a_candidate_that_cuts_every_connection_fails_error_handling_and_integration() {
    let v1 = model("v1", 0.0).await;
    let crashing = rollgate_sim::model::serve(
        "127.0.0.1:0".parse().unwrap(),
        "v2",
        7,
        Faults { crash: true, latency_ms: 1.0, ..Faults::default() },
    )
    .await
    .unwrap();
    let w = world(config(&v1, &crashing, &["v2"], SIMULATOR_DRILL)).await;
    let view = staging_evidence(&w).await;
    let handling = evidence(&view, "staging.error_handling");
    assert_eq!(handling["passed"], false, "{handling}");
    let integration = evidence(&view, "staging.integration");
    assert_eq!(integration["passed"], false, "{integration}");
    assert!(integration["summary"].as_str().unwrap().contains("0 requests answered by v2"), "{integration}");
    assert!(integration["summary"].as_str().unwrap().contains("not answered (the gateway could not reach it)"));
    w.api.stop().await;
    w.front.shutdown().await;
}

#[tokio::test]
async fn a_fault_the_monitoring_misses_fails_the_drill_and_is_cleared_all_the_same() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let dir = tempfile::tempdir().unwrap();
    let cleared = dir.path().join("cleared");
    // The "fault" changes nothing, so nothing can be detected.
    let drill = format!(
        "{{ inject = {{ command = {{ inject = \"true\", clear = \"touch {}\" }} }}, error_rate = 0.5, detect_within = \"2s\" }}",
        cleared.display()
    );
    let w = world(config(&v1, &v2, &["v2"], &drill)).await;
    let view = staging_evidence(&w).await;
    for gate in ["staging.monitoring_captures_issues", "staging.rollback_drill", "staging.no_blocking_issues"] {
        assert_eq!(evidence(&view, gate)["passed"], false, "{gate}: {}", evidence(&view, gate));
    }
    let monitoring = evidence(&view, "staging.monitoring_captures_issues");
    assert!(monitoring["summary"].as_str().unwrap().contains("did not detect the fault within 2s"), "{monitoring}");
    assert!(cleared.exists(), "the clear command ran after the failed drill");
    assert_eq!(view["stage"], "staging");
    w.api.stop().await;
    w.front.shutdown().await;
}

#[tokio::test]
async fn a_server_stopped_mid_run_runs_staging_again_on_its_next_start() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let mut text = config(&v1, &v2, &["v2"], SIMULATOR_DRILL).text;
    text = text.replace("duration = \"1s\"", "duration = \"3s\"");
    let w = world(source(&text)).await;
    // The run has taken the staging route: it is sending the replay.
    let running = wait_for(Duration::from_secs(10), || async {
        let routing = w.api.get("/api/v1/routing", &w.admin).await.1;
        let first = &routing["desired"]["services"]["scorer-staging"]["split"][0];
        first[0] == "v2" && first[1].as_f64() == Some(100.0)
    })
    .await;
    assert!(running, "{}", w.api.get("/api/v1/routing", &w.admin).await.1);
    let served_before = v2.requests();
    w.api.stop().await;
    w.front.shutdown().await;
    let logged = rollgate_store::Rollouts::new(w.setup.store.clone()).load("r1").await.unwrap().unwrap();
    assert!(logged.evidence.keys().all(|g| !g.starts_with("staging.")), "no evidence from the cut run");

    let (api, front) = w.setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;
    let w = World { setup: w.setup, api, front, admin: w.admin };
    let view = staging_evidence(&w).await;
    assert_eq!(evidence(&view, "staging.functional_tests")["passed"], true, "{view}");
    assert!(v2.requests() > served_before, "the new start replayed the sample again");
    w.api.stop().await;
    w.front.shutdown().await;
}

#[tokio::test]
async fn a_server_stopped_mid_drill_clears_the_fault_and_records_nothing() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let dir = tempfile::tempdir().unwrap();
    let (injected, cleared) = (dir.path().join("injected"), dir.path().join("cleared"));
    // A "fault" nothing can detect keeps the drill going until the server stops.
    let drill = format!(
        "{{ inject = {{ command = {{ inject = \"touch {}\", clear = \"touch {}\" }} }}, error_rate = 0.5, detect_within = \"60s\" }}",
        injected.display(),
        cleared.display()
    );
    let w = world(config(&v1, &v2, &["v2"], &drill)).await;
    let in_drill = wait_for(Duration::from_secs(30), || async { injected.exists() }).await;
    assert!(in_drill, "the drill injected its fault");
    assert!(!cleared.exists(), "the drill is still going");
    w.api.stop().await;
    assert!(cleared.exists(), "the stopped run cleared its fault before the server stopped");
    let logged = rollgate_store::Rollouts::new(w.setup.store.clone()).load("r1").await.unwrap().unwrap();
    assert!(logged.evidence.keys().all(|g| !g.starts_with("staging.")), "no evidence from the cut run");
    w.front.shutdown().await;
}

#[tokio::test]
async fn production_traffic_captured_redacted_and_exported_replays_through_staging() {
    let (v1, v2) = (model("v1", 0.0).await, model("v2", 0.0).await);
    let setup = Setup::new(1.0).await;
    let sample = setup.dir.path().join("sample.jsonl");
    // Production's service captures everything, its users' ids redacted; staging replays the export.
    let text = config(&v1, &v2, &["v2"], SIMULATOR_DRILL)
        .text
        .replacen(
            "plan = \"staged\"\n",
            "plan = \"staged\"\ncapture = { percent = 100, redact_pointers = [\"/user\"] }\n",
            1,
        )
        .replace(
            "[plans.staged.staging.environment]\n",
            &format!("[plans.staged.staging.environment]\ntraffic = \"{}\"\n", sample.display()),
        );
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let admin = setup.token("dana", &[Role::Admin]).await;
    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;

    let http = reqwest::Client::new();
    for i in 0..40 {
        let body = json!({ "user": format!("u{i}"), "email": format!("u{i}@example.com"), "amount": i });
        let answer =
            http.post(format!("http://{}/score/predict", front.addr)).body(body.to_string()).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let capture = setup.dir.path().join("capture");
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let exported = wait_for(Duration::from_secs(10), || async {
        rollgate_gateway::capture::export(&capture, "scorer", since, &sample).is_ok_and(|e| e.written == 40)
    })
    .await;
    assert!(exported, "40 captured requests exported");
    let written = std::fs::read_to_string(&sample).unwrap();
    assert!(!written.contains("@example.com") && !written.contains("\"u7\""), "{written}");

    let (status, body) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "scorer", "candidate": "v2", "id": "r1" })).await;
    assert!(status.is_success(), "{body}");
    api.post("/api/v1/rollouts/r1/force-promote", &admin, json!({ "reason": "staging test" })).await;
    let before = v2.requests();
    let w = World { setup, api, front, admin };
    let view = staging_evidence(&w).await;
    for gate in STAGING_GATES {
        assert_eq!(evidence(&view, gate)["passed"], true, "{gate}: {}", evidence(&view, gate));
    }
    assert!(v2.requests() > before, "the candidate's staging version was sent the sample");
    w.api.stop().await;
    w.front.shutdown().await;
}
