//! The Dirichlet-multinomial mixture Bayes factor of Lindon & Malek
//! (canary-statistics.md §2.2): an e-value against "the arms' shares of
//! events equal their allocation θ0", i.e. canary and baseline rates are the
//! same. Two-sided, so it also notices a canary that is *better*; the judge
//! reports it beside the one-sided triggers (`equal_rates_e`), never acts on it. Per traffic step the allocation
//! is constant; the product of the steps' factors is still an e-process.

use statrs::function::gamma::ln_gamma;

/// Prior concentration: α0 = k·θ0, k = 100 as in savvi and seqabpy.
pub const CONCENTRATION: f64 = 100.0;

/// log BF for `counts` of events per arm under allocation `theta0` (same length, summing to 1).
pub fn log_bayes_factor(counts: &[u64], theta0: &[f64], k: f64) -> f64 {
    let n: f64 = counts.iter().map(|&x| x as f64).sum();
    let mut log_bf = ln_gamma(k) - ln_gamma(k + n);
    for (&x, &theta) in counts.iter().zip(theta0) {
        let x = x as f64;
        log_bf += ln_gamma(k * theta + x) - ln_gamma(k * theta) - x * theta.ln();
    }
    log_bf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p_value(counts: &[u64], theta0: &[f64]) -> f64 {
        (1.0 / log_bayes_factor(counts, theta0, CONCENTRATION).exp()).min(1.0)
    }

    #[test]
    fn research_note_test_vectors() {
        // canary-statistics.md §2.2, verified there with scipy (k = 100).
        let log_bf = log_bayes_factor(&[150, 60], &[0.8, 0.2], CONCENTRATION);
        assert!((log_bf - 2.402297).abs() < 1e-6, "{log_bf}");
        assert!((p_value(&[150, 60], &[0.8, 0.2]) - 0.0905098).abs() < 1e-6);
        assert!((p_value(&[980, 20], &[0.99, 0.01]) - 0.131273).abs() < 1e-6);
        let log_bf = log_bayes_factor(&[970, 30], &[0.99, 0.01], CONCENTRATION);
        assert!((log_bf - 10.517534).abs() < 1e-6, "{log_bf}");
        assert!((p_value(&[970, 30], &[0.99, 0.01]) - 2.70578e-5).abs() < 1e-9);
    }

    #[test]
    fn no_events_no_evidence() {
        assert!(log_bayes_factor(&[0, 0], &[0.95, 0.05], CONCENTRATION).abs() < 1e-12);
    }
}
