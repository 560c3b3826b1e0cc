//! Traffic capture through a real gateway: a share of the requests written
//! as JSONL, redacted before they touch disk, files rotated and pruned by
//! size, requests the queue cannot take counted, and the export a staging
//! sample reader accepts.

use rollgate_core::config::Config;
use rollgate_gateway::RunningGateway;
use rollgate_gateway::mirror::{DiscardPairs, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_sim::model::{Faults, serve};
use std::sync::Arc;
use std::sync::atomic::Ordering;

mod support;
use support::{gateway_of, serving, version_toml, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(endpoint: &str, capture: &str) -> Config {
    let text = format!(
        "[services.scorer]\nroute = {{ path_prefix = \"/score\" }}\nprotocol = \"json\"\nstable = \"v1\"\ncapture = {capture}\n{}",
        version_toml("scorer", "v1", endpoint)
    );
    Config::parse("capture-test.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

async fn gateway(config: &Config, dir: &std::path::Path) -> (RunningGateway, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let gateway = gateway_of(config, stats.clone(), Arc::new(DiscardPairs), MirrorLimits::default());
    (serving(gateway.with_capture(dir.to_path_buf()).unwrap()).await, stats)
}

fn captured_text(dir: &std::path::Path) -> (usize, String) {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("scorer")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let text = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect::<String>();
    (files.len(), text)
}

#[tokio::test]
async fn captured_requests_are_redacted_before_disk_rotated_by_size_and_export_as_a_sample() {
    let model =
        serve("127.0.0.1:0".parse().unwrap(), "v1", 1, Faults { latency_ms: 0.0, ..Faults::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = r#"{ percent = 100, redact_pointers = ["/user"], redact = ["ORDER-[0-9]+"], max_file_bytes = 4096, max_files = 3, answers = true }"#;
    let (g, stats) = gateway(&config(&model.url(), capture), dir.path()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/score/predict", g.addr);
    let n = 60;
    for i in 0..n {
        let body = serde_json::json!({
            "user": format!("customer-{i}"),
            "email": format!("buyer{i}@example.com"),
            "card": "4111 1111 1111 1111",
            "note": format!("ORDER-{i:05} paid with Bearer tok{i}.secret"),
            "amount": i,
        });
        let response =
            client.post(&url).header("authorization", "Bearer nope").body(body.to_string()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(wait_until(|| async { stats.capture_written.load(Ordering::Relaxed) == n }).await, "all {n} written");
    let (files, text) = captured_text(dir.path());
    // About 350 bytes a line: 60 lines need several 4 KiB files, of which the newest 3 are kept.
    assert_eq!(files, 3, "rotated and pruned to max_files");
    assert!(text.len() <= 3 * 4096, "{} bytes kept", text.len());
    for secret in ["customer-", "@example.com", "4111 1111", "ORDER-0", "tok5", ".secret"] {
        assert!(!text.contains(secret), "`{secret}` reached the disk: {text}");
    }
    let last = text.lines().last().unwrap();
    let record: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(record["request"]["user"], "[redacted]");
    assert_eq!(record["request"]["amount"], n - 1, "what is not secret is kept: {record}");
    assert_eq!((record["service"].as_str(), record["version"].as_str()), (Some("scorer"), Some("v1")));
    // The answer comes with it: status, latency and the model's body.
    assert_eq!(record["answer"]["status"], 200, "{record}");
    assert!(
        record["answer"]["body"]["label"].is_string() && record["answer"]["latency_ms"].as_f64().unwrap() > 0.0,
        "{record}"
    );

    // A body of unknown length is not read for capture: counted, not written.
    let mut socket = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let chunked = "POST /score/predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n";
    socket.write_all(chunked.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(wait_until(|| async { stats.capture_dropped.load(Ordering::Relaxed) == 1 }).await);

    let sample = dir.path().join("sample.jsonl");
    let exported =
        rollgate_gateway::capture::export(dir.path(), "scorer", rollgate_core::Timestamp::UNIX_EPOCH, &sample).unwrap();
    assert_eq!(exported.written, text.lines().count());
    assert_eq!(exported.unreadable, 0);
    let bodies =
        rollgate_load::read_bodies(sample.to_str().unwrap()).expect("the staging sample reader takes the export");
    assert_eq!(bodies.len(), exported.written);
    let future = rollgate_core::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let none = rollgate_gateway::capture::export(dir.path(), "scorer", future, &sample).unwrap_err();
    assert!(none.to_string().contains("captured no requests in that window"), "{none}");
    g.shutdown().await;
}
