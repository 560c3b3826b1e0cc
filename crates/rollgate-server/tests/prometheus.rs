//! External metrics from a real Prometheus (Debian's `prometheus`, started
//! here on a loopback port) scraping a small exporter this test runs: values
//! are read per version, bounds are judged, and every way a query can fail
//! is a reason (a hold with a warning), never a value.

use axum::Router;
use axum::routing::get;
use rollgate_judge::external::{Bound, ExternalRule, ExternalState};
use rollgate_server::prometheus::Prometheus;

mod common;
use common::{PrometheusServer, free_port};
use std::time::Duration;
use tokio::net::TcpListener;

/// An exporter: GPU memory use per model version.
async fn exporter() -> String {
    let metrics = "# HELP gpu_memory_used_ratio GPU memory in use.\n# TYPE gpu_memory_used_ratio gauge\n\
                   gpu_memory_used_ratio{version=\"v1\"} 0.5\ngpu_memory_used_ratio{version=\"v2\"} 0.9\n";
    let app = Router::new().route("/metrics", get(move || async move { metrics }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn external_metrics_come_from_a_real_prometheus() {
    let target = exporter().await;
    let server = PrometheusServer::start(&target);
    let url = server.url.clone();
    let prometheus = Prometheus::new(&url).unwrap();
    let query = "gpu_memory_used_ratio{version=\"v2\"}";
    // Prometheus needs a moment to start and scrape once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let value = loop {
        match prometheus.value(query).await {
            Ok(v) => break v,
            Err(why) if tokio::time::Instant::now() > deadline => panic!("no value within a minute: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(value, 0.9);

    // Judged per version: canary v2 against baseline v1.
    let rule = ExternalRule {
        name: "gpu_memory".into(),
        query: "max(gpu_memory_used_ratio{version=\"{version}\"})".into(),
        bound: Bound::MaxRatio(1.5),
        interval_ms: 15_000,
    };
    let readings = prometheus.read(std::slice::from_ref(&rule), "v2", "v1", 1000).await;
    assert_eq!(readings[0].canary, Ok(0.9));
    assert_eq!(readings[0].baseline, Some(Ok(0.5)));
    let mut state = ExternalState::new(vec![rule.clone()]);
    state.observe(&readings);
    let (trigger, reason) = state.breach().expect("0.9 / 0.5 = 1.8 is over 1.5");
    assert_eq!(trigger, "external:gpu_memory");
    assert!(reason.contains("1.8"), "{reason}");

    // Every failure is a reason, not a number.
    let no_series = prometheus.value("gpu_memory_used_ratio{version=\"v9\"}").await.unwrap_err();
    assert!(no_series.contains("no series"), "{no_series}");
    let two_series = prometheus.value("gpu_memory_used_ratio").await.unwrap_err();
    assert!(two_series.contains("2 series"), "{two_series}");
    let bad = prometheus.value("rate(gpu_memory_used_ratio[").await.unwrap_err();
    assert!(bad.contains("the query failed"), "{bad}");
    let down = Prometheus::new(&format!("http://127.0.0.1:{}", free_port())).unwrap();
    let refused = down.value(query).await.unwrap_err();
    assert!(refused.contains("did not answer"), "{refused}");

    // A missing baseline holds the judge with a warning and never breaches.
    let missing = ExternalRule { query: "gpu_memory_used_ratio{version=\"{version}\"}".into(), ..rule };
    let readings = prometheus.read(std::slice::from_ref(&missing), "v2", "v9", 2000).await;
    let mut state = ExternalState::new(vec![missing]);
    state.observe(&readings);
    assert_eq!(state.breach(), None);
    assert!(state.warnings()[0].contains("no series"), "{:?}", state.warnings());
}
