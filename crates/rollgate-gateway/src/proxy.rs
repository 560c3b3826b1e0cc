//! Handling one request: route it, pick a version and an endpoint, forward
//! it, and stream the answer back while measuring it. Nothing here waits on
//! the control plane: the route table is an atomic snapshot.

use crate::body::{BoxError, Capture as AnswerCopy, Finish, Measured};
use crate::capture::{Capture, CaptureRoute, Record};
use crate::feedback::Feedback;
use crate::mirror::{Captured, ComparisonHook, Mirror, MirrorJob, MirrorLimits, Prefix};
use crate::stats::{Outcome, Stats};
use crate::table::{Endpoint, MirrorRoute, RouteTable, ServiceRoute, StickyKey, TableError, VersionRoute};
use crate::tokens::TokenMeter;
use crate::upstream;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rollgate_core::routing::Routing;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

pub type ProxyBody = BoxBody<Bytes, BoxError>;

// Header names as `HeaderName` constants, not `&str`: a `&str` is parsed
// into a name again on every lookup, twice per request on the hot path.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The version that served the response, for clients and for debugging.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-rollgate-version");
/// On answers the gateway made itself (no route, a model that failed or
/// timed out, a body over its limit): what went wrong, so a client can tell
/// them from the model's own answers.
pub const GATEWAY_ERROR: HeaderName = HeaderName::from_static("x-rollgate-error");

/// Headers that belong to one hop and are not forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub struct Gateway {
    table: ArcSwap<RouteTable>,
    /// Told of each new table (the health checker probes new endpoints at once).
    swapped: tokio::sync::Notify,
    pub stats: Arc<Stats>,
    pub feedback: Feedback,
    mirror: Mirror,
    /// Endpoints that left the table, while requests to them may still be in
    /// flight (a rolling batch drains before its hook runs). Control plane only.
    retired: std::sync::Mutex<Vec<(Arc<str>, std::sync::Weak<Endpoint>)>>,
    /// Where captured requests go, when the gateway has a directory for them.
    capture: Option<Capture>,
}

impl Gateway {
    /// A gateway on `table`; shadow copies connect within `connect_timeout`
    /// (requests use their service's own).
    pub fn new(
        table: RouteTable,
        stats: Arc<Stats>,
        connect_timeout: Duration,
        hook: Arc<dyn ComparisonHook>,
        limits: MirrorLimits,
    ) -> Gateway {
        let mirror = Mirror::new(stats.clone(), hook, limits, connect_timeout);
        Gateway {
            table: ArcSwap::from_pointee(table),
            swapped: tokio::sync::Notify::new(),
            stats,
            feedback: Feedback::new(100_000),
            mirror,
            retired: std::sync::Mutex::new(Vec::new()),
            capture: None,
        }
    }

    /// Writes the requests of services with a `capture` under `dir` (without
    /// one, those services are not captured).
    pub fn with_capture(mut self, dir: std::path::PathBuf) -> std::io::Result<Gateway> {
        self.capture = Some(Capture::start(dir, self.stats.clone())?);
        Ok(self)
    }

    /// The table requests are routed by now.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Routes as `routing` says from the next request on; requests in flight
    /// finish where they started. Nothing changes if the routing cannot be built.
    pub fn apply(&self, routing: &Routing) -> Result<(), TableError> {
        let previous = self.table();
        let table = RouteTable::build(routing, &previous, &self.stats)?;
        let mut retired = self.retired.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        retired.retain(|(_, e)| e.strong_count() > 0);
        for service in &previous.services {
            for endpoint in service.versions.iter().flat_map(|v| &v.endpoints) {
                let kept = table
                    .service(&service.name)
                    .is_some_and(|s| s.versions.iter().flat_map(|v| &v.endpoints).any(|e| Arc::ptr_eq(e, endpoint)));
                if !kept {
                    retired.push((service.name.clone(), Arc::downgrade(endpoint)));
                }
            }
        }
        self.table.store(Arc::new(table));
        self.swapped.notify_one();
        Ok(())
    }

    /// Requests still in flight to `url` of `service` once it is out of the
    /// table; `None` while the table still routes to it.
    pub fn in_flight_after_removal(&self, service: &str, url: &str) -> Option<usize> {
        let routed = self
            .table()
            .service(service)
            .is_some_and(|s| s.versions.iter().flat_map(|v| &v.endpoints).any(|e| e.url == url));
        if routed {
            return None;
        }
        let retired = self.retired.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let in_flight = retired
            .iter()
            .filter(|(s, _)| &**s == service)
            .filter_map(|(_, e)| e.upgrade())
            .filter(|e| e.url == url)
            .map(|e| e.in_flight.load(Ordering::Relaxed))
            .sum();
        Some(in_flight)
    }

    /// Completes when a new table has been applied since the last call.
    pub async fn table_changed(&self) {
        self.swapped.notified().await;
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let request_id = request.headers().get(REQUEST_ID).cloned().unwrap_or_else(new_request_id);
        let mut response = match (request.method(), request.uri().path()) {
            (&Method::GET, "/metrics") => metrics(&self.stats),
            (&Method::POST, "/feedback") => self.feedback.receive(request).await,
            _ => self.proxy(request, &request_id, started).await,
        };
        response.headers_mut().insert(REQUEST_ID, request_id);
        response
    }

    async fn proxy(
        &self,
        request: Request<Incoming>,
        request_id: &HeaderValue,
        started: Instant,
    ) -> Response<ProxyBody> {
        let table = self.table();
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| request.uri().host());
        let Some(service) = table.route(host, request.uri().path()) else {
            self.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::NOT_FOUND, "no_route", None, "no service matches this host and path");
        };
        if declared_length(request.headers()).is_some_and(|length| length > service.limits.max_request_bytes) {
            return request_too_large(service);
        }
        let (parts, body) = request.into_parts();
        // A service sticky by a body field has its body read before the version is chosen (only such a service).
        let body = match &service.sticky {
            Some(StickyKey::Body(pointer)) => match read_body(body, service.limits.max_request_bytes).await {
                Ok(bytes) => RequestBody::Read { key: body_key(&bytes, pointer), bytes },
                Err(failed) => return failed.answer(service),
            },
            _ => RequestBody::Unread(body),
        };
        let key = match &body {
            RequestBody::Read { key, .. } => key.as_deref().map(str::as_bytes),
            RequestBody::Unread(_) => sticky_key(service, &parts.headers),
        };
        let pick = match key {
            Some(key) => service.split.pick_key(key),
            None => service.split.pick_random(),
        };
        let Some(version) = pick.and_then(|i| service.versions.get(i)) else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_version",
                Some(service),
                "the service has no version with traffic",
            );
        };
        let Some(endpoint) = version.pick_endpoint().cloned() else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "no_endpoint", Some(service), "the version has no endpoint");
        };
        let series = version.series.clone();
        series.started();
        self.feedback.remember(request_id, series.clone());
        let shadow = service
            .mirror
            .as_ref()
            .filter(|m| m.take() && self.can_mirror(&parts.headers))
            .and_then(|m| Some((m, self.mirror.admit()?)));
        let captured = service.capture.as_ref().zip(self.capture.as_ref()).filter(|(route, _)| route.take());
        let captured = captured.filter(|(route, capture)| {
            let size = match &body {
                RequestBody::Read { bytes, .. } => Some(bytes.len() as u64),
                RequestBody::Unread(_) => declared_length(&parts.headers),
            };
            let fits = size.is_some_and(|n| n <= route.max_body_bytes);
            if !fits {
                capture.skipped();
            }
            fits
        });
        // A copy (shadow or capture) needs the body whole; only bodies of a known, small size get here.
        let body = match body {
            RequestBody::Unread(unread) if shadow.is_some() || captured.is_some() => {
                match read_body(unread, service.limits.max_request_bytes).await {
                    Ok(bytes) => RequestBody::Read { bytes, key: None },
                    Err(failed) => {
                        series.finished(Outcome::ClientError, started.elapsed());
                        return failed.answer(service);
                    }
                }
            }
            body => body,
        };
        let answer_for_capture = match (captured, &body) {
            (Some((route, capture)), RequestBody::Read { bytes, .. }) => {
                record(capture, route, service, version, &parts, bytes)
            }
            _ => None,
        };
        let (body, capture) = match (body, shadow) {
            (RequestBody::Read { bytes, .. }, Some((mirror, admitted)))
                if bytes.len() <= self.mirror.limits.max_body =>
            {
                let to = self.queue_shadow(service, version, mirror, &parts, bytes.clone(), admitted);
                (full(bytes), to)
            }
            (RequestBody::Read { bytes, .. }, _) => (full(bytes), None),
            (RequestBody::Unread(body), _) => {
                (Limited::new(body, limit_of(service.limits.max_request_bytes)).map_err(BoxError::from).boxed(), None)
            }
        };
        let outbound = match outbound(parts, body, &endpoint) {
            Ok(outbound) => outbound,
            Err(detail) => {
                series.finished(Outcome::ClientError, started.elapsed());
                return error(StatusCode::BAD_REQUEST, "bad_request", Some(service), &detail);
            }
        };
        let in_flight = endpoint.begin();
        let deadline = Box::pin(tokio::time::sleep(service.total_timeout));
        let sent = tokio::time::timeout(
            service.first_byte_timeout.min(service.total_timeout),
            upstream::send(&endpoint, outbound, service.connect_timeout),
        )
        .await;
        let (answer, connection) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) if e.body_too_large() => {
                series.finished(Outcome::ClientError, started.elapsed());
                return failed_at(version, request_too_large(service));
            }
            Ok(Err(e)) => {
                drop(in_flight);
                endpoint.health.request_ended(true, service.ejection.after, service.ejection.duration);
                series.finished(Outcome::ConnectionFailure, started.elapsed());
                let detail = format!("the model server at {} failed: {e}", endpoint.authority);
                return failed_at(version, error(StatusCode::BAD_GATEWAY, "upstream_failed", Some(service), &detail));
            }
            Err(_) => {
                drop(in_flight);
                endpoint.health.request_ended(true, service.ejection.after, service.ejection.duration);
                series.finished(Outcome::Timeout, started.elapsed());
                let detail = format!("no response headers within {:?}", service.first_byte_timeout);
                return failed_at(
                    version,
                    error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", Some(service), &detail),
                );
            }
        };
        series.first_byte(started.elapsed());
        endpoint.health.request_ended(false, service.ejection.after, service.ejection.duration);
        if declared_length(answer.headers()).is_some_and(|n| n > service.limits.max_response_bytes) {
            // Refused whole rather than cut after the headers went out: the
            // client gets an answer, and the model is charged for it.
            series.finished(Outcome::ServerError, started.elapsed());
            let detail = format!("the model's answer is over the limit of {} bytes", service.limits.max_response_bytes);
            return failed_at(version, error(StatusCode::BAD_GATEWAY, "response_too_large", Some(service), &detail));
        }
        let status = answer.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            series.refused_for_capacity();
        }
        let on_end = Outcome::of_status(status);
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(name) = &version.served_by {
            parts.headers.insert(SERVED_BY, name.clone());
        }
        let copies: Vec<_> = capture.into_iter().chain(answer_for_capture).collect();
        let capture = (!copies.is_empty()).then(|| AnswerCopy {
            to: copies,
            status,
            headers: parts.headers.clone(),
            body: Prefix::new(self.mirror.limits.capture),
            started,
            first_byte: started.elapsed(),
        });
        let finish = Finish { series, started, on_end, in_flight: Some(in_flight), connection: Some(connection) };
        let measured = Measured::new(body, finish, service.limits.max_response_bytes, deadline, capture);
        let measured = match service.measures_tokens && status.is_success() {
            true => measured.with_tokens(TokenMeter::for_answer(&parts.headers, started)),
            false => measured,
        };
        Response::from_parts(parts, measured.boxed())
    }

    /// Only bodies of a known, small size are copied: a stream of unknown
    /// length cannot be duplicated without holding the primary back.
    fn can_mirror(&self, headers: &HeaderMap) -> bool {
        let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        let fits = match length {
            Some(n) => n <= self.mirror.limits.max_body,
            None => !chunked,
        };
        if !fits {
            self.stats.mirror_dropped.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// Sends the copy; the returned sender takes the primary's answer for the comparison.
    fn queue_shadow(
        &self,
        service: &ServiceRoute,
        primary: &VersionRoute,
        mirror: &MirrorRoute,
        parts: &http::request::Parts,
        body: Bytes,
        admitted: OwnedSemaphorePermit,
    ) -> Option<oneshot::Sender<Captured>> {
        let shadow = service.versions.get(mirror.version)?;
        let Some(endpoint) = shadow.pick_endpoint().cloned() else {
            self.stats.mirror_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let (to, primary_answer) = oneshot::channel();
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.insert(header::HOST, endpoint.host.clone());
        let job = MirrorJob {
            service: service.name.clone(),
            primary_version: primary.name.clone(),
            shadow_version: shadow.name.clone(),
            endpoint,
            series: mirror.series.clone(),
            method: parts.method.clone(),
            path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            headers,
            body,
            timeout: service.total_timeout,
            primary: primary_answer,
            model: mirror.model.clone(),
            noise: mirror.noise_copy(service),
        };
        self.mirror.send(admitted, job);
        Some(to)
    }
}

/// Offers a captured request to the capture writer (redacted there, off the
/// request path); for a service that captures answers, the sender its answer goes to.
fn record(
    capture: &Capture,
    route: &CaptureRoute,
    service: &ServiceRoute,
    version: &VersionRoute,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Option<oneshot::Sender<Captured>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let record = Record {
        service: service.name.clone(),
        version: version.name.clone(),
        path,
        body: body.clone(),
        at: std::time::SystemTime::now(),
        answer: None,
    };
    if route.answers {
        return capture.offer_with_answer(route, record);
    }
    capture.offer(route, record);
    None
}

/// 32 random hex digits, written without a format string.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((bits >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| unreachable!("hex digits are valid header bytes"))
}

/// The body length a message declares, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok())
}

fn limit_of(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// A request's body: still streaming in, or read whole (a service sticky by a body field) with its key.
enum RequestBody {
    Unread(Incoming),
    Read { bytes: Bytes, key: Option<String> },
}

/// The answer to a request whose body is over its service's limit.
fn request_too_large(service: &ServiceRoute) -> Response<ProxyBody> {
    let detail = format!("the request body is over the limit of {} bytes", service.limits.max_request_bytes);
    error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", Some(service), &detail)
}

/// Why a body could not be read before choosing a version.
enum BodyFailure {
    TooLarge,
    Unreadable(String),
}

impl BodyFailure {
    fn answer(self, service: &ServiceRoute) -> Response<ProxyBody> {
        match self {
            BodyFailure::TooLarge => request_too_large(service),
            BodyFailure::Unreadable(why) => error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some(service),
                &format!("cannot read the request body: {why}"),
            ),
        }
    }
}

/// The whole body, up to `limit` bytes.
async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, BodyFailure> {
    match Limited::new(body, limit_of(limit)).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyFailure::TooLarge),
        Err(e) => Err(BodyFailure::Unreadable(e.to_string())),
    }
}

/// The sticky key a body holds at `pointer`: a string as it is, a number or
/// boolean as written; none when the body is not JSON or has no such value.
fn body_key(body: &[u8], pointer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

fn sticky_key<'a>(service: &ServiceRoute, headers: &'a HeaderMap) -> Option<&'a [u8]> {
    match service.sticky.as_ref()? {
        StickyKey::Body(_) => None,
        StickyKey::Header(name) => headers.get(name).map(HeaderValue::as_bytes),
        StickyKey::Cookie(name) => {
            headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
                cookies.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k == name).then_some(v.as_bytes())
                })
            })
        }
    }
}

/// The request as the model server gets it: its path under the endpoint's, hop headers gone.
fn outbound(
    mut parts: http::request::Parts,
    body: ProxyBody,
    endpoint: &Endpoint,
) -> Result<Request<ProxyBody>, String> {
    parts.uri = match (parts.uri.path_and_query(), endpoint.base_path.is_empty()) {
        // The common case reuses the request's own (shared) bytes.
        (Some(p), true) => Uri::from(p.clone()),
        (p, _) => upstream::target(endpoint, p.map_or("/", |p| p.as_str()))
            .map_err(|e| format!("cannot forward this path: {e}"))?,
    };
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(header::HOST, endpoint.host.clone());
    Ok(Request::from_parts(parts, body))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry one of them at most (`connection: keep-alive`):
    // finding those present in one pass and removing only them costs less
    // than eight hashed removals.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present[i] = true;
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(name);
    }
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

/// An error answer for a request that had been sent to `version`: the
/// client can tell which version failed, as it can for a good answer.
fn failed_at(version: &VersionRoute, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    if let Some(name) = &version.served_by {
        response.headers_mut().insert(SERVED_BY, name.clone());
    }
    response
}

/// The gateway's own answer when it cannot get the model's, saying which part failed.
pub fn error(status: StatusCode, code: &str, service: Option<&ServiceRoute>, detail: &str) -> Response<ProxyBody> {
    let body =
        json!({ "error": code, "status": status.as_u16(), "service": service.map(|s| &*s.name), "detail": detail });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(code) = HeaderValue::from_str(code) {
        response.headers_mut().insert(GATEWAY_ERROR, code);
    }
    response
}

fn metrics(stats: &Stats) -> Response<ProxyBody> {
    let mut response = Response::new(full(stats.render()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind_and_the_rest_go_on() {
        let mut headers = HeaderMap::new();
        for (name, value) in [("keep-alive", "timeout=5"), ("proxy-authorization", "Basic x"), ("x-user-id", "u1")] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-user-id"]);

        let mut plain = HeaderMap::new();
        plain.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }
}
