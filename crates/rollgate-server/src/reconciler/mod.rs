//! The leader's work, apart from the API: carrying out the log's effects,
//! feeding rollouts their timers, judging canaries, running staging,
//! comparing shadow answers, watching the version a rollback brought back,
//! running deploy hooks and archiving, and delivering webhooks. It is
//! started through one entry point, [`start`], which a leader lease can gate:
//! a replica that serves only the API and routes its own traffic never
//! starts it.

mod actions;
mod aftercare;
mod archive;
mod controller;
mod effects;
mod evidence;
mod hooks;
mod infrastructure;
mod instances;
pub(crate) mod judging;
mod monitoring;
mod postdeploy;
mod record;
mod timers;
mod validating;

use crate::fleet::Fleet;
use crate::head::{HeadFile, SignedHead};
use crate::log::Log;
use crate::notify::{self, Hook, Notifier, RetryPolicy};
use crate::prometheus::Prometheus;
use crate::staging::{self, Staging, StagingCtx};
use judging::Judging;
use rollgate_core::clock::Clock;
use rollgate_store::AnyStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use timers::Timers;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

pub use timers::Due;

/// What the reconciler works with.
#[derive(Clone)]
pub struct Reconciler {
    pub log: Arc<Log>,
    pub store: AnyStore,
    pub clock: Arc<dyn Clock>,
    /// How often canaries are judged (and the store is looked at for other writers).
    pub tick: Duration,
    pub webhooks: Vec<Hook>,
    pub retry: RetryPolicy,
    pub prometheus: Option<Prometheus>,
    /// Where finished rollouts are archived.
    pub archive_dir: PathBuf,
    pub head_file: Option<HeadFile>,
    /// The gateway's shadow pairs, compared while a rollout's shadow stage runs.
    pub shadow: Arc<crate::shadow::ShadowPairs>,
    /// Where the API answers (`http://HOST:PORT`), for links to a rollout.
    pub api_url: Option<String>,
    /// The config's file: the services' suites and documents are read beside it.
    pub config_file: Option<PathBuf>,
    /// Woken when another replica appended (PostgreSQL's announcement): the
    /// controller takes up what moved at once instead of at its next tick.
    pub appended: Arc<Notify>,
}

/// Shared by the reconciler's tasks.
pub(crate) struct Ctx {
    pub log: Arc<Log>,
    pub store: AnyStore,
    pub clock: Arc<dyn Clock>,
    pub tick: Duration,
    pub notifier: Notifier,
    pub timers: Timers,
    /// Woken when an action (redeploy, retire, archive) may have work.
    pub actions: Notify,
    pub staging: Arc<Staging>,
    pub judging: Judging,
    pub archive_dir: PathBuf,
    pub http: reqwest::Client,
    /// The signed head, and the heads it last recorded.
    pub head_file: Option<HeadFile>,
    pub recorded_heads: std::sync::Mutex<Vec<rollgate_core::audit::StreamHead>>,
    pub api_url: Option<String>,
    /// After rollbacks: where each watch of the version that came back began.
    pub watches: record::Starts,
    /// Full deployments' checks: where each began counting in this process.
    pub observations: record::Starts,
    /// The Prometheus the monitoring plan gate asks, when one is configured.
    pub prometheus: Option<Prometheus>,
    /// When each rollout's checks by rollgate were last made (`ROLLOUT/CHECK` → when).
    pub checked: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The config's file, when there is one (suites and documents are beside it).
    pub config_file: Option<PathBuf>,
    pub appended: Arc<Notify>,
}

impl Ctx {
    pub fn fleet(&self) -> &Arc<Fleet> {
        self.log.fleet()
    }

    /// Writes the signed head of the log when it moved since the last write.
    pub async fn record_heads(&self) {
        let Some(file) = &self.head_file else { return };
        let heads = match rollgate_store::EventStore::heads(&self.store).await {
            Ok(heads) => heads,
            Err(e) => return tracing::warn!(error = %e, "cannot read the log's heads"),
        };
        if *self.recorded_heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == heads {
            return;
        }
        let head = SignedHead::new(self.clock.now(), heads.clone(), &file.key);
        match head.write(&file.path) {
            Ok(()) => *self.recorded_heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = heads,
            Err(e) => tracing::warn!(path = %file.path.display(), error = %e, "cannot write the signed head"),
        }
    }
}

/// Starts the reconciler's tasks; they run until `stop` turns true.
/// `effects` names rollouts whose new events carry effects.
pub fn start(
    reconciler: Reconciler,
    effects: mpsc::UnboundedReceiver<String>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let webhooks = Arc::new(reconciler.webhooks);
    let wake_delivery = Arc::new(Notify::new());
    let ctx = Arc::new(Ctx {
        notifier: Notifier::new(reconciler.store.clone(), webhooks.clone(), wake_delivery.clone()),
        judging: Judging::new(reconciler.prometheus.clone()),
        prometheus: reconciler.prometheus,
        checked: std::sync::Mutex::default(),
        config_file: reconciler.config_file,
        appended: reconciler.appended,
        log: reconciler.log,
        store: reconciler.store.clone(),
        clock: reconciler.clock,
        tick: reconciler.tick,
        timers: Timers::default(),
        actions: Notify::new(),
        staging: Arc::new(Staging::new()),
        archive_dir: reconciler.archive_dir,
        http: reqwest::Client::builder().build().unwrap_or_default(),
        head_file: reconciler.head_file,
        recorded_heads: std::sync::Mutex::new(Vec::new()),
        api_url: reconciler.api_url,
        watches: record::Starts::default(),
        observations: record::Starts::default(),
    });
    let staging_ctx = Arc::new(StagingCtx { log: ctx.log.clone(), clock: ctx.clock.clone(), http: staging_client() });
    let shadow = crate::shadow::run(ctx.log.clone(), ctx.store.clone(), reconciler.shadow, ctx.tick, stop.clone());
    vec![
        tokio::spawn(shadow),
        tokio::spawn(staging::run(ctx.staging.clone(), staging_ctx, stop.clone())),
        tokio::spawn(effects::run(ctx.clone(), effects, stop.clone())),
        tokio::spawn(controller::run(ctx.clone(), stop.clone())),
        tokio::spawn(actions::run(ctx, stop.clone())),
        tokio::spawn(notify::deliver(reconciler.store, webhooks, wake_delivery, reconciler.retry, stop)),
    ]
}

/// Staging replays keep many requests in flight to the gateway.
fn staging_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap_or_default()
}
