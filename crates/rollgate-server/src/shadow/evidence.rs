//! The shadow gates' evidence, from a comparison's figures: output agreement
//! from the excess-disagreement test; performance from latency and error
//! rate within the plan's canary trigger ratios; error patterns from the
//! error classes only the candidate showed. A gate with too little evidence
//! yet has no finding: it stays missing, never passed.

use super::comparison::{ComparisonView, Distribution};
use rollgate_core::plan::{Plan, gate_ids};
use rollgate_judge::shadow::ShadowDecision;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Production's second answers are the fairer latency reference (measured
/// the same way as the candidate's, off the request path) once there are this many.
const MIN_COPIES_FOR_LATENCY: u64 = 50;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub gate: &'static str,
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
}

pub fn findings(view: &ComparisonView, plan: &Plan) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(output_agreement(view));
    if view.pairs >= plan.shadow.min_pairs {
        out.push(performance(view, plan));
        out.push(error_patterns(view));
    }
    out
}

fn output_agreement(view: &ComparisonView) -> Option<Finding> {
    let e = &view.excess;
    let passed = match e.decision {
        ShadowDecision::Pass => true,
        ShadowDecision::Block => false,
        ShadowDecision::NotYet { .. } => return None,
    };
    let summary = format!(
        "after {} pairs the candidate disagrees with production {:+.1}% more often than production with itself \
         (interval {:+.1}% to {:+.1}%), {} the allowed {:.1}%; agreement {:.1}%",
        e.pairs,
        e.excess * 100.0,
        e.low * 100.0,
        e.high * 100.0,
        if passed { "within" } else { "over" },
        e.bound * 100.0,
        view.agreement.agreement.value * 100.0,
    );
    let details = json!({ "excess": e, "agreement": view.agreement.agreement });
    Some(Finding { gate: gate_ids::SHADOW_OUTPUT_AGREEMENT, passed, summary, details })
}

fn performance(view: &ComparisonView, plan: &Plan) -> Finding {
    let (latency_ratio, error_ratio) = (plan.rollback.latency_ratio, plan.rollback.error_rate_ratio);
    let latency = &view.latency_ms;
    let (reference, reference_name) = if latency.production_again.count >= MIN_COPIES_FOR_LATENCY {
        (&latency.production_again, "production's second answers")
    } else {
        (&latency.production, "production's served answers")
    };
    let p99 = |d: &Distribution| d.p99.unwrap_or(0.0);
    let latency_ok = p99(&latency.candidate) <= latency_ratio * p99(reference);
    let (candidate_rate, production_rate) = (error_rate(view, Side::Candidate), error_rate(view, Side::Production));
    // With no production errors, the candidate may still have as many as the ratio allows of one.
    let allowed_rate = error_ratio * production_rate.rate.max(1.0 / production_rate.attempts.max(1) as f64);
    let errors_ok = candidate_rate.rate <= allowed_rate;
    let summary = format!(
        "p99 latency {:.1} ms against {:.1} ms ({reference_name}; allowed x{latency_ratio}); error rate {:.2}% against {:.2}% (allowed {:.2}%)",
        p99(&latency.candidate),
        p99(reference),
        candidate_rate.rate * 100.0,
        production_rate.rate * 100.0,
        allowed_rate * 100.0,
    );
    let details = json!({
        "latency_ms": latency, "first_byte_ms": view.first_byte_ms, "latency_reference": reference_name,
        "latency_ratio": latency_ratio, "error_rate_ratio": error_ratio,
        "candidate_error_rate": candidate_rate.rate, "production_error_rate": production_rate.rate,
    });
    Finding { gate: gate_ids::SHADOW_PERFORMANCE, passed: latency_ok && errors_ok, summary, details }
}

fn error_patterns(view: &ComparisonView) -> Finding {
    let new = &view.new_error_classes;
    let summary = if new.is_empty() {
        "the candidate showed no error class production did not".to_string()
    } else {
        format!("error classes only the candidate showed: {}", new.join(", "))
    };
    let details = json!({ "new_error_classes": new, "errors": view.errors });
    Finding { gate: gate_ids::SHADOW_ERROR_PATTERNS, passed: new.is_empty(), summary, details }
}

enum Side {
    Production,
    Candidate,
}

struct Rate {
    rate: f64,
    attempts: u64,
}

/// Failed answers over answers asked for: those that came back (timed) and
/// those that never did (timeouts, failed connections).
fn error_rate(view: &ComparisonView, side: Side) -> Rate {
    let (latency, errors): (&Distribution, &BTreeMap<String, u64>) = match side {
        Side::Production => (&view.latency_ms.production, &view.errors.production),
        Side::Candidate => (&view.latency_ms.candidate, &view.errors.candidate),
    };
    let never_answered: u64 = ["timeout", "connection_failed"].iter().filter_map(|c| errors.get(*c)).sum();
    let attempts = latency.count + never_answered;
    let failed: u64 = errors.values().sum();
    Rate { rate: if attempts == 0 { 0.0 } else { failed as f64 / attempts as f64 }, attempts }
}
