//! What the gateway measures, per service, version and arm: requests,
//! errors by class, latency and time to first byte in HDR histograms. The
//! series outlive route tables (a weight change must not reset a counter);
//! the hot path touches only atomics and one short, await-free lock per
//! histogram.

use crate::tokens::{FinishReason, TokenRecord};
use hdrhistogram::Histogram;
use rollgate_core::measure::prometheus_label as escape;
pub use rollgate_core::measure::{Arm, Counters, History};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How a proxied request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The model answered 1xx-3xx.
    Ok,
    /// The model answered 4xx: the client's fault, counted apart.
    ClientError,
    /// The model answered 5xx.
    ServerError,
    Timeout,
    /// Refused, reset, or an answer that was not HTTP.
    ConnectionFailure,
}

impl Outcome {
    /// How an answer with this status ends if its body arrives whole.
    pub fn of_status(status: http::StatusCode) -> Outcome {
        if status.is_server_error() {
            Outcome::ServerError
        } else if status.is_client_error() {
            Outcome::ClientError
        } else {
            Outcome::Ok
        }
    }
}

/// Latencies are kept from 1 µs to 10 minutes with 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!("constant, valid bounds"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, 600_000_000)
}

/// One series: one version of one service, on one arm.
pub struct Series {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub connection_failures: AtomicU64,
    /// Timeouts and 429/503 answers: the model out of capacity.
    pub saturated: AtomicU64,
    pub ratings: AtomicU64,
    pub rating_sum: AtomicU64,
    /// Ratings of 0 or 1: the output was bad.
    pub bad_outputs: AtomicU64,
    pub complaints: AtomicU64,
    latency: Mutex<Samples>,
    ttfb: Mutex<Histogram<u64>>,
    /// A chat model's answers: made on the first one measured.
    tokens: OnceLock<TokenSeries>,
}

/// Durations since start (for `/metrics`) and a uniform sample of those
/// since the judge last looked (for the judge), in microseconds.
struct Samples {
    histogram: Histogram<u64>,
    recent: Vec<u32>,
    seen_since_drain: u64,
}

impl Samples {
    fn new() -> Samples {
        Samples { histogram: histogram(), recent: Vec::new(), seen_since_drain: 0 }
    }

    fn record(&mut self, us: u64) {
        let _ = self.histogram.record(us);
        self.seen_since_drain += 1;
        let value = u32::try_from(us).unwrap_or(u32::MAX);
        if self.recent.len() < RECENT_LATENCIES {
            self.recent.push(value);
        } else {
            let pick = fastrand::usize(..usize::try_from(self.seen_since_drain).unwrap_or(usize::MAX));
            if let Some(slot) = self.recent.get_mut(pick) {
                *slot = value;
            }
        }
    }

    fn drain(&mut self) -> (Vec<u32>, u64) {
        let seen = std::mem::take(&mut self.seen_since_drain);
        (std::mem::take(&mut self.recent), seen)
    }
}

/// What a chat model's answers measured, per series.
struct TokenSeries {
    time_to_first_token: Mutex<Samples>,
    /// Microseconds per output token (the inverse of tokens per second).
    per_token: Mutex<Samples>,
    inter_token: Mutex<Histogram<u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    finishes: [AtomicU64; FinishReason::ALL.len()],
}

impl TokenSeries {
    fn new() -> TokenSeries {
        TokenSeries {
            time_to_first_token: Mutex::new(Samples::new()),
            per_token: Mutex::new(Samples::new()),
            inter_token: Mutex::new(histogram()),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            finishes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Latencies the judge keeps per series between two looks; beyond it, a
/// uniform sample (reservoir) of this many.
const RECENT_LATENCIES: usize = 4096;

impl Default for Series {
    fn default() -> Self {
        Series {
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            connection_failures: AtomicU64::new(0),
            saturated: AtomicU64::new(0),
            ratings: AtomicU64::new(0),
            rating_sum: AtomicU64::new(0),
            bad_outputs: AtomicU64::new(0),
            complaints: AtomicU64::new(0),
            latency: Mutex::new(Samples::new()),
            ttfb: Mutex::new(histogram()),
            tokens: OnceLock::new(),
        }
    }
}

impl Series {
    pub fn started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn first_byte(&self, after: Duration) {
        let _ = self.ttfb.lock().unwrap_or_else(PoisonError::into_inner).record(micros(after));
    }

    pub fn finished(&self, outcome: Outcome, after: Duration) {
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::ClientError => &self.client_errors,
            Outcome::ServerError => &self.server_errors,
            Outcome::Timeout => &self.timeouts,
            Outcome::ConnectionFailure => &self.connection_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Timeout {
            self.saturated.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.latency).record(micros(after));
    }

    /// One chat answer's token measurements.
    pub fn tokens(&self, record: &TokenRecord) {
        let t = self.tokens.get_or_init(TokenSeries::new);
        if let Some(ttft) = record.time_to_first_token {
            lock(&t.time_to_first_token).record(micros(ttft));
        }
        if let Some(us) = record.micros_per_token() {
            lock(&t.per_token).record(u64::from(us));
        }
        if let Some(gap) = record.inter_token {
            let _ = lock(&t.inter_token).record(micros(gap));
        }
        t.prompt_tokens.fetch_add(record.prompt_tokens, Ordering::Relaxed);
        t.completion_tokens.fetch_add(record.completion_tokens, Ordering::Relaxed);
        // `ALL` lists the reasons in declaration order: a reason's slot is its discriminant.
        t.finishes[record.finish as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The backend said it is out of capacity (429 or 503).
    pub fn refused_for_capacity(&self) {
        self.saturated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> Counters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            requests: load(&self.requests),
            errors: load(&self.server_errors) + load(&self.timeouts) + load(&self.connection_failures),
            saturated: load(&self.saturated),
            bad_outputs: load(&self.bad_outputs),
            complaints: load(&self.complaints),
        }
    }

    /// The latencies (µs) of requests finished since the last call (all of
    /// them, or a uniform sample), and how many requests finished.
    pub fn drain_latencies(&self) -> (Vec<u32>, u64) {
        lock(&self.latency).drain()
    }

    /// Times to first token (µs) since the last call, as [`Series::drain_latencies`].
    pub fn drain_time_to_first_token(&self) -> (Vec<u32>, u64) {
        self.tokens.get().map(|t| lock(&t.time_to_first_token).drain()).unwrap_or_default()
    }

    /// Microseconds per output token since the last call, as [`Series::drain_latencies`].
    pub fn drain_per_token(&self) -> (Vec<u32>, u64) {
        self.tokens.get().map(|t| lock(&t.per_token).drain()).unwrap_or_default()
    }

    /// Feedback on a response this series served: a rating (0..=5) or a complaint.
    pub fn feedback(&self, rating: Option<u8>, complaint: bool) {
        if let Some(r) = rating {
            self.ratings.fetch_add(1, Ordering::Relaxed);
            self.rating_sum.fetch_add(u64::from(r), Ordering::Relaxed);
            if r <= 1 {
                self.bad_outputs.fetch_add(1, Ordering::Relaxed);
            }
        }
        if complaint {
            self.complaints.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything this series measured, read without taking anything away:
    /// its counters, its latency at quantile `q` (µs), how many latencies were
    /// recorded and how many of them were over `over_us`.
    pub fn history(&self, q: f64, over_us: Option<u64>) -> History {
        let latencies = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let h = &latencies.histogram;
        let count = h.len();
        let over = over_us.map_or(0, |limit| count.saturating_sub(h.count_between(0, limit)));
        let quantile_us = (count > 0).then(|| h.value_at_quantile(q));
        History { counters: self.counters(), quantile_us, count, over }
    }

    /// The latency histogram so far (a copy).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency.lock().unwrap_or_else(PoisonError::into_inner).histogram.clone()
    }

    pub fn ttfb(&self) -> Histogram<u64> {
        self.ttfb.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub service: String,
    pub version: String,
    pub arm: Arm,
}

/// All series, created on first use when a route table is built.
#[derive(Default)]
pub struct Stats {
    series: Mutex<BTreeMap<SeriesKey, Arc<Series>>>,
    pub mirror_sent: AtomicU64,
    pub mirror_dropped: AtomicU64,
    pub mirror_failed: AtomicU64,
    pub unrouted: AtomicU64,
    pub capture_written: AtomicU64,
    /// Drawn for capture but not written: the queue was full, or the body too large or of unknown size.
    pub capture_dropped: AtomicU64,
    pub capture_failed: AtomicU64,
}

/// Bucket bounds of the Prometheus histograms, in seconds.
const BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

impl Stats {
    pub fn series(&self, service: &str, version: &str, arm: Arm) -> Arc<Series> {
        let key = SeriesKey { service: service.to_string(), version: version.to_string(), arm };
        self.series.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().clone()
    }

    pub fn all(&self) -> Vec<(SeriesKey, Arc<Series>)> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let all = self.all();
        let mut o = String::new();
        let labels = |k: &SeriesKey| {
            format!("service=\"{}\",version=\"{}\",arm=\"{}\"", escape(&k.service), escape(&k.version), k.arm.as_str())
        };
        let _ = writeln!(o, "# HELP rollgate_requests_total Requests routed to a model version.");
        let _ = writeln!(o, "# TYPE rollgate_requests_total counter");
        for (k, s) in &all {
            let _ = writeln!(o, "rollgate_requests_total{{{}}} {}", labels(k), s.requests.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            o,
            "# HELP rollgate_responses_total Finished requests by outcome (4xx is the client's, not the model's)."
        );
        let _ = writeln!(o, "# TYPE rollgate_responses_total counter");
        for (k, s) in &all {
            for (class, n) in [
                ("ok", &s.ok),
                ("4xx", &s.client_errors),
                ("5xx", &s.server_errors),
                ("timeout", &s.timeouts),
                ("connection_failure", &s.connection_failures),
            ] {
                let _ = writeln!(
                    o,
                    "rollgate_responses_total{{{},outcome=\"{class}\"}} {}",
                    labels(k),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        histogram_family(
            &mut o,
            "rollgate_request_duration_seconds",
            "Time from request to the end of the response.",
            &all,
            &labels,
            &|s| Some(s.latency()),
        );
        histogram_family(
            &mut o,
            "rollgate_time_to_first_byte_seconds",
            "Time from request to the response's headers.",
            &all,
            &labels,
            &|s| Some(s.ttfb()),
        );
        render_tokens(&mut o, &all, &labels);
        let _ = writeln!(
            o,
            "# HELP rollgate_feedback_total Feedback on responses, attributed to the version that served them."
        );
        let _ = writeln!(o, "# TYPE rollgate_feedback_total counter");
        for (k, s) in &all {
            let _ = writeln!(
                o,
                "rollgate_feedback_total{{{},kind=\"rating\"}} {}",
                labels(k),
                s.ratings.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                o,
                "rollgate_feedback_total{{{},kind=\"complaint\"}} {}",
                labels(k),
                s.complaints.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP rollgate_unrouted_requests_total Requests that matched no service.");
        let _ = writeln!(o, "# TYPE rollgate_unrouted_requests_total counter");
        let _ = writeln!(o, "rollgate_unrouted_requests_total {}", self.unrouted.load(Ordering::Relaxed));
        for (name, help, value) in [
            ("rollgate_mirror_sent_total", "Shadow copies queued for the shadow version.", &self.mirror_sent),
            (
                "rollgate_mirror_dropped_total",
                "Shadow copies dropped to protect the primary path.",
                &self.mirror_dropped,
            ),
            ("rollgate_mirror_failed_total", "Shadow copies the shadow version did not answer.", &self.mirror_failed),
            ("rollgate_capture_written_total", "Requests captured to disk, redacted.", &self.capture_written),
            (
                "rollgate_capture_dropped_total",
                "Requests drawn for capture and not written (queue full, body too large or of unknown size).",
                &self.capture_dropped,
            ),
            ("rollgate_capture_failed_total", "Captured requests the writer could not write.", &self.capture_failed),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            let _ = writeln!(o, "{name} {}", value.load(Ordering::Relaxed));
        }
        o
    }
}

fn histogram_family(
    o: &mut String,
    name: &str,
    help: &str,
    all: &[(SeriesKey, Arc<Series>)],
    labels: &dyn Fn(&SeriesKey) -> String,
    read: &dyn Fn(&Series) -> Option<Histogram<u64>>,
) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} histogram");
    for (k, s) in all {
        let Some(h) = read(s) else { continue };
        let l = labels(k);
        for bound in BUCKETS {
            let at_most = (bound * 1_000_000.0) as u64;
            let count: u64 =
                h.iter_recorded().filter(|v| v.value_iterated_to() <= at_most).map(|v| v.count_at_value()).sum();
            let _ = writeln!(o, "{name}_bucket{{{l},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(o, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.len());
        let sum: f64 =
            h.iter_recorded().map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64).sum::<f64>() / 1e6;
        let _ = writeln!(o, "{name}_sum{{{l}}} {sum}");
        let _ = writeln!(o, "{name}_count{{{l}}} {}", h.len());
    }
}

/// Bucket bounds of the output-tokens-per-second histogram.
const RATE_BUCKETS: [f64; 12] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 1000.0];

/// The chat models' families: only series that measured a chat answer appear.
fn render_tokens(o: &mut String, all: &[(SeriesKey, Arc<Series>)], labels: &dyn Fn(&SeriesKey) -> String) {
    let chat: Vec<(SeriesKey, Arc<Series>)> = all.iter().filter(|(_, s)| s.tokens.get().is_some()).cloned().collect();
    histogram_family(
        o,
        "rollgate_llm_time_to_first_token_seconds",
        "Time from request to the first streamed chunk carrying output.",
        &chat,
        labels,
        &|s| s.tokens.get().map(|t| lock(&t.time_to_first_token).histogram.clone()),
    );
    histogram_family(
        o,
        "rollgate_llm_inter_token_latency_seconds",
        "Mean gap between a streamed answer's output chunks.",
        &chat,
        labels,
        &|s| s.tokens.get().map(|t| lock(&t.inter_token).clone()),
    );
    let name = "rollgate_llm_output_tokens_per_second";
    let _ = writeln!(o, "# HELP {name} Output tokens after the first per second of generation, per streamed answer.");
    let _ = writeln!(o, "# TYPE {name} histogram");
    for (k, s) in &chat {
        let Some(t) = s.tokens.get() else { continue };
        // Kept as microseconds per token: a rate at most b is a time per token at least 1/b.
        let h = lock(&t.per_token).histogram.clone();
        let l = labels(k);
        for bound in RATE_BUCKETS {
            let under = (1e6 / bound) as u64;
            let count: u64 =
                h.iter_recorded().filter(|v| v.value_iterated_to() >= under).map(|v| v.count_at_value()).sum();
            let _ = writeln!(o, "{name}_bucket{{{l},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(o, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.len());
        let sum: f64 =
            h.iter_recorded().map(|v| 1e6 / v.value_iterated_to().max(1) as f64 * v.count_at_value() as f64).sum();
        let _ = writeln!(o, "{name}_sum{{{l}}} {sum}");
        let _ = writeln!(o, "{name}_count{{{l}}} {}", h.len());
    }
    let _ = writeln!(
        o,
        "# HELP rollgate_llm_tokens_total Prompt and completion tokens (from usage, or counted from the stream)."
    );
    let _ = writeln!(o, "# TYPE rollgate_llm_tokens_total counter");
    for (k, s) in &chat {
        let Some(t) = s.tokens.get() else { continue };
        for (kind, n) in [("prompt", &t.prompt_tokens), ("completion", &t.completion_tokens)] {
            let _ =
                writeln!(o, "rollgate_llm_tokens_total{{{},kind=\"{kind}\"}} {}", labels(k), n.load(Ordering::Relaxed));
        }
    }
    let _ = writeln!(
        o,
        "# HELP rollgate_llm_finish_total Chat answers by how they ended: the model's finish reason, aborted (the stream ended without one) or cancelled (the client left)."
    );
    let _ = writeln!(o, "# TYPE rollgate_llm_finish_total counter");
    for (k, s) in &chat {
        let Some(t) = s.tokens.get() else { continue };
        for (reason, n) in FinishReason::ALL.iter().zip(&t.finishes) {
            let _ = writeln!(
                o,
                "rollgate_llm_finish_total{{{},reason=\"{}\"}} {}",
                labels(k),
                reason.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
    }
}
