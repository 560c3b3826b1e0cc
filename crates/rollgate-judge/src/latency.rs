//! "Latency at p99 > 1.5x baseline" as scaled exceedances
//! (canary-statistics.md §3.2A). With c a trailing estimate of the
//! baseline's p99, a canary request slower than 1.5·c and a baseline request
//! slower than c are each an event. If the canary is at most 1.5x slower,
//! the canary's share of events is at most its routing weight, so the
//! conditional-binomial e-process with ρ0 = 1 tests it, and drift shared by
//! both arms cancels. c only ever comes from data seen before it is used.
//!
//! Beside it, per-step confidence bounds on each arm's quantile (Howard &
//! Ramdas) are kept for the status page; they do not decide.
//!
//! A chat model's time to first token and time per output token (the
//! inverse of its tokens per second) are judged the same way, each by its
//! own trigger: all three are durations where larger is worse.

use crate::config::JudgeConfig;
use crate::judge::{ArmTick, Samples, TriggerReport, sequential_report};
use crate::quantile::{QuantileBounds, quantile_bounds};
use crate::ratio::{EXCEEDANCE_MULTIPLIERS, RatioState, RatioTest, thinned_weight};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How often the reference quantile c is re-estimated, and over how many such periods.
const REFRESH_MS: u64 = 60_000;
const PERIODS: usize = 5;

/// 1 µs to 10 minutes at two significant digits: the judge's own histograms are small.
fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 600_000_000, 2).unwrap_or_else(|_| unreachable!("constant, valid bounds"))
}

/// What a duration trigger compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The whole request.
    Latency,
    /// A streamed answer's first token.
    TimeToFirstToken,
    /// A streamed answer's time per output token, shown as tokens per second.
    TimePerToken,
}

impl Measure {
    pub fn trigger(self) -> &'static str {
        match self {
            Measure::Latency => "latency",
            Measure::TimeToFirstToken => "ttft",
            Measure::TimePerToken => "tokens_per_second",
        }
    }

    fn samples<'a>(self, arm: &ArmTick<'a>) -> Samples<'a> {
        match self {
            Measure::Latency => arm.latency(),
            Measure::TimeToFirstToken => arm.ttft,
            Measure::TimePerToken => arm.per_token,
        }
    }

    /// A bar in µs as a person reads it: milliseconds, or tokens per second.
    fn bar(self, us: f64) -> String {
        match self {
            Measure::TimePerToken => format!("{:.1} tokens/s", 1e6 / us.max(1.0)),
            _ => format!("{:.0} ms", us / 1000.0),
        }
    }

    /// What is compared, for the rule: `ratio` is the duration ratio (above 1).
    fn rule(self, quantile: f64, ratio: f64) -> String {
        let q = quantile * 100.0;
        match self {
            Measure::Latency => format!("canary p{q} latency > {ratio}x baseline"),
            Measure::TimeToFirstToken => format!("canary p{q} time to first token > {ratio}x baseline"),
            Measure::TimePerToken => format!(
                "canary output tokens/s at p{} < {}x baseline (p{q} time per token > {ratio}x)",
                100.0 - q,
                1.0 / ratio
            ),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Measure::Latency => "requests",
            Measure::TimeToFirstToken => "first tokens",
            Measure::TimePerToken => "answers",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LatencyTrigger {
    measure: Measure,
    ratio: f64,
    quantile: f64,
    alpha: f64,
    min_baseline: u64,
    test: RatioTest,
    /// The reference: the baseline's quantile, in µs, when enough samples back it.
    reference_us: Option<f64>,
    /// Baseline latencies since the last refresh.
    period: Histogram<u32>,
    period_started_ms: Option<u64>,
    /// (quantile, samples) of the last few periods.
    periods: VecDeque<(f64, u64)>,
    /// This traffic step's latencies, for the quantile bounds.
    step_weight: f64,
    step_canary: Histogram<u32>,
    step_baseline: Histogram<u32>,
}

impl LatencyTrigger {
    /// The trigger on `measure`: `ratio` over the baseline's `quantile` (both of durations).
    pub fn new(measure: Measure, ratio: f64, quantile: f64, config: &JudgeConfig, alpha: f64) -> LatencyTrigger {
        LatencyTrigger {
            measure,
            ratio,
            quantile,
            alpha,
            min_baseline: config.min_baseline_samples,
            test: RatioTest::new(1.0, &EXCEEDANCE_MULTIPLIERS),
            reference_us: None,
            period: histogram(),
            period_started_ms: None,
            periods: VecDeque::new(),
            step_weight: 0.0,
            step_canary: histogram(),
            step_baseline: histogram(),
        }
    }

    /// Baseline latencies feed the reference, warm-up or not (they say nothing about the canary).
    pub fn observe_baseline(&mut self, at_ms: u64, baseline: &ArmTick<'_>) {
        let started = *self.period_started_ms.get_or_insert(at_ms);
        // The first reference comes as soon as enough baseline samples back it,
        // not a whole period later: the test is valid for any reference taken
        // from data seen before it is used, so only its precision depends on when.
        let first_ready = self.reference_us.is_none() && self.period.len() >= self.min_baseline;
        if at_ms >= started + REFRESH_MS || first_ready {
            self.refresh(at_ms);
        }
        record_all(&mut self.period, self.measure.samples(baseline).values_us);
    }

    fn refresh(&mut self, at_ms: u64) {
        if !self.period.is_empty() {
            self.periods.push_back((self.period.value_at_quantile(self.quantile) as f64, self.period.len()));
            if self.periods.len() > PERIODS {
                self.periods.pop_front();
            }
        }
        self.period.reset();
        self.period_started_ms = Some(at_ms);
        let samples: u64 = self.periods.iter().map(|&(_, n)| n).sum();
        if samples >= self.min_baseline {
            let weighted: f64 = self.periods.iter().map(|&(q, n)| q * n as f64).sum();
            self.reference_us = Some(weighted / samples as f64);
        }
    }

    /// One tick's latencies of both arms, outside warm-up.
    pub fn observe(&mut self, weight: f64, canary_arm: &ArmTick<'_>, baseline_arm: &ArmTick<'_>) {
        let (canary_arm, baseline_arm) = (self.measure.samples(canary_arm), self.measure.samples(baseline_arm));
        let (canary, baseline) = (canary_arm.values_us, baseline_arm.values_us);
        if weight != self.step_weight {
            self.step_weight = weight;
            self.step_canary.reset();
            self.step_baseline.reset();
        }
        record_all(&mut self.step_canary, canary);
        record_all(&mut self.step_baseline, baseline);
        let Some(reference) = self.reference_us else { return };
        let bar = self.ratio * reference;
        let canary_slow = canary.iter().filter(|&&us| f64::from(us) > bar).count() as u64;
        let baseline_slow = baseline.iter().filter(|&&us| f64::from(us) > reference).count() as u64;
        // Each arm may be sampled at its own rate; the events' weight says so.
        let sampled = thinned_weight(weight, sampled_share(canary_arm), sampled_share(baseline_arm));
        self.test.add(sampled, canary_slow, baseline_slow);
    }

    pub fn restart(&mut self) {
        self.test.restart();
    }

    /// The trigger's name in verdicts and reports.
    pub fn trigger(&self) -> &'static str {
        self.measure.trigger()
    }

    pub fn state(&self) -> LatencyState {
        LatencyState {
            test: self.test.state(),
            reference_us: self.reference_us,
            period: recorded(&self.period),
            period_started_ms: self.period_started_ms,
            periods: self.periods.iter().copied().collect(),
            step_weight: self.step_weight,
            step_canary: recorded(&self.step_canary),
            step_baseline: recorded(&self.step_baseline),
        }
    }

    pub fn restore(&mut self, state: LatencyState) -> Result<(), String> {
        self.test.restore(state.test)?;
        self.reference_us = state.reference_us;
        self.period = histogram_of(&state.period);
        self.period_started_ms = state.period_started_ms;
        self.periods = state.periods.into_iter().collect();
        self.step_weight = state.step_weight;
        self.step_canary = histogram_of(&state.step_canary);
        self.step_baseline = histogram_of(&state.step_baseline);
        Ok(())
    }

    pub fn fired(&self, min_events: u64) -> bool {
        self.test.rejects(self.alpha, min_events)
    }

    pub fn reason(&self) -> String {
        let reference = self.reference_us.unwrap_or(0.0);
        let noun = self.measure.noun();
        format!(
            "{}: {} canary {noun} slower than {} and {} baseline {noun} slower than {} give e-value {:.1} >= {:.0}",
            self.rule(),
            self.test.canary_events(),
            self.measure.bar(self.ratio * reference),
            self.test.baseline_events(),
            self.measure.bar(reference),
            self.test.log_e().exp(),
            1.0 / self.alpha
        )
    }

    fn rule(&self) -> String {
        self.measure.rule(self.quantile, self.ratio)
    }

    pub fn report(&self, min_events: u64) -> TriggerReport {
        let bounds = |h: &Histogram<u32>| quantile_bounds(h, self.quantile, self.alpha / 2.0, 1000.0);
        let q = self.quantile * 100.0;
        let detail = match self.reference_us {
            None => format!("waiting for {} baseline samples to estimate its p{q}", self.min_baseline),
            Some(c) => format!(
                "baseline p{q} reference {:.1} ms; this step: canary p{q} {}, baseline p{q} {}",
                c / 1000.0,
                describe(bounds(&self.step_canary)),
                describe(bounds(&self.step_baseline)),
            ),
        };
        let mut report =
            sequential_report(self.measure.trigger(), self.rule(), &self.test, self.alpha, min_events, detail);
        report.guard = format!(
            "{} baseline samples for the reference, then at least {min_events} slow canary {}",
            self.min_baseline,
            self.measure.noun()
        );
        report.guard_met &= self.reference_us.is_some();
        report
    }
}

fn describe(b: QuantileBounds) -> String {
    let ms = |v: Option<u64>| v.map_or("?".to_string(), |v| format!("{:.1}", v as f64 / 1000.0));
    format!("in [{}, {}] ms ({} samples)", ms(b.lower_us), ms(b.upper_us), b.samples)
}

/// The share of an arm's measured requests that is in the sample.
pub(crate) fn sampled_share(samples: Samples<'_>) -> f64 {
    let sampled = samples.values_us.len() as u64;
    if samples.population > sampled { sampled as f64 / samples.population as f64 } else { 1.0 }
}

/// The latency trigger's learnt state, histograms as (value, count) pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyState {
    test: RatioState,
    reference_us: Option<f64>,
    period: Vec<(u64, u32)>,
    period_started_ms: Option<u64>,
    periods: Vec<(f64, u64)>,
    step_weight: f64,
    step_canary: Vec<(u64, u32)>,
    step_baseline: Vec<(u64, u32)>,
}

/// Each recorded bucket of `h` (its highest equivalent value) with its count.
fn recorded(h: &Histogram<u32>) -> Vec<(u64, u32)> {
    h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
}

fn histogram_of(buckets: &[(u64, u32)]) -> Histogram<u32> {
    let mut h = histogram();
    for &(value, count) in buckets {
        let _ = h.record_n(value.clamp(1, 600_000_000), count);
    }
    h
}

fn record_all(into: &mut Histogram<u32>, latencies_us: &[u32]) {
    for &us in latencies_us {
        let _ = into.record(u64::from(us).clamp(1, 600_000_000));
    }
}
