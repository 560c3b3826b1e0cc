//! The shadow gate: does the candidate disagree with production more than
//! production disagrees with itself, by more than the plan allows?
//!
//! Models are not deterministic (an LLM at temperature 0 under batching
//! differs from itself), so a share of mirrored requests also goes to a second
//! copy of production. For such a request the judge sees two facts: whether
//! the candidate's answer disagrees with production's (x) and whether the
//! copy's does (n). D = x − n lies in {−1, 0, 1} and its mean is the excess
//! disagreement p_candidate − p_noise. Without a noise copy (a deterministic
//! model, or none configured) n is taken as 0.
//!
//! H0 "excess ≤ δ" is tested with a betting e-process on Y = (D + 1)/2 ∈
//! [0, 1] (Waudby-Smith & Ramdas): K(λ) = Π (1 + λ(Y − m)), m = (1 + δ)/2, a
//! nonnegative supermartingale under H0 for every λ in [0, 1/m); the mixture
//! over a grid of λ is one too, so it may be looked at after every pair and the
//! chance of ever blocking a candidate within δ stays at most α. The same
//! construction the other way bounds the excess from above; together they give
//! a confidence sequence, and the gate passes once its upper end is within δ.
//! Y takes three values, so every product is a function of three counts.

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExcessTest {
    /// Pairs with D = −1, 0, +1 (the copy disagreed alone; both or neither; the candidate alone).
    pub counts: [u64; 3],
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
    pub decision: ShadowDecision,
}

impl ExcessTest {
    /// One paired request: whether the candidate disagreed with production,
    /// and whether production's copy did (`None`: no copy was asked).
    pub fn add(&mut self, candidate_disagrees: bool, noise_disagrees: Option<bool>) {
        let d = i8::from(candidate_disagrees) - i8::from(noise_disagrees.unwrap_or(false));
        self.counts[usize::try_from(d + 1).unwrap_or(1)] += 1;
    }

    pub fn pairs(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// log K of H0 "E[Y] ≤ m": a mixture of bets on Y above m.
    fn log_e_below(&self, m: f64) -> f64 {
        let ys = [0.0, 0.5, 1.0];
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
        let ys = [0.0, 0.5, 1.0];
        let per_bet: Vec<f64> = BETS
            .iter()
            .map(|share| {
                let lambda = share / (1.0 - m);
                self.counts.iter().zip(ys).map(|(&n, y)| n as f64 * (1.0 - lambda * (y - m)).ln()).sum()
            })
            .collect();
        log_mean_exp(&per_bet)
    }

    /// The confidence sequence for the excess at level 1 − α (α/2 each side).
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        let threshold = (2.0 / alpha).ln();
        // Rejected "E[Y] ≤ m" for m below `low`; rejected "E[Y] ≥ m" for m above `high`.
        let low = bisect(|m| self.log_e_below(m) >= threshold, true);
        let high = bisect(|m| self.log_e_above(m) >= threshold, false);
        (2.0 * low - 1.0, 2.0 * high - 1.0)
    }

    /// The gate at level α (at most α of candidates within `bound` are ever
    /// blocked), once `min_pairs` have been seen.
    pub fn report(&self, bound: f64, alpha: f64, min_pairs: u64) -> ExcessReport {
        let pairs = self.pairs();
        let m = (1.0 + bound) / 2.0;
        let log_e = self.log_e_below(m);
        let (low, high) = self.interval(alpha);
        let excess = if pairs == 0 { 0.0 } else { (self.counts[2] as f64 - self.counts[0] as f64) / pairs as f64 };
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

    fn test_with(minus: u64, zero: u64, plus: u64) -> ExcessTest {
        ExcessTest { counts: [minus, zero, plus] }
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
        let empty = ExcessTest::default().report(0.02, 0.05, 0);
        assert!((empty.e_value - 1.0).abs() < 1e-12);
        assert_eq!((empty.low, empty.high), (-1.0, 1.0));
    }
}
