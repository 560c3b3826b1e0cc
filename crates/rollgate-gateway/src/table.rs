//! The route table: which service a request belongs to, which version it
//! goes to, on which endpoint. Immutable once built; the gateway swaps in a
//! new one atomically, so a change applies to every request that starts
//! after the swap while requests in flight finish where they began.

use crate::health::EndpointHealth;
use crate::stats::{Arm, Series, Stats};
use crate::sticky::Split;
use http::HeaderName;
use rollgate_core::config::{Config, Limits, Service, Timeouts};
use rollgate_core::weight::Weight;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("service `{service}`: endpoint `{endpoint}` is not a usable http:// URL")]
    BadEndpoint { service: String, endpoint: String },
    #[error("service `{service}`: sticky header `{header}` is not a valid header name")]
    BadHeader { service: String, header: String },
    #[error("no service `{0}` in the route table")]
    UnknownService(String),
    #[error("service `{service}` has no version `{version}`")]
    UnknownVersion { service: String, version: String },
}

/// One model server of a version. In-flight requests pick between endpoints.
pub struct Endpoint {
    pub authority: http::uri::Authority,
    /// The Host header requests to it carry (made once, not per request).
    pub host: http::HeaderValue,
    /// A path the endpoint's URL carried, prefixed to every request's path.
    pub base_path: String,
    pub in_flight: AtomicUsize,
    pub health: EndpointHealth,
}

/// One request counted in its endpoint's in-flight number until dropped,
/// however the request ends (a client that goes away included).
pub struct InFlight(Arc<Endpoint>);

impl Endpoint {
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct VersionRoute {
    pub name: Arc<str>,
    /// The name as the `x-rollgate-version` header value (made once).
    pub served_by: Option<http::HeaderValue>,
    pub arm: Arm,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub series: Arc<Series>,
}

impl VersionRoute {
    /// Power of two choices on in-flight requests among the usable
    /// endpoints: two at random, the less busy one wins. When none is
    /// usable, all are tried rather than none (a failing check must not turn
    /// into a full outage by itself).
    pub fn pick_endpoint(&self) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n <= 1 {
            // One endpoint gets every request, usable or not, as the choice below would.
            return self.endpoints.first();
        }
        // From a random start, the first usable endpoint (or the start itself if none is).
        let usable_from = |start: usize| {
            (0..n).map(|k| (start + k) % n).find(|&i| self.endpoints[i].health.usable()).unwrap_or(start)
        };
        let (a, b) = (usable_from(fastrand::usize(..n)), usable_from(fastrand::usize(..n)));
        let load = |i: usize| self.endpoints[i].in_flight.load(Ordering::Relaxed);
        self.endpoints.get(if load(a) <= load(b) { a } else { b })
    }
}

#[derive(Debug, Clone)]
pub enum StickyKey {
    Header(HeaderName),
    Cookie(String),
}

/// Where a share of a service's traffic is copied.
#[derive(Clone)]
pub struct MirrorRoute {
    pub version: usize,
    pub share: Weight,
    pub series: Arc<Series>,
}

impl MirrorRoute {
    /// Whether this request is copied: a uniform draw against the share.
    pub fn take(&self) -> bool {
        fastrand::u32(..10_000) < u32::from(self.share.basis_points())
    }
}

pub struct ServiceRoute {
    pub name: Arc<str>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub sticky: Option<StickyKey>,
    pub versions: Vec<VersionRoute>,
    /// Versions by index, in split order.
    pub split: Split,
    pub weights: Vec<(usize, Weight)>,
    pub mirror: Option<MirrorRoute>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub limits: Limits,
    pub health: Option<HealthProbe>,
    pub ejection: Ejection,
}

/// A service's active health check, in the gateway's units.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// A service's passive ejection, in the gateway's units.
#[derive(Debug, Clone, Copy)]
pub struct Ejection {
    pub after: u32,
    pub duration: Duration,
}

impl ServiceRoute {
    fn matches(&self, host: Option<&str>, path: &str) -> Option<usize> {
        if let Some(want) = &self.host {
            let got = host.map(|h| h.split(':').next().unwrap_or(h));
            if got != Some(want.as_str()) {
                return None;
            }
        }
        match &self.path_prefix {
            Some(prefix) if path.starts_with(prefix.as_str()) => Some(prefix.len()),
            Some(_) => None,
            None => Some(0),
        }
    }

    pub fn version_index(&self, name: &str) -> Option<usize> {
        self.versions.iter().position(|v| &*v.name == name)
    }
}

pub struct RouteTable {
    pub services: Vec<ServiceRoute>,
}

impl RouteTable {
    /// The service for a request: the host must match if the service names
    /// one; among the matches the longest path prefix wins.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&ServiceRoute> {
        self.services
            .iter()
            .filter_map(|s| s.matches(host, path).map(|len| (len + usize::from(s.host.is_some()) * 10_000, s)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, s)| s)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceRoute> {
        self.services.iter().find(|s| &*s.name == name)
    }

    /// The table for a config: each service on its static split, or all on stable.
    pub fn from_config(config: &Config, stats: &Stats) -> Result<RouteTable, TableError> {
        let services =
            config.services.iter().map(|(name, s)| service_route(name, s, stats)).collect::<Result<_, _>>()?;
        Ok(RouteTable { services })
    }

    /// A copy of this table where `service` sends `candidate_weight` to
    /// `candidate` and the rest to `stable` (a rollout's weights).
    pub fn with_weights(
        &self,
        service: &str,
        stable: &str,
        candidate: &str,
        candidate_weight: Weight,
        stats: &Stats,
    ) -> Result<RouteTable, TableError> {
        let old = self.service(service).ok_or_else(|| TableError::UnknownService(service.to_string()))?;
        let find = |v: &str| {
            old.version_index(v)
                .ok_or_else(|| TableError::UnknownVersion { service: service.into(), version: v.into() })
        };
        let (stable_idx, candidate_idx) = (find(stable)?, find(candidate)?);
        // The candidate first, as nginx's split_clients lists the canary: its range grows from 0.
        let weights = vec![(candidate_idx, candidate_weight), (stable_idx, candidate_weight.complement())];
        let services = self
            .services
            .iter()
            .map(|s| {
                if &*s.name != service {
                    return s.clone_with(s.weights.clone(), None, s.mirror.clone(), stats);
                }
                s.clone_with(weights.clone(), Some((stable_idx, candidate_idx)), s.mirror.clone(), stats)
            })
            .collect();
        Ok(RouteTable { services })
    }

    /// A copy of this table where `service` mirrors `share` of its traffic
    /// to `shadow` (or, with `None`, mirrors nothing).
    pub fn with_mirror(
        &self,
        service: &str,
        shadow: Option<(&str, Weight)>,
        stats: &Stats,
    ) -> Result<RouteTable, TableError> {
        let old = self.service(service).ok_or_else(|| TableError::UnknownService(service.to_string()))?;
        let mirror = match shadow {
            Some((version, share)) => {
                let index = old
                    .version_index(version)
                    .ok_or_else(|| TableError::UnknownVersion { service: service.into(), version: version.into() })?;
                Some(MirrorRoute { version: index, share, series: stats.series(service, version, Arm::Shadow) })
            }
            None => None,
        };
        let services = self
            .services
            .iter()
            .map(|s| {
                let mirror = if &*s.name == service { mirror.clone() } else { s.mirror.clone() };
                s.clone_with(s.weights.clone(), None, mirror, stats)
            })
            .collect();
        Ok(RouteTable { services })
    }
}

impl ServiceRoute {
    /// The same service with other weights (and, for a rollout, its arms).
    fn clone_with(
        &self,
        weights: Vec<(usize, Weight)>,
        arms: Option<(usize, usize)>,
        mirror: Option<MirrorRoute>,
        stats: &Stats,
    ) -> ServiceRoute {
        let versions = self
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let arm = match arms {
                    Some((stable, _)) if i == stable => Arm::Stable,
                    Some(_) => Arm::Canary,
                    None => v.arm,
                };
                VersionRoute {
                    name: v.name.clone(),
                    served_by: v.served_by.clone(),
                    arm,
                    endpoints: v.endpoints.clone(),
                    series: if arm == v.arm { v.series.clone() } else { stats.series(&self.name, &v.name, arm) },
                }
            })
            .collect();
        ServiceRoute {
            name: self.name.clone(),
            host: self.host.clone(),
            path_prefix: self.path_prefix.clone(),
            sticky: self.sticky.clone(),
            versions,
            split: Split::new(&weights),
            weights,
            mirror,
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.total_timeout,
            limits: self.limits,
            health: self.health.clone(),
            ejection: self.ejection,
        }
    }
}

fn endpoint(service: &str, url: &str) -> Result<Endpoint, TableError> {
    let bad = || TableError::BadEndpoint { service: service.into(), endpoint: url.into() };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let parts = uri.into_parts();
    let base_path = parts.path_and_query.map(|p| p.path().trim_end_matches('/').to_string()).unwrap_or_default();
    let authority = parts.authority.ok_or_else(bad)?;
    // Model servers are spoken to in plain HTTP/1.1 (see `upstream`).
    if parts.scheme != Some(http::uri::Scheme::HTTP) {
        return Err(bad());
    }
    Ok(Endpoint {
        host: http::HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?,
        authority,
        base_path,
        in_flight: AtomicUsize::new(0),
        health: EndpointHealth::default(),
    })
}

/// A config duration for the gateway: at least a millisecond.
fn duration(hold: rollgate_core::hold::Hold) -> Duration {
    hold.duration().try_into().unwrap_or(Duration::ZERO).max(Duration::from_millis(1))
}

fn service_route(name: &str, s: &Service, stats: &Stats) -> Result<ServiceRoute, TableError> {
    let stable = s.stable.get_ref();
    let versions: Vec<VersionRoute> = s
        .versions
        .iter()
        .map(|(version, v)| {
            let endpoints =
                v.endpoints.iter().map(|e| endpoint(name, e.get_ref()).map(Arc::new)).collect::<Result<_, _>>()?;
            let arm = if version == stable { Arm::Stable } else { Arm::Canary };
            Ok(VersionRoute {
                name: version.as_str().into(),
                served_by: http::HeaderValue::from_str(version).ok(),
                arm,
                endpoints,
                series: stats.series(name, version, arm),
            })
        })
        .collect::<Result<_, TableError>>()?;
    let index = |v: &str| versions.iter().position(|r| &*r.name == v);
    let weights: Vec<(usize, Weight)> = match &s.split {
        Some(split) => split.get_ref().iter().filter_map(|(v, w)| index(v).map(|i| (i, *w))).collect(),
        None => index(stable).map(|i| vec![(i, Weight::FULL)]).unwrap_or_default(),
    };
    let sticky = match &s.sticky {
        Some(rollgate_core::config::Sticky { header: Some(h), .. }) => Some(StickyKey::Header(
            HeaderName::try_from(h.as_str())
                .map_err(|_| TableError::BadHeader { service: name.into(), header: h.clone() })?,
        )),
        Some(rollgate_core::config::Sticky { cookie: Some(c), .. }) => Some(StickyKey::Cookie(c.clone())),
        _ => None,
    };
    let mirror = s.mirror.as_ref().and_then(|m| {
        let version = m.version.get_ref();
        index(version).map(|i| MirrorRoute {
            version: i,
            share: m.percent,
            series: stats.series(name, version, Arm::Shadow),
        })
    });
    let Timeouts { connect, first_byte, total } = s.timeouts;
    Ok(ServiceRoute {
        name: name.into(),
        host: s.route.host.clone(),
        path_prefix: s.route.path_prefix.clone(),
        sticky,
        versions,
        split: Split::new(&weights),
        weights,
        mirror,
        connect_timeout: duration(connect),
        first_byte_timeout: duration(first_byte),
        total_timeout: duration(total),
        limits: s.limits,
        health: s.health.as_ref().map(|h| HealthProbe {
            path: h.path.clone(),
            interval: duration(h.interval),
            timeout: duration(h.timeout),
            unhealthy_after: h.unhealthy_after,
            healthy_after: h.healthy_after,
        }),
        ejection: Ejection { after: s.ejection.after, duration: duration(s.ejection.duration) },
    })
}
