//! The conditional-binomial e-process (canary-statistics.md §3.1).
//!
//! Each "bad event" (an error, a slow request, a bad output, a complaint)
//! came from the canary or from the baseline. With random routing at canary
//! weight `w`, and the canary's rate `r` times the baseline's, an event is
//! the canary's with probability π(w, r) = w·r / (w·r + 1 − w), however the
//! shared rate drifts. The null hypothesis is r ≤ ρ0; the e-process is a
//! uniform mixture of likelihood ratios against alternatives ρ0·m. By
//! Ville's inequality it crosses 1/α with probability at most α under the
//! null, however often it is looked at.
//!
//! Events are batched per weight: the likelihood ratio of a batch depends
//! only on the counts, so the state is a few counts per traffic step.

use serde::{Deserialize, Serialize};

/// Alternatives for ratio triggers, as multiples of the limit ρ0.
pub const RATE_MULTIPLIERS: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0];
/// Alternatives for the scaled-exceedance latency trigger (ρ0 = 1).
pub const EXCEEDANCE_MULTIPLIERS: [f64; 5] = [1.5, 2.0, 3.0, 5.0, 10.0];

/// π(w, r): the chance that an event came from the canary.
pub fn canary_share(weight: f64, ratio: f64) -> f64 {
    weight * ratio / (weight * ratio + 1.0 - weight)
}

/// The canary's share of *sampled* requests when each arm's requests are
/// sampled at its own rate (canary `f_canary`, baseline `f_baseline`): an
/// event in the sample is the canary's with probability π(this, r), so the
/// tests stay exact when one arm is thinned more than the other.
pub fn thinned_weight(weight: f64, f_canary: f64, f_baseline: f64) -> f64 {
    let canary = weight * f_canary;
    let total = canary + (1.0 - weight) * f_baseline;
    if total > 0.0 { canary / total } else { weight }
}

/// Events seen while one canary weight was in force.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightCell {
    pub weight: f64,
    pub canary: u64,
    pub baseline: u64,
}

impl WeightCell {
    /// log of the likelihood ratio of alternative `r` against null `rho`.
    fn log_ratio(&self, r: f64, rho: f64) -> f64 {
        let (alt, null) = (canary_share(self.weight, r), canary_share(self.weight, rho));
        self.canary as f64 * (alt / null).ln() + self.baseline as f64 * ((1.0 - alt) / (1.0 - null)).ln()
    }
}

/// Which way an alternative lies from the null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// r > ρ: the canary is worse than the limit.
    Above,
    /// r < ρ: the canary is better than ρ (for the confidence sequence's upper end).
    Below,
}

/// One e-process of the mixture over start times: the likelihood ratios
/// (one per alternative) of the events since it started, and its prior weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Start {
    log_weight: f64,
    log_likelihoods: Vec<f64>,
}

impl Start {
    fn log_e(&self) -> f64 {
        self.log_weight + log_mean_exp(&self.log_likelihoods)
    }
}

/// Prior weight of the e-process that starts with the canary; the rest is
/// spread over later starts, 0.2 / (k (k + 1)) for the k-th.
const FIRST_START_WEIGHT: f64 = 0.8;
/// Later starts kept at once; the weakest is dropped for a new one.
const LIVE_RESTARTS: usize = 8;

/// H0: canary rate ≤ `limit` × baseline rate, tested on attributed events.
///
/// A fault that begins late would find an e-process that started with the
/// canary deep below 1 after a long healthy stretch. So the test is a
/// mixture over start times: besides the e-process from the first event,
/// a new one starts at each [`RatioTest::restart`] (the judge calls it every
/// minute) with a prior weight fixed by its index; the weights sum to 1, so
/// the mixture is an e-process too. Dropping a component (replacing a
/// non-negative term by 0) keeps it one.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioTest {
    limit: f64,
    multipliers: &'static [f64],
    cells: Vec<WeightCell>,
    /// The first start, then the live later ones.
    starts: Vec<Start>,
    restarts: u32,
    /// Scratch: this batch's log likelihood ratio per alternative.
    batch: Vec<f64>,
}

impl RatioTest {
    pub fn new(limit: f64, multipliers: &'static [f64]) -> RatioTest {
        let first = Start { log_weight: FIRST_START_WEIGHT.ln(), log_likelihoods: vec![0.0; multipliers.len()] };
        RatioTest { limit, multipliers, cells: Vec::new(), starts: vec![first], restarts: 0, batch: Vec::new() }
    }

    /// Starts another e-process here (at a time chosen without looking at the events).
    pub fn restart(&mut self) {
        self.restarts += 1;
        let k = f64::from(self.restarts);
        let log_weight = ((1.0 - FIRST_START_WEIGHT) / (k * (k + 1.0))).ln();
        self.starts.push(Start { log_weight, log_likelihoods: vec![0.0; self.multipliers.len()] });
        if self.starts.len() > LIVE_RESTARTS + 1 {
            let weakest = (1..self.starts.len())
                .min_by(|&a, &b| self.starts[a].log_e().total_cmp(&self.starts[b].log_e()))
                .unwrap_or(1);
            self.starts.remove(weakest);
        }
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Adds events routed at canary weight `weight` (0 < w < 1; others carry no information).
    pub fn add(&mut self, weight: f64, canary: u64, baseline: u64) {
        if !(weight > 0.0 && weight < 1.0) || canary + baseline == 0 {
            return;
        }
        let batch = WeightCell { weight, canary, baseline };
        self.batch.clear();
        self.batch.extend(self.multipliers.iter().map(|m| batch.log_ratio(self.limit * m, self.limit)));
        for start in &mut self.starts {
            for (log_l, step) in start.log_likelihoods.iter_mut().zip(&self.batch) {
                *log_l += step;
            }
        }
        match self.cells.iter_mut().find(|c| c.weight == weight) {
            Some(cell) => {
                cell.canary += canary;
                cell.baseline += baseline;
            }
            None => self.cells.push(batch),
        }
    }

    pub fn cells(&self) -> &[WeightCell] {
        &self.cells
    }

    /// What the test has learnt, to be stored and put back with [`RatioTest::restore`].
    pub fn state(&self) -> RatioState {
        RatioState { cells: self.cells.clone(), starts: self.starts.clone(), restarts: self.restarts }
    }

    /// Puts back a stored state; refused if it was kept by a test with other alternatives.
    pub fn restore(&mut self, state: RatioState) -> Result<(), String> {
        if state.starts.is_empty() || state.starts.iter().any(|s| s.log_likelihoods.len() != self.multipliers.len()) {
            return Err("the stored e-processes do not match this test's alternatives".into());
        }
        (self.cells, self.starts, self.restarts) = (state.cells, state.starts, state.restarts);
        Ok(())
    }

    pub fn canary_events(&self) -> u64 {
        self.cells.iter().map(|c| c.canary).sum()
    }

    pub fn baseline_events(&self) -> u64 {
        self.cells.iter().map(|c| c.baseline).sum()
    }

    /// The null is rejected at level `alpha`, once the canary has `min_events` events.
    pub fn rejects(&self, alpha: f64, min_events: u64) -> bool {
        self.canary_events() >= min_events && self.log_e() >= (1.0 / alpha).ln()
    }

    /// log of the e-value against H0: r ≤ limit.
    pub fn log_e(&self) -> f64 {
        let per_start: Vec<f64> = self.starts.iter().map(Start::log_e).collect();
        log_sum_exp(&per_start)
    }

    /// log E for the null r ≤ rho (Above) or r ≥ rho (Below), from the counts.
    fn log_e_at(&self, rho: f64, side: Side) -> f64 {
        let per_alternative: Vec<f64> = self
            .multipliers
            .iter()
            .map(|m| {
                let r = match side {
                    Side::Above => rho * m,
                    Side::Below => rho / m,
                };
                self.cells.iter().map(|c| c.log_ratio(r, rho)).sum()
            })
            .collect();
        log_mean_exp(&per_alternative)
    }

    /// A (1 − α) confidence sequence for the rate ratio r: the ratios that
    /// neither one-sided test (each at α/2, on all events since the start) rejects. Valid at every look;
    /// `None` for an end means the data do not bound it yet.
    pub fn confidence_sequence(&self, alpha: f64) -> ConfidenceSequence {
        let threshold = (2.0 / alpha).ln();
        // log E_above(ρ) falls as ρ grows; log E_below(ρ) rises.
        let lower = boundary(|rho| self.log_e_at(rho, Side::Above) >= threshold, true);
        let upper = boundary(|rho| self.log_e_at(rho, Side::Below) >= threshold, false);
        ConfidenceSequence { alpha, lower, upper }
    }
}

/// A [`RatioTest`]'s learnt state: events per weight and each live e-process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioState {
    cells: Vec<WeightCell>,
    starts: Vec<Start>,
    restarts: u32,
}

/// Bounds of the rate ratio on a log scale between these.
const RATIO_RANGE: (f64, f64) = (1e-3, 1e3);

/// The edge of the set of rejected ρ found by bisection on log ρ: rejected
/// values lie below it (`rejected_below`) or above it. `None` if none are rejected.
fn boundary(rejects: impl Fn(f64) -> bool, rejected_below: bool) -> Option<f64> {
    let (mut lo, mut hi) = (RATIO_RANGE.0.ln(), RATIO_RANGE.1.ln());
    let outer = if rejected_below { lo } else { hi };
    if !rejects(outer.exp()) {
        return None;
    }
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        if rejects(mid.exp()) == rejected_below {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((0.5 * (lo + hi)).exp())
}

/// Where the canary/baseline rate ratio lies, at level 1 − α, valid at every look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConfidenceSequence {
    pub alpha: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// log of the mean of exp(x) over `xs`, without overflow.
pub fn log_mean_exp(xs: &[f64]) -> f64 {
    log_sum_exp(xs) - (xs.len().max(1) as f64).ln()
}

/// log Σ exp(x), without overflow.
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn research_note_test_vector() {
        // canary-statistics.md §3.1: w = 1%, ρ0 = 2, 12 canary and 300 baseline errors.
        let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        test.add(0.01, 12, 300);
        // Our mixture puts prior weight 0.8 on the e-process the note describes.
        let note = test.log_e() - FIRST_START_WEIGHT.ln();
        assert!((note - 1.255346).abs() < 1e-6, "{note}");
    }

    #[test]
    fn batches_add_up_like_one_batch() {
        let mut split = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        split.add(0.01, 5, 100);
        split.add(0.01, 7, 200);
        let mut whole = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        whole.add(0.01, 12, 300);
        assert!((split.log_e() - whole.log_e()).abs() < 1e-9);
        assert_eq!(split.cells().len(), 1);
        assert!((split.log_e() - FIRST_START_WEIGHT.ln() - split.log_e_at(2.0, Side::Above)).abs() < 1e-9);
    }

    #[test]
    fn a_late_fault_is_found_by_a_later_start() {
        // 20 minutes healthy at 5% (r = 1), then r = 5: one event batch per second.
        let (healthy, faulty) = ((0.5, 9.5), (2.5, 9.5));
        let run = |restart: bool| {
            let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
            for second in 0..1200 {
                if restart && second % 60 == 0 && second > 0 {
                    test.restart();
                }
                test.add(0.05, healthy.0 as u64 + u64::from(second % 2 == 0), healthy.1 as u64);
            }
            (0..600).position(|second| {
                if restart && second % 60 == 0 {
                    test.restart();
                }
                test.add(0.05, faulty.0 as u64 + u64::from(second % 2 == 0), faulty.1 as u64);
                test.log_e() >= 20f64.ln()
            })
        };
        let (with, without) = (run(true), run(false));
        assert!(with.is_some_and(|s| s < 120), "with restarts: {with:?}");
        assert!(without.is_none_or(|s| s > 2 * with.unwrap_or(0)), "without: {without:?}");
    }

    #[test]
    fn thinning_both_arms_alike_keeps_the_weight() {
        assert_eq!(thinned_weight(0.05, 0.5, 0.5), 0.05);
        // All 50 canary requests sampled, 250 of 950 baseline ones: the sample is 16.7% canary.
        let w = thinned_weight(0.05, 1.0, 250.0 / 950.0);
        assert!((w - 50.0 / 300.0).abs() < 1e-12, "{w}");
    }

    #[test]
    fn weights_of_zero_or_one_carry_no_information() {
        let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        test.add(0.0, 0, 50);
        test.add(1.0, 50, 0);
        assert_eq!(test.log_e(), FIRST_START_WEIGHT.ln());
        assert_eq!(test.canary_events(), 0);
    }

    #[test]
    fn more_canary_events_mean_more_evidence() {
        let mut last = f64::NEG_INFINITY;
        for canary in 0..40 {
            let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
            test.add(0.05, canary, 400);
            assert!(test.log_e() > last, "E must grow with canary events");
            last = test.log_e();
        }
    }

    #[test]
    fn confidence_sequence_covers_the_observed_ratio() {
        // 5% weight; canary rate 3x baseline: 3·0.05/(3·0.05 + 0.95) of events on the canary.
        let mut test = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        test.add(0.05, 300, 1900);
        let observed = (300.0 / 1900.0) / (0.05 / 0.95);
        let cs = test.confidence_sequence(0.05);
        let (lower, upper) = (cs.lower.expect("bounded below"), cs.upper.expect("bounded above"));
        assert!(lower < observed && observed < upper, "{lower} < {observed} < {upper}");
        assert!(lower > 2.0, "this much data excludes the limit: {lower}");
        let none = RatioTest::new(2.0, &RATE_MULTIPLIERS).confidence_sequence(0.05);
        assert_eq!((none.lower, none.upper), (None, None));
    }
}
