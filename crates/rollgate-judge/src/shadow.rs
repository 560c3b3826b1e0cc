//! The shadow gate: does the candidate disagree with production more than
//! production disagrees with itself, by more than the plan allows?
//!
//! Models are not deterministic (an LLM at temperature 0 under batching
//! differs from itself), so a share q of mirrored requests, drawn at random,
//! also goes to a second copy of production. For every pair the judge sees
//! whether the candidate's answer disagrees with production's (x); for the
//! drawn ones (S = 1) also whether the copy's does (n). D = x − S·n/q has mean
//! p_candidate − p_noise, the excess disagreement, whatever q is: every pair
//! counts, and the drawn ones stand for the rest (inverse-probability
//! weighting). With q = 1, D = x − n ∈ {−1, 0, 1}; with no copies configured
//! (a deterministic model) n is taken as 0 and D = x.
//!
//! H0 "excess ≤ δ" is tested with a betting e-process on D rescaled to
//! Y ∈ [0, 1] (Waudby-Smith & Ramdas): K(λ) = Π (1 + λ(Y − m)), m the bound
//! rescaled the same way, a nonnegative supermartingale under H0 for every λ
//! in [0, 1/m); the mixture over a grid of λ is one too, so it may be looked at
//! after every pair and the chance of ever blocking a candidate within δ stays
//! at most α. The same construction the other way bounds the excess from
//! above; together they give a confidence sequence, and the gate passes once
//! its upper end is within δ. D takes four values, so every product is a
//! function of four counts. A small q widens D's range to [−1/q, 1], so
//! decisions take more pairs: the price of asking production less often.

use serde::{Deserialize, Serialize};

/// Bets, as shares of the largest safe bet: a mixture over them is as good as
/// the best one up to a constant factor (the grid's size).
const BETS: [f64; 10] = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9];

/// What the gate says now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ShadowDecision {
    /// The excess disagreement is shown to be within the bound.
    Pass,
    /// The excess disagreement is shown to be over the bound.
    Block,
    /// Not enough evidence either way yet.
    NotYet {
        /// Paired samples expected to be needed at the current estimate (none while nothing is seen).
        pairs_needed: Option<u64>,
    },
}

/// The excess-disagreement test, from its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcessTest {
    /// The share q of pairs drawn for a copy to production; 0 when none are.
    pub noise_share: f64,
    /// Pairs with D = −1/q (the copy alone disagreed), 1 − 1/q (both did),
    /// 0 (neither), 1 (the candidate alone, or with no copy asked).
    pub counts: [u64; 4],
}

/// The test's figures for a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExcessReport {
    pub pairs: u64,
    /// The observed excess: candidate's disagreement minus production's with itself.
    pub excess: f64,
    /// Where the excess lies at level 1 − α, valid at every look.
    pub low: f64,
    pub high: f64,
    /// The e-value against "excess ≤ bound", and the threshold that blocks.
    pub e_value: f64,
    pub threshold: f64,
    pub bound: f64,
    #[serde(flatten)]
    pub decision: ShadowDecision,
}

impl ExcessTest {
    /// A test where a share `noise_share` of pairs (0 to 1) has a copy to production.
    pub fn new(noise_share: f64) -> ExcessTest {
        let noise_share = if noise_share.is_finite() { noise_share.clamp(0.0, 1.0) } else { 0.0 };
        ExcessTest { noise_share, counts: [0; 4] }
    }

    /// 1/q, the weight of a copy's disagreement; 0 with no copies.
    fn weight(&self) -> f64 {
        if self.noise_share > 0.0 { 1.0 / self.noise_share } else { 0.0 }
    }

    /// One paired request: whether the candidate disagreed with production,
    /// and whether production's copy did (`None`: no copy was asked). A copy's
    /// answer in a test configured without copies is not counted.
    pub fn add(&mut self, candidate_disagrees: bool, noise_disagrees: Option<bool>) {
        let noise = noise_disagrees.unwrap_or(false) && self.noise_share > 0.0;
        let slot = match (candidate_disagrees, noise) {
            (false, true) => 0,
            (true, true) => 1,
            (false, false) => 2,
            (true, false) => 3,
        };
        self.counts[slot] += 1;
    }

    pub fn pairs(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// D's four values, rescaled to Y in [0, 1]; and the map from D to Y.
    fn scaled(&self) -> ([f64; 4], impl Fn(f64) -> f64 + use<>) {
        let w = self.weight();
        let to_y = move |d: f64| (d + w) / (1.0 + w);
        ([to_y(-w), to_y(1.0 - w), to_y(0.0), to_y(1.0)], to_y)
    }

    /// The map from Y back to D.
    fn unscale(&self, y: f64) -> f64 {
        let w = self.weight();
        y * (1.0 + w) - w
    }

    /// log K of H0 "E[Y] ≤ m": a mixture of bets on Y above m.
    fn log_e_below(&self, m: f64) -> f64 {
        let (ys, _) = self.scaled();
        let per_bet: Vec<f64> = BETS
            .iter()
            .map(|share| {
                let lambda = share / m;
                self.counts.iter().zip(ys).map(|(&n, y)| n as f64 * (1.0 + lambda * (y - m)).ln()).sum()
            })
            .collect();
        log_mean_exp(&per_bet)
    }

    /// log K of H0 "E[Y] ≥ m": bets on Y below m.
    fn log_e_above(&self, m: f64) -> f64 {
        let (ys, _) = self.scaled();
        let per_bet: Vec<f64> = BETS
            .iter()
            .map(|share| {
                let lambda = share / (1.0 - m);
                self.counts.iter().zip(ys).map(|(&n, y)| n as f64 * (1.0 - lambda * (y - m)).ln()).sum()
            })
            .collect();
        log_mean_exp(&per_bet)
    }

    /// The confidence sequence for the excess at level 1 − α (α/2 each side),
    /// clipped to the excess's possible range [−1, 1].
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        let threshold = (2.0 / alpha).ln();
        // Rejected "E[Y] ≤ m" for m below `low`; rejected "E[Y] ≥ m" for m above `high`.
        let low = bisect(|m| self.log_e_below(m) >= threshold, true);
        let high = bisect(|m| self.log_e_above(m) >= threshold, false);
        (self.unscale(low).max(-1.0), self.unscale(high).min(1.0))
    }

    /// The observed excess: the mean of D.
    pub fn excess(&self) -> f64 {
        let pairs = self.pairs();
        if pairs == 0 {
            return 0.0;
        }
        let w = self.weight();
        let ds = [-w, 1.0 - w, 0.0, 1.0];
        self.counts.iter().zip(ds).map(|(&n, d)| n as f64 * d).sum::<f64>() / pairs as f64
    }

    /// The gate at level α (at most α of candidates within `bound` are ever
    /// blocked), once `min_pairs` have been seen.
    pub fn report(&self, bound: f64, alpha: f64, min_pairs: u64) -> ExcessReport {
        let pairs = self.pairs();
        let (_, to_y) = self.scaled();
        let log_e = self.log_e_below(to_y(bound));
        let (low, high) = self.interval(alpha);
        let excess = self.excess();
        let decision = if log_e >= (1.0 / alpha).ln() && pairs >= min_pairs {
            ShadowDecision::Block
        } else if high <= bound && pairs >= min_pairs {
            ShadowDecision::Pass
        } else {
            ShadowDecision::NotYet { pairs_needed: forecast(pairs, excess, low, high, bound, min_pairs) }
        };
        ExcessReport {
            pairs,
            excess,
            low,
            high,
            e_value: log_e.exp().min(f64::MAX),
            threshold: 1.0 / alpha,
            bound,
            decision,
        }
    }
}

/// Pairs expected to be needed for a decision, if the estimate held: the
/// interval narrows as 1/√n, so it must shrink from its current half-width
/// on the deciding side to the distance between estimate and bound.
fn forecast(pairs: u64, excess: f64, low: f64, high: f64, bound: f64, min_pairs: u64) -> Option<u64> {
    if pairs == 0 {
        return None;
    }
    let (now, needed) = if excess < bound { (high - excess, bound - excess) } else { (excess - low, excess - bound) };
    if needed <= 1e-9 {
        return None;
    }
    let factor = (now / needed).powi(2).max(1.0);
    Some(((pairs as f64 * factor).ceil() as u64).max(min_pairs))
}

/// The boundary of the set of m in (0, 1) a test rejects (rejected below it,
/// or above it), by bisection; 0 or 1 when it rejects none.
fn bisect(rejects: impl Fn(f64) -> bool, rejected_below: bool) -> f64 {
    let (mut lo, mut hi) = (1e-9, 1.0 - 1e-9);
    let edge = if rejected_below { lo } else { hi };
    if !rejects(edge) {
        return if rejected_below { 0.0 } else { 1.0 };
    }
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if rejects(mid) == rejected_below {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn log_mean_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + (xs.iter().map(|x| (x - max).exp()).sum::<f64>() / xs.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair with a copy: counts of D = −1, 0, +1.
    fn test_with(minus: u64, zero: u64, plus: u64) -> ExcessTest {
        ExcessTest { noise_share: 1.0, counts: [minus, 0, zero, plus] }
    }

    #[test]
    fn a_clear_excess_blocks_and_a_clear_match_passes() {
        // 12% of pairs: the candidate alone disagrees; 1% the copy alone.
        let worse = test_with(10, 870, 120).report(0.02, 0.05, 200);
        assert_eq!(worse.decision, ShadowDecision::Block, "{worse:?}");
        assert!(worse.low > 0.02 && (worse.excess - 0.11).abs() < 1e-12, "{worse:?}");
        // As often as the copy: no excess.
        let alike = test_with(30, 4940, 30).report(0.02, 0.05, 200);
        assert_eq!(alike.decision, ShadowDecision::Pass, "{alike:?}");
        assert!(alike.low < 0.0 && alike.high <= 0.02, "{alike:?}");
        // Too few pairs to say.
        let early = test_with(1, 40, 3).report(0.02, 0.05, 200);
        assert!(matches!(early.decision, ShadowDecision::NotYet { pairs_needed: Some(n) } if n >= 200), "{early:?}");
    }

    #[test]
    fn the_e_value_is_one_before_any_pair_and_the_interval_everything() {
        let empty = ExcessTest::new(0.25).report(0.02, 0.05, 0);
        assert!((empty.e_value - 1.0).abs() < 1e-12);
        assert_eq!((empty.low, empty.high), (-1.0, 1.0));
    }

    #[test]
    fn a_partial_copy_share_weighs_each_copy_for_the_pairs_without_one() {
        // q = 1/4; 10% of pairs the candidate disagrees; of the 250 copies, 10 (4%) disagree.
        let mut test = ExcessTest::new(0.25);
        for i in 0..1000 {
            let copy = (i % 4 == 0).then_some(i % 100 == 0);
            test.add(i % 10 == 0, copy);
        }
        // Candidate 10%, noise 4% (the copies that disagreed each stand for 4 pairs).
        assert!((test.excess() - 0.06).abs() < 1e-12, "{}", test.excess());
        let (low, high) = test.interval(0.05);
        assert!(low < 0.06 && 0.06 < high && low >= -1.0 && high <= 1.0, "{low} {high}");
        // Without copies configured, a copy's answer is not counted.
        let mut plain = ExcessTest::new(0.0);
        plain.add(false, Some(true));
        plain.add(true, None);
        assert!((plain.excess() - 0.5).abs() < 1e-12);
    }
}
