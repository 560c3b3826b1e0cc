//! Shadow traffic. A share of a service's requests is copied to a shadow
//! version off the request path: the copy is sent by a task of its own on
//! a low-priority thread apart from the request threads, with bounded waiting and concurrency,
//! and dropped, counted, when too many wait, so a slow shadow never slows a
//! user's request. When both answers are in,
//! the pair goes to a comparison hook.

use crate::proxy::{ProxyBody, full};
use crate::stats::{Outcome, Series, Stats};
use crate::table::Endpoint;
use crate::upstream;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// One side's answer, as far as the comparison needs it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body up to the capture limit.
    pub body: Bytes,
    /// Whether the body was longer than the limit.
    pub truncated: bool,
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
    pub shadow: Result<Captured, String>,
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
    let started = Instant::now();
    job.series.started();
    let answer = match upstream::target(&job.endpoint, &job.path) {
        Ok(uri) => {
            let mut request = Request::new(full(job.body.clone()));
            *request.method_mut() = job.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = job.headers;
            let exchange = exchange(&job.endpoint, request, capture, connect_timeout);
            match tokio::time::timeout(job.timeout, exchange).await {
                Ok(Ok(captured)) => {
                    job.series.first_byte(started.elapsed());
                    job.series.finished(Outcome::of_status(captured.status), started.elapsed());
                    Ok(captured)
                }
                Ok(Err(e)) => {
                    job.series.finished(Outcome::ConnectionFailure, started.elapsed());
                    Err(e)
                }
                Err(_) => {
                    job.series.finished(Outcome::Timeout, started.elapsed());
                    Err(format!("no answer within {:?}", job.timeout))
                }
            }
        }
        Err(e) => Err(format!("cannot build the shadow request: {e}")),
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
    }
}

async fn exchange(
    endpoint: &Endpoint,
    request: Request<ProxyBody>,
    capture: usize,
    connect_timeout: Duration,
) -> Result<Captured, String> {
    let (response, connection) = upstream::send(endpoint, request, connect_timeout).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let (body, truncated) = match Limited::new(body, capture).collect().await {
        Ok(collected) => {
            connection.release();
            (collected.to_bytes(), false)
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => (Bytes::new(), true),
        Err(e) => return Err(e.to_string()),
    };
    Ok(Captured { status: parts.status, headers: parts.headers, body, truncated })
}
