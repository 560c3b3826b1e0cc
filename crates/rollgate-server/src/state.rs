//! What every request handler and the controller share.

use crate::api::problem::ApiError;
use crate::judging::Judging;
use crate::staging::Staging;
use crate::traffic::Effects;
use crate::views::RolloutView;
use rollgate_core::Timestamp;
use rollgate_core::clock::Clock;
use rollgate_core::config::Config;
use rollgate_core::rollout::Command;
use rollgate_store::{AnyStore, DeliveryStore, Rollouts, SubmitError, Submitted, carry_out_pending_in};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub rollouts: Rollouts<AnyStore>,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub effects: Effects,
    pub judging: Judging,
    pub staging: Staging,
    pub ready: AtomicBool,
}

impl AppState {
    pub fn new(inner: Inner) -> AppState {
        AppState(Arc::new(inner))
    }

    pub fn store(&self) -> &AnyStore {
        self.0.rollouts.store()
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    pub fn rollouts(&self) -> &Rollouts<AnyStore> {
        &self.0.rollouts
    }

    pub fn effects(&self) -> &Effects {
        &self.0.effects
    }

    pub fn judging(&self) -> &Judging {
        &self.0.judging
    }

    pub fn staging(&self) -> &Staging {
        &self.0.staging
    }

    pub fn clock(&self) -> &dyn Clock {
        self.0.clock.as_ref()
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.0.ready.store(true, Ordering::Release);
    }

    /// Applies a command to a rollout and carries out its effects.
    pub async fn submit(&self, id: &str, command: &Command) -> Result<Submitted, SubmitError> {
        let submitted = self.0.rollouts.submit(id, command, self.now()).await?;
        carry_out_pending_in(&self.0.rollouts, id, &self.0.effects).await?;
        Ok(submitted)
    }

    /// Effects left pending by a process that died, in every rollout.
    pub async fn finish_pending(&self) -> Result<usize, SubmitError> {
        rollgate_store::carry_out_pending(&self.0.rollouts, &self.0.effects).await
    }

    pub async fn view(&self, id: &str) -> Result<RolloutView, ApiError> {
        let rollout =
            self.0.rollouts.load(id).await?.ok_or_else(|| ApiError::not_found(format!("no rollout `{id}`")))?;
        let deliveries = self.store().deliveries_for(id).await?;
        let mut view = RolloutView::new(&rollout, self.now(), &deliveries);
        view.judge = self.judging().report(id).and_then(|r| serde_json::to_value(r).ok());
        Ok(view)
    }
}
