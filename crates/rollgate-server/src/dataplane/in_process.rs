//! The gateway running in this process as the data plane.

use super::{Arm, ArmReading, ArmSource, Counters, DataPlane, History};
use rollgate_core::routing::Routing;
use rollgate_gateway::Gateway;
use std::sync::Arc;
use std::time::Duration;

pub struct InProcess {
    gateway: Arc<Gateway>,
    url: String,
}

impl InProcess {
    /// The gateway, and the URL it listens on.
    pub fn new(gateway: Arc<Gateway>, url: String) -> InProcess {
        InProcess { gateway, url }
    }
}

impl ArmSource for InProcess {
    fn read_arm(&self, service: &str, version: &str, arm: Arm) -> ArmReading {
        let series = self.gateway.stats.series(service, version, arm);
        let (latencies_us, latency_population) = series.drain_latencies();
        ArmReading {
            counters: series.counters(),
            latencies_us,
            latency_population,
            ttft: series.drain_time_to_first_token(),
            per_token: series.drain_per_token(),
        }
    }

    fn counters(&self, service: &str, version: &str, arm: Arm) -> Counters {
        self.gateway.stats.series(service, version, arm).counters()
    }
}

impl DataPlane for InProcess {
    fn apply(&self, routing: &Routing) -> Result<(), String> {
        self.gateway.apply(routing).map_err(|e| e.to_string())
    }

    fn history(&self, service: &str, version: &str, arm: Arm, q: f64, over: Option<Duration>) -> History {
        let over_us = over.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.gateway.stats.series(service, version, arm).history(q, over_us)
    }

    fn measures(&self, service: &str, version: &str) -> bool {
        self.gateway.table().service(service).is_some_and(|s| s.version_index(version).is_some())
    }

    fn probe_failures(&self, service: &str, version: &str) -> Option<Vec<u32>> {
        let table = self.gateway.table();
        let service = table.service(service)?;
        service.health.as_ref()?;
        let version = service.versions.get(service.version_index(version)?)?;
        Some(version.endpoints.iter().map(|e| e.health.consecutive_probe_failures()).collect())
    }

    fn in_flight_after_removal(&self, service: &str, url: &str) -> Option<usize> {
        self.gateway.in_flight_after_removal(service, url)
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }
}
