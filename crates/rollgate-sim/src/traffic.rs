//! `rollgate sim traffic`: open-loop load at a fixed rate from a population
//! of users (each request carries a sticky `x-user-id`), replaying a JSONL
//! file of request bodies or generating them, and sending feedback (ratings)
//! and complaints about the answers at given rates to the gateway's `/feedback`.

use rollgate_load::open_loop;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct TrafficOptions {
    /// Where requests go (the gateway's URL with the service's path).
    pub url: String,
    /// The gateway's `/feedback` URL; no feedback without it.
    pub feedback_url: Option<String>,
    pub rate_per_s: f64,
    pub users: u64,
    /// Request bodies to replay in turn; generated ones when empty.
    pub bodies: Vec<String>,
    /// Share of answers rated (0-5; a rating of 0 or 1 marks a bad output).
    pub rating_rate: f64,
    /// Share of answers complained about.
    pub complaint_rate: f64,
    /// At most this many requests in flight; past it, requests are counted as dropped.
    pub max_in_flight: u64,
}

/// What the generator did so far.
#[derive(Debug, Default, Serialize)]
pub struct TrafficCounts {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    pub feedback: AtomicU64,
    /// The first failure, in words (a status and the start of its body, or why no answer came).
    #[serde(skip)]
    pub first_error: std::sync::OnceLock<String>,
}

impl TrafficCounts {
    fn failed(&self, why: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.first_error.get().is_none() {
            let _ = self.first_error.set(why());
        }
    }
}

/// Runs until `stop` turns true, then waits for the requests in flight.
pub async fn run(options: TrafficOptions, counts: Arc<TrafficCounts>, mut stop: watch::Receiver<bool>) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap_or_default();
    let options = Arc::new(options);
    let until = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let max_in_flight = usize::try_from(options.max_in_flight).unwrap_or(usize::MAX);
    let sent = open_loop(options.rate_per_s, max_in_flight, until, |n| {
        let (http, options, counts) = (http.clone(), options.clone(), counts.clone());
        async move { one_request(&http, &options, &counts, n).await }
    })
    .await;
    counts.dropped.fetch_add(sent.dropped, Ordering::Relaxed);
}

async fn one_request(http: &reqwest::Client, options: &TrafficOptions, counts: &TrafficCounts, n: u64) {
    let user = fastrand::u64(..options.users.max(1));
    let body = match options.bodies.len() {
        0 => format!("{{\"inputs\":{{\"amount\":{},\"user\":{user}}}}}", n % 997),
        len => options.bodies[(n % len as u64) as usize].clone(),
    };
    counts.sent.fetch_add(1, Ordering::Relaxed);
    let answer = http
        .post(&options.url)
        .header("x-user-id", format!("user-{user}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            counts.failed(|| format!("no answer: {e}"));
            return;
        }
    };
    let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        counts.failed(|| format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
        return;
    }
    counts.ok.fetch_add(1, Ordering::Relaxed);
    let (Some(url), Some(id)) = (&options.feedback_url, id) else { return };
    let rate = fastrand::f64() < options.rating_rate;
    let complain = fastrand::f64() < options.complaint_rate;
    if !rate && !complain {
        return;
    }
    // A user rates a "review" answer badly: the simulator's wrong outputs show up as bad ratings.
    let rating = rate.then(|| if text.contains("review") { 1 } else { 5 });
    let feedback = serde_json::json!({ "request_id": id, "rating": rating, "complaint": complain });
    if http.post(url).json(&feedback).send().await.is_ok() {
        counts.feedback.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request to `url` per user in `users` (its `x-user-id`), one after
/// another: how many each version answered, as the gateway's
/// `x-rollgate-version` names it; others by their status (`status 502`) or
/// `no answer`. For checking where a split sends users.
pub async fn tally_versions(
    http: &reqwest::Client,
    url: &str,
    users: impl IntoIterator<Item = String>,
) -> std::collections::BTreeMap<String, usize> {
    let mut served = std::collections::BTreeMap::new();
    for (i, user) in users.into_iter().enumerate() {
        let answered = http.post(url).header("x-user-id", user).body(format!("{{\"amount\": {i}}}")).send().await;
        let version = match answered {
            Ok(response) => response
                .headers()
                .get("x-rollgate-version")
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| format!("status {}", response.status()), str::to_string),
            Err(_) => "no answer".to_string(),
        };
        *served.entry(version).or_insert(0) += 1;
    }
    served
}
