//! The monitoring plan gate, where the plan makes it rollgate's to check
//! (`pre_deployment.monitoring_rules`): in pre-deployment, rollgate asks the
//! configured Prometheus which rule groups are loaded and records
//! `documentation.monitoring_plan` as passed once the service's exported
//! groups are there and none of their rules fails, or as failed with what is
//! missing. It asks again every little while and records only a change. In
//! full deployment it asks again: the post-deployment item "monitoring
//! working" needs the rules still active.

use super::Ctx;
use crate::prometheus::Prometheus;
use rollgate_core::plan::gate_ids::DOCUMENTATION_MONITORING_PLAN;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// How often one rollout's rules are looked for.
const EVERY: Duration = Duration::from_secs(5);

pub async fn tick(ctx: &Ctx) {
    let Some(prometheus) = &ctx.prometheus else { return };
    let waiting: Vec<Rollout> = ctx
        .fleet()
        .rollouts()
        .into_iter()
        .filter(|r| matches!(r.stage, Stage::PreDeployment | Stage::Full) && r.plan.pre_deployment.monitoring_rules)
        .collect();
    ctx.rules_checked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|id, _| waiting.iter().any(|r| &r.id == id));
    for r in waiting.iter().filter(|r| due(ctx, &r.id)) {
        let (passed, summary) = match rules_active(prometheus, &r.service).await {
            Ok(summary) => (true, summary),
            Err(problem) => (false, problem),
        };
        let recorded = r.evidence.get(DOCUMENTATION_MONITORING_PLAN);
        if recorded.is_some_and(|e| e.passed == passed && e.summary == summary) {
            continue;
        }
        let details = serde_json::json!({ "groups": crate::monitoring::group_names(&r.service) });
        let input = Input::Evidence { gate: DOCUMENTATION_MONITORING_PLAN.into(), passed, summary, details };
        if let Err(e) = ctx.log.submit(&r.id, &Command::new(Actor::system(), input)).await {
            tracing::warn!(rollout = %r.id, error = %e, "cannot record the monitoring rules check");
        }
    }
}

/// Whether the service's exported rules are loaded: a summary, or what is wrong.
pub async fn rules_active(prometheus: &Prometheus, service: &str) -> Result<String, String> {
    crate::monitoring::rules_loaded(service, &prometheus.rule_groups().await?)
}

/// Whether the rollout's rules are due to be looked for again (and notes that they are being).
fn due(ctx: &Ctx, id: &str) -> bool {
    let mut checked = ctx.rules_checked.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if checked.get(id).is_some_and(|at| now.duration_since(*at) < EVERY) {
        return false;
    }
    checked.insert(id.to_string(), now);
    true
}
