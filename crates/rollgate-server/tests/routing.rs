//! One routing truth: what the log says about traffic is what the gateway
//! does, for versions registered over the API, warm versions, reloads,
//! racing starts and restarts.

mod common;

use common::*;
use reqwest::StatusCode;
use rollgate_core::roles::Role;
use rollgate_server::ConfigSource;
use serde_json::{Value, json};
use std::time::Duration;

const FAST: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";

fn within_five_sigma(hits: usize, n: usize, p: f64) -> bool {
    (hits as f64 - n as f64 * p).abs() <= 5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

async fn force(api: &Api, admin: &str, id: &str, times: usize) -> Value {
    let mut view = Value::Null;
    for _ in 0..times {
        let (status, v) =
            api.post(&format!("/api/v1/rollouts/{id}/force-promote"), admin, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        view = v;
    }
    view
}

#[tokio::test]
async fn a_version_registered_over_the_api_gets_its_share_and_the_judge_sees_it() {
    let (v1, v3) = (named_model("v1").await, named_model("v3").await);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let config = source(&fraud_config(&[("v1", &v1.url)], FAST, ""));
    let (api, front) = setup.start_with_gateway(config, Duration::from_secs(2)).await;

    let spec = json!({ "name": "v3", "endpoints": [v3.url], "artifact_uri": "s3://m/v3",
                       "artifact_sha256": "b".repeat(64), "owner": "ml" });
    let (status, body) = api.post("/api/v1/services/fraud/versions", &alice, spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let start = json!({ "service": "fraud", "candidate": "v3", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    let view = force(&api, &dana, "r1", 2).await;
    assert_eq!((view["stage_label"].as_str(), view["candidate_percent"].as_f64()), (Some("canary step 1"), Some(20.0)));

    let n = 1000;
    let seen = served_by(&front, n).await;
    let on_v3 = seen.get("v3").copied().unwrap_or(0);
    assert_eq!(on_v3 + seen.get("v1").copied().unwrap_or(0), n, "every request answered by v1 or v3: {seen:?}");
    assert!(within_five_sigma(on_v3, n, 0.2), "{on_v3} of {n} on a 20% canary: {seen:?}");
    let judged = wait_for(Duration::from_secs(10), || async {
        api.get("/api/v1/rollouts/r1", &alice).await.1["judge"]["canary_requests"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(judged, "the judge sees the registered candidate's requests");

    let rollback = json!({ "category": "quality", "reason": "test" });
    assert_eq!(api.post("/api/v1/rollouts/r1/rollback", &alice, rollback).await.0, StatusCode::OK);
    let after = served_by(&front, 200).await;
    assert_eq!(after.get("v1"), Some(&200), "after the rollback nothing reaches v3: {after:?}");
    api.stop().await;
    front.shutdown().await;
}

#[tokio::test]
async fn the_previous_version_stays_warm_and_probed_and_leaves_the_table_when_its_time_ends() {
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    // 600x: the plan's 30 minutes of keep-warm are 3 real seconds.
    let setup = Setup::new(600.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let plan = format!("{FAST}[plans.fast.full]\nkeep_warm = \"30m\"\nobserve = \"10m\"\n");
    let health = "health = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", unhealthy_after = 2, healthy_after = 1 }";
    let config = source(&fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], &plan, health));
    let (api, front) = setup.start_with_gateway(config, Duration::from_secs(2)).await;
    let start = |id: &str| json!({ "service": "fraud", "candidate": "v2", "id": id, "skip_shadow": true });
    let in_table = |version: &str| {
        let table = front.gateway.table();
        let fraud = table.service("fraud").unwrap();
        fraud.version_index(version).map(|i| fraud.versions[i].endpoints[0].health.probed_healthy())
    };

    // Into full deployment: v1 serves nothing, stays in the table and keeps being probed.
    assert_eq!(api.post("/api/v1/rollouts", &alice, start("r1")).await.0, StatusCode::CREATED);
    let view = force(&api, &dana, "r1", 3).await;
    assert_eq!(view["stage"], "full", "{view}");
    assert_eq!(view["warm"]["version"], "v1", "{view}");
    assert_eq!(served_by(&front, 50).await.get("v2"), Some(&50));
    let probes = v1.probes.load(std::sync::atomic::Ordering::Relaxed);
    let probed = wait_for(Duration::from_secs(5), || async {
        v1.probes.load(std::sync::atomic::Ordering::Relaxed) >= probes + 3
    })
    .await;
    assert!(
        probed,
        "the warm version keeps being probed: {probes} then {}",
        v1.probes.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(in_table("v1"), Some(true), "the warm version passes its probes");
    // A quick rollback inside the window: the very next request is v1's.
    let rollback = json!({ "category": "quality", "reason": "worse than v1" });
    let (status, view) = api.post("/api/v1/rollouts/r1/rollback", &alice, rollback).await;
    assert_eq!((status, view["outcome"].as_str().unwrap_or_default().starts_with("quick")), (StatusCode::OK, true));
    assert_eq!(served_by(&front, 1).await.get("v1"), Some(&1));

    // Completed: v2 serves, v1 is warm until its time, then gone from the table.
    assert_eq!(api.post("/api/v1/rollouts", &alice, start("r2")).await.0, StatusCode::CREATED);
    let view = force(&api, &dana, "r2", 4).await;
    assert_eq!(view["stage"], "completed", "{view}");
    assert_eq!(in_table("v1"), Some(true), "still warm right after completion");
    assert_eq!(served_by(&front, 20).await.get("v2"), Some(&20));
    let gone = wait_for(Duration::from_secs(15), || async { in_table("v1").is_none() }).await;
    assert!(gone, "v1 left the table when its warm time ran out");
    let (_, view) = api.get("/api/v1/rollouts/r2", &alice).await;
    assert_eq!(view["warm"]["warm"], false, "{view}");

    // The finished rollout is archived as a directory with a manifest whose hash the log records.
    let archive = &view["actions"][0];
    assert_eq!((archive["id"].as_str(), archive["status"].as_str()), (Some("archive"), Some("done")), "{archive}");
    let details = &archive["runs"][0]["details"];
    let path = std::path::PathBuf::from(details["path"].as_str().unwrap());
    assert!(path.starts_with(setup.dir.path().join("archive")), "{path:?}");
    let files: std::collections::BTreeMap<String, Vec<u8>> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect();
    assert_eq!(details["sha256"].as_str(), Some(sha2_hex(&files["MANIFEST.json"]).as_str()));
    let verified = rollgate_core::archive::verify(&files).unwrap();
    let (_, events) = api.get("/api/v1/rollouts/r2/events", &alice).await;
    let recorded_then = events.as_array().unwrap().iter().position(|e| e["input"]["type"] == "action_run").unwrap();
    assert_eq!(verified.events, recorded_then as u64, "the archive holds the log up to the run that recorded it");
    assert!(String::from_utf8_lossy(&files["config.toml"]).contains("[services.fraud]"), "the config in force");
    let rollout: Value = serde_json::from_slice(&files["rollout.json"]).unwrap();
    assert_eq!(
        (rollout["id"].as_str(), rollout["stage"]["stage"].as_str()),
        (Some("r2"), Some("completed")),
        "{rollout}"
    );
    assert!(String::from_utf8_lossy(&files["retro.md"]).contains("# Retrospective: fraud v1 → v2 (r2)"));
    api.stop().await;
    front.shutdown().await;
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn a_broken_config_reload_changes_nothing_and_lists_every_problem() {
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let file = setup.dir.path().join("rollgate.toml");
    let good = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], FAST, "");
    std::fs::write(&file, &good).unwrap();
    let mut options = setup.options(Vec::new(), rollgate_server::notify::RetryPolicy::default());
    options.config = ConfigSource { path: Some(file.clone()), ..source(&good) };
    let (api, front) = setup.start_options_with_gateway(options, Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    force(&api, &dana, "r1", 2).await;
    let routing = api.get("/api/v1/routing", &alice).await.1;
    assert_eq!(routing["in_sync"], true, "{routing}");
    let reload = || api.post("/api/v1/config/reload", &dana, json!({}));

    // Two problems at once: both are reported, nothing changes.
    let broken = good.replace("stable = \"v1\"", "stable = \"v9\"").replace("percent = 20,", "percent = 200,");
    std::fs::write(&file, broken).unwrap();
    let (status, problem) = reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("200") && detail.contains("`v9`"), "{detail}");
    assert!(detail.contains("rollgate.toml:"), "problems carry file:line:column: {detail}");
    // A valid file that no longer has the running canary's version: refused too.
    let without_v2 = fraud_config(&[("v1", &v1.url)], FAST, "");
    std::fs::write(&file, &without_v2).unwrap();
    let (status, problem) = reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("version `v2` is neither in the config nor registered"));
    assert_eq!(api.get("/api/v1/routing", &alice).await.1, routing, "the routing did not change");
    let seen = served_by(&front, 300).await;
    assert!(seen.get("v2").is_some_and(|n| *n > 20), "the canary still gets its share: {seen:?}");
    // A reload only a non-admin asks for is refused.
    assert_eq!(api.post("/api/v1/config/reload", &alice, json!({})).await.0, StatusCode::FORBIDDEN);

    // A good change goes into force and routes.
    let with_more = good.clone()
        + "[services.other]\nroute = { path_prefix = \"/other\" }\nprotocol = \"json\"\nstable = \"v1\"\n\
        [services.other.versions.v1]\nendpoints = [\""
        + &v1.url
        + "\"]\nartifact = { uri = \"s3://o\", sha256 = \""
        + &"c".repeat(64)
        + "\" }\nowner = \"o\"\n";
    std::fs::write(&file, with_more).unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let routing = api.get("/api/v1/routing", &alice).await.1;
    assert!(routing["desired"]["services"]["other"].is_object() && routing["in_sync"] == true, "{routing}");
    let other = reqwest::Client::new().post(format!("http://{}/other/x", front.addr)).send().await.unwrap();
    assert_eq!(other.headers()["x-rollgate-version"], "v1");
    api.stop().await;
    front.shutdown().await;
}

async fn racing_starts_over_the_api(setup: Setup) {
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let api = setup.start(Vec::new(), rollgate_server::notify::RetryPolicy::default()).await;
    for pair in 0..20 {
        let start = |id: String| {
            let body = json!({ "service": "fraud-scorer", "candidate": "v2", "id": id });
            api.post("/api/v1/rollouts", &alice, body)
        };
        let (a, b) = tokio::join!(start(format!("a{pair}")), start(format!("b{pair}")));
        let winners: Vec<&str> =
            [(&a, "a"), (&b, "b")].iter().filter(|(r, _)| r.0 == StatusCode::CREATED).map(|(_, w)| *w).collect();
        assert_eq!(winners.len(), 1, "pair {pair}: {a:?} {b:?}");
        let winner = format!("{}{pair}", winners[0]);
        let loser = if winners[0] == "a" { &b } else { &a };
        assert_eq!(loser.0, StatusCode::CONFLICT, "{loser:?}");
        let detail = loser.1["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("active rollout, `{winner}`")) && detail.contains("abort"), "{detail}");
        let abort = json!({ "reason": "next pair" });
        assert_eq!(api.post(&format!("/api/v1/rollouts/{winner}/abort"), &alice, abort).await.0, StatusCode::OK);
    }
    api.stop().await;
}

#[tokio::test]
async fn of_two_racing_starts_exactly_one_wins_on_sqlite() {
    racing_starts_over_the_api(Setup::new(1.0).await).await;
}

#[tokio::test]
async fn of_two_racing_starts_exactly_one_wins_on_postgres() {
    let (setup, db) = Setup::postgres(1.0).await;
    racing_starts_over_the_api(setup).await;
    db.drop_now().await;
}

/// The judge's counts and e-values, trigger by trigger.
fn evidence(report: &Value) -> Vec<(String, Value, Value, Value)> {
    report["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["trigger"].to_string(), t["canary_events"].clone(), t["baseline_events"].clone(), t["e_value"].clone())
        })
        .collect()
}

#[tokio::test]
async fn a_restarted_server_continues_the_judges_test_where_it_was() {
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let text = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], FAST, "");
    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    force(&api, &dana, "r1", 2).await;
    let report = || async { api.get("/api/v1/rollouts/r1", &alice).await.1["judge"].clone() };
    // The judge counts from its first tick: traffic starts once it has one.
    assert!(wait_for(Duration::from_secs(10), || async { report().await.is_object() }).await, "the judge never ticked");
    served_by(&front, 500).await;
    // Every request counted (the traffic has stopped): the report no longer moves.
    let counted = wait_for(Duration::from_secs(10), || async {
        let r = report().await;
        r["canary_requests"].as_u64().unwrap_or(0) + r["baseline_requests"].as_u64().unwrap_or(0) == 500
    })
    .await;
    assert!(counted, "{}", report().await);
    let before = report().await;
    assert!(before["canary_requests"].as_u64().unwrap() > 50, "{before}");
    api.stop().await;
    front.shutdown().await;

    let (api, front) = setup.start_with_gateway(source(&text), Duration::from_secs(2)).await;
    let at = before["at_ms"].as_u64().unwrap();
    let ticked = wait_for(Duration::from_secs(10), || async {
        api.get("/api/v1/rollouts/r1", &alice).await.1["judge"]["at_ms"].as_u64().unwrap_or(0) > at
    })
    .await;
    assert!(ticked, "the restarted server's judge ticked");
    let after = api.get("/api/v1/rollouts/r1", &alice).await.1["judge"].clone();
    assert_eq!(
        (&after["canary_requests"], &after["baseline_requests"]),
        (&before["canary_requests"], &before["baseline_requests"])
    );
    assert_eq!(evidence(&after), evidence(&before), "the same e-values and counts right after the restart");
    api.stop().await;
    front.shutdown().await;
}
