//! The infrastructure gates, proven by rollgate itself while a rollout is in
//! pre-deployment, never typed in: every candidate endpoint answers its
//! health check (`endpoints_healthy`); the configured Prometheus, or else
//! rollgate's own gateway, has series for the candidate
//! (`monitoring_instrumented`); the version's config says
//! how it scales (`scaling_declared`); the service's logging check passes
//! (`logging_enabled`). What rollgate cannot prove (no Prometheus, no scaling
//! declared, no logging check) it leaves pending for a person: the log never
//! says what did not happen.

use super::{Ctx, evidence};
use rollgate_core::config::{LoggingCheck, Service};
use rollgate_core::rollout::{Rollout, Stage};
use serde_json::json;
use std::time::Duration;

/// How long a health probe, a logging check or a Prometheus query may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

type Proof = (bool, String, serde_json::Value);

pub async fn tick(ctx: &Ctx) {
    let config = ctx.fleet().config();
    let waiting: Vec<Rollout> =
        ctx.fleet().rollouts().into_iter().filter(|r| r.stage == Stage::PreDeployment && r.paused.is_none()).collect();
    for r in waiting.iter().filter(|r| evidence::due(ctx, &format!("{}/infrastructure", r.id))) {
        let Some(service) = config.services.get(&r.service) else { continue };
        let proofs = [
            ("infrastructure.endpoints_healthy", Some(endpoints_healthy(ctx, service, r).await)),
            ("infrastructure.monitoring_instrumented", monitoring_instrumented(ctx, r).await),
            ("infrastructure.scaling_declared", scaling_declared(service, &r.candidate)),
            (
                "infrastructure.logging_enabled",
                match &service.logging_check {
                    Some(check) => Some(logging_enabled(ctx, check, r).await),
                    None => None,
                },
            ),
        ];
        for (gate, proof) in proofs {
            if let Some((passed, summary, details)) = proof {
                evidence::record(&ctx.log, r, gate, passed, summary, details).await;
            }
        }
    }
}

/// Every endpoint of the candidate answers its health check with 2xx.
async fn endpoints_healthy(ctx: &Ctx, service: &Service, r: &Rollout) -> Proof {
    let path = service.health.as_ref().map_or("/healthz", |h| h.path.as_str());
    let endpoints = ctx.fleet().endpoints(&r.service, &r.candidate);
    let mut answers = Vec::new();
    for endpoint in &endpoints {
        let url = format!("{}{path}", endpoint.trim_end_matches('/'));
        let answer = match ctx.http.get(&url).timeout(CHECK_TIMEOUT).send().await {
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
            Ok(response) => Err(format!("{url}: status {}", response.status())),
            Err(e) => {
                Err(format!("{url}: {}", if e.is_timeout() { "no answer in time".to_string() } else { e.to_string() }))
            }
        };
        answers.push(answer);
    }
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    let passed = !endpoints.is_empty() && failed.is_empty();
    let summary = match (endpoints.len(), failed.as_slice()) {
        (0, _) => format!("{} has no endpoints to check", r.candidate),
        (n, []) => format!("all {n} endpoint(s) of {} answer {path} with 2xx", r.candidate),
        (n, failed) => format!(
            "{} of {n} endpoint(s) fail: {}",
            failed.len(),
            failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
        ),
    };
    (passed, summary, json!({ "endpoints": endpoints, "path": path, "failed": failed }))
}

/// The configured Prometheus has series labelled with the candidate's
/// version; without one, rollgate's own gateway routes the candidate and so
/// counts its every request (its series exist before any traffic). When
/// neither holds yet, nothing is recorded: the gate waits.
async fn monitoring_instrumented(ctx: &Ctx, r: &Rollout) -> Option<Proof> {
    let Some(prometheus) = ctx.prometheus.as_ref() else {
        let dataplane = ctx.fleet().dataplane()?;
        return dataplane.measures(&r.service, &r.candidate).then(|| {
            let series = format!("rollgate_requests_total{{service=\"{}\",version=\"{}\"}}", r.service, r.candidate);
            (
                true,
                format!("the gateway routes {} and counts its every request ({series} and the rest)", r.candidate),
                json!({ "by": "gateway", "series": series }),
            )
        });
    };
    let query = format!("count({{version={}}})", serde_json::Value::String(r.candidate.clone()));
    Some(match prometheus.value(&query).await {
        Ok(n) if n > 0.0 => (
            true,
            format!("Prometheus has {n} series for version {}", r.candidate),
            json!({ "query": query, "series": n }),
        ),
        Ok(_) | Err(_) => (
            false,
            format!("Prometheus has no series labelled version=\"{}\": is the model server scraped?", r.candidate),
            json!({ "query": query }),
        ),
    })
}

/// The version's config says how it scales.
fn scaling_declared(service: &Service, version: &str) -> Option<Proof> {
    let s = service.versions.get(version)?.scaling.as_ref()?;
    let on = s.on.as_deref().map_or(String::new(), |on| format!(" on {on}"));
    let passed = s.min_replicas >= 1 && s.min_replicas <= s.max_replicas;
    let summary = if passed {
        format!("{version} scales from {} to {} replicas{on}", s.min_replicas, s.max_replicas)
    } else {
        format!(
            "{version}'s scaling is not usable: min_replicas {} and max_replicas {}",
            s.min_replicas, s.max_replicas
        )
    };
    Some((passed, summary, json!({ "min_replicas": s.min_replicas, "max_replicas": s.max_replicas, "on": s.on })))
}

/// The service's logging check: its URL answers 2xx, or its command exits 0.
async fn logging_enabled(ctx: &Ctx, check: &LoggingCheck, r: &Rollout) -> Proof {
    if let Some(url) = &check.url {
        return match ctx.http.get(url).timeout(CHECK_TIMEOUT).send().await {
            Ok(response) if response.status().is_success() => {
                (true, format!("{url} answers {}", response.status()), json!({ "url": url }))
            }
            Ok(response) => (false, format!("{url} answers {}", response.status()), json!({ "url": url })),
            Err(e) => (false, format!("{url}: {e}"), json!({ "url": url })),
        };
    }
    let Some([program, args @ ..]) = check.command.as_deref() else {
        return (false, "the logging check names neither a url nor a command".into(), json!({}));
    };
    let run = tokio::process::Command::new(program)
        .args(args)
        .env("ROLLGATE_SERVICE", &r.service)
        .env("ROLLGATE_VERSION", &r.candidate)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            (true, format!("`{program}` exited 0"), json!({ "command": check.command }))
        }
        Ok(Ok(out)) => {
            let tail: String = String::from_utf8_lossy(&out.stderr)
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (false, format!("`{program}` exited {}: {}", out.status, tail.trim()), json!({ "command": check.command }))
        }
        Ok(Err(e)) => (false, format!("`{program}` could not run: {e}"), json!({ "command": check.command })),
        Err(_) => (
            false,
            format!("`{program}` took longer than {} s", CHECK_TIMEOUT.as_secs()),
            json!({ "command": check.command }),
        ),
    }
}
