//! The judge's settings, from a plan's rollback triggers.

use crate::external::ExternalRule;
use rollgate_core::plan::RollbackTriggers;

#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    pub error_ratio: f64,
    pub latency_ratio: f64,
    pub latency_quantile: f64,
    pub quality_ratio: f64,
    pub complaint_ratio: f64,
    /// The chance of rolling back a healthy canary, shared among the sequential triggers.
    pub false_rollback_budget: f64,
    pub warm_up_ms: u64,
    pub min_canary_events: u32,
    pub min_canary_requests: u64,
    /// Baseline latencies needed before the latency trigger has a reference quantile.
    pub min_baseline_samples: u64,
    pub health_check_failures: u32,
    pub max_saturation: f64,
    pub external: Vec<ExternalRule>,
}

/// Each sequential trigger's share of the false-rollback budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alphas {
    pub errors: f64,
    pub latency: f64,
    pub quality: f64,
    pub complaints: f64,
}

impl JudgeConfig {
    pub fn from_plan(t: &RollbackTriggers) -> JudgeConfig {
        JudgeConfig {
            error_ratio: t.error_rate_ratio,
            latency_ratio: t.latency_ratio,
            latency_quantile: t.latency_quantile,
            quality_ratio: t.quality_ratio,
            complaint_ratio: t.complaint_ratio,
            false_rollback_budget: t.false_rollback_budget,
            warm_up_ms: u64::try_from(t.warm_up.duration().as_millis()).unwrap_or(0),
            min_canary_events: t.min_canary_events,
            min_canary_requests: t.min_canary_requests,
            min_baseline_samples: 1000,
            health_check_failures: t.health_check_failures,
            max_saturation: t.max_saturation,
            external: t.external.iter().map(ExternalRule::from_plan).collect(),
        }
    }

    /// The research note's split: errors and latency 40% each, quality and complaints 10% each.
    pub fn alphas(&self) -> Alphas {
        let total = self.false_rollback_budget;
        Alphas { errors: 0.4 * total, latency: 0.4 * total, quality: 0.1 * total, complaints: 0.1 * total }
    }
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig::from_plan(&RollbackTriggers::default())
    }
}
