//! One simulated canary run, a second at a time (canary-statistics.md §4.1):
//! Poisson arrivals, binomial routing at the step's weight, binomial errors
//! and bad outputs, lognormal latencies, delayed complaints, diurnal drift
//! and a shared step change on both arms. Seeded: the same seed gives the
//! same stream, and every judge of a run sees that one stream.

use super::scenario::{Scenario, Settings};
use crate::config::JudgeConfig;
use crate::judge::{ArmTick, Samples, Tick};
use crate::ratio::WeightCell;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Exp, Poisson, StandardNormal};
use statrs::function::erf::erfc;
use std::collections::BTreeMap;
use std::f64::consts::{PI, SQRT_2};

/// z of the 99th percentile of a standard normal.
const Z99: f64 = 2.326_347_874_040_841;
/// Spread of simulated times to first token and times per token.
const TTFT_SIGMA: f64 = 0.4;
const TOKEN_SIGMA: f64 = 0.3;

#[derive(Debug, Clone, Default)]
pub struct ArmData {
    pub requests: u64,
    pub errors: u64,
    pub bad_outputs: u64,
    /// A uniform sample of this second's latencies (at most the settings' cap).
    pub latencies_us: Vec<u32>,
    /// How many requests that sample was drawn from.
    pub latency_population: u64,
    /// A chat scenario's streamed answers: times to first token and per output token (samples of `requests`).
    pub ttft_us: Vec<u32>,
    pub per_token_us: Vec<u32>,
}

/// What only the simulation knows: the true parameters of this second. The
/// ratios are the fault's (canary over baseline once it has begun), also
/// before its onset, so that an oracle can know the fault but not its onset.
#[derive(Debug, Clone, Copy, Default)]
pub struct TruthAt {
    pub fault_active: bool,
    pub error_ratio: f64,
    /// The baseline's true p99 now, µs.
    pub baseline_p99_us: f64,
    /// P(canary latency > latency_ratio·p99) / P(baseline latency > p99): the exceedance ratio.
    pub exceedance_ratio: f64,
    pub bad_output_ratio: f64,
    pub complaint_ratio: f64,
    /// A chat scenario: the baseline's true time to first token and per token at the judge's quantile, µs.
    pub baseline_ttft_q_us: f64,
    pub baseline_token_q_us: f64,
    /// The exceedance ratios of those two at the judge's limits (1 when the canary is alike).
    pub ttft_exceedance_ratio: f64,
    pub token_exceedance_ratio: f64,
    /// Expected excess bad canary responses this second (errors, bad outputs, slow answers, complaints).
    pub harm: f64,
}

#[derive(Debug, Clone, Default)]
pub struct TickData {
    pub t: u64,
    pub weight: f64,
    pub canary: ArmData,
    pub baseline: ArmData,
    /// Complaints that reached the judge this second, tagged with their exposure weight.
    pub complaints: Vec<WeightCell>,
    pub truth: TruthAt,
}

impl ArmData {
    pub(crate) fn as_arm(&self) -> ArmTick<'_> {
        ArmTick {
            requests: self.requests,
            errors: self.errors,
            saturated: 0,
            latencies_us: &self.latencies_us,
            latency_population: self.latency_population,
            ttft: Samples { values_us: &self.ttft_us, population: self.requests },
            per_token: Samples { values_us: &self.per_token_us, population: self.requests },
        }
    }
}

impl TickData {
    /// This tick's bad outputs, as the judge takes them.
    pub fn bad_outputs(&self) -> [WeightCell; 1] {
        [WeightCell { weight: self.weight, canary: self.canary.bad_outputs, baseline: self.baseline.bad_outputs }]
    }

    /// What the judge is fed for this tick, at `at_ms` on its clock.
    pub fn judge_tick<'a>(&'a self, at_ms: u64, bad_outputs: &'a [WeightCell]) -> Tick<'a> {
        Tick {
            at_ms,
            weight: self.weight,
            canary: self.canary.as_arm(),
            baseline: self.baseline.as_arm(),
            bad_outputs,
            complaints: &self.complaints,
            canary_health: None,
            external: &[],
        }
    }
}

pub struct World<'a> {
    settings: &'a Settings,
    scenario: &'a Scenario,
    rate: f64,
    drift_phase: Option<f64>,
    shared_step_at: Option<u64>,
    latency_ratio_limit: f64,
    /// The token triggers' duration ratios and quantile (for the truth's exceedance ratios).
    token_limits: (f64, f64, f64),
    rng: ChaCha8Rng,
    /// Complaints still on their way: arrival second → (weight, canary, baseline).
    pending: BTreeMap<u64, Vec<(f64, bool)>>,
    tick: TickData,
    t: u64,
}

/// SplitMix64, to turn structured seeds into well-mixed ones.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// P(lognormal(ln median, sigma) > x).
fn lognormal_sf(x: f64, median: f64, sigma: f64) -> f64 {
    0.5 * erfc((x / median).ln() / sigma / SQRT_2)
}

impl<'a> World<'a> {
    /// `latency_ratio_limit` is the latency trigger's ratio (for the truth's exceedance ratio).
    pub fn new(
        settings: &'a Settings,
        scenario: &'a Scenario,
        rate: u32,
        drift: bool,
        seed: u64,
        latency_ratio_limit: f64,
    ) -> World<'a> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let drift_phase = drift.then(|| rng.random::<f64>() * 2.0 * PI);
        let shared_step_at = scenario.shared_step.then(|| rng.random_range(300..=2100));
        World {
            settings,
            scenario,
            rate: f64::from(rate),
            drift_phase,
            shared_step_at,
            latency_ratio_limit,
            token_limits: (2.0, 2.0, 0.9),
            rng,
            pending: BTreeMap::new(),
            tick: TickData::default(),
            t: 0,
        }
    }

    /// The truth's token exceedance ratios at `config`'s token triggers.
    pub fn with_token_limits(mut self, config: &JudgeConfig) -> World<'a> {
        self.token_limits = (config.ttft_ratio, 1.0 / config.tokens_per_second_ratio, config.ttft_quantile);
        self
    }

    /// The next second of the settings' schedule, or `None` after the last step.
    pub fn next_tick(&mut self) -> Option<&TickData> {
        if self.t >= self.settings.horizon_s() {
            return None;
        }
        let weight = self.settings.weight_at(self.t);
        Some(self.advance(weight, 1))
    }

    /// The next `seconds` at canary `weight` as one tick (counts are exact
    /// sums; latencies a sample). Rehearsals step hours this way.
    pub fn advance(&mut self, weight: f64, seconds: u64) -> &TickData {
        let (s, sc, t) = (self.settings, self.scenario, self.t);
        let span = seconds.max(1) as f64;
        let wave = self.drift_phase.map_or(0.0, |phi| (2.0 * PI * t as f64 / 7200.0 + phi).sin());
        let stepped = self.shared_step_at.is_some_and(|at| t >= at);
        let (step_latency, step_errors) = if stepped { (1.5, 3.0) } else { (1.0, 1.0) };
        let fault = t >= sc.onset_s;

        let arrivals = poisson(&mut self.rng, span * self.rate * (1.0 + 0.5 * wave));
        let canary_n = binomial(&mut self.rng, arrivals, weight);
        let baseline_n = arrivals - canary_n;

        let p_a = (s.baseline_error_rate * (1.0 + 0.5 * wave) * step_errors).min(1.0);
        let p_b = (p_a * if fault { sc.error_ratio } else { 1.0 }).min(1.0);
        let q_a = s.baseline_bad_output_rate;
        let bad_ratio = if fault { sc.bad_output_ratio } else { 1.0 };
        let q_b = (q_a * bad_ratio).min(1.0);
        let complaint_ratio = if fault { sc.complaint_ratio } else { 1.0 };

        let sigma = sc.latency_sigma.unwrap_or(s.latency_sigma);
        let median_a = s.latency_median_ms * 1000.0 * (1.0 + 0.3 * wave) * step_latency;
        let latency_ratio = if fault { sc.latency_ratio } else { 1.0 };
        let (tail_share, tail_ratio) = if fault { (sc.tail_share, sc.tail_ratio) } else { (0.0, 1.0) };
        let median_b = median_a * latency_ratio;
        let p99 = median_a * (sigma * Z99).exp();
        // P(latency > x) for a canary with the fault's latency, and for the canary as it is now.
        let faulty_over = |x: f64| {
            let median = median_a * sc.latency_ratio;
            (1.0 - sc.tail_share) * lognormal_sf(x, median, sigma)
                + sc.tail_share * lognormal_sf(x, median * sc.tail_ratio, sigma)
        };
        let canary_over = |x: f64| if fault { faulty_over(x) } else { lognormal_sf(x, median_a, sigma) };

        let tick = &mut self.tick;
        tick.t = t;
        tick.weight = weight;
        for (arm, n, p, q) in [(&mut tick.canary, canary_n, p_b, q_b), (&mut tick.baseline, baseline_n, p_a, q_a)] {
            arm.requests = n;
            arm.errors = binomial(&mut self.rng, n, p);
            arm.bad_outputs = binomial(&mut self.rng, n, q);
            arm.latencies_us.clear();
            arm.latency_population = n;
        }
        let cap = s.latency_samples_per_s as u64;
        for _ in 0..canary_n.min(cap) {
            let slow = self.rng.random::<f64>() < tail_share;
            let median = if slow { median_b * tail_ratio } else { median_b };
            tick.canary.latencies_us.push(lognormal(&mut self.rng, median, sigma));
        }
        for _ in 0..baseline_n.min(cap) {
            tick.baseline.latencies_us.push(lognormal(&mut self.rng, median_a, sigma));
        }

        let c_rate = s.complaint_rate;
        for (n, ratio, canary) in [(canary_n, complaint_ratio, true), (baseline_n, 1.0, false)] {
            for _ in 0..binomial(&mut self.rng, n, (c_rate * ratio).min(1.0)) {
                let delay = if sc.complaint_delay_s > 0.0 {
                    Exp::new(1.0 / sc.complaint_delay_s).map_or(0.0, |d| d.sample(&mut self.rng)).ceil() as u64
                } else {
                    0
                };
                self.pending.entry(t + delay).or_default().push((weight, canary));
            }
        }
        tick.complaints.clear();
        let later = self.pending.split_off(&(t + seconds.max(1)));
        for (w, canary) in std::mem::replace(&mut self.pending, later).into_values().flatten() {
            let (c, b) = if canary { (1, 0) } else { (0, 1) };
            match tick.complaints.iter_mut().find(|cell| cell.weight == w) {
                Some(cell) => {
                    cell.canary += c;
                    cell.baseline += b;
                }
                None => tick.complaints.push(WeightCell { weight: w, canary: c, baseline: b }),
            }
        }

        let token_harm = self.chat_tokens(fault, (1.0 + 0.3 * wave) * step_latency);

        let tick = &mut self.tick;
        let slow_excess = (canary_over(p99) - 0.01).max(0.0);
        tick.truth = TruthAt {
            fault_active: fault,
            error_ratio: sc.error_ratio,
            baseline_p99_us: p99,
            exceedance_ratio: faulty_over(self.latency_ratio_limit * p99) / 0.01,
            bad_output_ratio: sc.bad_output_ratio,
            complaint_ratio: sc.complaint_ratio,
            harm: canary_n as f64 * ((p_b - p_a) + (q_b - q_a) + slow_excess + c_rate * (complaint_ratio - 1.0))
                + token_harm,
            ..tick.truth
        };
        self.t += seconds.max(1);
        &self.tick
    }

    /// A chat scenario's times to first token and per token, with their
    /// truths; returns the excess slow first tokens the canary served.
    fn chat_tokens(&mut self, fault: bool, slowdown: f64) -> f64 {
        let (s, sc) = (self.settings, self.scenario);
        for arm in [&mut self.tick.canary, &mut self.tick.baseline] {
            arm.ttft_us.clear();
            arm.per_token_us.clear();
        }
        if !sc.chat {
            return 0.0;
        }
        let (ttft_limit, token_limit, quantile) = self.token_limits;
        let z = statrs::distribution::ContinuousCDF::inverse_cdf(&statrs::distribution::Normal::standard(), quantile);
        let (ttft_a, token_a) = (s.ttft_median_ms * 1000.0 * slowdown, s.token_ms * 1000.0 * slowdown);
        let (ttft_ratio, token_ratio) = (sc.ttft_ratio, sc.token_time_ratio);
        let (ttft_b, token_b) = if fault { (ttft_a * ttft_ratio, token_a * token_ratio) } else { (ttft_a, token_a) };
        let cap = s.latency_samples_per_s as u64;
        let tick = &mut self.tick;
        for (arm, ttft, token) in [(&mut tick.canary, ttft_b, token_b), (&mut tick.baseline, ttft_a, token_a)] {
            for _ in 0..arm.requests.min(cap) {
                arm.ttft_us.push(lognormal(&mut self.rng, ttft, TTFT_SIGMA));
                arm.per_token_us.push(lognormal(&mut self.rng, token, TOKEN_SIGMA));
            }
        }
        let tail = 1.0 - quantile;
        let (ttft_q, token_q) = (ttft_a * (TTFT_SIGMA * z).exp(), token_a * (TOKEN_SIGMA * z).exp());
        let truth = &mut tick.truth;
        truth.baseline_ttft_q_us = ttft_q;
        truth.baseline_token_q_us = token_q;
        truth.ttft_exceedance_ratio = lognormal_sf(ttft_limit * ttft_q, ttft_a * ttft_ratio, TTFT_SIGMA) / tail;
        truth.token_exceedance_ratio = lognormal_sf(token_limit * token_q, token_a * token_ratio, TOKEN_SIGMA) / tail;
        // Harm: the canary's answers beyond the baseline's share whose first token, or whose token rate, is slow.
        let excess = |q: f64, median: f64, sigma: f64| (lognormal_sf(q, median, sigma) - tail).max(0.0);
        tick.canary.requests as f64 * (excess(ttft_q, ttft_b, TTFT_SIGMA) + excess(token_q, token_b, TOKEN_SIGMA))
    }
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    Poisson::new(lambda).map_or(0, |d| d.sample(rng) as u64)
}

fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    Binomial::new(n, p.min(1.0)).map_or(0, |d| d.sample(rng))
}

fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> u32 {
    let z: f64 = StandardNormal.sample(rng);
    (median * (sigma * z).exp()).clamp(1.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::{BUILT_IN, parse};

    fn totals(id: &str, seed: u64) -> (u64, u64, u64, u64, f64) {
        let file = parse(BUILT_IN).unwrap();
        let scenario = file.scenarios.iter().find(|s| s.id == id).unwrap();
        let mut world = World::new(&file.settings, scenario, 100, false, seed, 1.5);
        let (mut canary, mut baseline, mut canary_errors, mut baseline_errors, mut harm) = (0, 0, 0, 0, 0.0);
        while let Some(t) = world.next_tick() {
            canary += t.canary.requests;
            baseline += t.baseline.requests;
            canary_errors += t.canary.errors;
            baseline_errors += t.baseline.errors;
            harm += t.truth.harm;
        }
        (canary, baseline, canary_errors, baseline_errors, harm)
    }

    #[test]
    fn same_seed_same_stream_and_rates_as_configured() {
        assert_eq!(totals("P3", 7), totals("P3", 7));
        assert_ne!(totals("P3", 7), totals("P3", 8));
        let (canary, baseline, canary_errors, baseline_errors, harm) = totals("P3", 7);
        // 100 rps for 2400 s, canary at 1/5/25/50% for 600 s each: 20.25% of 240000.
        let expected_canary = 240_000.0 * 0.2025;
        assert!((canary as f64 - expected_canary).abs() < 5.0 * expected_canary.sqrt(), "{canary}");
        assert!(((canary + baseline) as f64 - 240_000.0).abs() < 5.0 * 240_000f64.sqrt());
        let (canary_rate, baseline_rate) =
            (canary_errors as f64 / canary as f64, baseline_errors as f64 / baseline as f64);
        assert!(
            (canary_rate - 0.20).abs() < 0.01 && (baseline_rate - 0.01).abs() < 0.002,
            "{canary_rate} {baseline_rate}"
        );
        assert!(harm > 0.15 * expected_canary, "excess errors count as harm: {harm}");
        let (.., aa_harm) = totals("N0", 7);
        assert_eq!(aa_harm, 0.0);
    }

    #[test]
    fn the_truth_knows_the_baseline_p99() {
        let file = parse(BUILT_IN).unwrap();
        let scenario = file.scenarios.iter().find(|s| s.id == "N0").unwrap();
        let mut world = World::new(&file.settings, scenario, 1000, false, 1, 1.5);
        let mut latencies = Vec::new();
        let mut p99 = 0.0;
        for _ in 0..60 {
            let t = world.next_tick().unwrap();
            latencies.extend_from_slice(&t.baseline.latencies_us);
            p99 = t.truth.baseline_p99_us;
        }
        latencies.sort_unstable();
        let empirical = f64::from(latencies[latencies.len() * 99 / 100]);
        assert!((empirical / p99 - 1.0).abs() < 0.1, "{empirical} vs {p99}");
    }
}
