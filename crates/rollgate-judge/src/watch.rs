//! The watch after a rollback: is the version that came back worse than its
//! own record? There is no concurrent control any more, so each rate is
//! tested against a fixed bound p0 taken from the record (the record's rate
//! times the plan's ratio). Under "rate ≤ p0" each request is an event with
//! probability at most p0, and for any p1 > p0 the likelihood ratio
//! (p1/p0)^k ((1−p1)/(1−p0))^(n−k) is a nonnegative supermartingale; their
//! mean over a grid of p1 is one too. So the watch may look every tick and,
//! by Ville's inequality, raises a false alarm with chance at most α.
//!
//! The same holds a new version to the previous one's record in full
//! deployment (and in a rehearsal of it): there is no concurrent control
//! there either.

use rollgate_core::hold::Hold;
use rollgate_core::measure::History;
use rollgate_core::plan::RollbackTriggers;
use rollgate_core::rollout::WatchBaseline;
use std::time::Duration;

/// How far above p0 the alternatives lie: a mixture is as good as the best
/// of them up to the grid's size.
const ALTERNATIVES: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0];

/// The e-value against "the event rate is at most `p0`" after `k` events in
/// `n` trials.
pub fn rate_above(k: u64, n: u64, p0: f64) -> f64 {
    if n == 0 || !(p0 > 0.0 && p0 < 1.0) {
        return 1.0;
    }
    let (k, misses) = (k.min(n) as f64, (n - k.min(n)) as f64);
    let logs: Vec<f64> = ALTERNATIVES
        .iter()
        .map(|m| (p0 * m).min(0.999))
        .filter(|p1| *p1 > p0)
        .map(|p1| k * (p1 / p0).ln() + misses * ((1.0 - p1) / (1.0 - p0)).ln())
        .collect();
    if logs.is_empty() {
        return 1.0;
    }
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = max + (logs.iter().map(|l| (l - max).exp()).sum::<f64>() / logs.len() as f64).ln();
    mean.exp().min(f64::MAX)
}

/// Requests of history a rate needs before it is a record to hold a version to.
const MIN_BASELINE: u64 = 100;

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
#[derive(Debug, Clone, Default)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn as_many_events_as_the_bound_allows_is_no_evidence_and_many_more_is() {
        assert_eq!(rate_above(0, 0, 0.01), 1.0);
        // At the bound the e-value stays small; at five times it, it is overwhelming.
        assert!(rate_above(10, 1000, 0.01) < 1.0);
        assert!(rate_above(50, 1000, 0.01) > 1e6);
        // No events at all only lowers it.
        assert!(rate_above(0, 1000, 0.01) < 0.05);
        // Hand-computed for one alternative's share: p1 = 0.02, k = 2, n = 2 → (0.02/0.01)^2 = 4.
        let single = 2.0 * (0.02f64 / 0.01).ln();
        assert!((single.exp() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn under_the_bound_the_chance_of_ever_crossing_one_over_alpha_is_at_most_alpha() {
        // 2000 seeded runs of 5000 requests at exactly the bound, looked at after every request.
        let (p0, alpha, runs) = (0.02, 0.05, 2000u64);
        let mut crossed = 0;
        for run in 0..runs {
            let mut rng = ChaCha8Rng::seed_from_u64(run);
            let mut k = 0;
            for n in 1..=5000u64 {
                k += u64::from(rng.random::<f64>() < p0);
                if rate_above(k, n, p0) >= 1.0 / alpha {
                    crossed += 1;
                    break;
                }
            }
        }
        assert!((crossed as f64) / (runs as f64) <= alpha, "{crossed} of {runs} crossed");
    }
}
