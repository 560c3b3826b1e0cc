//! Carrying out the log's effects, each once per event, in log order. What
//! each becomes:
//! - a flag's rollout step: the flag's percentage recorded in the flags' log
//!   (a weight of 0, its kill switch);
//! - routing (weights, mirroring, keeping a version warm): the desired
//!   routing applied to the data plane (the submit that recorded it already
//!   did; applying again is harmless and covers a crash in between); a warm
//!   version's end is scheduled;
//! - a timer: scheduled on the control plane's clock;
//! - staging: the staging run starts;
//! - redeploy, retire, archive, closing the ticket, a rolling batch's
//!   instances: the action runner is woken; the rollout's
//!   state keeps the action pending until a run or a person records it done;
//! - a notification: a webhook delivery is queued.

use super::{Ctx, Due};
use crate::flags::{self, Change, FlagError};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Effect, flag_of};
use rollgate_core::weight::Weight;
use rollgate_store::{EffectKey, EffectSink, carry_out_pending, carry_out_pending_in};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

impl EffectSink for Ctx {
    async fn carry_out(&self, key: &EffectKey, effect: &Effect) -> Result<(), String> {
        match effect {
            Effect::Notify { kind, message } => self.notifier.notify(key, *kind, message).await,
            Effect::SetWeights { service, candidate_weight, .. } => match flag_of(service) {
                Some(flag) => self.move_flag(&key.stream, flag, *candidate_weight).await,
                None => self.fleet().apply().map_or(Ok(()), Err),
            },
            Effect::StartMirroring { .. } | Effect::StopMirroring { .. } => self.fleet().apply().map_or(Ok(()), Err),
            Effect::KeepWarm { until, .. } => {
                self.timers.at(*until, Due::Routing);
                self.fleet().apply().map_or(Ok(()), Err)
            }
            Effect::ScheduleTimer { at } => {
                self.timers.at(*at, Due::Rollout(key.stream.clone()));
                Ok(())
            }
            Effect::StartStaging { .. } => {
                if let Some(rollout) = self.fleet().rollout(&key.stream) {
                    self.staging.start_if_due(&rollout);
                }
                Ok(())
            }
            Effect::Redeploy { .. }
            | Effect::Retire { .. }
            | Effect::Archive
            | Effect::CloseTicket { .. }
            | Effect::Instances { .. } => {
                self.actions.notify_one();
                Ok(())
            }
        }
    }
}

impl Ctx {
    /// A flag's rollout step, recorded in the flags' log: its percentage
    /// follows the step; a weight of 0 (a rollback, an abort) is the kill
    /// switch, in force from the next evaluation.
    async fn move_flag(&self, rollout: &str, flag: &str, weight: Weight) -> Result<(), String> {
        let (change, reason) = if weight == Weight::ZERO {
            (Change::Kill, format!("rollout {rollout} rolled back or aborted"))
        } else {
            let percent = weight.percent().floor() as u32;
            (Change::Rollout(percent), format!("rollout {rollout}: {weight} of users"))
        };
        let by = Actor::system().name;
        match flags::change(&self.store, flag, change, &by, Some(reason), self.clock.now()).await {
            Ok(_) => {}
            Err(FlagError::NotFound(_)) => return Err(format!("flag `{flag}` no longer exists")),
            Err(e) => return Err(e.to_string()),
        }
        self.fleet().reload_flags(&self.store).await.map_err(|e| e.to_string())
    }
}

/// Carries out what an earlier run left pending, then the effects of each
/// rollout named on `due`, until `stop`.
pub async fn run(ctx: Arc<Ctx>, mut due: mpsc::UnboundedReceiver<String>, mut stop: watch::Receiver<bool>) {
    match carry_out_pending(ctx.log.rollouts(), ctx.as_ref()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(effects = n, "carried out effects left pending by an earlier run"),
        Err(e) => tracing::warn!(error = %e, "an effect left pending could not be carried out; it stays pending"),
    }
    loop {
        let id = tokio::select! {
            id = due.recv() => id,
            _ = stop.changed() => None,
        };
        let Some(id) = id else { break };
        if let Err(e) = carry_out_pending_in(ctx.log.rollouts(), &id, ctx.as_ref()).await {
            tracing::warn!(rollout = %id, error = %e, "an effect could not be carried out; it stays pending");
        }
    }
}
