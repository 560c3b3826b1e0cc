//! The shadow gate's benchmark: seeded streams of paired requests where the
//! candidate disagrees with production at the noise floor plus a known
//! excess, and production's copy at the noise floor. Tallies how often the
//! gate blocks, passes or is still undecided, and after how many pairs.

use crate::shadow::{ExcessTest, ShadowDecision};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One cell of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShadowCell {
    /// How often production disagrees with itself.
    pub noise: f64,
    /// How much more often the candidate disagrees with production.
    pub excess: f64,
}

/// What the gate did over the cell's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowOutcome {
    pub cell: ShadowCell,
    pub runs: u64,
    pub blocked: u64,
    pub passed: u64,
    /// Pairs seen at each decision, sorted (blocks and passes alike).
    pub decided_at: Vec<u64>,
}

impl ShadowOutcome {
    pub fn median_pairs(&self) -> Option<u64> {
        self.decided_at.get(self.decided_at.len() / 2).copied()
    }
}

/// The gate's settings in the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShadowSettings {
    pub bound: f64,
    pub alpha: f64,
    pub min_pairs: u64,
    /// A run stops undecided after this many pairs.
    pub max_pairs: u64,
    /// The gate is looked at after every this many pairs (as a server looks once a tick).
    pub look_every: u64,
    /// The share of pairs with a copy to production.
    pub noise_share: f64,
}

/// Runs `runs` seeded streams of `cell` until the gate decides or `max_pairs` pass.
pub fn run_cell(cell: ShadowCell, settings: &ShadowSettings, runs: u64, seed: u64) -> ShadowOutcome {
    let mut outcome = ShadowOutcome { cell, runs, blocked: 0, passed: 0, decided_at: Vec::new() };
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(super::world::splitmix64(seed ^ run));
        let mut test = ExcessTest::new(settings.noise_share);
        let candidate_rate = (cell.noise + cell.excess).min(1.0);
        while test.pairs() < settings.max_pairs {
            for _ in 0..settings.look_every {
                let candidate = rng.random::<f64>() < candidate_rate;
                let noise = rng.random::<f64>() < cell.noise;
                let copied = rng.random::<f64>() < settings.noise_share;
                test.add(candidate, copied.then_some(noise));
            }
            match test.report(settings.bound, settings.alpha, settings.min_pairs).decision {
                ShadowDecision::Block => {
                    outcome.blocked += 1;
                    outcome.decided_at.push(test.pairs());
                    break;
                }
                ShadowDecision::Pass => {
                    outcome.passed += 1;
                    outcome.decided_at.push(test.pairs());
                    break;
                }
                ShadowDecision::NotYet { .. } => {}
            }
        }
    }
    outcome.decided_at.sort_unstable();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_candidates_are_rarely_blocked_and_clear_excess_always_is() {
        let settings = ShadowSettings {
            bound: 0.02,
            alpha: 0.05,
            min_pairs: 200,
            max_pairs: 5000,
            look_every: 50,
            noise_share: 1.0,
        };
        let aa = run_cell(ShadowCell { noise: 0.05, excess: 0.0 }, &settings, 200, 1);
        assert!(aa.blocked <= 4, "A/A blocked {} of 200", aa.blocked);
        assert!(aa.passed >= 150, "A/A passes: {} of 200", aa.passed);
        let bad = run_cell(ShadowCell { noise: 0.05, excess: 0.10 }, &settings, 50, 2);
        assert_eq!(bad.blocked, 50, "{bad:?}");
    }
}
