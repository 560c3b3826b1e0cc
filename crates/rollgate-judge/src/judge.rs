//! The judge of one canary: fed one [`Tick`] of measurements a second, it
//! keeps one e-process per statistical trigger and a few absolute rules, and
//! answers Healthy, Hold (never a rollback for lack of data) or Rollback.
//!
//! Every statistical trigger gets its own share of the false-rollback budget
//! (Bonferroni: the chance that any of them fires on a healthy canary is at
//! most the plan's budget), and each runs across traffic steps without any
//! further correction, since an e-process may be looked at every second.

use crate::config::JudgeConfig;
use crate::dirichlet::{CONCENTRATION, log_bayes_factor};
use crate::external::{ExternalReading, ExternalRule, ExternalState};
use crate::latency::{LatencyState, LatencyTrigger, Measure};
use crate::ratio::{ConfidenceSequence, RATE_MULTIPLIERS, RatioState, RatioTest, WeightCell};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One arm's measurements over one tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmTick<'a> {
    pub requests: u64,
    /// 5xx answers, timeouts and connection failures (not 4xx: those are the client's).
    pub errors: u64,
    /// Timeouts and 429/503 answers: the model is out of capacity.
    pub saturated: u64,
    /// Latencies of the requests that completed in this tick, in microseconds
    /// (all of them, or a uniform sample drawn without looking at the values).
    pub latencies_us: &'a [u32],
    /// How many completed requests `latencies_us` was sampled from.
    pub latency_population: u64,
    /// A chat model's streamed answers: times to first token.
    pub ttft: Samples<'a>,
    /// A chat model's streamed answers: microseconds per output token.
    pub per_token: Samples<'a>,
}

/// Durations in microseconds: all of those measured, or a uniform sample
/// drawn without looking at the values, and how many there were.
#[derive(Debug, Clone, Copy, Default)]
pub struct Samples<'a> {
    pub values_us: &'a [u32],
    pub population: u64,
}

impl<'a> ArmTick<'a> {
    pub fn latency(&self) -> Samples<'a> {
        Samples { values_us: self.latencies_us, population: self.latency_population }
    }
}

/// What the shell measured since the last tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tick<'a> {
    /// Milliseconds on the rollout's clock (virtual in rehearsals and benchmarks).
    pub at_ms: u64,
    /// The canary's routing weight (0..1) in force during this tick.
    pub weight: f64,
    pub canary: ArmTick<'a>,
    pub baseline: ArmTick<'a>,
    /// Bad outputs (from feedback or an evaluator), tagged with the weight their request was routed at.
    pub bad_outputs: &'a [WeightCell],
    /// Complaints (at most one per user), tagged likewise.
    pub complaints: &'a [WeightCell],
    /// Consecutive failed health checks of each canary endpoint, if health is checked.
    pub canary_health: Option<&'a [u32]>,
    pub external: &'a [ExternalReading],
}

/// The judge's word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    Hold { reason: String },
    Rollback { trigger: String, reason: String },
}

/// A trigger's state, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerReport {
    pub trigger: String,
    /// "sequential" (an e-process) or "absolute" (a bound, no statistics).
    pub kind: &'static str,
    /// What it rolls back on, in words.
    pub rule: String,
    pub fired: bool,
    pub canary_events: u64,
    pub baseline_events: u64,
    /// Events per canary weight (sequential triggers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<WeightCell>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Where the canary/baseline ratio lies (valid at every look).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<ConfidenceSequence>,
    /// Evidence that the arms' rates differ at all, either way (a better
    /// canary too): Lindon & Malek's Dirichlet mixture per traffic step. Shown, never acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equal_rates_e: Option<f64>,
    /// The sample guard, and whether it is met.
    pub guard: String,
    pub guard_met: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Everything the judge knows about one canary, for status pages and the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub at_ms: u64,
    pub weight: f64,
    pub verdict: Verdict,
    pub warming_up: bool,
    pub canary_requests: u64,
    pub baseline_requests: u64,
    pub triggers: Vec<TriggerReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What a judge has learnt; see [`Judge::snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeState {
    errors: RatioState,
    quality: RatioState,
    complaints: RatioState,
    latency: LatencyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttft: Option<LatencyState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_token: Option<LatencyState>,
    saturation: Vec<(u64, u64, u64)>,
    external: Vec<Option<ExternalReading>>,
    last_weight: f64,
    warm_until_ms: u64,
    now_ms: u64,
    next_restart_ms: u64,
    canary_requests: u64,
    baseline_requests: u64,
    health_failures: Vec<u32>,
    verdict: Verdict,
}

/// An event-count trigger: errors, bad outputs or complaints.
#[derive(Debug, Clone)]
struct CountTrigger {
    name: &'static str,
    noun: &'static str,
    alpha: f64,
    test: RatioTest,
}

impl CountTrigger {
    fn new(name: &'static str, noun: &'static str, limit: f64, alpha: f64) -> CountTrigger {
        CountTrigger { name, noun, alpha, test: RatioTest::new(limit, &RATE_MULTIPLIERS) }
    }

    fn fired(&self, min_events: u64) -> bool {
        self.test.rejects(self.alpha, min_events)
    }

    fn report(&self, min_events: u64) -> TriggerReport {
        sequential_report(
            self.name,
            format!("canary {} rate > {}x baseline", self.noun, self.test.limit()),
            &self.test,
            self.alpha,
            min_events,
            String::new(),
        )
    }
}

/// The report of any e-process trigger.
pub(crate) fn sequential_report(
    name: &str,
    rule: String,
    test: &RatioTest,
    alpha: f64,
    min_events: u64,
    detail: String,
) -> TriggerReport {
    let canary_events = test.canary_events();
    let log_e = test.log_e();
    let guard_met = canary_events >= min_events;
    TriggerReport {
        trigger: name.to_string(),
        kind: "sequential",
        rule,
        fired: test.rejects(alpha, min_events),
        canary_events,
        baseline_events: test.baseline_events(),
        cells: test.cells().to_vec(),
        // Overwhelming evidence overflows f64 (and JSON would write it as null): the largest finite one.
        e_value: Some(log_e.exp().min(f64::MAX)),
        threshold: Some(1.0 / alpha),
        alpha: Some(alpha),
        confidence: Some(test.confidence_sequence(alpha)),
        equal_rates_e: Some(equal_rates_e(test)),
        guard: format!("at least {min_events} canary events"),
        guard_met,
        detail,
    }
}

/// The product over traffic steps of the two-sided Dirichlet-mixture e-value.
fn equal_rates_e(test: &RatioTest) -> f64 {
    test.cells()
        .iter()
        .map(|c| log_bayes_factor(&[c.baseline, c.canary], &[1.0 - c.weight, c.weight], CONCENTRATION))
        .sum::<f64>()
        .exp()
}

/// Share of capacity refusals over the last minute.
#[derive(Debug, Clone, Default)]
struct Saturation {
    recent: VecDeque<(u64, u64, u64)>,
}

impl Saturation {
    const WINDOW_MS: u64 = 60_000;
    const MIN_REQUESTS: u64 = 20;

    fn add(&mut self, at_ms: u64, requests: u64, saturated: u64) {
        self.recent.push_back((at_ms, requests, saturated));
        while self.recent.front().is_some_and(|&(at, _, _)| at + Self::WINDOW_MS <= at_ms) {
            self.recent.pop_front();
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.recent.iter().fold((0, 0), |(r, s), &(_, req, sat)| (r + req, s + sat))
    }
}

/// How often each sequential test starts another e-process, so that a fault
/// beginning late is not judged against a long healthy past.
const RESTART_EVERY_MS: u64 = 60_000;

/// The judge of one canary.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    errors: CountTrigger,
    quality: CountTrigger,
    complaints: CountTrigger,
    latency: LatencyTrigger,
    /// A chat model's time to first token and tokens per second (when the service streams tokens).
    tokens: Option<[LatencyTrigger; 2]>,
    saturation: Saturation,
    external: ExternalState,
    last_weight: f64,
    warm_until_ms: u64,
    now_ms: u64,
    /// When the sequential tests next start another e-process (see [`RatioTest::restart`]).
    next_restart_ms: u64,
    canary_requests: u64,
    baseline_requests: u64,
    health_failures: Vec<u32>,
    verdict: Verdict,
}

impl Judge {
    pub fn new(config: JudgeConfig) -> Judge {
        let a = config.alphas();
        Judge {
            errors: CountTrigger::new("error_rate", "error", config.error_ratio, a.errors),
            quality: CountTrigger::new("quality", "bad-output", config.quality_ratio, a.quality),
            complaints: CountTrigger::new("complaints", "complaint", config.complaint_ratio, a.complaints),
            latency: LatencyTrigger::new(
                Measure::Latency,
                config.latency_ratio,
                config.latency_quantile,
                &config,
                a.latency,
            ),
            tokens: config.judges_tokens.then(|| {
                [
                    LatencyTrigger::new(
                        Measure::TimeToFirstToken,
                        config.ttft_ratio,
                        config.ttft_quantile,
                        &config,
                        a.ttft,
                    ),
                    // Tokens per second below r x baseline is time per token above 1/r x.
                    LatencyTrigger::new(
                        Measure::TimePerToken,
                        1.0 / config.tokens_per_second_ratio,
                        config.ttft_quantile,
                        &config,
                        a.tokens,
                    ),
                ]
            }),
            saturation: Saturation::default(),
            external: ExternalState::new(config.external.clone()),
            last_weight: 0.0,
            warm_until_ms: 0,
            now_ms: 0,
            next_restart_ms: 0,
            canary_requests: 0,
            baseline_requests: 0,
            health_failures: Vec::new(),
            verdict: Verdict::Hold { reason: "no measurements yet".into() },
            config,
        }
    }

    /// Takes one tick of measurements and returns the verdict. Cheap: the
    /// confidence sequences are only computed by [`Judge::report`].
    pub fn tick(&mut self, tick: &Tick<'_>) -> &Verdict {
        if tick.weight != self.last_weight {
            self.last_weight = tick.weight;
            self.warm_until_ms = tick.at_ms + self.config.warm_up_ms;
        }
        if tick.at_ms >= self.next_restart_ms {
            if self.next_restart_ms > 0 {
                for test in [&mut self.errors.test, &mut self.quality.test, &mut self.complaints.test] {
                    test.restart();
                }
                self.durations_mut().for_each(LatencyTrigger::restart);
            }
            self.next_restart_ms = tick.at_ms + RESTART_EVERY_MS;
        }
        self.now_ms = tick.at_ms;
        self.canary_requests += tick.canary.requests;
        self.baseline_requests += tick.baseline.requests;
        self.saturation.add(tick.at_ms, tick.canary.requests, tick.canary.saturated);
        self.health_failures = tick.canary_health.map(<[u32]>::to_vec).unwrap_or_default();
        self.external.observe(tick.external);
        for trigger in self.durations_mut() {
            trigger.observe_baseline(tick.at_ms, &tick.baseline);
        }
        // Errors, bad outputs and complaints count from the first request:
        // each is one a user got. Events are tagged with the weight in force
        // when they are measured; weights only rise while the judge runs, so
        // an event routed at the previous step is tagged with a larger weight,
        // which makes it weaker evidence against the canary, never stronger.
        self.errors.test.add(tick.weight, tick.canary.errors, tick.baseline.errors);
        for cell in tick.bad_outputs {
            self.quality.test.add(cell.weight, cell.canary, cell.baseline);
        }
        for cell in tick.complaints {
            self.complaints.test.add(cell.weight, cell.canary, cell.baseline);
        }
        // Latency waits out the warm-up: cold caches and new connections make
        // a new step's first seconds slow without anything being wrong.
        if !self.warming_up() {
            for trigger in self.durations_mut() {
                trigger.observe(tick.weight, &tick.canary, &tick.baseline);
            }
        }
        self.verdict = self.decide();
        &self.verdict
    }

    /// The duration triggers: latency, and a chat model's token triggers.
    fn durations(&self) -> impl Iterator<Item = &LatencyTrigger> {
        std::iter::once(&self.latency).chain(self.tokens.iter().flatten())
    }

    fn durations_mut(&mut self) -> impl Iterator<Item = &mut LatencyTrigger> {
        std::iter::once(&mut self.latency).chain(self.tokens.iter_mut().flatten())
    }

    fn warming_up(&self) -> bool {
        self.now_ms < self.warm_until_ms
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// What the rollout's log should hear after this tick, given the verdict
    /// it holds (`recorded`): the verdict when its kind differs, a rollback
    /// always, with the whole report as its evidence.
    pub fn news(&self, recorded: Option<&rollgate_core::rollout::Verdict>) -> Option<rollgate_core::rollout::Verdict> {
        use rollgate_core::rollout::Verdict as Core;
        let core = match &self.verdict {
            Verdict::Healthy => Core::Healthy,
            Verdict::Hold { reason } => Core::Hold { reason: reason.clone() },
            Verdict::Rollback { trigger, reason } => {
                let evidence = serde_json::json!({ "reason": reason, "judge": self.report() });
                return Some(Core::Rollback { trigger: trigger.clone(), evidence });
            }
        };
        (!recorded.is_some_and(|r| r.same_kind(&core))).then_some(core)
    }

    fn min_events(&self) -> u64 {
        u64::from(self.config.min_canary_events)
    }

    fn decide(&self) -> Verdict {
        let min = self.min_events();
        for trigger in [&self.errors, &self.quality, &self.complaints] {
            if trigger.fired(min) {
                let e = trigger.test.log_e().exp();
                let reason = format!(
                    "canary {} rate above {}x baseline: e-value {e:.1} >= {:.0} ({} canary vs {} baseline events)",
                    trigger.noun,
                    trigger.test.limit(),
                    1.0 / trigger.alpha,
                    trigger.test.canary_events(),
                    trigger.test.baseline_events()
                );
                return Verdict::Rollback { trigger: trigger.name.into(), reason };
            }
        }
        if let Some(fired) = self.durations().find(|t| t.fired(min)) {
            return Verdict::Rollback { trigger: fired.trigger().into(), reason: fired.reason() };
        }
        if let Some(reason) = self.health_reason() {
            return Verdict::Rollback { trigger: "health_checks".into(), reason };
        }
        if let Some(reason) = self.saturation_reason() {
            return Verdict::Rollback { trigger: "saturation".into(), reason };
        }
        if let Some((trigger, reason)) = self.external.breach() {
            return Verdict::Rollback { trigger, reason };
        }
        if self.canary_requests == 0 {
            return Verdict::Hold { reason: "no canary traffic yet".into() };
        }
        if self.warming_up() {
            let left = (self.warm_until_ms - self.now_ms).div_ceil(1000);
            return Verdict::Hold { reason: format!("latency warming up after the weight change ({left}s left)") };
        }
        if let Some(warning) = self.external.warnings().into_iter().next() {
            return Verdict::Hold { reason: warning };
        }
        if self.canary_requests < self.config.min_canary_requests {
            return Verdict::Hold {
                reason: format!(
                    "{} of the {} canary requests needed before calling the canary healthy",
                    self.canary_requests, self.config.min_canary_requests
                ),
            };
        }
        Verdict::Healthy
    }

    fn health_reason(&self) -> Option<String> {
        let limit = self.config.health_check_failures;
        let all_failing = !self.health_failures.is_empty() && self.health_failures.iter().all(|&f| f >= limit);
        all_failing.then(|| {
            format!(
                "every canary endpoint ({}) failed at least {limit} health checks in a row",
                self.health_failures.len()
            )
        })
    }

    fn saturation_reason(&self) -> Option<String> {
        let (requests, saturated) = self.saturation.totals();
        let share = saturated as f64 / requests.max(1) as f64;
        (requests >= Saturation::MIN_REQUESTS && share > self.config.max_saturation).then(|| {
            format!(
                "{saturated} of {requests} canary requests in the last minute timed out or were refused for capacity ({:.1}% > {}%)",
                share * 100.0,
                self.config.max_saturation * 100.0
            )
        })
    }

    /// The verdict with all the numbers: e-values, thresholds, confidence sequences, guards.
    pub fn report(&self) -> Report {
        let min = self.min_events();
        let mut triggers = vec![self.errors.report(min)];
        triggers.extend(self.durations().map(|t| t.report(min)));
        triggers.push(self.quality.report(min));
        triggers.push(self.complaints.report(min));
        let limit = self.config.health_check_failures;
        triggers.push(TriggerReport {
            trigger: "health_checks".into(),
            kind: "absolute",
            rule: format!("every canary endpoint failed {limit} health checks in a row"),
            fired: self.health_reason().is_some(),
            canary_events: u64::from(self.health_failures.iter().copied().max().unwrap_or(0)),
            baseline_events: 0,
            cells: Vec::new(),
            e_value: None,
            threshold: Some(f64::from(limit)),
            alpha: None,
            confidence: None,
            equal_rates_e: None,
            guard: "health checks configured".into(),
            guard_met: !self.health_failures.is_empty(),
            detail: format!("consecutive failures per endpoint: {:?}", self.health_failures),
        });
        let (requests, saturated) = self.saturation.totals();
        triggers.push(TriggerReport {
            trigger: "saturation".into(),
            kind: "absolute",
            rule: format!("over {}% of canary requests time out or get 429/503", self.config.max_saturation * 100.0),
            fired: self.saturation_reason().is_some(),
            canary_events: saturated,
            baseline_events: 0,
            cells: Vec::new(),
            e_value: None,
            threshold: Some(self.config.max_saturation),
            alpha: None,
            confidence: None,
            equal_rates_e: None,
            guard: format!("at least {} canary requests in the last minute", Saturation::MIN_REQUESTS),
            guard_met: requests >= Saturation::MIN_REQUESTS,
            detail: format!("{saturated} of {requests} in the last minute"),
        });
        triggers.extend(self.external.reports());
        Report {
            at_ms: self.now_ms,
            weight: self.last_weight,
            verdict: self.verdict.clone(),
            warming_up: self.warming_up(),
            canary_requests: self.canary_requests,
            baseline_requests: self.baseline_requests,
            triggers,
            warnings: self.external.warnings(),
        }
    }

    /// Everything the judge has learnt, to store and continue from with
    /// [`Judge::restore`] (after a restart, or on another replica).
    pub fn snapshot(&self) -> JudgeState {
        JudgeState {
            errors: self.errors.test.state(),
            quality: self.quality.test.state(),
            complaints: self.complaints.test.state(),
            latency: self.latency.state(),
            ttft: self.tokens.as_ref().map(|[ttft, _]| ttft.state()),
            per_token: self.tokens.as_ref().map(|[_, per_token]| per_token.state()),
            saturation: self.saturation.recent.iter().copied().collect(),
            external: self.external.latest().to_vec(),
            last_weight: self.last_weight,
            warm_until_ms: self.warm_until_ms,
            now_ms: self.now_ms,
            next_restart_ms: self.next_restart_ms,
            canary_requests: self.canary_requests,
            baseline_requests: self.baseline_requests,
            health_failures: self.health_failures.clone(),
            verdict: self.verdict.clone(),
        }
    }

    /// A judge with `config` that continues from a snapshot: the same
    /// e-processes, counts and baselines, so the same test goes on.
    pub fn restore(config: JudgeConfig, state: JudgeState) -> Result<Judge, String> {
        let mut judge = Judge::new(config);
        judge.errors.test.restore(state.errors)?;
        judge.quality.test.restore(state.quality)?;
        judge.complaints.test.restore(state.complaints)?;
        judge.latency.restore(state.latency)?;
        if let Some([ttft, per_token]) = judge.tokens.as_mut() {
            // A judge stored before it judged tokens starts those two afresh.
            if let Some(state) = state.ttft {
                ttft.restore(state)?;
            }
            if let Some(state) = state.per_token {
                per_token.restore(state)?;
            }
        }
        judge.external.restore(state.external)?;
        judge.saturation.recent = state.saturation.into_iter().collect();
        judge.last_weight = state.last_weight;
        judge.warm_until_ms = state.warm_until_ms;
        judge.now_ms = state.now_ms;
        judge.next_restart_ms = state.next_restart_ms;
        judge.canary_requests = state.canary_requests;
        judge.baseline_requests = state.baseline_requests;
        judge.health_failures = state.health_failures;
        judge.verdict = state.verdict;
        Ok(judge)
    }

    /// The moment (on the judge's clock) of its last tick.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The external metrics to query now, if any are due.
    pub fn external_due(&self, now_ms: u64) -> Vec<&ExternalRule> {
        self.external.due(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_better_canary_shows_as_different_and_is_never_rolled_back() {
        let mut better = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        better.add(0.5, 5, 200);
        assert!(!better.rejects(0.02, 3));
        assert!(equal_rates_e(&better) > 1e6, "{}", equal_rates_e(&better));
        let mut alike = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        alike.add(0.5, 100, 100);
        assert!(equal_rates_e(&alike) < 1.0, "{}", equal_rates_e(&alike));
    }
}
