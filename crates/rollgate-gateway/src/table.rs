//! The route table: which service a request belongs to, which version it
//! goes to, on which endpoint. Immutable once built; the gateway swaps in a
//! new one atomically, so a change applies to every request that starts
//! after the swap while requests in flight finish where they began.

use crate::health::EndpointHealth;
use crate::stats::{Arm, Series, Stats};
use crate::sticky::Split;
use crate::tls::{ServiceTls, TlsTarget};
use http::HeaderName;
use rollgate_core::config::{Limits, Timeouts};
use rollgate_core::routing::{Routing, ServiceRouting};
use rollgate_core::weight::Weight;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("service `{service}`: endpoint `{endpoint}` is not a usable http:// or https:// URL")]
    BadEndpoint { service: String, endpoint: String },
    #[error("service `{service}`: TLS to its model servers: {why}")]
    Tls { service: String, why: String },
    #[error("service `{service}`: sticky header `{header}` is not a valid header name")]
    BadHeader { service: String, header: String },
    #[error("service `{service}`: capture: {why}")]
    Capture { service: String, why: String },
    #[error("service `{service}` has no version `{version}`")]
    UnknownVersion { service: String, version: String },
}

/// One model server of a version. In-flight requests pick between endpoints.
pub struct Endpoint {
    /// The URL as configured: what identifies the endpoint across tables.
    pub url: String,
    pub authority: http::uri::Authority,
    /// The Host header requests to it carry (made once, not per request).
    pub host: http::HeaderValue,
    /// A path the endpoint's URL carried, prefixed to every request's path.
    pub base_path: String,
    pub in_flight: AtomicUsize,
    pub health: EndpointHealth,
    /// For an `https://` endpoint: how its connections are secured.
    pub tls: Option<TlsTarget>,
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
    /// A JSON pointer into the request body (the body is read first).
    Body(String),
}

/// Where a share of a service's traffic is copied.
#[derive(Clone)]
pub struct MirrorRoute {
    pub version: usize,
    pub share: Weight,
    pub series: Arc<Series>,
    /// Of the copies, the share also sent to the serving version again (its
    /// noise floor), with that copy's measurements.
    pub noise: Option<(usize, Weight, Arc<Series>)>,
    /// The `model` field the copies carry instead of the request's.
    pub model: Option<Arc<str>>,
}

impl MirrorRoute {
    /// Whether this request is copied: a uniform draw against the share.
    pub fn take(&self) -> bool {
        fastrand::u32(..10_000) < u32::from(self.share.basis_points())
    }

    /// Where a copy also goes to the serving version, when this copy is drawn
    /// for the noise floor and that version has an endpoint to take it.
    pub fn noise_copy(&self, service: &ServiceRoute) -> Option<(Arc<Endpoint>, Arc<Series>)> {
        let (version, share, series) = self.noise.as_ref()?;
        if fastrand::u32(..10_000) >= u32::from(share.basis_points()) {
            return None;
        }
        let endpoint = service.versions.get(*version)?.pick_endpoint()?.clone();
        Some((endpoint, series.clone()))
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
    /// The TLS client of its `https://` endpoints.
    pub tls: Option<ServiceTls>,
    pub handshake_timeout: Duration,
    /// A chat model's answers are read for their tokens as they pass (see `tokens`).
    pub measures_tokens: bool,
    /// A share of the requests written to disk, redacted.
    pub capture: Option<crate::capture::CaptureRoute>,
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
            // Host names are case-insensitive (RFC 9110 §4.2.3); the port is not part of the match.
            if !host.map(without_port).is_some_and(|got| got.eq_ignore_ascii_case(want)) {
                return None;
            }
        }
        match &self.path_prefix {
            Some(prefix) if on_segment_boundary(path, prefix) => Some(prefix.len()),
            Some(_) => None,
            None => Some(0),
        }
    }

    pub fn version_index(&self, name: &str) -> Option<usize> {
        self.versions.iter().position(|v| &*v.name == name)
    }
}

/// `host[:port]` or `[v6]:port` without the port.
fn without_port(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    }
}

/// `/v1/score` covers `/v1/score` and `/v1/score/…`, never `/v1/scoreboard`.
fn on_segment_boundary(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
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

    /// A table that routes nothing (every request gets 404).
    pub fn empty() -> RouteTable {
        RouteTable { services: Vec::new() }
    }

    /// The table for a desired routing. Endpoints already in `previous`
    /// (same service, version and URL) are carried over, so their health,
    /// ejections and in-flight counts survive the swap; series outlive
    /// tables in `stats`.
    pub fn build(routing: &Routing, previous: &RouteTable, stats: &Stats) -> Result<RouteTable, TableError> {
        let services = routing
            .services
            .iter()
            .map(|(name, s)| service_route(name, s, previous.service(name), stats))
            .collect::<Result<_, _>>()?;
        Ok(RouteTable { services })
    }
}

pub(crate) fn endpoint(
    service: &str,
    url: &str,
    tls: Option<&ServiceTls>,
    handshake: Duration,
) -> Result<Endpoint, TableError> {
    let bad = || TableError::BadEndpoint { service: service.into(), endpoint: url.into() };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let parts = uri.into_parts();
    let base_path = parts.path_and_query.map(|p| p.path().trim_end_matches('/').to_string()).unwrap_or_default();
    let authority = parts.authority.ok_or_else(bad)?;
    // Model servers are spoken to in HTTP/1.1 (see `upstream`), over TLS for https.
    let tls = match parts.scheme {
        Some(s) if s == http::uri::Scheme::HTTP => None,
        Some(s) if s == http::uri::Scheme::HTTPS => match tls {
            Some(tls) => Some(tls.target(service, &authority, handshake)?),
            None => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    Ok(Endpoint {
        tls,
        url: url.to_string(),
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

/// The service's TLS client, when any endpoint is `https://`: the previous
/// table's when the settings are the same (its files are not read again).
fn service_tls(
    name: &str,
    s: &ServiceRouting,
    previous: Option<&ServiceRoute>,
) -> Result<Option<ServiceTls>, TableError> {
    let wants = s.versions.values().flat_map(|v| &v.endpoints).any(|url| url.starts_with("https://"));
    if !wants {
        return Ok(None);
    }
    let settings = s.tls.clone().unwrap_or_default();
    match previous.and_then(|p| p.tls.as_ref()).filter(|t| t.settings == settings) {
        Some(same) => Ok(Some(same.clone())),
        None => ServiceTls::new(name, &settings).map(Some),
    }
}

fn service_route(
    name: &str,
    s: &ServiceRouting,
    previous: Option<&ServiceRoute>,
    stats: &Stats,
) -> Result<ServiceRoute, TableError> {
    let tls = service_tls(name, s, previous)?;
    let handshake = duration(s.timeouts.handshake);
    // Endpoints are carried over only while the way they are reached is the same.
    let same_way = previous.is_some_and(|p| {
        p.tls.as_ref().map(|t| &t.settings) == tls.as_ref().map(|t| &t.settings) && p.handshake_timeout == handshake
    });
    let kept = |version: &str, url: &str| {
        let old = previous.filter(|_| same_way)?.versions.iter().find(|v| &*v.name == version)?;
        old.endpoints.iter().find(|e| e.url == url).cloned()
    };
    let versions: Vec<VersionRoute> = s
        .versions
        .iter()
        .map(|(version, v)| {
            let endpoints = v
                .endpoints
                .iter()
                .map(|url| {
                    kept(version, url).map_or_else(|| endpoint(name, url, tls.as_ref(), handshake).map(Arc::new), Ok)
                })
                .collect::<Result<_, _>>()?;
            let arm = if *version == s.stable { Arm::Stable } else { Arm::Canary };
            Ok(VersionRoute {
                name: version.as_str().into(),
                served_by: http::HeaderValue::from_str(version).ok(),
                arm,
                endpoints,
                series: stats.series(name, version, arm),
            })
        })
        .collect::<Result<_, TableError>>()?;
    let index = |v: &str| {
        versions
            .iter()
            .position(|r| &*r.name == v)
            .ok_or_else(|| TableError::UnknownVersion { service: name.into(), version: v.into() })
    };
    let weights: Vec<(usize, Weight)> =
        s.split.iter().map(|(v, w)| index(v).map(|i| (i, *w))).collect::<Result<_, _>>()?;
    let sticky = match &s.sticky {
        Some(rollgate_core::config::Sticky { header: Some(h), .. }) => Some(StickyKey::Header(
            HeaderName::try_from(h.as_str())
                .map_err(|_| TableError::BadHeader { service: name.into(), header: h.clone() })?,
        )),
        Some(rollgate_core::config::Sticky { cookie: Some(c), .. }) => Some(StickyKey::Cookie(c.clone())),
        Some(rollgate_core::config::Sticky { body: Some(pointer), .. }) => Some(StickyKey::Body(pointer.clone())),
        _ => None,
    };
    let mirror = match &s.mirror {
        Some(m) => Some(MirrorRoute {
            version: index(&m.version)?,
            share: m.share,
            series: stats.series(name, &m.version, Arm::Shadow),
            noise: (m.noise > Weight::ZERO)
                .then(|| Ok::<_, TableError>((index(&s.stable)?, m.noise, stats.series(name, &s.stable, Arm::Shadow))))
                .transpose()?,
            model: m.model.as_deref().map(Arc::from),
        }),
        None => None,
    };
    let Timeouts { connect, first_byte, total, .. } = s.timeouts;
    Ok(ServiceRoute {
        name: name.into(),
        host: s.host.clone(),
        path_prefix: s.path_prefix.clone(),
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
        tls,
        handshake_timeout: handshake,
        measures_tokens: s.protocol == rollgate_core::config::Protocol::OpenaiChat,
        capture: s
            .capture
            .as_ref()
            .map(crate::capture::CaptureRoute::new)
            .transpose()
            .map_err(|why| TableError::Capture { service: name.into(), why })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_core::config::Config;
    use rollgate_core::routing::{RoutingInputs, desired};

    fn table() -> RouteTable {
        let service = |name: &str, route: &str| {
            format!(
                "[services.{name}]\nroute = {{ {route} }}\nprotocol = \"json\"\nstable = \"v1\"\n\
                 [services.{name}.versions.v1]\nendpoints = [\"http://127.0.0.1:9\"]\nowner = \"o\"\n\
                 artifact = {{ uri = \"s3://m\", sha256 = \"{}\" }}\n",
                "a".repeat(64)
            )
        };
        let text = service("score", "path_prefix = \"/v1/score\"")
            + &service("v1", "path_prefix = \"/v1\"")
            + &service("hosted", "host = \"Models.Example.com\", path_prefix = \"/v1/score\"")
            + &service("slash", "path_prefix = \"/v2/\"");
        let config = Config::parse("t.toml", &text).unwrap();
        let inputs = RoutingInputs {
            config: &config,
            registered: &[],
            rollouts: &[],
            staging: &[],
            flags: &Default::default(),
            now: rollgate_core::Timestamp::UNIX_EPOCH,
        };
        RouteTable::build(&desired(&inputs), &RouteTable::empty(), &Stats::default()).unwrap()
    }

    #[test]
    fn a_request_goes_to_the_longest_prefix_on_a_segment_boundary_and_hosts_match_in_any_case() {
        let table = table();
        let routed = |host: Option<&str>, path: &str| table.route(host, path).map(|s| s.name.to_string());
        assert_eq!(routed(Some("other"), "/v1/score").as_deref(), Some("score"));
        assert_eq!(routed(Some("other"), "/v1/score/predict").as_deref(), Some("score"), "the longest prefix wins");
        assert_eq!(routed(Some("other"), "/v1/scoreboard").as_deref(), Some("v1"), "a prefix ends on a segment");
        assert_eq!(routed(None, "/v1").as_deref(), Some("v1"));
        assert_eq!(
            routed(Some("MODELS.example.COM:8080"), "/v1/score").as_deref(),
            Some("hosted"),
            "any case, any port"
        );
        assert_eq!(routed(Some("[::1]:8080"), "/v1/score").as_deref(), Some("score"));
        assert_eq!(routed(Some("other"), "/v2/x").as_deref(), Some("slash"));
        assert_eq!(routed(Some("other"), "/v2").as_deref(), None, "a prefix with a trailing slash needs it");
        assert_eq!(routed(Some("other"), "/v3"), None, "no route: the gateway answers 404");
    }
}
