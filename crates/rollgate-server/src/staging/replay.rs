//! Staging traffic: a sample of request bodies sent open-loop at a fixed
//! rate through the gateway, every answer kept with who served it and when.

use rollgate_load::open_loop;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where staging requests go: the gateway's address, the staging service's
/// route and the plan's path, and the route's host when it matches on one.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub host: Option<String>,
}

/// One request's fate.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    /// 0 when no answer came (refused, reset, timed out).
    pub status: u16,
    pub latency: Duration,
    /// The version the gateway says served it (`x-rollgate-version`).
    pub served_by: Option<String>,
    /// What the gateway says went wrong, when it answered itself (`x-rollgate-error`).
    pub gateway_error: Option<String>,
    /// The body parsed as JSON (or was a stream of server-sent events).
    pub well_formed: bool,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request gives up after this long: a hang is an answer of 0, not a stall.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Inputs for a staging run without a sample: small, varied, valid JSON.
pub fn generated_sample() -> Vec<String> {
    (0..64)
        .map(|i| format!("{{\"inputs\":[{{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[{i}.5]}}]}}"))
        .collect()
}

pub async fn send(http: &reqwest::Client, target: &Target, body: String) -> Answer {
    let sent = Instant::now();
    let mut request = http
        .post(&target.url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .header("x-user-id", format!("staging-{}", fastrand::u32(..)))
        .body(body);
    if let Some(host) = &target.host {
        request = request.header("host", host);
    }
    let (status, served_by, gateway_error, well_formed) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (served_by, gateway_error) = (header("x-rollgate-version"), header("x-rollgate-error"));
            let stream =
                response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            match response.bytes().await {
                Ok(body) => {
                    let well_formed = stream || serde_json::from_slice::<serde_json::Value>(&body).is_ok();
                    (status, served_by, gateway_error, well_formed)
                }
                Err(_) => (0, served_by, gateway_error, false),
            }
        }
        Err(_) => (0, None, None, false),
    };
    Answer { sent, status, latency: sent.elapsed(), served_by, gateway_error, well_formed }
}

/// Requests a staging run keeps out at once; past it, requests are not sent
/// (and the load check sees the rate fall short).
const MAX_IN_FLIGHT: usize = 1024;

/// Sends `bodies` in turn, open-loop at `rate` per second, until `until`
/// completes, then waits for the answers still to come.
pub async fn replay(
    http: &reqwest::Client,
    target: &Target,
    bodies: Arc<Vec<String>>,
    rate: f64,
    until: impl Future<Output = ()>,
) -> Vec<Answer> {
    let sent = open_loop(rate, MAX_IN_FLIGHT, until, |n| {
        let (http, target) = (http.clone(), target.clone());
        let body = bodies[usize::try_from(n).unwrap_or(0) % bodies.len()].clone();
        async move { send(&http, &target, body).await }
    })
    .await;
    sent.outcomes
}

/// The `q`-quantile of the answers' latencies (0 if there are none).
pub fn latency_quantile(answers: &[Answer], q: f64) -> Duration {
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
    latencies.get(rank).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ms: u64) -> Answer {
        let latency = Duration::from_millis(ms);
        Answer { sent: Instant::now(), status: 200, latency, served_by: None, gateway_error: None, well_formed: true }
    }

    #[test]
    fn the_p99_of_a_hundred_answers_is_the_99th() {
        let answers: Vec<Answer> = (1..=100).rev().map(answer).collect();
        assert_eq!(latency_quantile(&answers, 0.99), Duration::from_millis(99));
        assert_eq!(latency_quantile(&answers, 1.0), Duration::from_millis(100));
        assert_eq!(latency_quantile(&[], 0.99), Duration::ZERO);
    }
}
