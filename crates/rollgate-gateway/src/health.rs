//! Whether an endpoint should get requests: active probes (`GET path`
//! every interval, with thresholds both ways) and passive ejection after
//! consecutive failures of real requests. State lives on the endpoint, so it
//! survives route-table swaps.

use crate::proxy::Gateway;
use crate::table::Endpoint;
use crate::upstream;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A process-wide monotonic origin for ejection deadlines kept in atomics.
fn now_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
pub struct EndpointHealth {
    origin: Instant,
    probed_healthy: AtomicBool,
    probe_failures: AtomicU32,
    probe_passes: AtomicU32,
    request_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
}

impl Default for EndpointHealth {
    fn default() -> Self {
        EndpointHealth {
            origin: Instant::now(),
            probed_healthy: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
            probe_passes: AtomicU32::new(0),
            request_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }
}

impl EndpointHealth {
    /// Passes its probes and is not ejected.
    pub fn usable(&self) -> bool {
        self.probed_healthy.load(Ordering::Relaxed) && !self.ejected()
    }

    pub fn probed_healthy(&self) -> bool {
        self.probed_healthy.load(Ordering::Relaxed)
    }

    /// Probes failed in a row, up to now.
    pub fn consecutive_probe_failures(&self) -> u32 {
        self.probe_failures.load(Ordering::Relaxed)
    }

    pub fn ejected(&self) -> bool {
        // 0: never ejected, or the ejection has run out. Every request asks,
        // so the clock is read only while an ejection is on.
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if until > now_ms(self.origin) {
            return true;
        }
        // Run out: forget it (unless another ejection has just begun).
        let _ = self.ejected_until_ms.compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        false
    }

    /// A real request ended: failures in a row eject the endpoint for a while.
    pub fn request_ended(&self, failed: bool, after: u32, eject_for: Duration) {
        if !failed {
            self.request_failures.store(0, Ordering::Relaxed);
            return;
        }
        if self.request_failures.fetch_add(1, Ordering::Relaxed) + 1 >= after.max(1) {
            self.request_failures.store(0, Ordering::Relaxed);
            let until =
                now_ms(self.origin).saturating_add(u64::try_from(eject_for.as_millis()).unwrap_or(u64::MAX)).max(1);
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(for_ms = eject_for.as_millis() as u64, "endpoint ejected after consecutive failures");
        }
    }

    /// A probe's result, with the thresholds that flip the state.
    pub fn probed(&self, ok: bool, unhealthy_after: u32, healthy_after: u32) {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            if self.probe_passes.fetch_add(1, Ordering::Relaxed) + 1 >= healthy_after.max(1) {
                self.probed_healthy.store(true, Ordering::Relaxed);
            }
        } else {
            self.probe_passes.store(0, Ordering::Relaxed);
            if self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1 >= unhealthy_after.max(1) {
                self.probed_healthy.store(false, Ordering::Relaxed);
            }
        }
    }
}

async fn probe(endpoint: &Endpoint, path: &str, timeout: Duration) -> bool {
    let Ok(uri) = upstream::target(endpoint, path) else { return false };
    let Ok(request) = Request::get(uri)
        .header(header::HOST, endpoint.host.clone())
        .body(Empty::new().map_err(|never| match never {}).boxed())
    else {
        return false;
    };
    let exchange = async {
        let (response, connection) = upstream::send(endpoint, request, timeout).await.ok()?;
        let ok = response.status().is_success();
        response.into_body().collect().await.ok()?;
        connection.release();
        Some(ok)
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten().unwrap_or(false)
}

/// Probes every endpoint of every service that asks for it, until `stop`;
/// a new table is probed at once (its services may ask for probes the last did not).
pub async fn check_forever(gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let current = gateway.table();
        let mut next = Duration::from_secs(5);
        let mut probes = Vec::new();
        for service in &current.services {
            let Some(check) = &service.health else { continue };
            next = next.min(check.interval);
            for endpoint in service.versions.iter().flat_map(|v| v.endpoints.iter()) {
                let (endpoint, check) = (endpoint.clone(), check.clone());
                probes.push(tokio::spawn(async move {
                    let ok = probe(&endpoint, &check.path, check.timeout).await;
                    endpoint.health.probed(ok, check.unhealthy_after, check.healthy_after);
                }));
            }
        }
        for p in probes {
            let _ = p.await;
        }
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = gateway.table_changed() => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Health whose clock has run for ten seconds, so that deadlines can lie in its past.
    fn ten_seconds_old() -> EndpointHealth {
        EndpointHealth { origin: Instant::now() - Duration::from_secs(10), ..EndpointHealth::default() }
    }

    #[test]
    fn an_ejection_lasts_its_time_and_is_forgotten_once_over() {
        let health = ten_seconds_old();
        health.request_ended(true, 2, Duration::from_secs(3600));
        assert!(health.usable(), "one failure of the two it takes");
        health.request_ended(true, 2, Duration::from_secs(3600));
        assert!(health.ejected() && !health.usable());

        let over = ten_seconds_old();
        over.request_ended(true, 1, Duration::ZERO);
        assert_ne!(over.ejected_until_ms.load(Ordering::Relaxed), 0);
        assert!(!over.ejected() && over.usable());
        assert_eq!(over.ejected_until_ms.load(Ordering::Relaxed), 0, "a past ejection is cleared");
        over.request_ended(true, 1, Duration::from_secs(3600));
        assert!(over.ejected(), "and a new one still takes effect");
    }
}
