//! Feature flags over the API and OpenFeature's OFREP, on a real server:
//! defined and changed by a deployer, evaluated with a read-only flags
//! token (bearer or X-API-Key), killed with effect on the very next
//! evaluation, bulk answers with ETags, the protocol's error codes, every
//! change in the verified audit log; and the real OpenFeature Python SDK
//! with its OFREP provider evaluating against the server.

mod common;

use common::*;
use reqwest::StatusCode;
use rollgate_core::roles::Role;
use serde_json::{Value, json};

/// A plain request, so the test can set any header and send any body.
async fn ofrep(api: &Api, path: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, Option<String>, Value) {
    let mut request = api.http.post(format!("{}{path}", api.base)).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let status = response.status();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    (status, etag, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn scorer_flag(percent: u32) -> Value {
    json!({ "name": "new-scorer", "enabled": true, "kind": "boolean",
        "strategies": [{ "name": "flexibleRollout", "parameters": { "rollout": percent.to_string(), "stickiness": "default", "groupId": "new-scorer" } }] })
}

#[tokio::test]
async fn flags_are_defined_evaluated_over_ofrep_killed_at_once_and_audited() {
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let app = setup.token("checkout-app", &[Role::FlagReader]).await;
    let api = setup.start(Vec::new(), Default::default()).await;
    let bearer = format!("Bearer {app}");

    let (status, created) = api.post("/api/v1/flags", &alice, scorer_flag(30)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["action"].as_str(), created["by"].as_str()), (Some("create"), Some("alice")));
    let model = json!({ "name": "scorer-model", "enabled": true, "kind": "string", "variants": [
        { "name": "v1", "weight": 80, "payload": { "type": "string", "value": "fraud-v1" } },
        { "name": "v2", "weight": 20, "payload": { "type": "string", "value": "fraud-v2" } }] });
    assert_eq!(api.post("/api/v1/flags", &alice, model).await.0, StatusCode::CREATED);
    // A definition that would misbehave is refused with why; a second flag of the same name too.
    let (status, problem) =
        api.post("/api/v1/flags", &alice, json!({ "name": "x", "enabled": true, "kind": "number" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(api.post("/api/v1/flags", &alice, scorer_flag(5)).await.0, StatusCode::CONFLICT);
    // The flags token evaluates and does nothing else.
    assert_eq!(api.post("/api/v1/flags", &app, scorer_flag(5)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/v1/rollouts", &app).await.0, StatusCode::FORBIDDEN);

    // 30% of users, the same ones every time, by bearer token or API key alike.
    let mut enabled = Vec::new();
    for i in 0..200 {
        let body = json!({ "context": { "targetingKey": format!("user-{i}"), "country": "FR" } }).to_string();
        let (status, _, answer) =
            ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("authorization", &bearer)], &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (_, _, again) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", &app)], &body).await;
        assert_eq!(answer, again, "sticky, and the API key is the same caller");
        if answer["value"] == true {
            assert_eq!(answer["reason"], "SPLIT");
            enabled.push(i);
        }
    }
    assert!((40..=80).contains(&enabled.len()), "about 30% of 200: {}", enabled.len());

    // Raised to 60%: everyone already in stays in.
    let (status, _) =
        api.call(reqwest::Method::PUT, "/api/v1/flags/new-scorer", Some(&alice), Some(scorer_flag(60))).await;
    assert_eq!(status, StatusCode::OK);
    for i in &enabled {
        let body = json!({ "context": { "targetingKey": format!("user-{i}") } }).to_string();
        let (_, _, answer) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", &app)], &body).await;
        assert_eq!(answer["value"], true, "user-{i} stays in at 60%");
    }

    // The kill switch: the very next evaluation is DISABLED.
    let one = json!({ "context": { "targetingKey": format!("user-{}", enabled[0]) } }).to_string();
    let (status, killed) =
        api.post("/api/v1/flags/new-scorer/kill", &alice, json!({ "reason": "checkout errors up" })).await;
    assert_eq!(status, StatusCode::OK, "{killed}");
    let (_, _, answer) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", &app)], &one).await;
    assert_eq!((answer["reason"].as_str(), answer.get("value")), (Some("DISABLED"), None), "{answer}");
    api.post("/api/v1/flags/new-scorer/enable", &alice, json!({ "reason": "fixed" })).await;
    let (_, _, answer) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", &app)], &one).await;
    assert_eq!(answer["value"], true);

    // The protocol's errors.
    let key = [("x-api-key", app.as_str())];
    let (status, _, e) = ofrep(&api, "/ofrep/v1/evaluate/flags/nope", &key, &one).await;
    assert_eq!((status, e["errorCode"].as_str()), (StatusCode::NOT_FOUND, Some("FLAG_NOT_FOUND")));
    let (status, _, e) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &key, "{\"context\": ").await;
    assert_eq!((status, e["errorCode"].as_str()), (StatusCode::BAD_REQUEST, Some("PARSE_ERROR")));
    let (status, _, e) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &key, "{\"context\": {}}").await;
    assert_eq!((status, e["errorCode"].as_str()), (StatusCode::BAD_REQUEST, Some("TARGETING_KEY_MISSING")));
    let (status, _, e) = ofrep(
        &api,
        "/ofrep/v1/evaluate/flags/new-scorer",
        &key,
        "{\"context\": {\"targetingKey\": \"u\", \"tags\": [1]}}",
    )
    .await;
    assert_eq!((status, e["errorCode"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_CONTEXT")));
    let (status, _, _) = ofrep(&api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", "rg_wrong")], &one).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bulk, with an ETag: the same answer is 304; a change to a flag is a new answer.
    let (status, etag, all) = ofrep(&api, "/ofrep/v1/evaluate/flags", &key, &one).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let keys: Vec<&str> = all["flags"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["new-scorer", "scorer-model"]);
    let etag = etag.unwrap();
    let (status, _, _) = ofrep(&api, "/ofrep/v1/evaluate/flags", &[key[0], ("if-none-match", &etag)], &one).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    api.post("/api/v1/flags/scorer-model/kill", &alice, json!({ "reason": "rollback" })).await;
    let (status, fresh, _) = ofrep(&api, "/ofrep/v1/evaluate/flags", &[key[0], ("if-none-match", &etag)], &one).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(fresh.unwrap(), etag);

    // Every change is in the log, with who and why, and the log verifies.
    let (_, history) = api.get("/api/v1/flags/new-scorer", &alice).await;
    let actions: Vec<&str> =
        history["history"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "kill", "enable"]);
    assert_eq!(history["history"][2]["reason"], "checkout errors up");
    let (status, audit) = api.get("/api/v1/audit/verify", &alice).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(audit.to_string().contains("@flags"), "{audit}");

    // The OpenFeature SDK with its OFREP provider, as an application would use it.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openfeature_sdk.py");
    let out = tokio::process::Command::new("python3").arg(script).arg(&api.base).arg(&app).output().await.unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the SDK test (pip install openfeature-sdk openfeature-provider-ofrep): {said}");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_user = format!("user-{}", enabled[0]);
    assert_eq!(results["boolean"][&in_user]["value"], true, "{results}");
    assert_eq!(results["boolean"][&in_user]["reason"], "SPLIT");
    assert_eq!(results["missing"]["error_code"], "FLAG_NOT_FOUND");
    assert_eq!(results["missing"]["value"], false, "the code default");
    assert_eq!(results["killed"]["reason"], "DISABLED");
    assert_eq!(results["killed"]["value"], "fallback", "a killed string flag gives the code default");
    api.stop().await;
}

/// A server with a gateway (the judge runs), plan `fast` (20% for an hour, then everyone), and a flags token.
async fn flag_rollout_world() -> (Setup, Api, rollgate_gateway::RunningGateway, String, String, String) {
    let clock = std::sync::Arc::new(rollgate_core::clock::ManualClock::new(THURSDAY.parse().unwrap()));
    let setup = Setup::with_clock(clock).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let app = setup.token("checkout-app", &[Role::FlagReader]).await;
    let plan = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";
    let config = fraud_config(&[("v1", "http://127.0.0.1:9")], plan, "");
    let (api, front) = setup.start_with_gateway(source(&config), std::time::Duration::from_secs(2)).await;
    assert_eq!(api.post("/api/v1/flags", &alice, scorer_flag(0)).await.0, StatusCode::CREATED);
    (setup, api, front, alice, dana, app)
}

/// Which of users 0..n the flag is on for, as the application's OFREP calls see it.
async fn users_on(api: &Api, app: &str, n: usize) -> (Vec<usize>, Value) {
    let mut on = Vec::new();
    let mut last = Value::Null;
    for i in 0..n {
        let body = json!({ "context": { "targetingKey": format!("user-{i}") } }).to_string();
        let (status, _, answer) = ofrep(api, "/ofrep/v1/evaluate/flags/new-scorer", &[("x-api-key", app)], &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if answer["value"] == true {
            on.push(i);
        }
        last = answer;
    }
    (on, last)
}

#[tokio::test]
async fn a_flag_rolled_out_by_a_plan_follows_its_steps_and_a_bad_new_path_is_killed_by_the_judge() {
    let (_setup, api, front, alice, dana, app) = flag_rollout_world().await;
    // Only a deployer starts one, on a flag that exists, with a strategy a plan can move.
    assert_eq!(api.post("/api/v1/flags/new-scorer/rollouts", &app, json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.post("/api/v1/flags/nope/rollouts", &alice, json!({})).await.0, StatusCode::NOT_FOUND);
    let started = json!({ "plan": "fast", "id": "flag-r1" });
    let (status, view) = api.post("/api/v1/flags/new-scorer/rollouts", &alice, started).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!((view["service"].as_str(), view["candidate"].as_str()), (Some("flag:new-scorer"), Some("on")));
    assert!(users_on(&api, &app, 100).await.0.is_empty(), "nobody before the canary");
    for _ in 0..2 {
        let (status, view) =
            api.post("/api/v1/rollouts/flag-r1/force-promote", &dana, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    // The first step: the flag's percentage is the plan's 20%, recorded by rollgate in the flags' log.
    let (on, _) = users_on(&api, &app, 300).await;
    assert!((30..=90).contains(&on.len()), "about 20% of 300: {}", on.len());
    let (_, history) = api.get("/api/v1/flags/new-scorer", &alice).await;
    let changes = history["history"].as_array().unwrap();
    let step = changes.last().unwrap();
    assert_eq!(
        (step["by"].as_str(), step["flag"]["strategies"][0]["parameters"]["rollout"].as_str()),
        (Some("rollgate"), Some("20")),
        "{step}"
    );
    // The application reports: the new path fails half its requests, the old one none.
    let outcomes: Vec<Value> = (0..300)
        .map(|i| {
            let enabled = on.contains(&i);
            json!({ "enabled": enabled, "error": enabled && i % 2 == 0, "latency_ms": 5.0 })
        })
        .collect();
    let report = json!({ "outcomes": outcomes });
    // Reports keep coming, as from a running application, until the judge has decided.
    let decided = wait_for(std::time::Duration::from_secs(15), || async {
        let (status, recorded) = api.post("/api/v1/flags/new-scorer/outcomes", &app, report.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{recorded}");
        api.get("/api/v1/rollouts/flag-r1", &alice).await.1["stage"] == "rolled_back"
    })
    .await;
    let view = api.get("/api/v1/rollouts/flag-r1", &alice).await.1;
    assert!(decided, "{view}");
    assert_eq!(view["stage"], "rolled_back", "{view}");
    assert!(view["outcome"].as_str().unwrap().contains("error_rate"), "{}", view["outcome"]);
    // Rollback is the kill switch: the next evaluation of everyone is DISABLED.
    let off = wait_for(std::time::Duration::from_secs(10), || async {
        let (on, last) = users_on(&api, &app, 50).await;
        on.is_empty() && last["reason"] == "DISABLED"
    })
    .await;
    assert!(off, "the flag was not killed");
    let (_, history) = api.get("/api/v1/flags/new-scorer", &alice).await;
    let kill = history["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((kill["action"].as_str(), kill["by"].as_str()), (Some("kill"), Some("rollgate")), "{kill}");
    assert!(kill["reason"].as_str().unwrap().contains("flag-r1"), "{kill}");
    // Bad reports are refused, whole.
    let (status, _) =
        api.post("/api/v1/flags/new-scorer/outcomes", &app, json!({ "outcomes": [{ "on": true }] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    drop(front);
    api.stop().await;
}

/// The gateway's count of shadow copies sent so far.
async fn copies_sent(front: &rollgate_gateway::RunningGateway) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", front.addr)).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("rollgate_mirror_sent_total ")).unwrap();
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

#[tokio::test]
async fn a_dark_launch_copies_the_share_its_flag_lets_in_and_stops_when_the_flag_is_killed() {
    let fast = rollgate_sim::model::Faults { latency_ms: 1.0, latency_sigma: 0.0, ..Default::default() };
    let v1 = rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), "v1", 7, fast.clone()).await.unwrap();
    let v2 = rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), "v2", 7, fast).await.unwrap();
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dark = "mirror = { version = \"v2\", flag = \"dark-v2\" }";
    let config = fraud_config(&[("v1", &v1.url()), ("v2", &v2.url())], "", dark);
    let (api, front) = setup.start_with_gateway(source(&config), std::time::Duration::from_secs(2)).await;
    // No flag yet: nothing is copied, and users are served by v1 alone.
    assert_eq!(served_by(&front, 100).await, std::collections::BTreeMap::from([("v1".to_string(), 100)]));
    assert_eq!(copies_sent(&front).await, 0);
    // The flag at 40%: about 40% of requests are copied to v2, never served by it.
    let flag = json!({ "name": "dark-v2", "enabled": true,
        "strategies": [{ "name": "flexibleRollout", "parameters": { "rollout": "40" } }] });
    assert_eq!(api.post("/api/v1/flags", &alice, flag).await.0, StatusCode::CREATED);
    assert_eq!(served_by(&front, 500).await, std::collections::BTreeMap::from([("v1".to_string(), 500)]));
    let copied = copies_sent(&front).await;
    assert!((140..=260).contains(&copied), "about 40% of 500 copied: {copied}");
    // Killed: the very next requests are not copied.
    let (status, _) =
        api.post("/api/v1/flags/dark-v2/kill", &alice, json!({ "reason": "v2 overloads the GPU pool" })).await;
    assert_eq!(status, StatusCode::OK);
    served_by(&front, 200).await;
    assert_eq!(copies_sent(&front).await, copied, "no copy after the kill");
    api.stop().await;
}
