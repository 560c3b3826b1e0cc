//! Sending load the way real clients do: open-loop (request n leaves on its
//! schedule whether or not earlier ones have answered, so a slow server
//! cannot slow the load down and hide its own latency), and request samples
//! read from JSONL files. The staging replay and `rollgate sim traffic` both
//! send with this.

use std::time::Duration;

/// What an open-loop run returns: each request's outcome, and how many were
/// not sent because `max_in_flight` were still out.
pub struct Sent<T> {
    pub outcomes: Vec<T>,
    pub dropped: u64,
}

/// Open-loop load: request `n` leaves on its schedule (`rate` per second)
/// whether or not earlier ones have answered, until `until` completes; then
/// the ones in flight are waited for.
pub async fn open_loop<F, Fut>(
    rate: f64,
    max_in_flight: usize,
    until: impl Future<Output = ()>,
    mut request: F,
) -> Sent<Fut::Output>
where
    F: FnMut(u64) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut sent = Sent { outcomes: Vec::new(), dropped: 0 };
    tokio::pin!(until);
    for n in 0.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut until => break,
        }
        while let Some(done) = in_flight.try_join_next() {
            sent.outcomes.extend(done.ok());
        }
        if in_flight.len() >= max_in_flight {
            sent.dropped += 1;
            continue;
        }
        in_flight.spawn(request(n));
    }
    while let Some(done) = in_flight.join_next().await {
        sent.outcomes.extend(done.ok());
    }
    sent
}

/// Reads a JSONL file of request bodies (e.g. sanitized production samples):
/// one JSON value per non-empty line; a line that is not JSON is named by
/// file:line:column.
pub fn read_bodies(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the requests in {path}: {e}"))?;
    let mut bodies = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| format!("{path}:{}:{}: not a JSON request body: {e}", i + 1, e.column()))?;
        bodies.push(line.to_string());
    }
    if bodies.is_empty() {
        return Err(format!("{path} has no requests"));
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_line_that_is_not_json_is_named_by_file_line_and_column() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{{\"a\": 1}}\n\n{{\"b\": oops}}").unwrap();
        let path = file.path().to_str().unwrap().to_string();
        let err = read_bodies(&path).unwrap_err();
        assert!(err.starts_with(&format!("{path}:3:7: not a JSON request body")), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert!(read_bodies(empty.path().to_str().unwrap()).unwrap_err().ends_with("has no requests"));
        assert!(read_bodies("/nonexistent/sample.jsonl").unwrap_err().contains("cannot read"));
        let mut fine = tempfile::NamedTempFile::new().unwrap();
        writeln!(fine, "{{\"a\":1}}\n\n[2]").unwrap();
        assert_eq!(read_bodies(fine.path().to_str().unwrap()).unwrap(), ["{\"a\":1}", "[2]"]);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_leave_on_schedule_and_past_the_bound_are_dropped() {
        // 100 per second for one virtual second; each request takes a virtual hour,
        // so at most 10 are ever in flight and the rest are dropped, not delayed.
        let until = tokio::time::sleep(Duration::from_millis(995));
        let sent = open_loop(100.0, 10, until, |n| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            n
        })
        .await;
        assert_eq!(sent.outcomes.len(), 10);
        assert_eq!(sent.dropped, 90);
    }
}
