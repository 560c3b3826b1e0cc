//! `rollgate gateway`: the data plane on its own, and its start-up for `serve`.

use super::config::load;
use anyhow::Context;
use rollgate_core::Timestamp;
use rollgate_core::config::Config;
use rollgate_core::routing::{Routing, RoutingInputs, desired};
use rollgate_gateway::mirror::{ComparisonHook, DiscardPairs, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_gateway::table::RouteTable;
use rollgate_gateway::{Gateway, RunningGateway, serve_on_threads};
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The config's own routing: every service on its stable version (or static
/// split), no rollouts, no flags. Under `serve` the control plane applies the
/// rollouts' routing next.
fn config_routing(config: &Config) -> Routing {
    let inputs = RoutingInputs {
        config,
        registered: &[],
        rollouts: &[],
        staging: &[],
        flags: &Default::default(),
        now: Timestamp::now(),
    };
    desired(&inputs)
}

/// Builds the gateway for a config and starts listening on `threads` threads (default: one per core).
/// The gateway on `config`'s own routing; shadow pairs go to `pairs`.
pub async fn start(
    config: &Config,
    listen: SocketAddr,
    threads: Option<NonZeroUsize>,
    pairs: Arc<dyn ComparisonHook>,
    capture_dir: Option<PathBuf>,
) -> anyhow::Result<RunningGateway> {
    start_on(&config_routing(config), listen, threads, pairs, capture_dir).await
}

async fn start_on(
    routing: &Routing,
    listen: SocketAddr,
    threads: Option<NonZeroUsize>,
    pairs: Arc<dyn ComparisonHook>,
    capture_dir: Option<PathBuf>,
) -> anyhow::Result<RunningGateway> {
    let stats = Arc::new(Stats::default());
    let table = RouteTable::build(routing, &RouteTable::empty(), &stats).map_err(|e| crate::Refused(e.to_string()))?;
    // One connection pool serves every service, so it takes the shortest connect timeout.
    let connect = table.services.iter().map(|s| s.connect_timeout).min().unwrap_or(Duration::from_secs(2));
    let mut gateway = Gateway::new(table, stats, connect, pairs, MirrorLimits::default());
    if let Some(dir) = capture_dir {
        gateway = gateway
            .with_capture(dir.clone())
            .with_context(|| format!("cannot capture traffic into {}", dir.display()))?;
    }
    let gateway = Arc::new(gateway);
    let threads = threads.or_else(|| std::thread::available_parallelism().ok()).map_or(1, NonZeroUsize::get);
    serve_on_threads(gateway, listen, threads)
        .await
        .with_context(|| format!("cannot listen on {listen} for the gateway"))
}

pub async fn run(
    config: &Path,
    listen: SocketAddr,
    threads: Option<NonZeroUsize>,
    capture_dir: PathBuf,
) -> anyhow::Result<()> {
    let config = load(config)?;
    let routing = config_routing(&config);
    // What cannot be routed as the config says (a dark launch's flag, which only `serve` reads) is said, not hidden.
    for problem in &routing.problems {
        eprintln!("warning: {problem}");
    }
    // A gateway alone has no rollouts, so nothing compares its static mirrors' answers.
    let gateway = start_on(&routing, listen, threads, Arc::new(DiscardPairs), Some(capture_dir)).await?;
    println!("rollgate gateway listening on http://{}", gateway.addr);
    std::io::stdout().flush()?;
    super::serve::shutdown_signal().await;
    gateway.shutdown().await;
    Ok(())
}
