//! rollgate's control plane: `rollgate serve`. An HTTP API (with its
//! OpenAPI document) through which people start and steer rollouts, and a
//! reconciler that carries out what the log decides: routing, timers, the
//! judge, staging, deploy hooks, archives and notifications.
//! Decisions are the core's; this crate carries them to and from the world.
//!
//! The parts, and the one way each reaches the next:
//! - [`fleet::Fleet`]: what this replica knows of the log, and the one
//!   routing that follows from it, applied to the data plane;
//! - [`dataplane::DataPlane`]: the narrow interface to the traffic;
//! - `log::Log`: how the API and the reconciler record commands;
//! - [`reconciler`]: the leader's work, started through one entry point.

pub mod api;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod control_metrics;
pub mod dashboard;
pub mod dataplane;
pub mod flag_outcomes;
pub mod flags;
pub mod fleet;
pub mod head;
mod log;
pub mod monitoring;
pub mod notify;
pub mod page;
pub mod prometheus;
pub mod reconciler;
mod registry;
pub mod report;
pub mod retro;
pub mod shadow;
pub mod shared_arms;
mod staging;
mod state;
pub mod validation;
pub mod views;

pub use registry::VersionSpec;
pub use state::ReloadError;

use dataplane::DataPlane;
use fleet::{ConfigInForce, Fleet};
use notify::{Hook, RetryPolicy};
use prometheus::Prometheus;
use reconciler::Reconciler;
use rollgate_core::clock::Clock;
use rollgate_core::config::Config;
use rollgate_store::AnyStore;
use state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The config, and where it came from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub config: Config,
    /// Its text, archived with every finished rollout.
    pub text: String,
    /// Its file, read again on reload; `None` for a config that has no file.
    pub path: Option<PathBuf>,
}

pub struct ServerOptions {
    pub config: ConfigSource,
    pub store: AnyStore,
    pub listen: SocketAddr,
    pub clock: Arc<dyn Clock>,
    /// How often canaries are judged.
    pub tick: Duration,
    /// Webhooks with their signing keys (see [`Hook::from_config`]).
    pub hooks: Vec<Hook>,
    /// Where traffic is routed and measured; `None` for a control plane
    /// that records and decides but routes nothing.
    pub dataplane: Option<Arc<dyn DataPlane>>,
    pub retry: RetryPolicy,
    /// Where finished rollouts are archived.
    pub archive_dir: PathBuf,
    /// Where to keep the signed head of the log, outside the database.
    pub head_file: Option<head::HeadFile>,
    /// Where the gateway's shadow pairs arrive, to be compared (give the
    /// gateway the same one as its comparison hook).
    pub shadow: Arc<shadow::ShadowPairs>,
    /// The leader's lease among replicas (PostgreSQL only).
    pub cluster: cluster::ClusterSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the rollouts from the store: {0}")]
    Load(#[from] rollgate_store::SubmitError),
    #[error("cannot put the data plane where the rollouts left traffic: {0}")]
    Restore(String),
    #[error("cannot read metrics from Prometheus: {0}")]
    Prometheus(String),
}

/// A running server: its address, and a way to stop it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Reads the config file again; see `POST /api/v1/config/reload`.
    pub fn reload_config(&self) -> Result<(), ReloadError> {
        self.state.reload_config()
    }

    /// Stops accepting requests, lets in-flight ones finish, stops the
    /// reconciler between two steps, and waits for all.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Reads the rollouts, routes traffic where they left it, binds, and starts
/// the API and the reconciler.
pub async fn start(options: ServerOptions) -> Result<RunningServer, ServeError> {
    let prometheus = match &options.config.config.metrics.prometheus {
        Some(url) => Some(Prometheus::new(url.get_ref()).map_err(ServeError::Prometheus)?),
        None => None,
    };
    let in_force = ConfigInForce { config: Arc::new(options.config.config), text: options.config.text.into() };
    let fleet = Arc::new(Fleet::load(&options.store, in_force, options.dataplane, options.clock.clone()).await?);
    if let Some(problem) = fleet.apply() {
        return Err(ServeError::Restore(problem));
    }
    let (effects, effects_due) = mpsc::unbounded_channel();
    let log = Arc::new(log::Log::new(options.store.clone(), fleet.clone(), effects.clone()));
    let config_file = options.config.path.clone();
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let me = cluster::Member::new(addr.to_string());
    let state = AppState::new(log.clone(), options.store.clone(), options.config.path, me.clone(), options.cluster);
    let (stop, stopped) = watch::channel(false);
    let app =
        api::router(state.clone()).merge(dashboard::router(state.clone(), dashboard::SessionKey::from_env_or_random()));
    let mut http_stop = stopped.clone();
    let http = tokio::spawn(async move {
        let graceful = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
            tracing::error!(error = %e, "the API server failed");
        }
    });
    let template = Reconciler {
        log,
        store: options.store.clone(),
        clock: options.clock,
        tick: options.tick,
        webhooks: options.hooks,
        retry: options.retry,
        prometheus,
        archive_dir: options.archive_dir,
        head_file: options.head_file,
        shadow: options.shadow,
        api_url: Some(format!("http://{addr}")),
        config_file,
        appended: Arc::new(tokio::sync::Notify::new()),
    };
    let mut tasks = match options.store.clone() {
        // One server per SQLite data directory (the CLI locks it): it leads.
        rollgate_store::AnyStore::Sqlite(_) => reconciler::start(template, effects_due, stopped),
        rollgate_store::AnyStore::Postgres(pg) => {
            let (tick, settings, appended) = (template.tick, options.cluster, template.appended.clone());
            let shadow = template.shadow.clone();
            let start: cluster::StartReconciler = Box::new(move |store, due, stop| {
                // The leader's own records go through a log over the fenced store.
                let log = Arc::new(log::Log::new(store.clone(), fleet.clone(), effects.clone()));
                reconciler::start(Reconciler { log, store, ..template.clone() }, due, stop)
            });
            let fleet = state.fleet().clone();
            let store = options.store.clone();
            cluster::Leadership { pg, store, me, settings, fleet, tick, appended, shadow, start }
                .run(effects_due, stopped)
        }
    };
    tasks.push(http);
    state.set_ready();
    Ok(RunningServer { addr, state, stop, tasks })
}

/// Stops here if `ROLLGATE_FAILPOINT` names this point, so that a crash test
/// can kill the process at an exact place. Says so on stderr, then waits.
pub fn failpoint(name: &str) {
    if std::env::var("ROLLGATE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        loop {
            std::thread::park();
        }
    }
}
