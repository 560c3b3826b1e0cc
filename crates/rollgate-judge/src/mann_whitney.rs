//! The Mann-Whitney U test as Kayenta's NetflixACAJudge runs it
//! (canary-statistics.md §1): normal approximation with tie correction and a
//! ±0.5 continuity correction, the confidence interval of the location shift
//! by root-finding on the same statistic, and the Hodges–Lehmann estimate.
//! Used by the benchmark's Kayenta-like judge.

use statrs::distribution::{ContinuousCDF, Normal};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample (x).
    pub u: f64,
    /// Signed z of x against y, continuity-corrected towards zero.
    pub z: f64,
    pub p_two_sided: f64,
}

/// The test of x against y (no shift).
pub fn mann_whitney(x: &[f64], y: &[f64]) -> MannWhitney {
    let (u, z) = statistic(x, y, 0.0);
    MannWhitney { u, z, p_two_sided: 2.0 * standard_normal().sf(z.abs()) }
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// U of `x − shift` against `y`, and its continuity-corrected z.
fn statistic(x: &[f64], y: &[f64], shift: f64) -> (f64, f64) {
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let mut all: Vec<(f64, bool)> = x.iter().map(|v| (v - shift, true)).chain(y.iter().map(|&v| (v, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let (mut rank_sum_x, mut tie_term) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let ties = (j - i + 1) as f64;
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_x += mean_rank * all[i..=j].iter().filter(|(_, from_x)| *from_x).count() as f64;
        tie_term += ties * ties * ties - ties;
        i = j + 1;
    }
    let u = rank_sum_x - nx * (nx + 1.0) / 2.0;
    let total = nx + ny;
    let sigma = (nx * ny / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)))).sqrt();
    let centred = u - nx * ny / 2.0;
    let corrected = centred - 0.5 * centred.signum();
    let z = if sigma > 0.0 && centred != 0.0 { corrected / sigma } else { 0.0 };
    (u, z)
}

/// The shift x − y: a (1 − α) confidence interval and the Hodges–Lehmann estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub lower: f64,
    pub estimate: f64,
    pub upper: f64,
}

/// `None` when either sample is empty.
pub fn shift_interval(x: &[f64], y: &[f64], alpha: f64) -> Option<Shift> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let q = standard_normal().inverse_cdf(1.0 - alpha / 2.0);
    let min = |s: &[f64]| s.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |s: &[f64]| s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = (min(x) - max(y) - 1.0, max(x) - min(y) + 1.0);
    // z(shift) falls as the shift grows; each end is where it crosses its target.
    let crossing = |target: f64| {
        let (mut lo, mut hi) = range;
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if statistic(x, y, mid).1 > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    Some(Shift { lower: crossing(q), estimate: crossing(0.0), upper: crossing(-q) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_samples_lean_one_way_and_identical_ones_not_at_all() {
        // The comparison with scipy, ties included, is tests/oracles.rs.
        let x = [1.0, 2.0, 3.0];
        let y = [4.0, 5.0, 6.0];
        let t = mann_whitney(&x, &y);
        assert_eq!(t.u, 0.0);
        assert!(t.z < 0.0);
        let same = mann_whitney(&x, &x);
        assert_eq!(same.z, 0.0);
        assert!((same.p_two_sided - 1.0).abs() < 1e-12);
    }

    #[test]
    fn shift_interval_brackets_a_known_shift() {
        let y: Vec<f64> = (0..200).map(|i| (i as f64 * 0.618).fract()).collect();
        let x: Vec<f64> = y.iter().map(|v| v + 0.5).collect();
        let s = shift_interval(&x, &y, 0.02).unwrap();
        assert!(s.lower < 0.5 && 0.5 < s.upper, "{s:?}");
        assert!((s.estimate - 0.5).abs() < 0.02, "{s:?}");
    }
}
