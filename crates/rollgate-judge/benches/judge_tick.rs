//! The cost of judging: one tick for 1,000 concurrent canaries, each at 100
//! requests a second with a 5% canary (latencies, errors, feedback), after
//! ten minutes of history. Run with `cargo bench -p rollgate-judge`.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_judge::ratio::WeightCell;
use rollgate_judge::{ArmTick, Judge, JudgeConfig, Tick};
use std::hint::black_box;

struct Second {
    canary: Vec<u32>,
    baseline: Vec<u32>,
    canary_errors: u64,
    baseline_errors: u64,
}

fn second(rng: &mut ChaCha8Rng) -> Second {
    let latency = |rng: &mut ChaCha8Rng| 50_000 + rng.random_range(0..150_000u32);
    Second {
        canary: (0..5).map(|_| latency(rng)).collect(),
        baseline: (0..95).map(|_| latency(rng)).collect(),
        canary_errors: u64::from(rng.random::<f64>() < 0.05),
        baseline_errors: u64::from(rng.random::<f64>() < 0.95),
    }
}

fn tick<'a>(at_ms: u64, s: &'a Second, cells: &'a [WeightCell]) -> Tick<'a> {
    Tick {
        at_ms,
        weight: 0.05,
        canary: ArmTick {
            requests: 5,
            errors: s.canary_errors,
            saturated: 0,
            latencies_us: &s.canary,
            latency_population: 5,
            ..ArmTick::default()
        },
        baseline: ArmTick {
            requests: 95,
            errors: s.baseline_errors,
            saturated: 0,
            latencies_us: &s.baseline,
            latency_population: 95,
            ..ArmTick::default()
        },
        bad_outputs: cells,
        complaints: cells,
        canary_health: None,
        external: &[],
    }
}

fn judge_tick(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let seconds: Vec<Second> = (0..64).map(|_| second(&mut rng)).collect();
    let cells = [WeightCell { weight: 0.05, canary: 0, baseline: 2 }];
    let mut judges: Vec<Judge> = (0..1000).map(|_| Judge::new(JudgeConfig::default())).collect();
    let mut now_ms = 0;
    for _ in 0..600 {
        now_ms += 1000;
        for (i, judge) in judges.iter_mut().enumerate() {
            judge.tick(&tick(now_ms, &seconds[i % 64], &cells));
        }
    }
    c.bench_function("judge tick, 1000 canaries", |b| {
        b.iter(|| {
            now_ms += 1000;
            for (i, judge) in judges.iter_mut().enumerate() {
                black_box(judge.tick(&tick(now_ms, &seconds[i % 64], &cells)));
            }
        })
    });
}

criterion_group!(benches, judge_tick);
criterion_main!(benches);
