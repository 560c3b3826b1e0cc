//! Staging traffic: a sample of request bodies sent open-loop at a fixed
//! rate through the gateway, every answer kept with who served it and when.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

/// Reads a JSONL traffic sample: one JSON request body per non-empty line.
pub fn read_sample(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the traffic sample {path}: {e}"))?;
    let mut bodies = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| format!("{path}:{}:{}: not a JSON request body: {e}", i + 1, e.column()))?;
        bodies.push(line.to_string());
    }
    if bodies.is_empty() {
        return Err(format!("the traffic sample {path} has no requests"));
    }
    Ok(bodies)
}

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
    let (status, served_by, well_formed) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let served_by =
                response.headers().get("x-rollgate-version").and_then(|v| v.to_str().ok()).map(str::to_string);
            let stream =
                response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            match response.bytes().await {
                Ok(body) => (status, served_by, stream || serde_json::from_slice::<serde_json::Value>(&body).is_ok()),
                Err(_) => (0, served_by, false),
            }
        }
        Err(_) => (0, None, false),
    };
    Answer { sent, status, latency: sent.elapsed(), served_by, well_formed }
}

/// Sends `bodies` in turn at `rate` per second until `stop` turns true or
/// `duration` passes, then waits for the answers still to come.
pub async fn replay(
    http: &reqwest::Client,
    target: &Target,
    bodies: Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
    mut stop: watch::Receiver<bool>,
) -> Vec<Answer> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = tokio::time::Instant::now() + duration;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut answers = Vec::new();
    for n in 0.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tokio::time::sleep_until(deadline) => break,
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        while let Some(Ok(answer)) = in_flight.try_join_next() {
            answers.push(answer);
        }
        let (http, target, body) = (http.clone(), target.clone(), bodies[n % bodies.len()].clone());
        in_flight.spawn(async move { send(&http, &target, body).await });
    }
    while let Some(done) = in_flight.join_next().await {
        answers.extend(done.ok());
    }
    answers
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
        Answer { sent: Instant::now(), status: 200, latency, served_by: None, well_formed: true }
    }

    #[test]
    fn the_p99_of_a_hundred_answers_is_the_99th() {
        let answers: Vec<Answer> = (1..=100).rev().map(answer).collect();
        assert_eq!(latency_quantile(&answers, 0.99), Duration::from_millis(99));
        assert_eq!(latency_quantile(&answers, 1.0), Duration::from_millis(100));
        assert_eq!(latency_quantile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn a_sample_line_that_is_not_json_is_named_with_its_place() {
        let dir = std::env::temp_dir().join(format!("rollgate-sample-{}", std::process::id()));
        std::fs::write(&dir, "{\"a\":1}\n\n{\"b\":\n").unwrap();
        let err = read_sample(dir.to_str().unwrap()).unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert!(err.contains(":3:"), "{err}");
        assert!(read_sample("/nonexistent/sample.jsonl").unwrap_err().contains("cannot read"));
    }
}
