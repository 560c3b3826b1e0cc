//! Properties of the judge's statistics over random inputs, and its absolute
//! triggers (health checks, saturation) at and around their bounds.

use proptest::prelude::*;
use rollgate_judge::dirichlet::{CONCENTRATION, log_bayes_factor};
use rollgate_judge::mann_whitney::mann_whitney;
use rollgate_judge::ratio::{EXCEEDANCE_MULTIPLIERS, RATE_MULTIPLIERS, RatioTest};
use rollgate_judge::{ArmTick, Judge, JudgeConfig, Tick, Verdict};

fn weight() -> impl Strategy<Value = f64> {
    (1u32..999).prop_map(|w| f64::from(w) / 1000.0)
}

/// log of the e-value (the e-value itself overflows f64 on overwhelming evidence).
fn log_e(limit: f64, weight: f64, canary: u64, baseline: u64) -> f64 {
    let mut test = RatioTest::new(limit, &RATE_MULTIPLIERS);
    test.add(weight, canary, baseline);
    test.log_e()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// More canary events are more evidence against the canary; more baseline events, less.
    #[test]
    fn the_e_value_is_non_negative_and_monotone_in_the_evidence(
        w in weight(), c in 0u64..400, b in 0u64..4000, limit in prop_oneof![Just(1.0), Just(1.25), Just(2.0)]
    ) {
        let e = log_e(limit, w, c, b);
        prop_assert!(!e.is_nan() && e < f64::INFINITY, "log e = {e}: e must be a non-negative number");
        prop_assert!(log_e(limit, w, c + 1, b) >= e - 1e-9, "one more canary event lowered e");
        prop_assert!(log_e(limit, w, c, b + 1) <= e + 1e-9, "one more baseline event raised e");
    }

    /// Events split into batches, or added at once, are the same evidence.
    #[test]
    fn the_e_value_does_not_depend_on_how_events_are_batched(w in weight(), c in 0u64..200, b in 0u64..2000, cut in 0u64..200) {
        let (c1, b1) = (cut.min(c), (cut * 10).min(b));
        let mut split = RatioTest::new(2.0, &RATE_MULTIPLIERS);
        split.add(w, c1, b1);
        split.add(w, c - c1, b - b1);
        let whole = log_e(2.0, w, c, b);
        prop_assert!((split.log_e() - whole).abs() < 1e-9, "{} vs {whole}", split.log_e());
    }

    /// The two-sided equal-rates e-value does not care which arm is called the canary.
    #[test]
    fn the_dirichlet_mixture_is_invariant_to_relabelling_the_arms(w in weight(), c in 0u64..500, b in 0u64..500) {
        let one = log_bayes_factor(&[b, c], &[1.0 - w, w], CONCENTRATION);
        let other = log_bayes_factor(&[c, b], &[w, 1.0 - w], CONCENTRATION);
        prop_assert!((one - other).abs() < 1e-9, "{one} vs {other}");
    }

    /// U(x, y) + U(y, x) = |x|·|y|, and z changes sign with the labels.
    #[test]
    fn mann_whitney_is_antisymmetric_in_its_samples(
        x in prop::collection::vec(0u32..50, 1..40), y in prop::collection::vec(0u32..50, 1..40)
    ) {
        let (x, y): (Vec<f64>, Vec<f64>) = (x.iter().map(|&v| f64::from(v)).collect(), y.iter().map(|&v| f64::from(v)).collect());
        let (xy, yx) = (mann_whitney(&x, &y), mann_whitney(&y, &x));
        prop_assert!((xy.u + yx.u - (x.len() * y.len()) as f64).abs() < 1e-9);
        prop_assert!((xy.z + yx.z).abs() < 1e-9 && (xy.p_two_sided - yx.p_two_sided).abs() < 1e-12);
    }
}

#[test]
fn the_exceedance_test_at_its_null_has_an_e_value_at_most_one_in_expectation() {
    // Exact expectation over the binomial law at the boundary (share = weight): E[e] ≤ 1.
    let (w, n) = (0.2_f64, 60u64);
    let mut expected = 0.0;
    for c in 0..=n {
        let ln_choose = (1..=c).map(|k| ((n - c + k) as f64).ln() - (k as f64).ln()).sum::<f64>();
        let p = (ln_choose + c as f64 * w.ln() + (n - c) as f64 * (1.0 - w).ln()).exp();
        let mut test = RatioTest::new(1.0, &EXCEEDANCE_MULTIPLIERS);
        test.add(w, c, n - c);
        expected += p * test.log_e().exp();
    }
    assert!(expected <= 1.0 + 1e-9, "E[e] = {expected}");
}

/// Feeds one second of a healthy 25% canary: each canary endpoint's failed
/// probes in a row, and `saturated` of its 100 requests refused for capacity.
fn feed(judge: &mut Judge, at_s: u64, probe_failures: &[u32], saturated: u64) -> Verdict {
    let arm = |requests, saturated| ArmTick {
        requests,
        errors: 0,
        saturated,
        latencies_us: &[],
        latency_population: 0,
        ..ArmTick::default()
    };
    let tick = Tick {
        at_ms: at_s * 1000,
        weight: 0.25,
        canary: arm(100, saturated),
        baseline: arm(300, 0),
        bad_outputs: &[],
        complaints: &[],
        canary_health: Some(probe_failures),
        external: &[],
    };
    judge.tick(&tick).clone()
}

#[test]
fn health_checks_roll_back_only_when_every_canary_endpoint_is_failing_enough() {
    let limit = JudgeConfig::default().health_check_failures;
    let mut judge = Judge::new(JudgeConfig::default());
    for (t, failures) in [(1, vec![limit - 1, limit - 1]), (2, vec![limit, limit - 1]), (3, vec![limit + 5, 0])] {
        let verdict = feed(&mut judge, t, &failures, 0);
        assert!(!matches!(verdict, Verdict::Rollback { .. }), "{failures:?}: {verdict:?}");
    }
    let verdict = feed(&mut judge, 4, &[limit, limit], 0);
    assert!(matches!(verdict, Verdict::Rollback { ref trigger, .. } if trigger == "health_checks"), "{verdict:?}");
}

#[test]
fn saturation_rolls_back_only_above_its_share_of_the_last_minute() {
    let max = JudgeConfig::default().max_saturation;
    let at_the_bound = (100.0 * max) as u64;
    let mut judge = Judge::new(JudgeConfig::default());
    for t in 1..=90 {
        let verdict = feed(&mut judge, t, &[0], at_the_bound);
        assert!(!matches!(verdict, Verdict::Rollback { .. }), "second {t} at the bound: {verdict:?}");
    }
    // One minute well over the bound is a rollback, with its numbers.
    let mut fired = None;
    for t in 91..=160 {
        if let Verdict::Rollback { trigger, reason } = feed(&mut judge, t, &[0], at_the_bound * 3) {
            fired = Some((t, trigger, reason));
            break;
        }
    }
    let (t, trigger, reason) = fired.expect("saturation over its bound is caught");
    assert_eq!(trigger, "saturation");
    assert!(t <= 150 && reason.contains("in the last minute"), "at {t}: {reason}");
}
