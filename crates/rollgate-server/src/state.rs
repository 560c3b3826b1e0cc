//! What the API's handlers share: the log to submit commands through, the
//! fleet to read and route by, the store for reads, and how to reload the
//! config. The reconciler's work is not here: the API only records.

use crate::cluster::{ClusterSettings, ClusterView, Member};
use crate::fleet::{ConfigInForce, Fleet};
use crate::log::Log;
use crate::views::RolloutView;
use rollgate_core::Timestamp;
use rollgate_core::config::Config;
use rollgate_core::rollout::{Command, Rollout};
use rollgate_store::{Analysis, AnalysisStore, AnyStore, DeliveryStore, Rollouts, SubmitError, Submitted};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    log: Arc<Log>,
    store: AnyStore,
    /// The file `POST /api/v1/config/reload` and SIGHUP read again.
    config_path: Option<PathBuf>,
    ready: AtomicBool,
    /// This replica, and the lease's settings, for `GET /api/v1/cluster`.
    member: Member,
    cluster: ClusterSettings,
    /// The verified token ledger, read again only when its stream moves.
    tokens: crate::auth::LedgerCache,
}

/// Why a config could not be reloaded; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this server was not started from a config file, so there is nothing to read again")]
    NoFile,
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the new config was refused; nothing changed:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
}

impl AppState {
    pub fn new(
        log: Arc<Log>,
        store: AnyStore,
        config_path: Option<PathBuf>,
        member: Member,
        cluster: ClusterSettings,
    ) -> AppState {
        AppState(Arc::new(Inner {
            log,
            store,
            config_path,
            ready: AtomicBool::new(false),
            member,
            cluster,
            tokens: crate::auth::LedgerCache::default(),
        }))
    }

    /// The replicas, their leader and its token.
    pub async fn cluster(&self) -> Result<ClusterView, rollgate_store::StoreError> {
        crate::cluster::view(&self.0.store, &self.0.member, &self.0.cluster).await
    }

    pub fn store(&self) -> &AnyStore {
        &self.0.store
    }

    /// The actor behind an `Authorization` header value.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
    ) -> Result<rollgate_core::roles::Actor, crate::auth::AuthError> {
        crate::auth::authenticate(&self.0.tokens, &self.0.store, header).await
    }

    pub fn fleet(&self) -> &Arc<Fleet> {
        self.0.log.fleet()
    }

    pub fn config(&self) -> Arc<Config> {
        self.fleet().config()
    }

    pub fn now(&self) -> Timestamp {
        self.fleet().now()
    }

    pub fn rollouts(&self) -> &Rollouts<AnyStore> {
        self.0.log.rollouts()
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.0.ready.store(true, Ordering::Release);
    }

    /// Records a command; its effects are the reconciler's to carry out.
    // A refusal carries every gate and why; it is returned once per refused command.
    #[allow(clippy::result_large_err)]
    pub async fn submit(&self, id: &str, command: &Command) -> Result<Submitted, SubmitError> {
        self.0.log.submit(id, command).await
    }

    /// The rollout as its log says now, if there is one.
    pub async fn rollout(&self, id: &str) -> Result<Option<Rollout>, SubmitError> {
        self.rollouts().load(id).await
    }

    /// The rollout with its deliveries and its judge's latest stored report.
    pub async fn view(&self, id: &str) -> Result<Option<RolloutView>, SubmitError> {
        let Some(rollout) = self.rollout(id).await? else { return Ok(None) };
        self.view_of(&rollout).await.map(Some)
    }

    /// [`AppState::view`] of a rollout already read.
    pub async fn view_of(&self, rollout: &Rollout) -> Result<RolloutView, SubmitError> {
        let deliveries = self.store().deliveries_for(&rollout.id).await?;
        let mut view = RolloutView::new(rollout, self.now(), &deliveries);
        view.judge = self
            .store()
            .analysis(Analysis::Judge, &rollout.id)
            .await?
            .and_then(|j| serde_json::from_str(&j.report).ok());
        Ok(view)
    }

    /// Reads the config file again and puts it in force if it is valid and
    /// routes every active rollout; otherwise changes nothing.
    pub fn reload_config(&self) -> Result<(), ReloadError> {
        let path = self.0.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        let text = std::fs::read_to_string(path).map_err(|source| ReloadError::Read { path: path.clone(), source })?;
        let config = Config::parse(&path.display().to_string(), &text)
            .map_err(|problems| ReloadError::Refused(problems.iter().map(ToString::to_string).collect()))?;
        let in_force = ConfigInForce { config: Arc::new(config), text: text.into() };
        self.fleet().reload(in_force).map_err(ReloadError::Refused)
    }
}
