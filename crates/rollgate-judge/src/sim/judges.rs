//! The judges the benchmark races (canary-statistics.md §4.4): rollgate's,
//! re-implementations of the anchors' (Flagger's interval check, Argo
//! Rollouts' analysis runs, Kayenta's Mann-Whitney judge), and an oracle
//! SPRT that knows the true fault, the lower bound on time to detect.

use super::world::TickData;
use crate::config::JudgeConfig;
use crate::judge::{ArmTick, Judge, Samples, Verdict};
use crate::latency::sampled_share;
use crate::mann_whitney::shift_interval;
use crate::ratio::{canary_share, log_sum_exp, thinned_weight};
use std::collections::VecDeque;

/// A judge in the race: sees each second, says whether it rolls back now.
pub trait SimJudge {
    fn observe(&mut self, tick: &TickData) -> bool;
}

/// rollgate's judge, as the controller runs it.
pub struct Rollgate {
    judge: Judge,
}

impl Rollgate {
    pub fn new(config: JudgeConfig) -> Rollgate {
        Rollgate { judge: Judge::new(config) }
    }
}

impl SimJudge for Rollgate {
    fn observe(&mut self, t: &TickData) -> bool {
        let bad = t.bad_outputs();
        let tick = t.judge_tick(t.t * 1000, &bad);
        matches!(self.judge.tick(&tick), Verdict::Rollback { .. })
    }
}

/// One second of one arm, kept for windowed judges.
#[derive(Debug, Clone, Default)]
struct Second {
    canary_requests: u64,
    canary_errors: u64,
    baseline_requests: u64,
    baseline_errors: u64,
    canary_latencies: Vec<u32>,
    baseline_latencies: Vec<u32>,
}

impl Second {
    fn of(t: &TickData) -> Second {
        Second {
            canary_requests: t.canary.requests,
            canary_errors: t.canary.errors,
            baseline_requests: t.baseline.requests,
            baseline_errors: t.baseline.errors,
            canary_latencies: t.canary.latencies_us.clone(),
            baseline_latencies: t.baseline.latencies_us.clone(),
        }
    }
}

/// The 99th percentile by the nearest-rank rule; `None` if empty.
fn p99(values: &mut [u32]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64) * 0.99).ceil() as usize;
    Some(f64::from(values[rank.clamp(1, values.len()) - 1]))
}

/// Flagger's and Argo Rollouts' way: every `interval`, check the last
/// `window` with threshold rules (canary error rate ≤ 2× primary's, canary
/// p99 ≤ 1.5× primary's); roll back once `max_failures` checks have failed.
/// A window without canary requests is skipped.
pub struct IntervalCheck {
    interval_s: u64,
    window_s: u64,
    max_failures: u32,
    error_ratio: f64,
    latency_ratio: f64,
    recent: VecDeque<Second>,
    failures: u32,
}

impl IntervalCheck {
    /// Flagger: interval 1m, threshold 5 failed checks.
    pub fn flagger(error_ratio: f64, latency_ratio: f64) -> IntervalCheck {
        IntervalCheck::new(60, 5, error_ratio, latency_ratio)
    }

    /// Argo Rollouts: an AnalysisRun every `interval_s` over the same window, failing past `failure_limit`.
    pub fn argo(interval_s: u64, failure_limit: u32, error_ratio: f64, latency_ratio: f64) -> IntervalCheck {
        IntervalCheck::new(interval_s, failure_limit + 1, error_ratio, latency_ratio)
    }

    fn new(interval_s: u64, max_failures: u32, error_ratio: f64, latency_ratio: f64) -> IntervalCheck {
        IntervalCheck {
            interval_s,
            window_s: interval_s,
            max_failures,
            error_ratio,
            latency_ratio,
            recent: VecDeque::new(),
            failures: 0,
        }
    }

    fn check_fails(&self) -> Option<bool> {
        let sum = |f: fn(&Second) -> u64| self.recent.iter().map(f).sum::<u64>();
        let canary_requests = sum(|s| s.canary_requests);
        if canary_requests == 0 {
            return None;
        }
        let canary_rate = sum(|s| s.canary_errors) as f64 / canary_requests as f64;
        let baseline_rate = sum(|s| s.baseline_errors) as f64 / sum(|s| s.baseline_requests).max(1) as f64;
        let mut canary: Vec<u32> = self.recent.iter().flat_map(|s| s.canary_latencies.iter().copied()).collect();
        let mut baseline: Vec<u32> = self.recent.iter().flat_map(|s| s.baseline_latencies.iter().copied()).collect();
        let slow = match (p99(&mut canary), p99(&mut baseline)) {
            (Some(c), Some(b)) => c > self.latency_ratio * b,
            _ => false,
        };
        Some(canary_rate > self.error_ratio * baseline_rate || slow)
    }
}

impl SimJudge for IntervalCheck {
    fn observe(&mut self, t: &TickData) -> bool {
        self.recent.push_back(Second::of(t));
        while self.recent.len() as u64 > self.window_s {
            self.recent.pop_front();
        }
        if !(t.t + 1).is_multiple_of(self.interval_s) {
            return false;
        }
        if self.check_fails() == Some(true) {
            self.failures += 1;
        }
        self.failures >= self.max_failures
    }
}

/// Kayenta's NetflixACAJudge over a growing window: 10 s series of error
/// rate and p99 per arm, a judgment every 5 minutes, Mann-Whitney at 98%
/// with tolerance 0.25 and meanRatio effect sizes; both metrics critical,
/// so one "High" fails the canary.
pub struct Kayenta {
    error_ratio: f64,
    latency_ratio: f64,
    bucket: Second,
    canary_errors: Vec<f64>,
    baseline_errors: Vec<f64>,
    canary_p99: Vec<f64>,
    baseline_p99: Vec<f64>,
}

const KAYENTA_STEP_S: u64 = 10;
const KAYENTA_JUDGMENT_S: u64 = 300;
const KAYENTA_ALPHA: f64 = 0.02;
const KAYENTA_TOLERANCE: f64 = 0.25;

impl Kayenta {
    pub fn new(error_ratio: f64, latency_ratio: f64) -> Kayenta {
        Kayenta {
            error_ratio,
            latency_ratio,
            bucket: Second::default(),
            canary_errors: Vec::new(),
            baseline_errors: Vec::new(),
            canary_p99: Vec::new(),
            baseline_p99: Vec::new(),
        }
    }

    fn close_bucket(&mut self) {
        let b = std::mem::take(&mut self.bucket);
        // Error rates: NaN (no requests) replaced by 0. Latency: NaN removed.
        let rate = |e: u64, n: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
        self.canary_errors.push(rate(b.canary_errors, b.canary_requests));
        self.baseline_errors.push(rate(b.baseline_errors, b.baseline_requests));
        let (mut c, mut l) = (b.canary_latencies, b.baseline_latencies);
        if let Some(v) = p99(&mut c) {
            self.canary_p99.push(v);
        }
        if let Some(v) = p99(&mut l) {
            self.baseline_p99.push(v);
        }
    }
}

/// Kayenta's "High" classification of experiment `x` against control `y`.
pub fn kayenta_high(x: &[f64], y: &[f64], allowed_increase: f64) -> bool {
    if x.is_empty() || y.is_empty() {
        return false;
    }
    let sorted = |s: &[f64]| {
        let mut v = s.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (sx, sy) = (sorted(x), sorted(y));
    let all_same = sx.first() == sx.last() && sy.first() == sy.last() && sx.first() == sy.first();
    if sx == sy || all_same {
        return false;
    }
    let Some(shift) = shift_interval(x, y, KAYENTA_ALPHA) else { return false };
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let mean_ratio = mean(x) / mean(y);
    let effect_ok = !mean_ratio.is_finite() || mean_ratio >= allowed_increase;
    shift.lower > KAYENTA_TOLERANCE * shift.estimate.abs() && effect_ok
}

impl SimJudge for Kayenta {
    fn observe(&mut self, t: &TickData) -> bool {
        let b = &mut self.bucket;
        b.canary_requests += t.canary.requests;
        b.canary_errors += t.canary.errors;
        b.baseline_requests += t.baseline.requests;
        b.baseline_errors += t.baseline.errors;
        b.canary_latencies.extend_from_slice(&t.canary.latencies_us);
        b.baseline_latencies.extend_from_slice(&t.baseline.latencies_us);
        if (t.t + 1).is_multiple_of(KAYENTA_STEP_S) {
            self.close_bucket();
        }
        if !(t.t + 1).is_multiple_of(KAYENTA_JUDGMENT_S) {
            return false;
        }
        kayenta_high(&self.canary_errors, &self.baseline_errors, self.error_ratio)
            || kayenta_high(&self.canary_p99, &self.baseline_p99, self.latency_ratio)
    }
}

/// Wald's SPRT with the true alternative, per fault the scenario has,
/// started at the fault's onset: no judge can be much faster on this data.
pub struct Oracle {
    config: JudgeConfig,
    log_lr: [f64; TRIGGERS],
}

impl Oracle {
    pub fn new(config: JudgeConfig) -> Oracle {
        Oracle { config, log_lr: [0.0; TRIGGERS] }
    }
}

impl SimJudge for Oracle {
    fn observe(&mut self, t: &TickData) -> bool {
        if !t.truth.fault_active {
            return false;
        }
        for (sum, step) in self.log_lr.iter_mut().zip(fault_log_lrs(&self.config, t)) {
            *sum += step;
        }
        let thresholds = thresholds(&self.config);
        self.log_lr.iter().zip(thresholds).any(|(l, bar)| *l >= bar)
    }
}

/// The oracle's triggers: errors, latency exceedances, bad outputs,
/// complaints, and a chat model's slow first tokens and slow token rates.
const TRIGGERS: usize = 6;

/// Each trigger's log 1/α, in [`fault_log_lrs`] order (infinite for a trigger the judge does not run).
fn thresholds(config: &JudgeConfig) -> [f64; TRIGGERS] {
    let a = config.alphas();
    [a.errors, a.latency, a.quality, a.complaints, a.ttft, a.tokens].map(|alpha| (1.0 / alpha).ln())
}

/// This second's log likelihood ratio, per trigger, of the true fault against its trigger's limit.
fn fault_log_lrs(c: &JudgeConfig, t: &TickData) -> [f64; TRIGGERS] {
    let truth = &t.truth;
    let bar = truth.baseline_p99_us;
    let slow_canary = t.canary.latencies_us.iter().filter(|&&v| f64::from(v) > c.latency_ratio * bar).count();
    let slow_baseline = t.baseline.latencies_us.iter().filter(|&&v| f64::from(v) > bar).count();
    let share = |arm: &super::world::ArmData| sampled_share(arm.as_arm().latency());
    let sampled = thinned_weight(t.weight, share(&t.canary), share(&t.baseline));
    // A chat model's first tokens and token rates: exceedances of the baseline's true quantile.
    let tokens = |pick: for<'a> fn(&ArmTick<'a>) -> Samples<'a>, bar: f64, limit: f64, truth_ratio: f64| {
        let (canary, baseline) = (t.canary.as_arm(), t.baseline.as_arm());
        let (c, b) = (pick(&canary), pick(&baseline));
        let slow_canary = c.values_us.iter().filter(|&&v| f64::from(v) > limit * bar).count() as u64;
        let slow_baseline = b.values_us.iter().filter(|&&v| f64::from(v) > bar).count() as u64;
        let w = thinned_weight(t.weight, sampled_share(c), sampled_share(b));
        log_lr(w, slow_canary, slow_baseline, truth_ratio, 1.0)
    };
    let per_token_limit = 1.0 / c.tokens_per_second_ratio;
    let complaints = t
        .complaints
        .iter()
        .map(|cell| log_lr(cell.weight, cell.canary, cell.baseline, truth.complaint_ratio, c.complaint_ratio))
        .sum();
    [
        log_lr(t.weight, t.canary.errors, t.baseline.errors, truth.error_ratio, c.error_ratio),
        log_lr(sampled, slow_canary as u64, slow_baseline as u64, truth.exceedance_ratio, 1.0),
        log_lr(t.weight, t.canary.bad_outputs, t.baseline.bad_outputs, truth.bad_output_ratio, c.quality_ratio),
        complaints,
        tokens(|a| a.ttft, truth.baseline_ttft_q_us, c.ttft_ratio, truth.ttft_exceedance_ratio),
        tokens(|a| a.per_token, truth.baseline_token_q_us, per_token_limit, truth.token_exceedance_ratio),
    ]
}

/// log LR of (canary, baseline) events at weight w: alternative r1 against null r0.
fn log_lr(w: f64, canary: u64, baseline: u64, r1: f64, r0: f64) -> f64 {
    if !(w > 0.0 && w < 1.0) || r1 <= r0 {
        return 0.0;
    }
    let (p1, p0) = (canary_share(w, r1), canary_share(w, r0));
    canary as f64 * (p1 / p0).ln() + baseline as f64 * ((1.0 - p1) / (1.0 - p0)).ln()
}

/// How often the unknown-onset oracle starts another SPRT.
const ORACLE_START_EVERY_S: u64 = 60;

/// An oracle that knows the fault but not when it begins: an SPRT with the
/// true alternative starts every minute, each with prior weight 1/N for the
/// N starts that fit in the rollout, and it rolls back when their mixture
/// crosses 1/α (a Shiryaev-Roberts procedure with the false-rollback rate
/// bounded over the rollout, as rollgate's is). On a fault that begins late
/// (P9) it shows what not knowing the onset costs any judge.
pub struct OracleUnknownOnset {
    config: JudgeConfig,
    log_prior: f64,
    /// Per trigger, per start: the log likelihood ratio since that start.
    starts: [Vec<f64>; TRIGGERS],
}

impl OracleUnknownOnset {
    pub fn new(config: JudgeConfig, horizon_s: u64) -> OracleUnknownOnset {
        let n = horizon_s.div_ceil(ORACLE_START_EVERY_S).max(1);
        OracleUnknownOnset { config, log_prior: -(n as f64).ln(), starts: Default::default() }
    }
}

impl SimJudge for OracleUnknownOnset {
    fn observe(&mut self, t: &TickData) -> bool {
        let starting = t.t.is_multiple_of(ORACLE_START_EVERY_S);
        let steps = fault_log_lrs(&self.config, t);
        let bars = thresholds(&self.config);
        let mut rejects = false;
        for ((per_start, step), bar) in self.starts.iter_mut().zip(steps).zip(bars) {
            if starting {
                per_start.push(0.0);
            }
            per_start.iter_mut().for_each(|sum| *sum += step);
            rejects |= self.log_prior + log_sum_exp(per_start) >= bar;
        }
        rejects
    }
}
