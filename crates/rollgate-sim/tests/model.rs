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

#[tokio::test]
async fn one_group_of_inputs_gets_wrong_answers_and_faults_follow_a_schedule() {
    let quiet = Faults { latency_ms: 0.0, ..Faults::default() };
    let (right, wrong) = (
        serve("127.0.0.1:0".parse().unwrap(), "m", 3, quiet.clone()).await.unwrap(),
        serve("127.0.0.1:0".parse().unwrap(), "m", 3, Faults { wrong_group: Some("\"FR\"".into()), ..quiet.clone() })
            .await
            .unwrap(),
    );
    let label = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap()["label"].clone();
    for country in ["FR", "DE"] {
        let body = format!(r#"{{"country":"{country}","amount":12}}"#);
        let (a, b) =
            (post(&format!("{}/p", right.url()), &body).await.1, post(&format!("{}/p", wrong.url()), &body).await.1);
        assert_eq!(label(a) != label(b), country == "FR", "only the FR group is answered wrongly");
    }

    let schedule: rollgate_sim::model::Schedule =
        r#"[{"after":"200ms","faults":{"error_rate":1.0}},{"after":"400ms","faults":{"error_rate":0}}]"#.parse().unwrap();
    let model = serve("127.0.0.1:0".parse().unwrap(), "m", 3, quiet).await.unwrap();
    let done = model.follow(schedule);
    let started = std::time::Instant::now();
    // Each answer with when it came back; on a busy machine the first may come after the 200 ms mark.
    let mut seen: Vec<(u16, std::time::Duration)> = Vec::new();
    while !done.is_finished() && started.elapsed() < std::time::Duration::from_secs(10) {
        let status = post(&format!("{}/p", model.url()), "{}").await.0;
        if seen.last().map(|(s, _)| *s) != Some(status) {
            seen.push((status, started.elapsed()));
        }
    }
    assert_eq!(model.faults().error_rate, 0.0, "the last change holds");
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert!(statuses.contains(&500), "the failing stretch was seen: {seen:?}");
    assert!(!statuses.windows(3).any(|w| w == [500, 200, 500]), "one failing stretch, by schedule: {seen:?}");
    if seen[0].1 < std::time::Duration::from_millis(200) {
        assert_eq!(seen[0].0, 200, "healthy before the schedule's first change: {seen:?}");
    }
    assert_eq!(post(&format!("{}/p", model.url()), "{}").await.0, 200, "healthy after the last change");
    assert!(" [{\"after\":\"1s\",\"faults\":{\"eror_rate\":1}}]".parse::<rollgate_sim::model::Schedule>().is_err());
    assert!(
        "[{\"after\":\"soon\",\"faults\":{}}]"
            .parse::<rollgate_sim::model::Schedule>()
            .unwrap_err()
            .contains("change 1")
    );
}
