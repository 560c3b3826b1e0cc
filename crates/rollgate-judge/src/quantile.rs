//! Time-uniform confidence bounds on a quantile of one arm's latency
//! (Howard & Ramdas; canary-statistics.md §2.4), from the one-sided
//! beta-binomial mixture. Valid for independent draws within an arm, so the
//! judge restarts them at every traffic step and shows them beside the
//! latency trigger (which is the test that decides).

use hdrhistogram::Histogram;
use serde::Serialize;
use statrs::function::beta::{beta_reg, ln_beta};

/// log M⁺_t(C; p): evidence that more than a share p of t draws lie below
/// the quantile, from C "successes" (draws ≤ the candidate value).
/// `t_opt` is the sample size the mixture is tuned for, `alpha_opt` its level.
pub fn log_mixture(successes: u64, trials: u64, p: f64, t_opt: f64, alpha_opt: f64) -> f64 {
    let (c, t) = (successes as f64, trials as f64);
    let l = (1.0 / (2.0 * alpha_opt)).ln();
    let v_opt = p * (1.0 - p) * t_opt;
    let rho_star = v_opt / (2.0 * l + (1.0 + 2.0 * l).ln());
    let r = (rho_star - p * (1.0 - p)).max(1e-3 * p * (1.0 - p));
    let (a, b) = (r / (1.0 - p), r / p);
    ln_beta(a + c, b + t - c) + beta_reg(b + t - c, a + c, 1.0 - p).ln()
        - ln_beta(a, b)
        - beta_reg(b, a, 1.0 - p).ln()
        - c * p.ln()
        - (t - c) * (1.0 - p).ln()
}

/// k*(t; p, α): the smallest count C whose mixture reaches 1/α, if any.
pub fn critical_count(trials: u64, p: f64, alpha: f64, t_opt: f64) -> Option<u64> {
    let threshold = (1.0 / alpha).ln();
    if trials == 0 || log_mixture(trials, trials, p, t_opt, alpha) < threshold {
        return None;
    }
    let (mut lo, mut hi) = (0u64, trials);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if log_mixture(mid, trials, p, t_opt, alpha) >= threshold {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// Bounds on the `p` quantile of the values in `histogram`, at level 1 − 2α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuantileBounds {
    pub quantile: f64,
    pub samples: u64,
    pub lower_us: Option<u64>,
    pub upper_us: Option<u64>,
}

pub fn quantile_bounds(histogram: &Histogram<u32>, p: f64, alpha: f64, t_opt: f64) -> QuantileBounds {
    let t = histogram.len();
    // UCB: the k*-th smallest value (rounded up to its bucket's top, to stay conservative).
    let upper = critical_count(t, p, alpha, t_opt)
        .and_then(|k| nth_smallest(histogram, k))
        .map(|v| histogram.highest_equivalent(v));
    // LCB: the (t − k*(t; 1−p) + 1)-th smallest, by the same construction on the other side.
    let lower = critical_count(t, 1.0 - p, alpha, t_opt)
        .and_then(|k| (t + 1).checked_sub(k).filter(|&i| i >= 1))
        .and_then(|i| nth_smallest(histogram, i))
        .map(|v| histogram.lowest_equivalent(v));
    QuantileBounds { quantile: p, samples: t, lower_us: lower, upper_us: upper }
}

/// The n-th smallest recorded value (1-based), at its bucket's value.
fn nth_smallest(histogram: &Histogram<u32>, n: u64) -> Option<u64> {
    let mut seen = 0u64;
    for bucket in histogram.iter_recorded() {
        seen += bucket.count_at_value() as u64;
        if seen >= n {
            return Some(bucket.value_iterated_to());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn research_note_test_vectors() {
        // canary-statistics.md §2.4: p = 0.99, t = 1000, t_opt = 1000, α = α_opt = 0.025.
        let at_997 = log_mixture(997, 1000, 0.99, 1000.0, 0.025);
        let at_998 = log_mixture(998, 1000, 0.99, 1000.0, 0.025);
        assert!((at_997 - 2.7016087159).abs() < 1e-8, "{at_997}");
        assert!((at_998 - 3.9536013578).abs() < 1e-8, "{at_998}");
        assert_eq!(critical_count(1000, 0.99, 0.025, 1000.0), Some(998));
    }

    #[test]
    fn minimum_samples_for_a_finite_p99_bound() {
        // §2.4: 459 (t_opt 500), 526 (t_opt 1000), 843 (t_opt 5000) at α = 0.025.
        for (t_opt, minimum) in [(500.0, 459), (1000.0, 526), (5000.0, 843)] {
            assert!(critical_count(minimum - 1, 0.99, 0.025, t_opt).is_none(), "t_opt {t_opt}");
            assert!(critical_count(minimum, 0.99, 0.025, t_opt).is_some(), "t_opt {t_opt}");
        }
    }

    #[test]
    fn bounds_bracket_the_true_quantile_of_uniform_values() {
        let mut histogram = Histogram::<u32>::new_with_bounds(1, 10_000_000, 2).unwrap();
        for v in 1..=10_000u64 {
            histogram.record(v * 100).unwrap();
        }
        let b = quantile_bounds(&histogram, 0.99, 0.025, 1000.0);
        let (lower, upper) = (b.lower_us.unwrap(), b.upper_us.unwrap());
        assert!(lower <= 990_000 && 990_000 <= upper, "{lower} <= 990000 <= {upper}");
        assert!(upper < 1_000_000 && lower > 970_000, "tight with 10000 samples: {lower}..{upper}");
    }
}
