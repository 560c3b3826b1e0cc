//! `rollgate sim model`: a stand-in for a team's model server. It speaks
//! OpenAI-compatible chat (with server-sent-event streaming), KServe v2 and
//! plain JSON, answers deterministically from its seed and the request, and
//! injects faults set at start, by schedule, or at run time through `PUT /_sim/faults`:
//! an error rate, a latency distribution with a heavy tail, wrong outputs
//! (on a share of inputs or on one group of them),
//! hangs, crashes (connections cut) and slow starts.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What goes wrong, and how slow it is. Every field can be changed while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of requests answered 500.
    pub error_rate: f64,
    /// Median latency, milliseconds (lognormal around it).
    pub latency_ms: f64,
    /// Spread of the lognormal; 0 for a fixed latency.
    pub latency_sigma: f64,
    /// Share of requests that are this many times slower (a heavy tail).
    pub tail_share: f64,
    pub tail_factor: f64,
    /// Share of answers with the wrong label.
    pub wrong_rate: f64,
    /// One group of inputs always gets the wrong label: the requests whose
    /// body contains this text (e.g. `"country":"FR"`).
    pub wrong_group: Option<String>,
    /// Requests with a larger body crash the model: the connection is cut, as
    /// a process that ran out of memory on a long input would.
    pub crash_over_bytes: Option<usize>,
    /// Share of answers that differ from call to call for the same input, as
    /// a sampling LLM's or batched GPU inference's do: the label flips, the
    /// score moves and a chat answer is worded differently.
    pub flaky_rate: f64,
    /// Never answer (until the fault is cleared and the client gives up).
    pub hang: bool,
    /// Behave like a process that died: every connection is cut mid-answer, health checks included.
    pub crash: bool,
    /// Answer 503 to everything, health checks included, for this long after start.
    pub slow_start_ms: u64,
    /// Delay between streamed tokens, milliseconds.
    pub token_ms: u64,
    /// The faults before a rollgate staging drill put its own in: the drill
    /// puts these back, and a drill that finds them (one before it was killed
    /// mid-way) restores them rather than the faults it finds. The model
    /// itself does nothing with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_before: Option<Box<Faults>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rate: 0.0,
            latency_ms: 5.0,
            latency_sigma: 0.3,
            tail_share: 0.0,
            tail_factor: 1.0,
            wrong_rate: 0.0,
            wrong_group: None,
            crash_over_bytes: None,
            flaky_rate: 0.0,
            hang: false,
            crash: false,
            slow_start_ms: 0,
            token_ms: 2,
            drill_before: None,
        }
    }
}

struct Model {
    name: String,
    seed: u64,
    faults: RwLock<Faults>,
    started: Instant,
    served: AtomicU64,
}

/// A running simulated model: its address and its fault switch.
pub struct RunningModel {
    pub addr: SocketAddr,
    model: Arc<Model>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningModel {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.model.faults.write().unwrap_or_else(std::sync::PoisonError::into_inner) = faults;
    }

    pub fn faults(&self) -> Faults {
        self.model.faults.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Requests it has been sent so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.model.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.task.abort();
    }

    /// Changes the faults by schedule, each change at its time after the model started.
    pub fn follow(&self, schedule: Schedule) -> tokio::task::JoinHandle<()> {
        let model = self.model.clone();
        tokio::spawn(async move {
            for change in schedule.0 {
                tokio::time::sleep_until((model.started + change.after).into()).await;
                let mut faults = model.faults.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Ok(changed) = change.apply(&faults) {
                    *faults = changed;
                }
            }
        })
    }
}

/// Fault changes by time: `[{"after": "30s", "faults": {"error_rate": 0.2}}, …]`;
/// each change sets only the fields it names.
#[derive(Debug, Clone, Default)]
pub struct Schedule(Vec<FaultChange>);

#[derive(Debug, Clone)]
struct FaultChange {
    after: Duration,
    faults: serde_json::Map<String, serde_json::Value>,
}

impl FaultChange {
    fn apply(&self, faults: &Faults) -> Result<Faults, serde_json::Error> {
        let mut value = serde_json::to_value(faults)?;
        if let Some(fields) = value.as_object_mut() {
            fields.extend(self.faults.clone());
        }
        serde_json::from_value(value)
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// Parses the JSON list, refusing unknown fault names and bad times up front.
    fn from_str(text: &str) -> Result<Schedule, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            after: String,
            faults: serde_json::Map<String, serde_json::Value>,
        }
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| format!("not a fault schedule: {e}"))?;
        let mut changes = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let after = entry
                .after
                .parse::<rollgate_core::hold::Hold>()
                .map_err(|e| format!("change {}: {e}", i + 1))?
                .duration()
                .unsigned_abs();
            let change = FaultChange { after, faults: entry.faults };
            change.apply(&Faults::default()).map_err(|e| format!("change {}: {e}", i + 1))?;
            changes.push(change);
        }
        changes.sort_by_key(|c| c.after);
        Ok(Schedule(changes))
    }
}

pub async fn serve(listen: SocketAddr, name: &str, seed: u64, faults: Faults) -> std::io::Result<RunningModel> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let model = Arc::new(Model {
        name: name.to_string(),
        seed,
        faults: RwLock::new(faults),
        started: Instant::now(),
        served: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .fallback(any(infer))
        .with_state(model.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningModel { addr, model, task })
}

async fn health(State(model): State<Arc<Model>>) -> Response {
    let faults = model.faults();
    if faults.crash {
        return cut();
    }
    if faults.hang || model.starting(&faults) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
        .into_response()
}

/// A response whose body fails at once: the server drops the connection, as a crashed process would.
fn cut() -> Response {
    let broken = futures_util::stream::once(async { Err::<Bytes, _>(std::io::Error::other("crashed")) });
    Response::new(Body::from_stream(broken))
}

async fn get_faults(State(model): State<Arc<Model>>) -> axum::Json<Faults> {
    axum::Json(model.faults())
}

async fn put_faults(State(model): State<Arc<Model>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            *model.faults.write().unwrap_or_else(std::sync::PoisonError::into_inner) = faults.clone();
            axum::Json(faults).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{{\"error\":\"bad faults: {e}\"}}")).into_response(),
    }
}

impl Model {
    fn faults(&self) -> Faults {
        self.faults.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn starting(&self, faults: &Faults) -> bool {
        (self.started.elapsed().as_millis() as u64) < faults.slow_start_ms
    }
}

/// FNV-1a: the same input and seed always give the same answer.
fn fingerprint(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

async fn infer(State(model): State<Arc<Model>>, uri: axum::http::Uri, body: Bytes) -> Response {
    let faults = model.faults();
    let n = model.served.fetch_add(1, Ordering::Relaxed);
    let mut rng = fastrand::Rng::with_seed(model.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if faults.crash || faults.crash_over_bytes.is_some_and(|limit| body.len() > limit) {
        return cut();
    }
    if model.starting(&faults) {
        return json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": "starting" }));
    }
    if faults.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let z = normal(&mut rng);
    let mut ms = faults.latency_ms * (faults.latency_sigma * z).exp();
    if rng.f64() < faults.tail_share {
        ms *= faults.tail_factor;
    }
    tokio::time::sleep(Duration::from_secs_f64(ms.max(0.0) / 1000.0)).await;
    if rng.f64() < faults.error_rate {
        return json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({ "error": "injected fault" }));
    }
    let path = uri.path();
    let is_chat = path.ends_with("/chat/completions");
    // A chat answer follows the messages alone: a candidate asked under another
    // `model` name answers what production answers.
    let messages = is_chat.then(|| serde_json::from_slice::<serde_json::Value>(&body).ok()).flatten();
    let print = match messages {
        Some(request) => fingerprint(model.seed, request["messages"].to_string().as_bytes()),
        None => fingerprint(model.seed, &body),
    };
    let mut score = (print % 10_000) as f64 / 10_000.0;
    let mut label = if score >= 0.5 { "approve" } else { "review" };
    let in_wrong_group = faults.wrong_group.as_deref().is_some_and(|g| contains(&body, g.as_bytes()));
    let flip = |label: &str| if label == "approve" { "review" } else { "approve" };
    if in_wrong_group || rng.f64() < faults.wrong_rate {
        label = flip(label);
    }
    let flaky = rng.f64() < faults.flaky_rate;
    if flaky {
        label = flip(label);
        score = (score + 0.01 + rng.f64() * 0.1).fract();
    }
    if is_chat {
        let wording = if flaky { "My answer is" } else { "The answer is" };
        return chat(&model, &body, &format!("{wording} {label} with confidence {score:.2}."), faults.token_ms);
    }
    if path.starts_with("/v2/models/") && path.ends_with("/infer") {
        let outputs = serde_json::json!([
            { "name": "score", "datatype": "FP32", "shape": [1], "data": [score] },
            { "name": "label", "datatype": "BYTES", "shape": [1], "data": [label] }
        ]);
        return json(StatusCode::OK, serde_json::json!({ "model_name": model.name, "outputs": outputs }));
    }
    json(StatusCode::OK, serde_json::json!({ "model": model.name, "label": label, "score": score }))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// OpenAI-compatible chat: one message, or with `"stream": true` one SSE event per token.
/// Versions with the same seed give the same `content` (the model's name is in `model` only).
fn chat(model: &Model, body: &[u8], content: &str, token_ms: u64) -> Response {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let words: Vec<String> = content.split_inclusive(' ').map(str::to_string).collect();
    // Tokens counted as words, as a tokenizer would roughly.
    let prompt_tokens = request["messages"].to_string().split_whitespace().count();
    let usage = serde_json::json!({
        "prompt_tokens": prompt_tokens, "completion_tokens": words.len(), "total_tokens": prompt_tokens + words.len()
    });
    if request["stream"].as_bool() != Some(true) {
        let message = serde_json::json!({
            "id": "chatcmpl-sim", "object": "chat.completion", "model": model.name,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
            "usage": usage
        });
        return json(StatusCode::OK, message);
    }
    let chunk = |choices: serde_json::Value, usage: serde_json::Value| {
        let chunk = serde_json::json!({
            "id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model.name, "choices": choices, "usage": usage
        });
        format!("data: {chunk}\n\n")
    };
    // One event a word, then the finish reason with the usage (as with
    // `stream_options.include_usage`), then the end.
    let mut events: Vec<String> = words
        .iter()
        .map(|word| chunk(serde_json::json!([{ "index": 0, "delta": { "content": word } }]), serde_json::Value::Null))
        .collect();
    events.push(chunk(serde_json::json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }]), usage));
    events.push("data: [DONE]\n\n".to_string());
    let stream = futures_util::stream::unfold((0usize, events), move |(i, events)| async move {
        let event = events.get(i)?.clone();
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(token_ms)).await;
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), (i + 1, events)))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}
