//! The monitoring plan gate, where the plan makes it rollgate's to check
//! (`pre_deployment.monitoring_rules`): in pre-deployment, rollgate asks the
//! configured Prometheus which rule groups are loaded and records
//! `documentation.monitoring_plan` as passed once the service's exported
//! groups are there and none of their rules fails, or as failed with what is
//! missing. It asks again every little while and records only a change. In
//! full deployment it asks again: the post-deployment item "monitoring
//! working" needs the rules still active.

use super::{Ctx, evidence};
use crate::prometheus::Prometheus;
use rollgate_core::plan::gate_ids::DOCUMENTATION_MONITORING_PLAN;
use rollgate_core::rollout::{Rollout, Stage};

pub async fn tick(ctx: &Ctx) {
    let Some(prometheus) = &ctx.prometheus else { return };
    let waiting: Vec<Rollout> = ctx
        .fleet()
        .rollouts()
        .into_iter()
        .filter(|r| matches!(r.stage, Stage::PreDeployment | Stage::Full) && r.plan.pre_deployment.monitoring_rules)
        .collect();
    for r in waiting.iter().filter(|r| evidence::due(ctx, &format!("{}/monitoring_rules", r.id))) {
        let (passed, summary) = match rules_active(prometheus, &r.service).await {
            Ok(summary) => (true, summary),
            Err(problem) => (false, problem),
        };
        let details = serde_json::json!({ "groups": crate::monitoring::group_names(&r.service) });
        evidence::record(&ctx.log, r, DOCUMENTATION_MONITORING_PLAN, passed, summary, details).await;
    }
}

/// Whether the service's exported rules are loaded: a summary, or what is wrong.
pub async fn rules_active(prometheus: &Prometheus, service: &str) -> Result<String, String> {
    crate::monitoring::rules_loaded(service, &prometheus.rule_groups().await?)
}
