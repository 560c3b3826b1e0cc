//! rollgate's control plane: `rollgate serve`. An HTTP API (with its
//! OpenAPI document) through which people start and steer rollouts, a
//! controller that moves them on as time passes, and notifications.
//! Decisions are the core's; this crate carries them to and from the world.

pub mod api;
pub mod auth;
pub mod clock;
mod controller;
mod judging;
pub use judging::ArmPair;
pub mod notify;
pub mod prometheus;
mod registry;
mod staging;
mod state;
mod traffic;
pub mod views;

pub use registry::VersionSpec;

use judging::Judging;
use notify::{Hook, Notifier, RetryPolicy};
use prometheus::Prometheus;
use rollgate_core::clock::Clock;
use rollgate_core::config::Config;
use rollgate_gateway::Gateway;
use rollgate_store::EventStore;
use rollgate_store::{AnyStore, Rollouts};
use staging::Staging;
use state::{AppState, Inner};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use traffic::Effects;

pub struct ServerOptions {
    pub config: Config,
    pub store: AnyStore,
    pub listen: SocketAddr,
    pub clock: Arc<dyn Clock>,
    /// How often the controller lets time pass for every rollout.
    pub tick: Duration,
    /// Webhooks with their signing keys (see [`Hook::from_config`]).
    pub hooks: Vec<Hook>,
    /// The gateway that carries out traffic effects, when it runs in this process.
    pub gateway: Option<Arc<Gateway>>,
    /// Where that gateway listens (`http://HOST:PORT`): staging traffic goes through it.
    pub gateway_url: Option<String>,
    pub retry: RetryPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot finish the effects left pending by an earlier run: {0}")]
    Resume(#[from] rollgate_store::SubmitError),
    #[error("cannot put the gateway where the rollouts left traffic: {0}")]
    Restore(String),
    #[error("cannot read metrics from Prometheus: {0}")]
    Prometheus(String),
}

/// A running server: its address, and a way to stop it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting requests, lets in-flight ones finish, stops the
    /// controller and the notifier between two steps, and waits for all.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds, finishes effects left pending by an earlier run, and starts the
/// API, the controller and the notifier.
pub async fn start(options: ServerOptions) -> Result<RunningServer, ServeError> {
    let hooks = Arc::new(options.hooks);
    let wake = Arc::new(Notify::new());
    let notifier = Notifier::new(options.store.clone(), hooks.clone(), wake.clone());
    let prometheus = match &options.config.metrics.prometheus {
        Some(url) => Some(Prometheus::new(url.get_ref()).map_err(ServeError::Prometheus)?),
        None => None,
    };
    let judging = Judging::new(options.gateway.clone(), prometheus);
    let staging = Staging::new(options.gateway.clone().zip(options.gateway_url));
    let effects = Effects { notifier, gateway: options.gateway };
    let state = AppState::new(Inner {
        rollouts: Rollouts::new(options.store.clone()),
        config: options.config,
        clock: options.clock,
        effects,
        judging,
        staging,
        ready: AtomicBool::new(false),
    });
    let resumed = state.finish_pending().await?;
    let mut current = Vec::new();
    let streams = options.store.streams().await.map_err(rollgate_store::SubmitError::from)?;
    for id in streams.iter().filter(|s| rollgate_store::is_rollout_stream(s)) {
        if let Some(rollout) = state.rollouts().load(id).await? {
            current.push(rollout);
        }
    }
    state.effects().restore(&mut current).map_err(|e| ServeError::Restore(e.to_string()))?;
    if resumed > 0 {
        tracing::info!(effects = resumed, "carried out effects left pending by an earlier run");
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: options.listen, source })?;
    let (stop, stopped) = watch::channel(false);
    let app = api::router(state.clone());
    let mut http_stop = stopped.clone();
    let http = tokio::spawn(async move {
        let graceful = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
            tracing::error!(error = %e, "the API server failed");
        }
    });
    let controller = tokio::spawn(controller::run(state.clone(), options.tick, stopped.clone()));
    let delivery = tokio::spawn(notify::deliver(options.store, hooks, wake, options.retry, stopped));
    state.set_ready();
    Ok(RunningServer { addr, stop, tasks: vec![http, controller, delivery] })
}
