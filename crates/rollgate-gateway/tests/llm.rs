//! A chat model behind the gateway: its answers measured in tokens as they
//! stream (time to first token, gaps, tokens per second, usage, finish
//! reasons), checked against a simulated model with known timings, and the
//! OpenAI Python client streaming through unchanged.

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use rollgate_core::config::Config;
use rollgate_gateway::RunningGateway;
use rollgate_gateway::mirror::{DiscardPairs, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_sim::model::{Faults, serve};
use std::sync::Arc;

mod support;
use support::{assert_promtool_clean, gateway_of, metric, serving, version_toml};

fn chat_config(endpoint: &str) -> Config {
    let text = format!(
        "[services.assistant]\nroute = {{ path_prefix = \"/v1\" }}\nprotocol = \"openai-chat\"\nstable = \"v1\"\n{}",
        version_toml("assistant", "v1", endpoint)
    );
    Config::parse("llm-test.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

async fn gateway(config: &Config) -> RunningGateway {
    serving(gateway_of(config, Arc::new(Stats::default()), Arc::new(DiscardPairs), MirrorLimits::default())).await
}

fn series(name: &str, extra: &str) -> String {
    format!("{name}{{service=\"assistant\",version=\"v1\",arm=\"stable\"{extra}}}")
}

/// The mean of a histogram family's observations on version v1.
fn mean(metrics: &str, family: &str) -> f64 {
    let sum = metric(metrics, &series(&format!("{family}_sum"), "")).unwrap_or_else(|| panic!("{family}: {metrics}"));
    let count = metric(metrics, &series(&format!("{family}_count"), "")).unwrap();
    sum / count
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"Is order 1234 of 56.10 EUR fraud?"}]"#;

#[tokio::test]
async fn a_streamed_answer_is_measured_in_tokens_as_the_simulator_times_them() {
    // 40 ms before the first token, then one token every 20 ms; no spread, no tail.
    let faults = Faults { latency_ms: 40.0, latency_sigma: 0.0, token_ms: 20, ..Faults::default() };
    let model = serve("127.0.0.1:0".parse().unwrap(), "v1", 1, faults).await.unwrap();
    let g = gateway(&chat_config(&model.url())).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", g.addr);
    let (mut completion_tokens, mut prompt_tokens) = (0u64, 0u64);
    for _ in 0..12 {
        let body = format!("{},\"stream\":true}}", CHAT.trim_end_matches('}'));
        let text = client.post(&url).body(body).send().await.unwrap().text().await.unwrap();
        let usage = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .find(|v| v["usage"].is_object())
            .expect("the simulator closes with its usage");
        completion_tokens += usage["usage"]["completion_tokens"].as_u64().unwrap();
        prompt_tokens += usage["usage"]["prompt_tokens"].as_u64().unwrap();
    }
    for _ in 0..3 {
        let whole: serde_json::Value =
            client.post(&url).body(format!("{CHAT}}}")).send().await.unwrap().json().await.unwrap();
        completion_tokens += whole["usage"]["completion_tokens"].as_u64().unwrap();
        prompt_tokens += whole["usage"]["prompt_tokens"].as_u64().unwrap();
    }
    let metrics = client.get(format!("http://{}/metrics", g.addr)).send().await.unwrap().text().await.unwrap();
    assert_promtool_clean(&metrics);

    // Sleeps last at least as long as asked, and this machine is shared: a bound below, some room above.
    let ttft = mean(&metrics, "rollgate_llm_time_to_first_token_seconds");
    assert!((0.040..0.090).contains(&ttft), "time to first token {ttft}s for a 40 ms model");
    let gap = mean(&metrics, "rollgate_llm_inter_token_latency_seconds");
    assert!((0.020..0.035).contains(&gap), "inter-token latency {gap}s for 20 ms tokens");
    let rate = mean(&metrics, "rollgate_llm_output_tokens_per_second");
    assert!((30.0..=50.5).contains(&rate), "{rate} tokens/s for 20 ms tokens");
    // Only the streamed answers have stream timings; every answer has its usage and finish reason.
    assert_eq!(metric(&metrics, &series("rollgate_llm_time_to_first_token_seconds_count", "")), Some(12.0));
    assert_eq!(
        metric(&metrics, &series("rollgate_llm_tokens_total", ",kind=\"completion\"")),
        Some(completion_tokens as f64)
    );
    assert_eq!(metric(&metrics, &series("rollgate_llm_tokens_total", ",kind=\"prompt\"")), Some(prompt_tokens as f64));
    assert_eq!(metric(&metrics, &series("rollgate_llm_finish_total", ",reason=\"stop\"")), Some(15.0), "{metrics}");
    assert_eq!(metric(&metrics, &series("rollgate_llm_finish_total", ",reason=\"aborted\"")), Some(0.0));
    g.shutdown().await;
}

#[tokio::test]
async fn a_stream_the_model_ends_without_finishing_is_aborted_and_an_error() {
    // Two tokens, then the model's stream just ends: no finish reason, no [DONE].
    let app = Router::new().fallback(any(|| async {
        let chunk = |c: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{c}\"}}}}]}}\n\n");
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(chunk("half") + &chunk(" an")))
            .unwrap()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let g = gateway(&chat_config(&endpoint)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", g.addr);
    let text = client.post(&url).body(format!("{CHAT}}}")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("half"), "the client still gets what the model sent: {text}");
    let metrics = client.get(format!("http://{}/metrics", g.addr)).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, &series("rollgate_llm_finish_total", ",reason=\"aborted\"")), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, &series("rollgate_responses_total", ",outcome=\"5xx\"")), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, &series("rollgate_llm_tokens_total", ",kind=\"completion\"")), Some(2.0));
    g.shutdown().await;
}

/// The Python script's findings against `base_url`.
async fn openai_client(base_url: &str) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let base_url = base_url.to_string();
    let run = move || std::process::Command::new("python3").arg(script).arg(base_url).output();
    let out = tokio::task::spawn_blocking(run).await.unwrap().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the OpenAI client (pip install openai; scripts/test.sh does): {said}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {said}"))
}

#[tokio::test]
async fn the_openai_python_client_streams_through_the_gateway_unchanged() {
    let faults = Faults { latency_ms: 2.0, token_ms: 5, ..Faults::default() };
    let model = serve("127.0.0.1:0".parse().unwrap(), "v1", 7, faults).await.unwrap();
    let g = gateway(&chat_config(&model.url())).await;
    let direct = openai_client(&format!("{}/v1", model.url())).await;
    let through = openai_client(&format!("http://{}/v1", g.addr)).await;
    assert_eq!(through, direct, "the gateway changed what the client saw");
    assert!(through["chunks"].as_u64().unwrap() > 3, "streamed in several chunks: {through}");
    assert_eq!(through["streamed"], through["whole"], "{through}");
    assert_eq!(through["finish_reason"], "stop");
    let metrics = reqwest::get(format!("http://{}/metrics", g.addr)).await.unwrap().text().await.unwrap();
    let tokens = metric(&metrics, &series("rollgate_llm_tokens_total", ",kind=\"completion\"")).unwrap();
    assert_eq!(tokens, 2.0 * through["completion_tokens"].as_f64().unwrap(), "{metrics}");
    g.shutdown().await;
}
