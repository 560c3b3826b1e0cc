//! The judge benchmark (canary-statistics.md §4): seeded simulations of
//! canary rollouts in which every judge sees the same stream, tallied into
//! false-rollback rates, missed faults, time to detect and harm. Pure: the
//! caller decides how to spread cells over threads.

pub mod judges;
pub mod report;
pub mod scenario;
pub mod shadow;
pub mod world;

use crate::config::JudgeConfig;
use judges::{IntervalCheck, Kayenta, Oracle, OracleUnknownOnset, Rollgate, SimJudge};
use scenario::{Scenario, ScenarioFile};
use serde::Serialize;
use world::{World, splitmix64};

/// The research note's master seed.
pub const DEFAULT_SEED: u64 = 0xC0FFEE;

/// The judges raced, in table order: rollgate, the anchors, the oracles.
pub const JUDGES: [&str; 7] =
    ["rollgate", "flagger-1m-x5", "argo-5m-fl3", "argo-1m-fl0", "kayenta-mw", "oracle-sprt", "oracle-no-onset"];
/// Indices in [`JUDGES`] of the anchors' judges.
pub const ANCHORS: std::ops::Range<usize> = 1..5;
/// Index in [`JUDGES`] of the oracle that knows the fault and its onset.
pub const ORACLE: usize = 5;
/// Index in [`JUDGES`] of the oracle that knows the fault but not its onset.
pub const ORACLE_NO_ONSET: usize = 6;

fn judges(config: &JudgeConfig, horizon_s: u64) -> Vec<Box<dyn SimJudge>> {
    let (e, l) = (config.error_ratio, config.latency_ratio);
    vec![
        Box::new(Rollgate::new(config.clone())),
        Box::new(IntervalCheck::flagger(e, l)),
        Box::new(IntervalCheck::argo(300, 3, e, l)),
        Box::new(IntervalCheck::argo(60, 0, e, l)),
        Box::new(Kayenta::new(e, l)),
        Box::new(Oracle::new(config.clone())),
        Box::new(OracleUnknownOnset::new(config.clone(), horizon_s)),
    ]
}

/// One scenario under one drift condition at one rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSpec {
    pub scenario: usize,
    pub drift: bool,
    pub rate: u32,
}

/// Every cell of a scenario file, in report order.
pub fn cells(file: &ScenarioFile) -> Vec<CellSpec> {
    let mut out = Vec::new();
    for (i, sc) in file.scenarios.iter().enumerate() {
        for drift in sc.drift_conditions() {
            for &rate in &file.settings.rates {
                out.push(CellSpec { scenario: i, drift, rate });
            }
        }
    }
    out
}

/// What one judge did in one run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RunResult {
    /// Seconds from the fault's onset to the rollback (from the start for faultless scenarios).
    pub detected_after_s: Option<u64>,
    /// Rolled back before a late fault began: a false rollback, not a detection.
    pub rolled_back_before_onset: bool,
    /// Canary requests served from the onset to the rollback.
    pub canary_requests: u64,
    /// Expected excess bad canary responses served before the rollback (or the end).
    pub harm: f64,
}

/// Runs one seeded canary and returns each judge's result, in [`JUDGES`] order.
pub fn run_once(file: &ScenarioFile, spec: CellSpec, run: u64, seed: u64, config: &JudgeConfig) -> Vec<RunResult> {
    let scenario: &Scenario = &file.scenarios[spec.scenario];
    let mixed =
        seed ^ ((spec.scenario as u64) << 32) ^ (u64::from(spec.rate) << 48) ^ (u64::from(spec.drift) << 62) ^ run;
    // A chat scenario's judges run the token triggers, as a chat service's do.
    let config = &config.clone().judging_tokens(scenario.chat);
    let mut world =
        World::new(&file.settings, scenario, spec.rate, spec.drift, splitmix64(mixed), config.latency_ratio)
            .with_token_limits(config);
    let mut racers = judges(config, file.settings.horizon_s());
    let mut results = vec![RunResult::default(); racers.len()];
    let mut decided = vec![false; racers.len()];
    while let Some(tick) = world.next_tick() {
        let since_onset = tick.t >= scenario.onset_s;
        for ((judge, result), done) in racers.iter_mut().zip(results.iter_mut()).zip(decided.iter_mut()) {
            if *done {
                continue;
            }
            if since_onset {
                result.canary_requests += tick.canary.requests;
            }
            result.harm += tick.truth.harm;
            if judge.observe(tick) {
                *done = true;
                match tick.t.checked_sub(scenario.onset_s) {
                    Some(after) => result.detected_after_s = Some(after + 1),
                    None => result.rolled_back_before_onset = true,
                }
            }
        }
        if decided.iter().all(|d| *d) {
            break;
        }
    }
    results
}

/// The runs of one cell, per judge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tally {
    pub results: Vec<Vec<RunResult>>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally { results: vec![Vec::new(); JUDGES.len()] }
    }

    pub fn add(&mut self, run: Vec<RunResult>) {
        for (mine, r) in self.results.iter_mut().zip(run) {
            mine.push(r);
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

/// Runs a whole cell: `runs` seeded runs.
pub fn run_cell(file: &ScenarioFile, spec: CellSpec, runs: u64, seed: u64, config: &JudgeConfig) -> Tally {
    let mut tally = Tally::new();
    for run in 0..runs {
        tally.add(run_once(file, spec, run, seed, config));
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenario::{BUILT_IN, parse};

    fn cell(file: &ScenarioFile, id: &str, rate: u32) -> CellSpec {
        let scenario = file.scenarios.iter().position(|s| s.id == id).unwrap();
        CellSpec { scenario, drift: false, rate }
    }

    #[test]
    fn a_rollback_before_a_late_fault_begins_is_not_a_detection() {
        let file = parse(BUILT_IN).unwrap();
        // Argo with failureLimit 0 at 20 req/s rolls back almost every healthy canary within minutes.
        let argo = JUDGES.iter().position(|j| *j == "argo-1m-fl0").unwrap();
        let tally = run_cell(&file, cell(&file, "P9", 20), 5, DEFAULT_SEED, &JudgeConfig::default());
        let early: Vec<&RunResult> = tally.results[argo].iter().filter(|r| r.rolled_back_before_onset).collect();
        assert!(!early.is_empty(), "argo-1m-fl0 rolled back no healthy P9 canary before minute 15");
        assert!(early.iter().all(|r| r.detected_after_s.is_none()), "{early:?}");
    }

    #[test]
    fn not_knowing_the_onset_costs_even_an_oracle_time() {
        let file = parse(BUILT_IN).unwrap();
        let tally = run_cell(&file, cell(&file, "P9", 1000), 9, DEFAULT_SEED, &JudgeConfig::default());
        let median = |judge: usize| {
            let mut times: Vec<u64> = tally.results[judge].iter().filter_map(|r| r.detected_after_s).collect();
            assert_eq!(times.len(), 9, "{} missed a fault of errors x5 at 1000 req/s", JUDGES[judge]);
            times.sort_unstable();
            times[4]
        };
        let (knows_onset, guesses_onset) = (median(ORACLE), median(ORACLE_NO_ONSET));
        assert!(guesses_onset > knows_onset, "{guesses_onset} s without the onset, {knows_onset} s with it");
    }
}
