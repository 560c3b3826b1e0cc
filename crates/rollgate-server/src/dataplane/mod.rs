//! The server's one way to the traffic. The reconciler, the judge and
//! staging reach the data plane only through [`DataPlane`]: apply the desired
//! routing, read what a version's arm did, and how its endpoints' probes go.
//! The in-process gateway ([`InProcess`]) is the first implementation; an
//! nginx or Kubernetes Gateway API one would implement the same methods
//! without the controller changing.

mod in_process;

pub use in_process::InProcess;
pub use rollgate_core::measure::{Arm, Counters, History};

use rollgate_core::routing::Routing;
use rollgate_judge::{ArmTick, Samples};

/// What one arm of one version did: cumulative counters, and the latencies
/// recorded since the previous read of that arm (each handed out once).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmReading {
    pub counters: Counters,
    /// In microseconds: every finished request's, or a uniform sample.
    pub latencies_us: Vec<u32>,
    /// How many requests finished since the previous read (what the sample is of).
    pub latency_population: u64,
    /// A chat model's streamed answers since the previous read: times to first
    /// token and microseconds per output token, each a sample with its population.
    pub ttft: (Vec<u32>, u64),
    pub per_token: (Vec<u32>, u64),
}

impl ArmReading {
    /// This reading as the judge takes it, with `counted` (what happened since the previous tick).
    pub fn as_tick(&self, counted: &Counters) -> ArmTick<'_> {
        ArmTick {
            requests: counted.requests,
            errors: counted.errors,
            saturated: counted.saturated,
            latencies_us: &self.latencies_us,
            latency_population: self.latency_population,
            ttft: samples(&self.ttft),
            per_token: samples(&self.per_token),
        }
    }
}

fn samples((values_us, population): &(Vec<u32>, u64)) -> Samples<'_> {
    Samples { values_us, population: *population }
}

/// Where the judge reads what a canary and its baseline did: the data plane
/// for a model, what applications report for a flag.
pub trait ArmSource: Send + Sync {
    /// The counters and the samples since the previous read (taken: each is handed out once).
    fn read_arm(&self, service: &str, version: &str, arm: Arm) -> ArmReading;

    /// The counters alone, taking nothing away from whoever reads the samples.
    fn counters(&self, service: &str, version: &str, arm: Arm) -> Counters;
}

pub trait DataPlane: ArmSource {
    /// Routes as `routing` says from the next request on. Callers apply one
    /// routing at a time; nothing changes when it cannot be applied.
    fn apply(&self, routing: &Routing) -> Result<(), String>;

    /// Everything an arm of a version measured, read without taking anything
    /// away (the judge's latency samples stay): counters, latency at quantile
    /// `q`, and how many latencies were over `over`. For watching a version
    /// against its own record.
    fn history(&self, service: &str, version: &str, arm: Arm, q: f64, over: Option<std::time::Duration>) -> History;

    /// Whether the data plane routes `version` of `service` now, and so
    /// counts every request to it in its own series: the candidate's
    /// monitoring is instrumented before it has any traffic.
    fn measures(&self, service: &str, version: &str) -> bool;

    /// Failed probes in a row of each endpoint of a version, when the service is probed.
    fn probe_failures(&self, service: &str, version: &str) -> Option<Vec<u32>>;

    /// Requests still in flight to endpoint `url` of `service` once routing
    /// no longer sends it any; `None` while it still does. A rolling batch is
    /// drained by waiting for this to reach 0.
    fn in_flight_after_removal(&self, service: &str, url: &str) -> Option<usize>;

    /// Where clients reach the data plane (`http://HOST:PORT`): staging traffic goes there.
    fn url(&self) -> Option<&str>;
}
