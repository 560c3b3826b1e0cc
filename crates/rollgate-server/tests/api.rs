//! Every route over real HTTP on loopback, and each role refused what it may not do.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use rollgate_core::roles::{ApprovalKind, Role};
use rollgate_server::notify::RetryPolicy;
use serde_json::{Value, json};

struct People {
    viewer: String,
    alice: String,
    bob: String,
    dana: String,
}

async fn people(setup: &Setup) -> People {
    People {
        viewer: setup.token("vic", &[Role::Viewer]).await,
        alice: setup.token("alice", &[Role::Deployer, Role::Approver(ApprovalKind::Technical)]).await,
        bob: setup
            .token("bob", &[Role::Approver(ApprovalKind::Technical), Role::Approver(ApprovalKind::Stakeholder)])
            .await,
        dana: setup.token("dana", &[Role::Admin]).await,
    }
}

fn detail(body: &Value) -> String {
    body["detail"].as_str().unwrap_or_default().to_string()
}

async fn health_and_the_openapi_document_need_no_token_and_everything_else_does(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    assert_eq!(api.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    assert_eq!(api.call(Method::GET, "/readyz", None, None).await.0, StatusCode::OK);
    let (status, doc) = api.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!((status, doc["openapi"].as_str()), (StatusCode::OK, Some("3.1.0")));
    for path in ["/api/v1/rollouts", "/api/v1/services", "/api/v1/plans", "/api/v1/tokens", "/api/v1/audit/verify"] {
        let (status, body) = api.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["status"], 401);
        let (status, _) = api.call(Method::GET, path, Some("rg_nothere_secret"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with a made-up token");
    }
    api.stop().await;
}

async fn a_rollout_through_the_api_with_every_role_checked(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let p = people(&setup).await;
    let start = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" });

    // Starting needs a deployer; unknown services and versions are 422.
    assert_eq!(api.post("/api/v1/rollouts", &p.viewer, start.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.post("/api/v1/rollouts", &p.bob, start.clone()).await.0, StatusCode::FORBIDDEN);
    let bad = json!({ "service": "fraud-scorer", "candidate": "v9" });
    let (status, body) = api.post("/api/v1/rollouts", &p.alice, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&body).contains("versions: v1, v2"), "{body}");
    let (status, view) = api.post("/api/v1/rollouts", &p.alice, start.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!((view["stage"].as_str(), view["requester"].as_str()), (Some("pre_deployment"), Some("alice")));
    assert_eq!(api.post("/api/v1/rollouts", &p.alice, start).await.0, StatusCode::CONFLICT, "same id twice");

    // Reading: any valid token.
    let (status, list) = api.get("/api/v1/rollouts", &p.viewer).await;
    assert_eq!((status, list[0]["id"].as_str()), (StatusCode::OK, Some("r1")));
    assert_eq!(api.get("/api/v1/rollouts/r1", &p.viewer).await.0, StatusCode::OK);
    assert_eq!(api.get("/api/v1/rollouts/nope", &p.viewer).await.0, StatusCode::NOT_FOUND);

    // Evidence: deployers, with known gates only.
    let evidence =
        json!({ "gate": "validation.bias", "passed": false, "summary": "DPD 0.12 > 0.05", "details": { "dpd": 0.12 } });
    assert_eq!(api.post("/api/v1/rollouts/r1/evidence", &p.viewer, evidence.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.post("/api/v1/rollouts/r1/evidence", &p.alice, evidence).await.0, StatusCode::OK);
    let unknown = json!({ "gate": "validation.vibes", "passed": true, "summary": "x" });
    assert_eq!(api.post("/api/v1/rollouts/r1/evidence", &p.alice, unknown).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    // Approvals: the right kind, never the requester (even holding the role).
    let technical = json!({ "kind": "technical", "comment": "reviewed" });
    let (status, body) = api.post("/api/v1/rollouts/r1/approvals", &p.alice, technical.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("requested this rollout"), "{body}");
    let security = json!({ "kind": "security" });
    assert_eq!(api.post("/api/v1/rollouts/r1/approvals", &p.bob, security).await.0, StatusCode::FORBIDDEN);
    let (status, view) = api.post("/api/v1/rollouts/r1/approvals", &p.bob, technical.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["approvals"][0]["by"], "bob");
    assert_eq!(api.post("/api/v1/rollouts/r1/approvals", &p.bob, technical).await.0, StatusCode::CONFLICT);

    // Ticks: not viewers; unknown items are 422.
    let tick = "/api/v1/rollouts/r1/checklists/pre_deployment/items/alerting_configured";
    assert_eq!(api.post(tick, &p.viewer, json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, view) = api.post(tick, &p.bob, json!({ "note": "pager rota set" })).await;
    assert_eq!(status, StatusCode::OK);
    let items = view["checklists"][0]["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["id"] == "alerting_configured" && i["done"] == true));
    let bad_item = "/api/v1/rollouts/r1/checklists/pre_deployment/items/nonsense";
    assert_eq!(api.post(bad_item, &p.bob, json!({})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_list = "/api/v1/rollouts/r1/checklists/someday/items/x";
    assert!(api.post(bad_list, &p.bob, json!({})).await.0.is_client_error());

    // Promotion is blocked by gates, which the problem lists.
    assert_eq!(api.post("/api/v1/rollouts/r1/promote", &p.viewer, json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, problem) = api.post("/api/v1/rollouts/r1/promote", &p.alice, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let gates = problem["gates"].as_array().unwrap();
    assert!(gates.iter().any(|g| g["gate"] == "validation.bias" && g["status"] == "failed"), "{problem}");

    // Pause and resume; a reason is required.
    assert_eq!(
        api.post("/api/v1/rollouts/r1/pause", &p.viewer, json!({ "reason": "x" })).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.post("/api/v1/rollouts/r1/pause", &p.alice, json!({ "reason": " " })).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.post("/api/v1/rollouts/r1/pause", &p.alice, json!({ "reason": "checking" })).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.post("/api/v1/rollouts/r1/pause", &p.alice, json!({ "reason": "again" })).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(api.post("/api/v1/rollouts/r1/resume", &p.alice, json!({})).await.0, StatusCode::OK);

    // Rollback needs traffic on the candidate; force-promote needs an admin.
    let rollback = json!({ "category": "quality", "reason": "bad outputs" });
    assert_eq!(api.post("/api/v1/rollouts/r1/rollback", &p.alice, rollback.clone()).await.0, StatusCode::CONFLICT);
    let force = json!({ "reason": "hotfix INC-9" });
    assert_eq!(api.post("/api/v1/rollouts/r1/force-promote", &p.alice, force.clone()).await.0, StatusCode::FORBIDDEN);
    let (status, view) = api.post("/api/v1/rollouts/r1/force-promote", &p.dana, force).await;
    assert_eq!((status, view["stage"].as_str()), (StatusCode::OK, Some("staging")));
    assert_eq!(view["overrides"][0]["by"], "dana");

    // Abort ends it; then everything is refused as final.
    assert_eq!(
        api.post("/api/v1/rollouts/r1/abort", &p.viewer, json!({ "reason": "x" })).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, view) = api.post("/api/v1/rollouts/r1/abort", &p.alice, json!({ "reason": "wrong model" })).await;
    assert_eq!((status, view["terminal"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(api.post("/api/v1/rollouts/r1/rollback", &p.alice, rollback).await.0, StatusCode::CONFLICT);

    // The log names everyone who acted, and verifies.
    let (status, events) = api.get("/api/v1/rollouts/r1/events", &p.viewer).await;
    assert_eq!(status, StatusCode::OK);
    let actors: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    let people: Vec<&str> = actors.iter().copied().filter(|a| *a != "rollgate").collect();
    assert_eq!(people, ["alice", "alice", "bob", "bob", "alice", "alice", "dana", "alice"]);
    // What rollgate recorded itself (if its tick came while the rollout was in pre-deployment) is what it
    // proves there: here, that the candidate's endpoints do not answer.
    for probed in events.as_array().unwrap().iter().filter(|e| e["actor"] == "rollgate") {
        assert_eq!(probed["input"]["gate"], "infrastructure.endpoints_healthy", "{probed}");
        assert_eq!(probed["input"]["passed"], false, "{probed}");
    }
    assert_eq!(api.get("/api/v1/rollouts/nope/events", &p.viewer).await.0, StatusCode::NOT_FOUND);
    let (status, report) = api.get("/api/v1/audit/verify", &p.viewer).await;
    assert_eq!((status, report["ok"].as_bool()), (StatusCode::OK, Some(true)));
    api.stop().await;
}

async fn services_versions_and_plans(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let p = people(&setup).await;
    let (status, services) = api.get("/api/v1/services", &p.viewer).await;
    assert_eq!((status, services[0]["name"].as_str()), (StatusCode::OK, Some("fraud-scorer")));
    assert_eq!(api.get("/api/v1/services/nope", &p.viewer).await.0, StatusCode::NOT_FOUND);
    let v3 = json!({
        "name": "v3", "endpoints": ["http://127.0.0.1:9004"], "artifact_uri": "s3://models/fraud/v3/model.onnx",
        "artifact_sha256": "a".repeat(64), "model_card": "cards/fraud-v3.md", "owner": "fraud-ml@example.com"
    });
    let path = "/api/v1/services/fraud-scorer/versions";
    assert_eq!(api.post(path, &p.viewer, v3.clone()).await.0, StatusCode::FORBIDDEN);
    let (status, created) = api.post(path, &p.alice, v3.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["source"].as_str().unwrap().starts_with("registered by alice"));
    assert_eq!(api.post(path, &p.alice, v3.clone()).await.0, StatusCode::CONFLICT);
    let mut bad = v3.clone();
    bad["name"] = json!("v4");
    bad["artifact_sha256"] = json!("not-a-hash");
    let (status, problem) = api.post(path, &p.alice, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&problem).contains("64 hexadecimal digits"));
    assert_eq!(api.post("/api/v1/services/nope/versions", &p.alice, v3).await.0, StatusCode::NOT_FOUND);
    let (_, service) = api.get("/api/v1/services/fraud-scorer", &p.viewer).await;
    let names: Vec<&str> =
        service["versions"].as_array().unwrap().iter().map(|v| v["version"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["v1", "v2", "v3"]);
    // A registered version can be rolled out.
    let start = json!({ "service": "fraud-scorer", "candidate": "v3" });
    assert_eq!(api.post("/api/v1/rollouts", &p.alice, start).await.0, StatusCode::CREATED);

    let (status, plans) = api.get("/api/v1/plans", &p.viewer).await;
    let names: Vec<&str> = plans.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!((status, names), (StatusCode::OK, vec!["default", "careful"]));
    let (status, plan) = api.get("/api/v1/plans/careful", &p.viewer).await;
    assert_eq!((status, plan["shadow"]["mode"].as_str()), (StatusCode::OK, Some("required")));
    assert_eq!(api.get("/api/v1/plans/nope", &p.viewer).await.0, StatusCode::NOT_FOUND);
    api.stop().await;
}

async fn tokens_are_for_admins_and_revocation_takes_effect_at_once(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let p = people(&setup).await;
    let request = json!({ "name": "erin", "roles": ["approver:security"] });
    assert_eq!(api.post("/api/v1/tokens", &p.alice, request.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/v1/tokens", &p.viewer).await.0, StatusCode::FORBIDDEN);
    let (status, created) = api.post("/api/v1/tokens", &p.dana, request).await;
    assert_eq!(status, StatusCode::CREATED);
    let erin = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/v1/rollouts", &erin).await.0, StatusCode::OK);
    let (_, listed) = api.get("/api/v1/tokens", &p.dana).await;
    assert!(
        listed.as_array().unwrap().iter().all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "no secrets listed"
    );
    let bad_role = json!({ "name": "x", "roles": ["superuser"] });
    assert_eq!(api.post("/api/v1/tokens", &p.dana, bad_role).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let system = json!({ "name": "x", "roles": ["system"] });
    assert_eq!(api.post("/api/v1/tokens", &p.dana, system).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let revoke = format!("/api/v1/tokens/{id}");
    assert_eq!(api.call(Method::DELETE, &revoke, Some(&p.alice), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.call(Method::DELETE, &revoke, Some(&p.dana), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::DELETE, &revoke, Some(&p.dana), None).await.0, StatusCode::NOT_FOUND);
    let (status, problem) = api.get("/api/v1/rollouts", &erin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(detail(&problem).contains("revoked"));
    // Who made and revoked tokens is in the audit trail.
    use rollgate_store::EventStore;
    let trail = setup.store.read(rollgate_server::auth::TOKEN_STREAM).await.unwrap();
    let entries: Vec<Value> = trail.iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
    let last_two: Vec<(&str, &str)> = entries[entries.len() - 2..]
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(last_two, [("create", "dana"), ("revoke", "dana")]);
    assert!(rollgate_core::audit::verify_stream(&trail).is_ok());
    // A secret that does not match its id is refused.
    let forged = format!("{}0", &erin[..erin.len() - 1]);
    assert_eq!(api.get("/api/v1/rollouts", &forged).await.0, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

async fn bad_requests_get_problems_with_4xx_never_500(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let p = people(&setup).await;
    let url = format!("{}/api/v1/rollouts", api.base);
    let send = |body: reqwest::Body, content_type: &'static str| {
        api.http.post(&url).bearer_auth(&p.alice).header("content-type", content_type).body(body).send()
    };
    let cases: Vec<(reqwest::Body, &str, StatusCode)> = vec![
        ("{not json".into(), "application/json", StatusCode::BAD_REQUEST),
        ("{}".into(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (r#"{"service": 7}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"service":"a","candidate":"b","extra":1}"#.into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY),
        (vec![b' '; rollgate_server::api::BODY_LIMIT + 10].into(), "application/json", StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (body, content_type, expected) in cases {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status(), expected);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], expected.as_u16());
    }
    let (status, body) = api.get("/api/v1/nowhere", &p.alice).await;
    assert_eq!((status, body["status"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
    let (status, _) = api.call(Method::PUT, "/api/v1/rollouts", Some(&p.alice), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let weird_id = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "@registry" });
    assert_eq!(api.post("/api/v1/rollouts", &p.alice, weird_id).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    api.stop().await;
}

async fn ids_and_bodies_that_cannot_be_used_are_refused_as_problems(setup: Setup) {
    let api = setup.start(Vec::new(), RetryPolicy::default()).await;
    let p = people(&setup).await;
    let problem = |status: StatusCode, body: &Value, expected: StatusCode| {
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["status"], expected.as_u16(), "a problem document: {body}");
    };
    // An id no path could reach again is refused at the start (it used to be accepted, then 414 forever).
    let huge = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r".repeat(100_000) });
    let (status, body) = api.post("/api/v1/rollouts", &p.alice, huge).await;
    problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let long = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r".repeat(65) });
    let (status, body) = api.post("/api/v1/rollouts", &p.alice, long).await;
    problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().contains("up to 64"), "{body}");
    let longest = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r".repeat(64) });
    assert_eq!(api.post("/api/v1/rollouts", &p.alice, longest).await.0, StatusCode::CREATED);
    let (status, body) = api.get(&format!("/api/v1/rollouts/{}", "r".repeat(64)), &p.alice).await;
    assert_eq!((status, body["id"].as_str().map(str::len)), (StatusCode::OK, Some(64)), "and it can be reached");
    // A long path name: a short problem, not the name echoed back.
    let (status, body) = api.get(&format!("/api/v1/rollouts/{}", "x".repeat(20_000)), &p.alice).await;
    problem(status, &body, StatusCode::NOT_FOUND);
    assert!(body.to_string().len() < 400, "{}", body.to_string().len());
    // Arrays are not objects: `[]` is no empty object, `["why"]` no reason.
    let id = "r".repeat(64);
    for (action, body) in [("promote", json!([])), ("pause", json!(["because"])), ("resume", json!(null))] {
        let (status, body) = api.post(&format!("/api/v1/rollouts/{id}/{action}"), &p.alice, body).await;
        problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    }
    api.stop().await;
}

/// Each case on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Setup::new(1.0).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let (setup, db) = super::Setup::postgres(1.0).await;
                    super::$case(setup).await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

on_both_stores!(
    health_and_the_openapi_document_need_no_token_and_everything_else_does,
    a_rollout_through_the_api_with_every_role_checked,
    services_versions_and_plans,
    tokens_are_for_admins_and_revocation_takes_effect_at_once,
    bad_requests_get_problems_with_4xx_never_500,
    ids_and_bodies_that_cannot_be_used_are_refused_as_problems,
);
