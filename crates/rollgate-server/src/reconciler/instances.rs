//! A rolling batch's instances around its deploy-hook run: drained before
//! the hook touches instances that served (routing already sends them
//! nothing; their requests in flight finish), health-checked after it
//! leaves instances serving (each must answer the service's health check
//! before routing sends it traffic). Both are part of the action's run: a
//! run is recorded done only when the instances are back and healthy.

use super::Ctx;
use super::hooks::HookOutcome;
use rollgate_core::config::HealthCheck;
use rollgate_core::hold::Hold;
use std::time::{Duration, Instant};

/// How often drains and health checks look again.
const LOOK_EVERY: Duration = Duration::from_millis(100);

fn std_duration(hold: Hold) -> Duration {
    hold.duration().try_into().unwrap_or(Duration::ZERO)
}

/// Waits until routing no longer sends `endpoints` anything and their
/// requests in flight are done, for at most `limit`. Says what it saw:
/// a drain that runs out of time still lets the hook run (as Kubernetes'
/// termination grace period does), and says how many requests it cut.
pub async fn drain(ctx: &Ctx, service: &str, endpoints: &[String], limit: Hold) -> String {
    let Some(dataplane) = ctx.fleet().dataplane().cloned() else {
        return "no data plane in this process to drain".into();
    };
    let started = Instant::now();
    let deadline = started + std_duration(limit);
    loop {
        let left: Vec<(String, Option<usize>)> = endpoints
            .iter()
            .map(|e| (e.clone(), dataplane.in_flight_after_removal(service, e)))
            .filter(|(_, n)| *n != Some(0))
            .collect();
        if left.is_empty() {
            return format!("drained in {} ms", started.elapsed().as_millis());
        }
        if Instant::now() >= deadline {
            let what: Vec<String> = left
                .iter()
                .map(|(e, n)| match n {
                    Some(n) => format!("{e}: {n} request(s) in flight"),
                    None => format!("{e}: still routed"),
                })
                .collect();
            return format!("drain ran out after {limit}: {}", what.join(", "));
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Checks every endpoint answers `health` with a 2xx within `limit`.
/// `Err` names the first that did not, with what it last answered.
pub async fn healthy(ctx: &Ctx, endpoints: &[String], health: &HealthCheck, limit: Hold) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + std_duration(limit);
    let timeout = std_duration(health.timeout).max(Duration::from_millis(1));
    for endpoint in endpoints {
        let url = format!("{}{}", endpoint.trim_end_matches('/'), health.path);
        loop {
            let answer = ctx.http.get(&url).timeout(timeout).send().await;
            let last = match answer {
                Ok(a) if a.status().is_success() => break,
                Ok(a) => format!("answered {}", a.status()),
                Err(e) => format!("did not answer: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(format!("health check {url} failed for {limit}: {last}"));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    Ok(format!("{} instance(s) healthy after {} ms", endpoints.len(), started.elapsed().as_millis()))
}

/// The hook's outcome with the drain before it and the health check after it.
pub fn combined(drain: Option<String>, hook: HookOutcome, health: Option<Result<String, String>>) -> HookOutcome {
    let mut detail = String::new();
    if let Some(d) = drain {
        detail.push_str(&d);
        detail.push_str("; ");
    }
    detail.push_str(&hook.detail);
    let ok = match health {
        Some(Ok(h)) => {
            detail.push_str("; ");
            detail.push_str(&h);
            hook.ok
        }
        Some(Err(h)) => {
            detail.push_str("; ");
            detail.push_str(&h);
            false
        }
        None => hook.ok,
    };
    HookOutcome { ok, via: hook.via, detail }
}
