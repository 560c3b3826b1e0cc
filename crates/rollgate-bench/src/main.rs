//! An open-loop HTTP load generator: requests leave on a fixed schedule
//! whether or not earlier ones have answered, and each latency is measured
//! from the moment the request was due, so a stall shows up in the
//! percentiles instead of hiding in a slower send rate (no coordinated
//! omission). wrk, by contrast, is closed-loop.
//!
//! At most CONNECTIONS requests are in flight, so at most that many
//! connections are open, as with wrk2's `-c`: a client with a bounded pool,
//! like the services that call a model gateway. A request due while every
//! connection is busy waits for one, and the wait counts in its latency.
//! (An unbounded pool turns any hiccup into a storm of new connections that
//! measures the load generator more than the proxy.)
//!
//! usage: loadgen URL RATE_PER_SECOND SECONDS [CONNECTIONS]
//! prints one JSON object: sent, ok, errors, achieved rate, p50/p99/p99.9 in µs.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: loadgen URL RATE_PER_SECOND SECONDS [CONNECTIONS]";
    let url: hyper::Uri = args.get(1).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let rate: f64 = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let seconds: f64 = args.get(3).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let connections: usize = args.get(4).map_or(Ok(64), |c| c.parse())?;
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build_http::<Empty<Bytes>>();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(connections));
    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, latencies, errors) = (client.clone(), url.clone(), latencies.clone(), errors.clone());
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let ok = match client.get(url).await {
                Ok(response) => response.status().is_success() && response.into_body().collect().await.is_ok(),
                Err(_) => false,
            };
            let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            if ok {
                let _ = latencies.lock().map(|mut h| h.record(micros.min(60_000_000)));
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let report = serde_json::json!({
        "sent": total,
        "ok": h.len(),
        "errors": errors.load(std::sync::atomic::Ordering::Relaxed),
        "achieved_rps": h.len() as f64 / elapsed,
        "p50_us": h.value_at_quantile(0.5),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
    });
    println!("{report}");
    Ok(())
}
