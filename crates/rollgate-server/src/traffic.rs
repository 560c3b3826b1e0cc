//! The server's effect sink: notifications go to the notifier; traffic
//! effects become route-table swaps on the in-process gateway, which apply
//! to the very next request.

use crate::notify::Notifier;
use rollgate_core::rollout::{Effect, Rollout, Stage};
use rollgate_core::weight::Weight;
use rollgate_gateway::Gateway;
use rollgate_gateway::table::TableError;
use rollgate_store::{EffectKey, EffectSink};
use std::sync::Arc;

pub struct Effects {
    pub notifier: Notifier,
    pub gateway: Option<Arc<Gateway>>,
}

impl Effects {
    fn set_weights(&self, service: &str, stable: &str, candidate: &str, weight: Weight) -> Result<(), TableError> {
        self.gateway.as_ref().map_or(Ok(()), |g| g.set_weights(service, stable, candidate, weight))
    }

    fn set_mirror(&self, service: &str, shadow: Option<(&str, Weight)>) -> Result<(), TableError> {
        self.gateway.as_ref().map_or(Ok(()), |g| g.set_mirror(service, shadow))
    }

    /// Puts the gateway where the rollouts' logs say traffic is (after a
    /// restart): each service as its latest rollout left it.
    pub fn restore(&self, rollouts: &mut [Rollout]) -> Result<(), TableError> {
        rollouts.sort_by_key(|r| r.started_at);
        for r in rollouts.iter() {
            if r.stage != Stage::PreDeployment && r.stage != Stage::Staging {
                unrouted_is_fine(self.set_weights(&r.service, &r.stable, &r.candidate, r.weight), &r.id)?;
            }
            unrouted_is_fine(
                self.set_mirror(&r.service, r.mirroring.map(|share| (r.candidate.as_str(), share))),
                &r.id,
            )?;
        }
        Ok(())
    }
}

impl EffectSink for Effects {
    async fn carry_out(&self, key: &EffectKey, effect: &Effect) -> Result<(), String> {
        let applied = match effect {
            Effect::Notify { .. } => return self.notifier.carry_out(key, effect).await,
            Effect::SetWeights { service, stable, candidate, candidate_weight } => {
                self.set_weights(service, stable, candidate, *candidate_weight)
            }
            Effect::StartMirroring { service, shadow, share } => self.set_mirror(service, Some((shadow, *share))),
            Effect::StopMirroring { service } => self.set_mirror(service, None),
            other => {
                // Staging, keep-warm, redeploy and retire act on deployments
                // rollgate does not run itself yet; they stay in the log.
                tracing::info!(key = %key, effect = ?other, "effect recorded");
                Ok(())
            }
        };
        unrouted_is_fine(applied, &key.to_string()).map_err(|e| e.to_string())
    }
}

/// A rollout of a service the gateway does not route (the config changed
/// since) cannot move traffic; that is logged and must not wedge its log.
fn unrouted_is_fine(result: Result<(), TableError>, what: &str) -> Result<(), TableError> {
    match result {
        Err(e @ (TableError::UnknownService(_) | TableError::UnknownVersion { .. })) => {
            tracing::warn!(%what, error = %e, "traffic for a route the gateway does not have");
            Ok(())
        }
        other => other,
    }
}
