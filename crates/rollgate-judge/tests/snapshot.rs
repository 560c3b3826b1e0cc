//! A judge stored mid-canary and restored continues the same test: the same
//! counts and e-values at once, and the same verdicts on the same ticks after.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_judge::external::ExternalReading;
use rollgate_judge::ratio::WeightCell;
use rollgate_judge::{ArmTick, Judge, JudgeConfig, JudgeState, Tick};

/// One second of a 5% canary whose error rate is `canary_errors`, from a seeded stream.
struct Second {
    weight: f64,
    canary: (u64, u64, Vec<u32>),
    baseline: (u64, u64, Vec<u32>),
    bad: [WeightCell; 1],
}

fn second(rng: &mut ChaCha8Rng, weight: f64, canary_errors: f64) -> Second {
    let mut arm = |requests: u64, error_rate: f64, slow: f64| {
        let errors = (0..requests).filter(|_| rng.random::<f64>() < error_rate).count() as u64;
        let latencies = (0..requests).map(|_| (1000.0 * slow * (1.0 + rng.random::<f64>())) as u32).collect();
        (requests, errors, latencies)
    };
    let canary = arm(10, canary_errors, 1.1);
    let baseline = arm(190, 0.01, 1.0);
    let bad = [WeightCell { weight, canary: u64::from(rng.random::<f64>() < 0.02), baseline: 1 }];
    Second { weight, canary, baseline, bad }
}

fn feed(judge: &mut Judge, at_ms: u64, s: &Second) {
    let arm = |a: &(u64, u64, Vec<u32>)| -> (u64, u64, Vec<u32>) { a.clone() };
    let (c, b) = (arm(&s.canary), arm(&s.baseline));
    let reading = ExternalReading { name: "gpu".into(), at_ms, canary: Ok(0.5), baseline: None };
    let tick = Tick {
        at_ms,
        weight: s.weight,
        canary: ArmTick {
            requests: c.0,
            errors: c.1,
            saturated: 0,
            latencies_us: &c.2,
            latency_population: c.0,
            ..ArmTick::default()
        },
        baseline: ArmTick {
            requests: b.0,
            errors: b.1,
            saturated: 0,
            latencies_us: &b.2,
            latency_population: b.0,
            ..ArmTick::default()
        },
        bad_outputs: &s.bad,
        complaints: &[],
        canary_health: Some(&[0, 1]),
        external: std::slice::from_ref(&reading),
    };
    judge.tick(&tick);
}

fn config() -> JudgeConfig {
    let mut plan = rollgate_core::plan::RollbackTriggers::default();
    plan.external.push(rollgate_core::plan::ExternalMetric {
        name: "gpu".into(),
        query: "gpu{version=\"{version}\"}".into(),
        max: Some(0.9),
        max_ratio: None,
        interval: "15s".parse().unwrap(),
    });
    let mut config = JudgeConfig::from_plan(&plan);
    config.min_baseline_samples = 500;
    config
}

#[test]
fn a_restored_judge_continues_the_same_test() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut judge = Judge::new(config());
    // Twelve minutes at 5% (past several e-process restarts and latency refreshes).
    for t in 0..720 {
        feed(&mut judge, t * 1000, &second(&mut rng, 0.05, 0.015));
    }
    let stored = serde_json::to_string(&judge.snapshot()).unwrap();
    let state: JudgeState = serde_json::from_str(&stored).unwrap();
    let mut restored = Judge::restore(config(), state).unwrap();
    assert_eq!(restored.report(), judge.report(), "the same counts, e-values and bounds right after restoring");
    assert_eq!(restored.now_ms(), judge.now_ms());

    // The canary turns bad: both judges see the same seconds and must agree throughout.
    for t in 720..1400 {
        let s = second(&mut rng, 0.05, 0.08);
        feed(&mut judge, t * 1000, &s);
        feed(&mut restored, t * 1000, &s);
        assert_eq!(restored.verdict(), judge.verdict(), "second {t}");
    }
    assert_eq!(restored.report(), judge.report());
    assert!(
        matches!(judge.verdict(), rollgate_judge::Verdict::Rollback { .. }),
        "the test could fail: the bad canary is caught ({:?})",
        judge.verdict()
    );
}

#[test]
fn a_snapshot_from_other_alternatives_is_refused() {
    let judge = Judge::new(JudgeConfig::default());
    let mut value = serde_json::to_value(judge.snapshot()).unwrap();
    value["errors"]["starts"][0]["log_likelihoods"] = serde_json::json!([0.0, 0.0]);
    let state: JudgeState = serde_json::from_value(value).unwrap();
    assert!(Judge::restore(JudgeConfig::default(), state).is_err());
}
