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
