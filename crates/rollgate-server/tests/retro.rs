//! The retrospective, read back through the API and checked against the
//! event log it was written from (on a manual clock, so the times in the
//! log are the test's own).

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use rollgate_core::clock::ManualClock;
use rollgate_core::roles::Role;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const CANARY: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";
const REASON: &str = "<script>alert('x')</script> outputs | looked *wrong*";

/// Models v1 (stable) and v2 behind a real gateway, on a manual clock that starts on a Thursday.
struct World {
    api: Api,
    front: rollgate_gateway::RunningGateway,
    clock: Arc<ManualClock>,
    alice: String,
    dana: String,
    _setup: Setup,
}

impl World {
    async fn new() -> World {
        let (v1, v2) = (named_model("v1").await, named_model("v2").await);
        let clock = Arc::new(ManualClock::new(THURSDAY.parse().unwrap()));
        let setup = Setup::with_clock(clock.clone()).await;
        let alice = setup.token("alice", &[Role::Deployer]).await;
        let dana = setup.token("dana", &[Role::Admin]).await;
        let config = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], CANARY, "");
        let (api, front) = setup.start_with_gateway(source(&config), Duration::from_secs(2)).await;
        World { api, front, clock, alice, dana, _setup: setup }
    }
}

async fn force(api: &Api, admin: &str, id: &str, times: usize) {
    for _ in 0..times {
        let path = format!("/api/v1/rollouts/{id}/force-promote");
        let (status, view) = api.post(&path, admin, json!({ "reason": "test" })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
}

fn at(event: &Value) -> Timestamp {
    event["at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_retro_tells_what_the_log_holds_in_markdown_html_and_json() {
    let World { api, front, clock, alice, dana, _setup } = World::new().await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true, "ticket": "OPS-7" });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    force(&api, &dana, "r1", 2).await;
    served_by(&front, 100).await;
    clock.advance(SignedDuration::from_mins(10));
    let rollback = json!({ "category": "quality", "reason": REASON, "full": false });
    let (status, view) = api.post("/api/v1/rollouts/r1/rollback", &alice, rollback).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    // The system records the watch's baseline right after, and hands what no hook does (closing the
    // ticket) to a person; the log is still once both are recorded.
    let recorded = wait_for(Duration::from_secs(15), || async {
        let view = api.get("/api/v1/rollouts/r1", &alice).await.1;
        let settled = view["actions"].as_array().is_some_and(|a| a.iter().all(|a| a["status"] != "pending"));
        view["watch"]["baseline"].is_object() && settled
    })
    .await;
    assert!(recorded, "the watch's baseline was never recorded, or an action stayed pending");

    let (status, retro) = api.get("/api/v1/rollouts/r1/retro?format=json", &alice).await;
    assert_eq!(status, StatusCode::OK, "{retro}");
    let (_, events) = api.get("/api/v1/rollouts/r1/events", &alice).await;
    let events = events.as_array().unwrap();

    // The log's size and head, and one timeline line per event.
    assert_eq!(retro["events"].as_u64().unwrap(), events.len() as u64);
    assert_eq!(retro["head"], events.last().unwrap()["hash"]);
    assert_eq!(retro["timeline"].as_array().unwrap().len(), events.len());
    let forced = events.iter().filter(|e| e["input"]["type"] == "force_promote").count();
    assert_eq!(retro["overrides"].as_array().unwrap().len(), forced);
    assert!(forced == 2 && retro["overrides"][0]["by"] == "dana", "{}", retro["overrides"]);
    assert_eq!((retro["outcome"].as_str(), retro["ticket"].as_str()), (Some("rolled_back"), Some("OPS-7")));

    // The rollback: decided at the event that made it, the candidate's share
    // the last weight an earlier event set, the cause the person's words.
    let index = events.iter().position(|e| e["input"]["type"] == "rollback").expect("a rollback event");
    let rb = &retro["rollback"];
    assert_eq!(rb["decided_at"].as_str().unwrap().parse::<Timestamp>().unwrap(), at(&events[index]));
    let weight_before = events[..index]
        .iter()
        .flat_map(|e| e["effects"].as_array().unwrap())
        .rfind(|fx| fx["type"] == "set_weights")
        .map(|fx| fx["candidate_weight"].as_f64().unwrap())
        .unwrap();
    assert_eq!(rb["candidate_percent"].as_f64().unwrap(), weight_before);
    assert_eq!(weight_before, 20.0);
    assert_eq!(rb["cause"].as_str().unwrap(), format!("alice (quality): {REASON}"));

    // The canary's time in stage: from the event that entered it to the rollback.
    let entered = events[..index]
        .iter()
        .rev()
        .find(|e| e["effects"].as_array().unwrap().iter().any(|fx| fx["type"] == "set_weights"))
        .map(at)
        .unwrap();
    let canary =
        retro["stages"].as_array().unwrap().iter().find(|s| s["stage"].as_str().unwrap().starts_with("canary"));
    let canary = canary.unwrap_or_else(|| panic!("no canary stage: {}", retro["stages"]));
    assert_eq!(canary["seconds"].as_i64().unwrap(), at(&events[index]).duration_since(entered).as_secs());
    assert_eq!(canary["seconds"], 600, "the test's clock moved ten minutes in the canary");
    // The watch of v1 is open: the retro says so.
    let open = retro["follow_ups"].as_array().unwrap();
    assert!(open.iter().any(|f| f.as_str().unwrap().starts_with("the watch of v1 runs until")), "{open:?}");

    // Markdown and HTML, each with its type; a person's words never become markup.
    let http = reqwest::Client::new();
    let fetch = |format: &'static str| {
        let request = http.get(format!("{}/api/v1/rollouts/r1/retro?format={format}", api.base)).bearer_auth(&alice);
        async move {
            let response = request.send().await.unwrap();
            let kind = response.headers()["content-type"].to_str().unwrap().to_string();
            (kind, response.text().await.unwrap())
        }
    };
    let (kind, markdown) = fetch("markdown").await;
    assert!(kind.starts_with("text/markdown"), "{kind}");
    assert!(markdown.contains("## Rollback") && markdown.contains("**Candidate's share before:** 20%"), "{markdown}");
    assert!(markdown.contains(&format!("{} events of the hash-chained log", events.len())), "{markdown}");
    let (kind, page) = fetch("html").await;
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(!page.contains("<script>"), "markup from a reason reached the page: {page}");
    assert!(page.contains("&lt;script&gt;alert"), "{page}");
    assert!(page.contains("<table>") && page.contains("<h2>Rollback</h2>"), "{page}");

    // Asking wrongly is a problem, not a page.
    let (status, problem) = api.get("/api/v1/rollouts/r1/retro?format=xml", &alice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("format"), "{problem}");
    let (status, _) = api.get("/api/v1/rollouts/nope/retro", &alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
    front.shutdown().await;
}

#[tokio::test]
async fn the_period_report_counts_what_the_logs_hold() {
    let World { api, front, clock, alice, dana, _setup } = World::new().await;
    let start = |id: &str, candidate: &str| json!({ "service": "fraud", "candidate": candidate, "id": id, "skip_shadow": true });
    // r1: a bad version, rolled back by a person in its first canary step.
    assert_eq!(api.post("/api/v1/rollouts", &alice, start("r1", "v2")).await.0, StatusCode::CREATED);
    force(&api, &dana, "r1", 2).await;
    served_by(&front, 50).await;
    clock.advance(SignedDuration::from_mins(10));
    let rollback = json!({ "category": "quality", "reason": "bad outputs", "full": false });
    assert_eq!(api.post("/api/v1/rollouts/r1/rollback", &alice, rollback).await.0, StatusCode::OK);
    // r2: the same version forced all the way through.
    clock.advance(SignedDuration::from_hours(1));
    assert_eq!(api.post("/api/v1/rollouts", &alice, start("r2", "v2")).await.0, StatusCode::CREATED);
    force(&api, &dana, "r2", 4).await;
    // A Friday start is refused by the plan's window, and remembered.
    clock.advance(SignedDuration::from_hours(24));
    let (status, refused) = api.post("/api/v1/rollouts", &alice, start("r3", "v1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    let period = "from=2026-11-26T00:00:00Z&to=2026-11-28T00:00:00Z";
    let (status, report) = api.get(&format!("/api/v1/report?{period}"), &alice).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (_, r1) = api.get("/api/v1/rollouts/r1/events", &alice).await;
    let r1 = r1.as_array().unwrap();
    assert_eq!(report["rollouts"], 2, "{report}");
    assert_eq!(report["outcomes"], json!({ "completed": 1, "rolled_back": 1 }), "{report}");
    assert_eq!(report["rollbacks"], json!({ "person: quality": 1 }), "{report}");
    let stopped = report["stopped"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "only the version that never reached full traffic: {report}");
    let share = r1
        .iter()
        .flat_map(|e| e["effects"].as_array().unwrap())
        .filter(|fx| fx["type"] == "set_weights")
        .map(|fx| fx["candidate_weight"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(stopped[0]["rollout"], "r1");
    assert_eq!(
        (stopped[0]["reached_percent"].as_f64(), stopped[0]["spared_percent"].as_f64()),
        (Some(share), Some(100.0 - share))
    );
    assert_eq!(share, 20.0);
    assert_eq!(stopped[0]["cause"], "alice (quality): bad outputs");
    let refusals = report["window_refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{report}");
    assert_eq!((refusals[0]["by"].as_str(), refusals[0]["rollout"].as_str()), (Some("alice"), Some("r3")));
    assert!(refusals[0]["reason"].as_str().unwrap().contains("friday"), "{}", refusals[0]);
    assert!(report["median_time_to_detect_seconds"].is_null(), "no rollback by the judge: {report}");
    // A period before any of it holds nothing; the refusal's record keeps the log verifiable.
    let (_, empty) = api.get("/api/v1/report?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", &alice).await;
    assert_eq!((empty["rollouts"].as_u64(), empty["stopped"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let (status, audit) = api.get("/api/v1/audit/verify", &alice).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(audit.to_string().contains("@refused-starts"), "{audit}");
    let (status, text) = api.get(&format!("/api/v1/report?{period}&format=markdown"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("**Bad versions stopped before full traffic (incidents prevented):** 1"), "{text}");
    let (status, problem) = api.get("/api/v1/report?from=2026-11-28T00:00:00Z&to=2026-11-26T00:00:00Z", &alice).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    api.stop().await;
    front.shutdown().await;
}
