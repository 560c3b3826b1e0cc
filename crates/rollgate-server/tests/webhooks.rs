//! Notifications reach a real HTTP receiver: signed, retried after failures,
//! and failures visible in the rollout's status.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{KeyInit, Mac};
use rollgate_core::config::WebhookFormat;
use rollgate_core::roles::Role;
use rollgate_server::notify::{DELIVERY_HEADER, Hook, RetryPolicy, SIGNATURE_HEADER};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Receiver {
    /// Answer 500 to this many requests before accepting.
    fail_first: AtomicUsize,
    got: Mutex<Vec<(HeaderMap, Bytes)>>,
}

/// A webhook receiver on a loopback port.
async fn receiver(fail_first: usize) -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver { fail_first: AtomicUsize::new(fail_first), ..Receiver::default() });
    let shared = state.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move {
                state.got.lock().unwrap().push((headers, body));
                let failing =
                    state.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts,
        timeout: Duration::from_secs(5),
    }
}

fn hook(url: &str, format: WebhookFormat, key: Option<&[u8]>) -> Hook {
    Hook { url: url.to_string(), format, secret: key.map(<[u8]>::to_vec), events: Vec::new() }
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_signed_delivery_again_until_it_accepts() {
    let (url, receiver) = receiver(2).await;
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let api = setup.start(vec![hook(&url, WebhookFormat::Json, Some(b"shared key"))], fast_retries(10)).await;
    let (status, _) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" })).await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let delivered = wait_for(Duration::from_secs(10), || async {
        let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
        view["notifications"][0]["delivered"] == true
    })
    .await;
    assert!(delivered, "the start notification was never delivered");
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two failures, then success");
    let id = got[0].0[DELIVERY_HEADER].to_str().unwrap().to_string();
    assert_eq!(id, "r1/1/0#0");
    for (headers, body) in &got {
        assert_eq!(headers[DELIVERY_HEADER], id.as_str(), "the same delivery each time");
        assert_eq!(got[0].1, *body, "the same body each time");
        // Checked independently of rollgate's own signing code.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shared key").unwrap();
        mac.update(body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers[SIGNATURE_HEADER], expected.as_str());
    }
    let body: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!((body["kind"].as_str(), body["rollout"].as_str()), (Some("started"), Some("r1")));
    assert!(body["message"].as_str().unwrap().contains("alice started rolling out fraud-scorer v2"));
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    assert_eq!(view["notifications"][0]["attempts"], 3);
    api.stop().await;
}

#[tokio::test]
async fn slack_receivers_get_text_and_failures_show_in_the_status() {
    let (slack, slack_receiver) = receiver(0).await;
    let (broken, _) = receiver(usize::MAX).await;
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let hooks = vec![hook(&slack, WebhookFormat::Slack, None), hook(&broken, WebhookFormat::Json, None)];
    let api = setup.start(hooks, fast_retries(3)).await;
    api.post("/api/v1/rollouts", &alice, json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" })).await;
    api.post("/api/v1/rollouts/r1/pause", &alice, json!({ "reason": "waiting for the data team" })).await;
    let settled = wait_for(Duration::from_secs(10), || async {
        let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
        let all = view["notifications"].as_array().cloned().unwrap_or_default();
        all.len() == 4 && all.iter().all(|n| n["delivered"] == true || n["gave_up"] == true)
    })
    .await;
    assert!(settled, "deliveries did not settle");
    let got = slack_receiver.got.lock().unwrap().clone();
    let texts: Vec<String> = got
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(texts[1].contains("alice paused the rollout at pre-deployment: waiting for the data team"), "{texts:?}");
    assert!(got.iter().all(|(h, _)| h.get(SIGNATURE_HEADER).is_none()), "no key, no signature");
    let (_, view) = api.get("/api/v1/rollouts/r1", &alice).await;
    let failed: Vec<&Value> =
        view["notifications"].as_array().unwrap().iter().filter(|n| n["gave_up"] == true).collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|n| n["attempts"] == 3 && n["last_error"] == "HTTP 500 Internal Server Error"),
        "{failed:?}"
    );
    api.stop().await;
}
