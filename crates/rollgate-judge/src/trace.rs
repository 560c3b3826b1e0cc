//! The judge's story over time, for the people watching a rollout: what
//! canary and baseline did (rate, errors, latency quantiles, quality,
//! complaints) and where each trigger's e-value and confidence sequence
//! stood, one point per interval. Bounded however long the canary runs:
//! when the trace is full every other point goes and the interval doubles,
//! so a 48-hour canary keeps its whole story at a coarser grain.
//!
//! [`forecast`] reads the trace for when a decision is expected at the
//! current traffic: when the sample guard will be met, and for each trigger
//! whose evidence is rising, when it would reach its threshold.

use crate::judge::{ArmTick, Report, Verdict};
use crate::rng::XorShift;
use serde::{Deserialize, Serialize};

/// Points kept before the trace thins itself.
pub const CAPACITY: usize = 240;
/// The first interval between points.
pub const FIRST_SPACING_MS: u64 = 2_000;
/// Latency samples kept per arm and interval (a uniform reservoir).
const RESERVOIR: usize = 2_048;

/// One arm over one interval. Rates are `None` when the arm saw no requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmPoint {
    pub requests: u64,
    pub requests_per_second: f64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// A chat model's time to first token, p90 (the TTFT trigger's quantile).
    pub ttft_p90_ms: Option<f64>,
    pub bad_output_rate: Option<f64>,
    pub complaint_rate: Option<f64>,
}

/// A sequential trigger as it stood at the end of an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerPoint {
    pub trigger: String,
    pub e_value: Option<f64>,
    pub threshold: Option<f64>,
    /// The canary/baseline ratio's confidence sequence.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub guard_met: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Wall-clock time (Unix milliseconds) at the end of the interval.
    pub unix_ms: i64,
    pub seconds: f64,
    /// The canary's share of traffic, 0..1.
    pub weight: f64,
    /// healthy, hold or rollback.
    pub verdict: String,
    pub canary: ArmPoint,
    pub baseline: ArmPoint,
    pub triggers: Vec<TriggerPoint>,
}

/// The bounded series of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub spacing_ms: u64,
    pub points: Vec<Point>,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace { spacing_ms: FIRST_SPACING_MS, points: Vec::new() }
    }
}

impl Trace {
    fn push(&mut self, point: Point) {
        if self.points.len() >= CAPACITY {
            // Keep the newest point of every pair, so the last one stays the latest.
            let mut index = 0;
            self.points.retain(|_| {
                index += 1;
                index % 2 == 0
            });
            self.spacing_ms = self.spacing_ms.saturating_mul(2);
        }
        self.points.push(point);
    }
}

/// What one arm did since the last point.
#[derive(Debug, Clone, Default)]
struct ArmWindow {
    requests: u64,
    errors: u64,
    bad_outputs: u64,
    complaints: u64,
    latencies: Reservoir,
    ttft: Reservoir,
}

impl ArmWindow {
    fn add(&mut self, tick: &ArmTick<'_>, bad_outputs: u64, complaints: u64) {
        self.requests += tick.requests;
        self.errors += tick.errors;
        self.bad_outputs += bad_outputs;
        self.complaints += complaints;
        self.latencies.extend(tick.latencies_us);
        self.ttft.extend(tick.ttft.values_us);
    }

    fn close(&mut self, seconds: f64) -> ArmPoint {
        let rate = |events: u64| (self.requests > 0).then(|| events as f64 / self.requests as f64);
        let point = ArmPoint {
            requests: self.requests,
            requests_per_second: if seconds > 0.0 { self.requests as f64 / seconds } else { 0.0 },
            error_rate: rate(self.errors),
            p50_ms: self.latencies.quantile_ms(0.50),
            p95_ms: self.latencies.quantile_ms(0.95),
            p99_ms: self.latencies.quantile_ms(0.99),
            ttft_p90_ms: self.ttft.quantile_ms(0.90),
            bad_output_rate: rate(self.bad_outputs),
            complaint_rate: rate(self.complaints),
        };
        *self = ArmWindow { latencies: self.latencies.emptied(), ttft: self.ttft.emptied(), ..ArmWindow::default() };
        point
    }
}

/// A uniform sample of at most [`RESERVOIR`] values (Vitter's algorithm R).
#[derive(Debug, Clone, Default)]
struct Reservoir {
    values: Vec<u32>,
    seen: u64,
    rng: XorShift,
}

impl Reservoir {
    fn extend(&mut self, values: &[u32]) {
        for &value in values {
            self.seen += 1;
            if self.values.len() < RESERVOIR {
                self.values.push(value);
            } else {
                let slot = self.rng.below(self.seen);
                if let Some(kept) = usize::try_from(slot).ok().and_then(|slot| self.values.get_mut(slot)) {
                    *kept = value;
                }
            }
        }
    }

    fn quantile_ms(&mut self, q: f64) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        self.values.sort_unstable();
        let last = self.values.len() - 1;
        let index = ((last as f64) * q).round() as usize;
        self.values.get(index.min(last)).map(|&us| f64::from(us) / 1000.0)
    }

    /// The same reservoir, empty, keeping its buffer and its generator.
    fn emptied(&mut self) -> Reservoir {
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        Reservoir { values, seen: 0, rng: self.rng.clone() }
    }
}

/// Builds the trace from the judge's ticks: [`Recorder::observe`] every
/// tick, [`Recorder::close_if_due`] after the judge has judged it.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    trace: Trace,
    canary: ArmWindow,
    baseline: ArmWindow,
    window_start_ms: Option<u64>,
}

impl Recorder {
    /// Goes on with a stored trace (after a restart or a failover).
    pub fn resume(trace: Trace) -> Recorder {
        Recorder { trace, ..Recorder::default() }
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Adds one tick's measurements: each arm's tick, and its bad outputs and complaints.
    pub fn observe(&mut self, at_ms: u64, canary: (&ArmTick<'_>, u64, u64), baseline: (&ArmTick<'_>, u64, u64)) {
        self.window_start_ms.get_or_insert(at_ms);
        self.canary.add(canary.0, canary.1, canary.2);
        self.baseline.add(baseline.0, baseline.1, baseline.2);
    }

    /// Ends the interval with the judge's report when it has lasted the
    /// trace's spacing; true when a point was added.
    pub fn close_if_due(&mut self, at_ms: u64, unix_ms: i64, report: &Report) -> bool {
        let Some(start) = self.window_start_ms else { return false };
        let elapsed = at_ms.saturating_sub(start);
        if elapsed < self.trace.spacing_ms {
            return false;
        }
        let seconds = elapsed as f64 / 1000.0;
        let point = Point {
            unix_ms,
            seconds,
            weight: report.weight,
            verdict: verdict_name(&report.verdict).into(),
            canary: self.canary.close(seconds),
            baseline: self.baseline.close(seconds),
            triggers: report
                .triggers
                .iter()
                .filter(|t| t.e_value.is_some())
                .map(|t| TriggerPoint {
                    trigger: t.trigger.clone(),
                    e_value: t.e_value,
                    threshold: t.threshold,
                    lower: t.confidence.as_ref().and_then(|c| c.lower),
                    upper: t.confidence.as_ref().and_then(|c| c.upper),
                    guard_met: t.guard_met,
                })
                .collect(),
        };
        self.trace.push(point);
        self.window_start_ms = Some(at_ms);
        true
    }
}

pub fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy => "healthy",
        Verdict::Hold { .. } => "hold",
        Verdict::Rollback { .. } => "rollback",
    }
}

/// When a decision is expected at the current traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Canary requests per second over the recent points.
    pub canary_requests_per_second: f64,
    /// Seconds until the canary has served the requests needed to call it
    /// healthy (0 when it has; `None` when it gets no traffic).
    pub guard_met_in_seconds: Option<f64>,
    pub triggers: Vec<TriggerForecast>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerForecast {
    pub trigger: String,
    pub e_value: f64,
    pub threshold: f64,
    /// Seconds until the e-value would reach its threshold if it keeps
    /// rising as over the recent points; `None` when it is not rising.
    pub threshold_in_seconds: Option<f64>,
}

/// Points the trends are read over.
const RECENT: usize = 10;

/// Reads the recent points for when each decision is due: the guard from the
/// canary's request rate, each trigger from the slope of its log e-value
/// (least squares over time). A trend, not a promise: traffic changes.
pub fn forecast(trace: &Trace, canary_requests: u64, min_canary_requests: u64) -> Forecast {
    let recent = &trace.points[trace.points.len().saturating_sub(RECENT)..];
    let (requests, seconds) = recent.iter().fold((0u64, 0.0), |(r, s), p| (r + p.canary.requests, s + p.seconds));
    let rate = if seconds > 0.0 { requests as f64 / seconds } else { 0.0 };
    let missing = min_canary_requests.saturating_sub(canary_requests);
    let guard_met_in_seconds = match (missing, rate > 0.0) {
        (0, _) => Some(0.0),
        (_, true) => Some(missing as f64 / rate),
        (_, false) => None,
    };
    let mut triggers = Vec::new();
    if let Some(last) = recent.last() {
        for now in &last.triggers {
            let (Some(e), Some(threshold)) = (now.e_value, now.threshold) else { continue };
            let series = recent_log_e(recent, &now.trigger);
            let threshold_in_seconds = match slope(&series) {
                Some(rising) if rising > 0.0 && e < threshold => Some((threshold.ln() - e.max(1e-300).ln()) / rising),
                _ if e >= threshold => Some(0.0),
                _ => None,
            };
            triggers.push(TriggerForecast {
                trigger: now.trigger.clone(),
                e_value: e,
                threshold,
                threshold_in_seconds,
            });
        }
    }
    Forecast { canary_requests_per_second: rate, guard_met_in_seconds, triggers }
}

/// (seconds since the first recent point, log e-value) of one trigger.
fn recent_log_e(recent: &[Point], trigger: &str) -> Vec<(f64, f64)> {
    let mut at = 0.0;
    let mut series = Vec::new();
    for (i, point) in recent.iter().enumerate() {
        if i > 0 {
            at += point.seconds;
        }
        let e = point.triggers.iter().find(|t| t.trigger == trigger).and_then(|t| t.e_value);
        if let Some(e) = e.filter(|e| *e > 0.0) {
            series.push((at, e.ln()));
        }
    }
    series
}

/// The least-squares slope of y over x, if there are two distinct x.
fn slope(series: &[(f64, f64)]) -> Option<f64> {
    let n = series.len() as f64;
    if series.len() < 2 {
        return None;
    }
    let (mx, my) = series.iter().fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (sxy, sxx) =
        series.iter().fold((0.0, 0.0), |(xy, xx), (x, y)| (xy + (x - mx) * (y - my), xx + (x - mx).powi(2)));
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::forecast as forecast_of;
    use super::*;
    use crate::judge::Samples;

    fn tick(requests: u64, errors: u64, latencies: &[u32]) -> ArmTick<'_> {
        ArmTick {
            requests,
            errors,
            saturated: 0,
            latencies_us: latencies,
            latency_population: latencies.len() as u64,
            ttft: Samples::default(),
            per_token: Samples::default(),
        }
    }

    fn report(e: f64) -> Report {
        Report {
            at_ms: 0,
            weight: 0.05,
            verdict: Verdict::Hold { reason: "not enough data".into() },
            warming_up: false,
            canary_requests: 0,
            baseline_requests: 0,
            triggers: vec![crate::judge::TriggerReport {
                trigger: "errors".into(),
                kind: "sequential",
                rule: String::new(),
                fired: false,
                canary_events: 0,
                baseline_events: 0,
                cells: Vec::new(),
                e_value: Some(e),
                threshold: Some(20.0),
                alpha: Some(0.05),
                confidence: None,
                equal_rates_e: None,
                guard: String::new(),
                guard_met: false,
                detail: String::new(),
            }],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_point_holds_the_intervals_rates_and_quantiles() {
        let mut recorder = Recorder::default();
        let latencies: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        recorder.observe(0, (&tick(50, 5, &latencies), 2, 1), (&tick(950, 19, &latencies), 0, 0));
        assert!(!recorder.close_if_due(1_000, 1, &report(1.0)), "an interval shorter than the spacing is not closed");
        recorder.observe(1_000, (&tick(50, 5, &[]), 0, 0), (&tick(50, 1, &[]), 0, 0));
        assert!(recorder.close_if_due(2_000, 2, &report(1.5)));
        let point = &recorder.trace().points[0];
        assert_eq!(point.canary.requests, 100);
        assert_eq!(point.canary.requests_per_second, 50.0);
        assert_eq!(point.canary.error_rate, Some(0.1));
        assert_eq!(point.canary.bad_output_rate, Some(0.02));
        assert_eq!(point.baseline.error_rate, Some(0.02));
        assert_eq!(point.canary.p50_ms, Some(51.0));
        assert_eq!(point.canary.p99_ms, Some(99.0));
        assert_eq!(point.canary.ttft_p90_ms, None, "no stream, no time to first token");
        assert_eq!(point.triggers[0].e_value, Some(1.5));
        recorder.observe(2_000, (&tick(0, 0, &[]), 0, 0), (&tick(10, 0, &[]), 0, 0));
        assert!(recorder.close_if_due(4_000, 3, &report(1.5)));
        assert_eq!(recorder.trace().points[1].canary.error_rate, None, "no canary requests: no rate, not zero");
    }

    #[test]
    fn a_full_trace_thins_itself_and_keeps_the_latest_point() {
        let mut recorder = Recorder::default();
        let mut at = 0;
        for i in 0..(CAPACITY as i64 + 1) {
            recorder.observe(at, (&tick(1, 0, &[]), 0, 0), (&tick(1, 0, &[]), 0, 0));
            at += recorder.trace().spacing_ms;
            assert!(recorder.close_if_due(at, i, &report(1.0)));
        }
        let trace = recorder.trace();
        assert_eq!(trace.points.len(), CAPACITY / 2 + 1);
        assert_eq!(trace.spacing_ms, 2 * FIRST_SPACING_MS);
        assert_eq!(trace.points.last().map(|p| p.unix_ms), Some(CAPACITY as i64));
        assert!(trace.points.windows(2).all(|w| w[0].unix_ms < w[1].unix_ms));
    }

    #[test]
    fn the_reservoir_keeps_a_uniform_sample_of_a_long_interval() {
        let mut reservoir = Reservoir::default();
        let values: Vec<u32> = (0..100_000).collect();
        reservoir.extend(&values);
        assert_eq!(reservoir.values.len(), RESERVOIR);
        let median = reservoir.quantile_ms(0.5).unwrap_or_default() * 1000.0;
        assert!((40_000.0..60_000.0).contains(&median), "the median of 0..100000 sampled as {median}");
    }

    #[test]
    fn the_forecast_extrapolates_rising_evidence_and_the_guard() {
        let mut recorder = Recorder::default();
        for i in 0..5u64 {
            recorder.observe(i * 2_000, (&tick(20, 1, &[]), 0, 0), (&tick(380, 1, &[]), 0, 0));
            // log e rises by ln 2 every 2 s: from 1 it reaches 20 in log2(20) steps after the first.
            assert!(recorder.close_if_due((i + 1) * 2_000, 0, &report(2f64.powi(i as i32))));
        }
        let rising = forecast_of(recorder.trace(), 100, 1_000);
        assert!((rising.canary_requests_per_second - 10.0).abs() < 1e-9);
        assert_eq!(rising.guard_met_in_seconds, Some(90.0));
        let errors = &rising.triggers[0];
        let expected = (20f64.ln() - 16f64.ln()) / (2f64.ln() / 2.0);
        let got = errors.threshold_in_seconds.unwrap_or_default();
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");

        let mut flat = Recorder::default();
        for i in 0..5u64 {
            flat.observe(i * 2_000, (&tick(0, 0, &[]), 0, 0), (&tick(10, 0, &[]), 0, 0));
            assert!(flat.close_if_due((i + 1) * 2_000, 0, &report(0.5)));
        }
        let still = forecast_of(flat.trace(), 0, 1_000);
        assert_eq!(still.triggers[0].threshold_in_seconds, None, "falling or flat evidence is not forecast");
        assert_eq!(still.guard_met_in_seconds, None, "no canary traffic, no time for the guard");
    }
}
