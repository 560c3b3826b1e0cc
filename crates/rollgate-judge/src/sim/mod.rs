//! The judge benchmark (canary-statistics.md §4): seeded simulations of
//! canary rollouts in which every judge sees the same stream, tallied into
//! false-rollback rates, missed faults, time to detect and harm. Pure: the
//! caller decides how to spread cells over threads.

pub mod judges;
pub mod report;
pub mod scenario;
pub mod world;

use crate::config::JudgeConfig;
use judges::{IntervalCheck, Kayenta, Oracle, Rollgate, SimJudge};
use scenario::{Scenario, ScenarioFile};
use serde::Serialize;
use world::{World, splitmix64};

/// The research note's master seed.
pub const DEFAULT_SEED: u64 = 0xC0FFEE;

/// The judges raced, in table order.
pub const JUDGES: [&str; 6] = ["rollgate", "flagger-1m-x5", "argo-5m-fl3", "argo-1m-fl0", "kayenta-mw", "oracle-sprt"];

fn judges(config: &JudgeConfig) -> Vec<Box<dyn SimJudge>> {
    let (e, l) = (config.error_ratio, config.latency_ratio);
    vec![
        Box::new(Rollgate::new(config.clone())),
        Box::new(IntervalCheck::flagger(e, l)),
        Box::new(IntervalCheck::argo(300, 3, e, l)),
        Box::new(IntervalCheck::argo(60, 0, e, l)),
        Box::new(Kayenta::new(e, l)),
        Box::new(Oracle::new(config.clone())),
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
    let mut world =
        World::new(&file.settings, scenario, spec.rate, spec.drift, splitmix64(mixed), config.latency_ratio);
    let mut racers = judges(config);
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
                result.detected_after_s = Some(tick.t.saturating_sub(scenario.onset_s) + 1);
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
