//! Helpers shared by the gateway's test files.
#![allow(dead_code)] // each test binary uses its own part of the helpers

use rollgate_core::config::Config;
use rollgate_core::routing::{Routing, RoutingInputs, desired};
use rollgate_gateway::mirror::{ComparisonHook, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_gateway::table::RouteTable;
use rollgate_gateway::{Gateway, RunningGateway, serve_on_threads};
use std::sync::Arc;
use std::time::Duration;

/// The routing of `config` alone: no rollouts, no registered versions.
pub fn routing_of(config: &Config) -> Routing {
    desired(&RoutingInputs {
        config,
        registered: &[],
        rollouts: &[],
        staging: &[],
        flags: &Default::default(),
        now: rollgate_core::Timestamp::UNIX_EPOCH,
    })
}

/// A gateway (not yet serving) on `config`'s routing, measuring into `stats`.
pub fn gateway_of(config: &Config, stats: Arc<Stats>, hook: Arc<dyn ComparisonHook>, limits: MirrorLimits) -> Gateway {
    let table = RouteTable::build(&routing_of(config), &RouteTable::empty(), &stats).unwrap();
    Gateway::new(table, stats, Duration::from_secs(2), hook, limits)
}

/// Serves `gateway` as production runs it: a thread per core (two here), each with its own listener and pool.
pub async fn serving(gateway: Gateway) -> RunningGateway {
    serve_on_threads(Arc::new(gateway), "127.0.0.1:0".parse().unwrap(), 2).await.unwrap()
}

/// A `[services.SERVICE.versions.NAME]` table with one endpoint.
pub fn version_toml(service: &str, name: &str, endpoint: &str) -> String {
    format!(
        "[services.{service}.versions.{name}]\nendpoints = [\"{endpoint}\"]\nartifact = {{ uri = \"s3://m/{name}\", sha256 = \"{}\" }}\nowner = \"ml\"\n",
        "a".repeat(64)
    )
}

/// The value of one series in Prometheus text (the whole series name with its
/// labels, e.g. `rollgate_requests_total{service="scorer",...}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Fails unless `promtool check metrics` finds nothing wrong with the exposition.
pub fn assert_promtool_clean(metrics: &str) {
    let out = promtool_check(metrics)
        .expect("promtool (Debian's prometheus package) must be installed: scripts/test.sh installs it");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` with the exposition on its standard input.
fn promtool_check(metrics: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped stdin").write_all(metrics.as_bytes())?;
    child.wait_with_output()
}

/// Polls `check` every 20 ms until it holds, for at most 5 s; whether it held.
pub async fn wait_until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
