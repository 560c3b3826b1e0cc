//! What applications report about the two sides of a flag a plan rolls
//! out: for each evaluation they acted on, whether the flag was on, and how
//! the request went (failed, bad output, latency). The judge reads the
//! flag's rollout from here as it reads a model's canary from the gateway:
//! `on` is the canary arm, `off` the baseline.
//!
//! Held in memory by the process that receives the reports; the judge runs
//! in the same process.

use crate::dataplane::{Arm, ArmReading, ArmSource, Counters};
use rollgate_core::rollout::{FLAG_ON, flag_of};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use utoipa::ToSchema;

/// Latencies kept per side between two reads of the judge (more are counted, not kept).
const MAX_LATENCIES: usize = 100_000;

/// One request the application served behind a flag.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Whether the flag was on for this request (the new code path ran).
    pub enabled: bool,
    /// The request failed.
    #[serde(default)]
    pub error: bool,
    /// The answer was wrong or unusable (the quality trigger's input).
    #[serde(default)]
    pub bad_output: bool,
    /// The user complained about it.
    #[serde(default)]
    pub complaint: bool,
    /// How long the request took, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

#[derive(Default)]
struct Side {
    counters: Counters,
    latencies_us: Vec<u32>,
}

#[derive(Default)]
pub struct FlagOutcomes {
    sides: Mutex<HashMap<(String, bool), Side>>,
}

impl FlagOutcomes {
    pub fn record(&self, flag: &str, outcomes: &[Outcome]) {
        let mut sides = self.sides.lock().unwrap_or_else(PoisonError::into_inner);
        for o in outcomes {
            let side = sides.entry((flag.to_string(), o.enabled)).or_default();
            let c = &mut side.counters;
            c.requests += 1;
            c.errors += u64::from(o.error);
            c.bad_outputs += u64::from(o.bad_output);
            c.complaints += u64::from(o.complaint);
            if let Some(ms) = o.latency_ms.filter(|ms| ms.is_finite() && *ms >= 0.0)
                && side.latencies_us.len() < MAX_LATENCIES
            {
                side.latencies_us.push((ms * 1000.0).min(f64::from(u32::MAX)) as u32);
            }
        }
    }
}

impl ArmSource for FlagOutcomes {
    fn read_arm(&self, service: &str, version: &str, _arm: Arm) -> ArmReading {
        let Some(flag) = flag_of(service) else { return ArmReading::default() };
        let mut sides = self.sides.lock().unwrap_or_else(PoisonError::into_inner);
        let side = sides.entry((flag.to_string(), version == FLAG_ON)).or_default();
        let latencies_us = std::mem::take(&mut side.latencies_us);
        let latency_population = latencies_us.len() as u64;
        ArmReading { counters: side.counters, latencies_us, latency_population, ..ArmReading::default() }
    }

    fn counters(&self, service: &str, version: &str, _arm: Arm) -> Counters {
        let Some(flag) = flag_of(service) else { return Counters::default() };
        let sides = self.sides.lock().unwrap_or_else(PoisonError::into_inner);
        sides.get(&(flag.to_string(), version == FLAG_ON)).map(|side| side.counters).unwrap_or_default()
    }
}
