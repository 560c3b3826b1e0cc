//! Intervals around a metric: exact (Clopper-Pearson) for a proportion,
//! percentile bootstrap for everything else, seeded so a run is repeatable.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use statrs::distribution::{Beta, ContinuousCDF};

/// Resamples the bootstrap draws.
pub const RESAMPLES: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The exact two-sided interval of a proportion `k / n` at `confidence`.
pub fn clopper_pearson(k: u64, n: u64, confidence: f64) -> Interval {
    if n == 0 {
        return Interval { low: 0.0, high: 1.0 };
    }
    let alpha = 1.0 - confidence;
    let (k, n) = (k as f64, n as f64);
    let quantile = |a: f64, b: f64, p: f64| Beta::new(a, b).map(|d| d.inverse_cdf(p)).unwrap_or(f64::NAN);
    let low = if k == 0.0 { 0.0 } else { quantile(k, n - k + 1.0, alpha / 2.0) };
    let high = if k == n { 1.0 } else { quantile(k + 1.0, n - k, 1.0 - alpha / 2.0) };
    Interval { low, high }
}

/// The percentile bootstrap interval of `statistic` over `n` cases: each
/// resample is `n` case indices drawn with replacement. Resamples where the
/// statistic is undefined (NaN) are left out.
pub fn bootstrap(n: usize, confidence: f64, seed: u64, statistic: impl Fn(&[usize]) -> f64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(RESAMPLES);
    let mut sample = vec![0usize; n];
    for _ in 0..RESAMPLES {
        for slot in sample.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        let v = statistic(&sample);
        if v.is_finite() {
            values.push(v);
        }
    }
    if values.len() < RESAMPLES / 2 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    let at = |p: f64| values[((p * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Some(Interval { low: at(alpha / 2.0), high: at(1.0 - alpha / 2.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_published_values() {
        // 7 of 10 at 95%: [0.3475, 0.9333] (e.g. R's binom.test).
        let i = clopper_pearson(7, 10, 0.95);
        assert!((i.low - 0.3475).abs() < 1e-4 && (i.high - 0.9333).abs() < 1e-4, "{i:?}");
        let none = clopper_pearson(0, 20, 0.95);
        assert_eq!(none.low, 0.0);
        assert!((none.high - 0.1684).abs() < 1e-4, "{none:?}");
        assert_eq!(clopper_pearson(20, 20, 0.95).high, 1.0);
    }

    #[test]
    fn the_bootstrap_of_a_mean_covers_it_and_narrows_with_more_cases() {
        let values: Vec<f64> = (0..400).map(|i| f64::from(i % 10)).collect();
        let mean = |idx: &[usize]| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64;
        let all = bootstrap(values.len(), 0.95, 1, mean).unwrap();
        assert!(all.low < 4.5 && 4.5 < all.high, "{all:?}");
        let few = bootstrap(40, 0.95, 1, |idx| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64).unwrap();
        assert!(few.high - few.low > all.high - all.low);
        assert_eq!(bootstrap(values.len(), 0.95, 1, mean), Some(all), "seeded: the same interval every run");
    }
}
