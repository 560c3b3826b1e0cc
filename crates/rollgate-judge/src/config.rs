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
    /// A chat model's time to first token at `ttft_quantile` above this multiple of the baseline's.
    pub ttft_ratio: f64,
    pub ttft_quantile: f64,
    /// A chat model's output tokens per second (at 1 − `ttft_quantile`) below this multiple of the baseline's.
    pub tokens_per_second_ratio: f64,
    /// The service's answers are chat streams measured in tokens: the two
    /// token triggers run and take their share of the budget.
    pub judges_tokens: bool,
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
    /// Zero unless the judge judges tokens.
    pub ttft: f64,
    pub tokens: f64,
}

impl JudgeConfig {
    pub fn from_plan(t: &RollbackTriggers) -> JudgeConfig {
        JudgeConfig {
            error_ratio: t.error_rate_ratio,
            latency_ratio: t.latency_ratio,
            latency_quantile: t.latency_quantile,
            quality_ratio: t.quality_ratio,
            complaint_ratio: t.complaint_ratio,
            ttft_ratio: t.ttft_ratio,
            ttft_quantile: t.ttft_quantile,
            tokens_per_second_ratio: t.tokens_per_second_ratio,
            judges_tokens: false,
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

    /// The same settings for a service whose answers are chat streams.
    pub fn judging_tokens(mut self, yes: bool) -> JudgeConfig {
        self.judges_tokens = yes;
        self
    }

    /// The research note's split: errors and latency 40% each, quality and
    /// complaints 10% each. A chat model's judge gives time to first token
    /// 20% and tokens per second 10%, from errors' and latency's shares.
    pub fn alphas(&self) -> Alphas {
        let total = self.false_rollback_budget;
        let (errors, latency, ttft, tokens) =
            if self.judges_tokens { (0.3, 0.2, 0.2, 0.1) } else { (0.4, 0.4, 0.0, 0.0) };
        Alphas {
            errors: errors * total,
            latency: latency * total,
            quality: 0.1 * total,
            complaints: 0.1 * total,
            ttft: ttft * total,
            tokens: tokens * total,
        }
    }
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig::from_plan(&RollbackTriggers::default())
    }
}
