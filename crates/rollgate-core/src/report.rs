//! A period's summary across rollouts, from their logs: how many, how they
//! ended, what rolled them back, how fast the judge saw trouble, the bad
//! versions stopped before full traffic with the traffic they never
//! reached ("incidents prevented"), and starts refused by the deploy window.
//! Pure: the shell hands in each rollout with its retrospective and the
//! refused starts it kept.

use crate::retro::Retro;
use crate::rollout::{RollbackCause, Rollout, Stage};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A start the deploy window refused (no rollout exists for it, so it is
/// kept in a record stream of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedStart {
    pub at: Timestamp,
    pub rollout: String,
    pub by: String,
    pub service: String,
    pub candidate: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodReport {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Rollouts started in the period.
    pub rollouts: u64,
    /// By outcome: completed, rolled_back, aborted, in progress.
    pub outcomes: BTreeMap<String, u64>,
    /// By cause: `judge: TRIGGER` or `person: CATEGORY`.
    pub rollbacks: BTreeMap<String, u64>,
    /// For the judge's rollbacks: from the candidate's first users to the rollback.
    pub median_time_to_detect_seconds: Option<i64>,
    pub judge_rollbacks_timed: u64,
    /// Bad versions stopped before they had all the traffic.
    pub stopped: Vec<Stopped>,
    pub window_refusals: Vec<RefusedStart>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stopped {
    pub rollout: String,
    pub service: String,
    pub candidate: String,
    /// The stage it was stopped in.
    pub stage: String,
    pub cause: String,
    /// The largest share of traffic it had (0 when stopped before any).
    pub reached_percent: f64,
    /// The share it never reached.
    pub spared_percent: f64,
    /// Requests it served, and requests the stable version served beside it
    /// while the judge watched (the judge's counts, where it ran).
    pub candidate_requests: Option<u64>,
    pub stable_requests: Option<u64>,
}

/// The report of the rollouts started in `[from, to)` and the refusals in it.
pub fn period(from: Timestamp, to: Timestamp, rollouts: &[(Rollout, Retro)], refused: &[RefusedStart]) -> PeriodReport {
    let in_period = |at: Timestamp| from <= at && at < to;
    let mut outcomes = BTreeMap::new();
    let mut rollbacks = BTreeMap::new();
    let mut detect = Vec::new();
    let mut stopped = Vec::new();
    let mut count = 0;
    for (r, retro) in rollouts.iter().filter(|(r, _)| in_period(r.started_at)) {
        count += 1;
        *outcomes.entry(retro.outcome.clone()).or_insert(0) += 1;
        if let Stage::RolledBack { cause, .. } = &r.stage {
            let key = match cause {
                RollbackCause::Judge { trigger } => format!("judge: {trigger}"),
                RollbackCause::Person { category, .. } => format!("person: {category}"),
                RollbackCause::Rollgate { check, .. } => format!("rollgate: {check}"),
            };
            *rollbacks.entry(key).or_insert(0) += 1;
            if matches!(cause, RollbackCause::Judge { .. }) {
                detect.extend(retro.rollback.as_ref().and_then(|rb| rb.exposed_seconds));
            }
        }
        stopped.extend(stopped_before_full(r, retro));
    }
    detect.sort_unstable();
    PeriodReport {
        from,
        to,
        rollouts: count,
        outcomes,
        rollbacks,
        median_time_to_detect_seconds: median(&detect),
        judge_rollbacks_timed: detect.len() as u64,
        stopped,
        window_refusals: refused.iter().filter(|f| in_period(f.at)).cloned().collect(),
    }
}

/// A rollout that ended a bad version before full deployment: rolled back,
/// or aborted after one of its gates failed.
fn stopped_before_full(r: &Rollout, retro: &Retro) -> Option<Stopped> {
    if r.history.iter().any(|v| v.stage == Stage::Full) {
        return None;
    }
    let (stage, cause, reached) = match (&r.stage, &retro.rollback) {
        (Stage::RolledBack { .. }, Some(rb)) => (rb.during.clone(), rb.cause.clone(), rb.candidate_percent),
        (Stage::Aborted { reason }, _) => {
            let failed: Vec<&str> = r.evidence.iter().filter(|(_, e)| !e.passed).map(|(g, _)| g.as_str()).collect();
            if failed.is_empty() {
                return None;
            }
            let during = r.history.iter().rev().nth(1).map_or_else(String::new, |v| v.stage.to_string());
            (during, format!("aborted after {} failed: {reason}", failed.join(", ")), 0.0)
        }
        _ => return None,
    };
    Some(Stopped {
        rollout: r.id.clone(),
        service: r.service.clone(),
        candidate: r.candidate.clone(),
        stage,
        cause,
        reached_percent: reached,
        spared_percent: 100.0 - reached,
        candidate_requests: retro.candidate_requests,
        stable_requests: retro.stable_requests,
    })
}

/// The median of sorted values (the lower middle one of an even count, so it is one that happened).
fn median(sorted: &[i64]) -> Option<i64> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_a_value_that_happened() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7]), Some(7));
        assert_eq!(median(&[1, 5, 9]), Some(5));
        assert_eq!(median(&[1, 5, 9, 20]), Some(5));
    }
}
