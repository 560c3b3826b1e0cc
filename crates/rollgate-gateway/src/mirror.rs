//! Shadow traffic. A share of a service's requests is copied to a shadow
//! version off the request path: the copy is sent by a task of its own on
//! a low-priority thread apart from the request threads, with bounded waiting and concurrency,
//! and dropped, counted, when too many wait, so a slow shadow never slows a
//! user's request. A share of the copies is also sent to the serving version
//! again, so the comparison can tell the candidate's differences from the
//! model's own nondeterminism. When the answers are in, the pair goes to a
//! comparison hook.

use crate::proxy::{ProxyBody, full};
use crate::stats::{Outcome, Series, Stats};
use crate::table::Endpoint;
use crate::upstream;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// One side's answer, as far as the comparison needs it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body up to the capture limit: the same prefix on both sides.
    pub body: Bytes,
    /// Whether the body was longer than the limit.
    pub truncated: bool,
    /// From the request to the response headers.
    pub first_byte: Duration,
    /// From the request to the end of the body.
    pub latency: Duration,
}

/// Why a copy got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyFailure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or reading failed (refused, reset, cut mid-answer).
    #[error("{0}")]
    Failed(String),
}

/// The primary's and the shadow's answers to the same request.
#[derive(Debug, Clone)]
pub struct MirrorPair {
    pub service: Arc<str>,
    pub primary_version: Arc<str>,
    pub shadow_version: Arc<str>,
    pub method: Method,
    pub path: String,
    pub request_body: Bytes,
    pub primary: Option<Captured>,
    /// `Err` when the shadow failed (connection, timeout), with why.
    pub shadow: Result<Captured, CopyFailure>,
    /// The serving version's second answer to the same request, when this
    /// copy was drawn for the noise floor.
    pub noise: Option<Result<Captured, CopyFailure>>,
}

/// Where pairs go; the shadow comparison fills this in.
pub trait ComparisonHook: Send + Sync {
    fn compare(&self, pair: MirrorPair);
}

/// Keeps nothing: for a gateway with no comparison wired in yet.
pub struct DiscardPairs;

impl ComparisonHook for DiscardPairs {
    fn compare(&self, _pair: MirrorPair) {}
}

/// A copy waiting to be sent to the shadow.
pub struct MirrorJob {
    pub service: Arc<str>,
    pub primary_version: Arc<str>,
    pub shadow_version: Arc<str>,
    pub endpoint: Arc<Endpoint>,
    pub series: Arc<Series>,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timeout: Duration,
    pub primary: oneshot::Receiver<Captured>,
    /// The `model` field the shadow's copy carries instead of the request's.
    pub model: Option<Arc<str>>,
    /// A second copy to the serving version: its endpoint and measurements.
    pub noise: Option<(Arc<Endpoint>, Arc<Series>)>,
}

#[derive(Debug, Clone, Copy)]
pub struct MirrorLimits {
    /// Copies waiting to be sent; more are dropped.
    pub queue: usize,
    /// Shadow requests in flight at once.
    pub concurrency: usize,
    /// Request bodies larger than this are not mirrored.
    pub max_body: usize,
    /// How much of each answer is kept for comparison.
    pub capture: usize,
}

impl Default for MirrorLimits {
    fn default() -> Self {
        MirrorLimits { queue: 1024, concurrency: 64, max_body: 1024 * 1024, capture: 256 * 1024 }
    }
}

pub struct Mirror {
    /// How long connecting to the shadow may take.
    connect_timeout: Duration,
    /// Copies admitted (waiting or in flight); past it, copies are dropped.
    admitted: Arc<Semaphore>,
    /// Copies in flight to the shadow.
    sending: Arc<Semaphore>,
    stats: Arc<Stats>,
    hook: Arc<dyn ComparisonHook>,
    pub limits: MirrorLimits,
}

impl Mirror {
    pub fn new(
        stats: Arc<Stats>,
        hook: Arc<dyn ComparisonHook>,
        limits: MirrorLimits,
        connect_timeout: Duration,
    ) -> Mirror {
        Mirror {
            connect_timeout,
            admitted: Arc::new(Semaphore::new(limits.queue.max(1) + limits.concurrency.max(1))),
            sending: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            stats,
            hook,
            limits,
        }
    }

    /// Room for one more copy, or `None` (counted as dropped) when too many
    /// wait already. Asked before any work is done for the copy. Never waits.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let admitted = self.admitted.clone().try_acquire_owned().ok();
        if admitted.is_none() {
            self.stats.mirror_dropped.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Hands an admitted copy to the shadow runtime.
    pub fn send(&self, admitted: OwnedSemaphorePermit, job: MirrorJob) {
        self.stats.mirror_sent.fetch_add(1, Ordering::Relaxed);
        let (sending, stats, hook, capture) =
            (self.sending.clone(), self.stats.clone(), self.hook.clone(), self.limits.capture);
        let connect_timeout = self.connect_timeout;
        shadow_runtime().spawn(async move {
            let Ok(_slot) = sending.acquire_owned().await else { return };
            let pair = shadow(job, capture, connect_timeout).await;
            if pair.shadow.is_err() {
                stats.mirror_failed.fetch_add(1, Ordering::Relaxed);
            }
            hook.compare(pair);
            drop(admitted);
        });
    }
}

/// The process's one shadow runtime, started on the first copy: a thread of
/// its own at the lowest OS priority, so that shadow work never queues ahead
/// of a user's request.
fn shadow_runtime() -> tokio::runtime::Handle {
    static SHADOW: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    SHADOW
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new().name("rollgate-shadow".into()).spawn(move || {
                // Unprivileged processes may lower their priority; if even that fails, shadow work
                // still runs apart from the request threads.
                let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => {
                        let _ = tx.send(Some(runtime.handle().clone()));
                        // Shadow requests set timeouts too (see `keep_a_timer_due`).
                        runtime.block_on(crate::server::keep_a_timer_due());
                    }
                    Err(_) => {
                        let _ = tx.send(None);
                    }
                }
            });
            match started.ok().and_then(|_| rx.recv().ok().flatten()) {
                Some(handle) => handle,
                // No thread of its own: the caller's runtime does the work.
                None => tokio::runtime::Handle::current(),
            }
        })
        .clone()
}

async fn shadow(job: MirrorJob, capture: usize, connect_timeout: Duration) -> MirrorPair {
    let shadow_body = match &job.model {
        Some(model) => with_model(&job.body, model),
        None => job.body.clone(),
    };
    let copy = |endpoint: Arc<Endpoint>, series: Arc<Series>, body: Bytes| Copy {
        endpoint,
        series,
        method: job.method.clone(),
        path: job.path.clone(),
        headers: job.headers.clone(),
        body,
        timeout: job.timeout,
        capture,
        connect_timeout,
    };
    let to_shadow = copy(job.endpoint.clone(), job.series.clone(), shadow_body).send();
    let noise = job.noise.clone().map(|(endpoint, series)| copy(endpoint, series, job.body.clone()).send());
    let (answer, noise) = match noise {
        Some(noise) => {
            let (answer, noise) = tokio::join!(to_shadow, noise);
            (answer, Some(noise))
        }
        None => (to_shadow.await, None),
    };
    MirrorPair {
        service: job.service,
        primary_version: job.primary_version,
        shadow_version: job.shadow_version,
        method: job.method,
        path: job.path,
        request_body: job.body,
        primary: job.primary.await.ok(),
        shadow: answer,
        noise,
    }
}

/// The request body with its `model` field replaced, when it is a JSON
/// object that has one; any other body goes as it came.
fn with_model(body: &Bytes, model: &str) -> Bytes {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    if !fields.contains_key("model") {
        return body.clone();
    }
    fields.insert("model".into(), serde_json::Value::String(model.into()));
    serde_json::to_vec(&fields).map_or_else(|_| body.clone(), Bytes::from)
}

/// One copy of a request, to the shadow or to the serving version again.
struct Copy {
    endpoint: Arc<Endpoint>,
    series: Arc<Series>,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    capture: usize,
    connect_timeout: Duration,
}

impl Copy {
    async fn send(self) -> Result<Captured, CopyFailure> {
        let started = Instant::now();
        let uri = upstream::target(&self.endpoint, &self.path)
            .map_err(|e| CopyFailure::Failed(format!("cannot build the shadow request: {e}")))?;
        self.series.started();
        let mut headers = self.headers;
        // The body may have been rewritten; its length is the one sent.
        headers.insert(http::header::CONTENT_LENGTH, self.body.len().into());
        let mut request = Request::new(full(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let exchange = exchange(&self.endpoint, request, self.capture, self.connect_timeout, started);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(captured)) => {
                self.series.first_byte(captured.first_byte);
                self.series.finished(Outcome::of_status(captured.status), captured.latency);
                Ok(captured)
            }
            Ok(Err(e)) => {
                self.series.finished(Outcome::ConnectionFailure, started.elapsed());
                Err(CopyFailure::Failed(e))
            }
            Err(_) => {
                self.series.finished(Outcome::Timeout, started.elapsed());
                Err(CopyFailure::Timeout(self.timeout))
            }
        }
    }
}

/// Sends the copy and reads its answer to the end, keeping the same prefix
/// the primary's capture keeps.
async fn exchange(
    endpoint: &Endpoint,
    request: Request<ProxyBody>,
    capture: usize,
    connect_timeout: Duration,
    started: Instant,
) -> Result<Captured, String> {
    let (response, connection) = upstream::send(endpoint, request, connect_timeout).await.map_err(|e| e.to_string())?;
    let first_byte = started.elapsed();
    let (parts, mut body) = response.into_parts();
    let mut prefix = Prefix::new(capture);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer was cut: {e}"))?;
        if let Some(data) = frame.data_ref() {
            prefix.keep(data);
        }
    }
    connection.release();
    let (body, truncated) = prefix.finish();
    Ok(Captured {
        status: parts.status,
        headers: parts.headers,
        body,
        truncated,
        first_byte,
        latency: started.elapsed(),
    })
}

/// The first `limit` bytes of a body, and whether there were more.
pub(crate) struct Prefix {
    limit: usize,
    body: Vec<u8>,
    truncated: bool,
}

impl Prefix {
    pub(crate) fn new(limit: usize) -> Prefix {
        Prefix { limit, body: Vec::new(), truncated: false }
    }

    pub(crate) fn keep(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.body.len());
        self.truncated |= data.len() > room;
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub(crate) fn finish(self) -> (Bytes, bool) {
        (self.body.into(), self.truncated)
    }
}
