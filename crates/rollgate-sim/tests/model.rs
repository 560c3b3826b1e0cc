//! The simulated model on a real socket: deterministic answers, every wire
//! protocol, faults switched at run time, streaming that arrives in pieces.

use rollgate_sim::model::{Faults, serve};

async fn post(url: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn answers_are_deterministic_and_speak_each_protocol() {
    let quiet = Faults { latency_ms: 0.0, ..Faults::default() };
    let a = serve("127.0.0.1:0".parse().unwrap(), "m", 7, quiet.clone()).await.unwrap();
    let b = serve("127.0.0.1:0".parse().unwrap(), "m", 7, quiet).await.unwrap();
    let body = r#"{"inputs":[1,2,3]}"#;
    let kserve = |m: &rollgate_sim::model::RunningModel| format!("{}/v2/models/m/infer", m.url());
    let (status, first) = post(&kserve(&a), body).await;
    assert_eq!(status, 200);
    assert_eq!(post(&kserve(&b), body).await.1, first, "same seed, same input, same answer");
    let answer: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(answer["outputs"][0]["name"], "score");
    let (_, chat) = post(&format!("{}/v1/chat/completions", a.url()), r#"{"messages":[]}"#).await;
    assert!(chat.contains("chat.completion"), "{chat}");
    let (_, plain) = post(&format!("{}/predict", a.url()), body).await;
    assert!(plain.contains("\"label\""), "{plain}");
}

#[tokio::test]
async fn faults_change_while_it_runs() {
    let model =
        serve("127.0.0.1:0".parse().unwrap(), "m", 1, Faults { latency_ms: 0.0, ..Faults::default() }).await.unwrap();
    let url = format!("{}/predict", model.url());
    for _ in 0..20 {
        assert_eq!(post(&url, "{}").await.0, 200);
    }
    let http = reqwest::Client::new();
    let set = http.put(format!("{}/_sim/faults", model.url())).body(r#"{"error_rate":1.0}"#).send().await.unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(post(&url, "{}").await.0, 500);
    let bad = http.put(format!("{}/_sim/faults", model.url())).body(r#"{"eror_rate":1}"#).send().await.unwrap();
    assert_eq!(bad.status(), 400, "a misspelt fault is refused");
    model.set_faults(Faults { crash: true, ..Faults::default() });
    let cut = match http.post(&url).body("{}").send().await {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(cut, "a crashed model cuts the connection");
    model.set_faults(Faults { slow_start_ms: 60_000, ..Faults::default() });
    let health = http.get(format!("{}/health", model.url())).send().await.unwrap();
    assert_eq!(health.status(), 503, "a model still starting fails its health check");
}

#[tokio::test]
async fn chat_streams_token_by_token() {
    let model =
        serve("127.0.0.1:0".parse().unwrap(), "m", 1, Faults { latency_ms: 0.0, token_ms: 20, ..Faults::default() })
            .await
            .unwrap();
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", model.url()))
        .body(r#"{"stream":true,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push(String::from_utf8_lossy(&chunk).to_string());
    }
    assert!(chunks.len() > 3, "several chunks, not one body: {chunks:?}");
    assert!(chunks.last().unwrap().contains("[DONE]"));
}
