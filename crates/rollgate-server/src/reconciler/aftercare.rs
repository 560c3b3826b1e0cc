//! After a rollback, the version that came back is watched for the plan's
//! `rollback.watch` against its own record from before the rollback (there
//! is no concurrent control any more): its error rate, its share of slow
//! requests and of bad outputs (each an anytime-valid test against its old
//! rate times the plan's ratio), its health checks and, where the service has
//! a `version_probe`, the version its endpoints say they serve (after a full
//! rollback, once the redeploy is done). The first tick records the baseline
//! in the log; the watch ends with "stable" when the window is over and
//! nothing was wrong, or at once with an alert and the numbers.

use super::Ctx;
use super::record::{Since, baseline_of, clean_window, health, rates};
use crate::dataplane::{Arm, DataPlane};
use rollgate_core::Timestamp;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, WatchBaseline, WatchRecord};
use serde_json::json;
use std::time::Duration;

/// How long one endpoint may take to answer the version probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Once a tick: every open watch a step further.
pub async fn tick(ctx: &Ctx) {
    let Some(dataplane) = ctx.fleet().dataplane().cloned() else { return };
    let open: Vec<Rollout> =
        ctx.fleet().rollouts().into_iter().filter(|r| r.watch.as_ref().is_some_and(WatchRecord::is_open)).collect();
    ctx.watches.keep_only(|id| open.iter().any(|r| r.id == id));
    for rollout in &open {
        if let Some(input) = look(ctx, dataplane.as_ref(), rollout, ctx.clock.now()).await {
            let command = Command::new(Actor::system(), input);
            if let Err(e) = ctx.log.submit(&rollout.id, &command).await {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot record the rollback watch");
            }
        }
    }
}

/// What the watch of `r` has to record now, if anything.
async fn look(ctx: &Ctx, dataplane: &dyn DataPlane, r: &Rollout, now: Timestamp) -> Option<Input> {
    let w = r.watch.as_ref()?;
    let plan = &r.plan.rollback;
    let limit_of = |b: &WatchBaseline| b.latency_ms.map(|ms| Duration::from_secs_f64(ms * plan.latency_ratio / 1000.0));
    let read = |limit| dataplane.history(&r.service, &w.version, Arm::Stable, plan.latency_quantile, limit);
    let Some(baseline) = &w.baseline else {
        // The record up to now is the baseline; the watch counts from this very reading.
        let baseline = baseline_of(&read(None));
        ctx.watches.start(&r.id, read(limit_of(&baseline)));
        return Some(Input::WatchBaseline { baseline });
    };
    let limit = limit_of(baseline);
    let record = read(limit);
    let since = Since::between(&ctx.watches.start(&r.id, record), &record);
    let mut findings = rates(plan, baseline, &since, "before the rollback");
    findings.extend(health(dataplane, r, &w.version));
    let redeployed = !w.full || r.action(&format!("redeploy-{}", w.version)).is_some_and(|a| a.is_done());
    let versions = if redeployed { versions_served(ctx, r, &w.version).await } else { Vec::new() };
    findings.extend(versions.iter().filter_map(|v| v.wrong.clone()));
    let details = json!({
        "requests": since.requests, "errors": since.errors, "bad_outputs": since.bad_outputs,
        "complaints": since.complaints,
        "latency_limit_ms": limit.map(|l| l.as_secs_f64() * 1000.0), "slow": since.slow, "timed": since.timed,
        "baseline": baseline, "endpoints": versions.iter().map(|v| &v.answer).collect::<Vec<_>>(),
        "problems": findings,
    });
    if !findings.is_empty() {
        return Some(Input::WatchResult { stable: false, summary: findings.join("; "), details });
    }
    if now < w.until || !redeployed {
        return None;
    }
    let summary = format!(
        "{}, health checks and endpoints fine",
        clean_window(&since, baseline, limit, r.plan.rollback.watch, "before")
    );
    Some(Input::WatchResult { stable: true, summary, details })
}

/// One endpoint's answer to the version probe.
struct Served {
    answer: serde_json::Value,
    /// Why it is the wrong version, if it is.
    wrong: Option<String>,
}

/// What each endpoint of the version says it serves, where the service says how to ask.
async fn versions_served(ctx: &Ctx, r: &Rollout, version: &str) -> Vec<Served> {
    let config = ctx.fleet().config();
    let Some(service) = config.services.get(&r.service) else { return Vec::new() };
    let Some(probe) = &service.version_probe else { return Vec::new() };
    let expected = service.versions.get(version).and_then(|v| v.reports_as.clone()).unwrap_or_else(|| version.into());
    let mut out = Vec::new();
    for endpoint in ctx.fleet().endpoints(&r.service, version) {
        let url = format!("{}{}", endpoint.trim_end_matches('/'), probe.path);
        let reported =
            match ctx.http.get(&url).timeout(PROBE_TIMEOUT).send().await {
                Ok(response) => response.json::<serde_json::Value>().await.ok().and_then(|body| {
                    body.pointer(&probe.pointer).and_then(serde_json::Value::as_str).map(str::to_string)
                }),
                Err(_) => None,
            };
        // An endpoint that does not answer is for the health checks; one that names another version is wrong.
        let wrong = reported
            .as_ref()
            .filter(|name| **name != expected)
            .map(|name| format!("endpoint {endpoint} serves `{name}`, not `{expected}`"));
        out.push(Served { answer: json!({ "endpoint": endpoint, "reports": reported, "expected": expected }), wrong });
    }
    out
}
