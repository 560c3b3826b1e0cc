//! Holding a version to a record when there is no concurrent control: after
//! a rollback (the version that came back, against its own record from
//! before) and in full deployment (the new version, against the previous
//! version's record). Each rate is an anytime-valid test against the
//! record's rate times the plan's ratio, with the false-alarm budget shared.

use crate::dataplane::{DataPlane, History};
use rollgate_core::hold::Hold;
use rollgate_core::plan::RollbackTriggers;
use rollgate_core::rollout::{Rollout, WatchBaseline};
use rollgate_judge::watch::rate_above;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Requests of history a rate needs before it is a record to hold a version to.
const MIN_BASELINE: u64 = 100;

/// What this process had measured of each watched version when it began
/// watching it: the comparison counts from there (a restart begins again).
#[derive(Default)]
pub struct Starts {
    started: Mutex<HashMap<String, History>>,
}

impl Starts {
    /// The reading the comparison for `key` counts from: the first one given.
    pub fn start(&self, key: &str, now: History) -> History {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner).entry(key.to_string()).or_insert(now)
    }

    pub fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).retain(|id, _| keep(id));
    }
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// A version's record as a baseline.
pub fn baseline_of(h: &History) -> WatchBaseline {
    let rate = |k: u64| if h.counters.requests == 0 { 0.0 } else { k as f64 / h.counters.requests as f64 };
    WatchBaseline {
        requests: h.counters.requests,
        error_rate: rate(h.counters.errors),
        bad_output_rate: rate(h.counters.bad_outputs),
        latency_ms: h.quantile_us.map(|us| us as f64 / 1000.0),
        complaint_rate: rate(h.counters.complaints),
    }
}

/// What happened since the comparison began in this process.
pub struct Since {
    pub requests: u64,
    pub errors: u64,
    pub bad_outputs: u64,
    pub complaints: u64,
    pub timed: u64,
    pub slow: u64,
}

impl Since {
    pub fn between(start: &History, now: &History) -> Since {
        let c = now.counters.since(&start.counters);
        Since {
            requests: c.requests,
            errors: c.errors,
            bad_outputs: c.bad_outputs,
            complaints: c.complaints,
            timed: now.count.saturating_sub(start.count),
            slow: now.over.saturating_sub(start.over),
        }
    }

    pub fn rate(&self, k: u64) -> f64 {
        if self.requests == 0 { 0.0 } else { k as f64 / self.requests as f64 }
    }
}

/// The rate tests: errors, slow requests, bad outputs and complaints, each
/// against the record times the plan's ratio; the budget split four ways.
/// `before` says whose record it is ("before the rollback").
pub fn rates(plan: &RollbackTriggers, baseline: &WatchBaseline, since: &Since, before: &str) -> Vec<String> {
    let threshold = 4.0 / plan.false_rollback_budget;
    let mut out = Vec::new();
    let enough = baseline.requests >= MIN_BASELINE;
    let floor = 1.0 / baseline.requests.max(1) as f64;
    let bound = |rate: f64, ratio: f64| (ratio * rate.max(floor)).min(0.5);
    let mut test = |what: &str, k: u64, n: u64, then: f64, p0: f64, ratio: f64| {
        let e = rate_above(k, n, p0);
        if e >= threshold {
            out.push(format!(
                "{what} {k} of {n} ({}) against {} {before} (allowed x{ratio}; e-value {e:.3e} >= {threshold:.0})",
                percent(if n == 0 { 0.0 } else { k as f64 / n as f64 }),
                percent(then),
            ));
        }
    };
    if enough {
        let (n, b) = (since.requests, baseline);
        test(
            "errors:",
            since.errors,
            n,
            b.error_rate,
            bound(b.error_rate, plan.error_rate_ratio),
            plan.error_rate_ratio,
        );
        let bad = bound(b.bad_output_rate, plan.quality_ratio);
        test("bad outputs:", since.bad_outputs, n, b.bad_output_rate, bad, plan.quality_ratio);
        let complaints = bound(b.complaint_rate, plan.complaint_ratio);
        test("complaints:", since.complaints, n, b.complaint_rate, complaints, plan.complaint_ratio);
        if b.latency_ms.is_some() {
            let tail = 1.0 - plan.latency_quantile;
            test("slow requests:", since.slow, since.timed, tail, tail, plan.latency_ratio);
        }
    }
    out
}

/// The numbers of a window in which nothing was wrong; `then` names the record ("before").
pub fn clean_window(
    since: &Since,
    baseline: &WatchBaseline,
    limit: Option<Duration>,
    window: Hold,
    then: &str,
) -> String {
    format!(
        "{} requests in {window}: error rate {} ({then} {}), {} of {} timed requests over {} ms, complaints {} ({then} {})",
        since.requests,
        percent(since.rate(since.errors)),
        percent(baseline.error_rate),
        since.slow,
        since.timed,
        limit.map_or("-".into(), |l| format!("{:.0}", l.as_secs_f64() * 1000.0)),
        percent(since.rate(since.complaints)),
        percent(baseline.complaint_rate),
    )
}

/// Every endpoint of the version failing its health checks.
pub fn health(dataplane: &dyn DataPlane, r: &Rollout, version: &str) -> Option<String> {
    let failures = dataplane.probe_failures(&r.service, version)?;
    let limit = r.plan.rollback.health_check_failures;
    let all_failing = !failures.is_empty() && failures.iter().all(|f| *f >= limit);
    all_failing.then(|| format!("every endpoint of {version} failed at least {limit} health checks in a row"))
}
