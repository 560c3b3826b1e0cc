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
use crate::dataplane::{Arm, DataPlane, History};
use rollgate_core::Timestamp;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, WatchBaseline, WatchRecord};
use rollgate_judge::watch::rate_above;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Requests of history a rate needs before it is a baseline to hold the version to.
const MIN_BASELINE: u64 = 100;
/// How long one endpoint may take to answer the version probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What this process had measured of each watched version when it began
/// watching it: the watch counts from there (a restart begins again).
#[derive(Default)]
pub struct Watches {
    started: Mutex<HashMap<String, History>>,
}

impl Watches {
    fn start(&self, rollout: &str, now: History) -> History {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner).entry(rollout.to_string()).or_insert(now)
    }

    fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).retain(|id, _| keep(id));
    }
}

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
    let mut findings = rates(r, baseline, &since);
    findings.extend(health(dataplane, r, &w.version));
    let redeployed = !w.full || r.action(&format!("redeploy-{}", w.version)).is_some_and(|a| a.is_done());
    let versions = if redeployed { versions_served(ctx, r, &w.version).await } else { Vec::new() };
    findings.extend(versions.iter().filter_map(|v| v.wrong.clone()));
    let details = json!({
        "requests": since.requests, "errors": since.errors, "bad_outputs": since.bad_outputs,
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
        "{} requests in {}: error rate {} (before {}), {} of {} timed requests over {} ms, health checks and endpoints fine",
        since.requests,
        r.plan.rollback.watch,
        percent(since.rate(since.errors)),
        percent(baseline.error_rate),
        since.slow,
        since.timed,
        limit.map_or("-".into(), |l| format!("{:.0}", l.as_secs_f64() * 1000.0)),
    );
    Some(Input::WatchResult { stable: true, summary, details })
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// The version's record up to the rollback.
fn baseline_of(h: &History) -> WatchBaseline {
    let rate = |k: u64| if h.counters.requests == 0 { 0.0 } else { k as f64 / h.counters.requests as f64 };
    WatchBaseline {
        requests: h.counters.requests,
        error_rate: rate(h.counters.errors),
        bad_output_rate: rate(h.counters.bad_outputs),
        latency_ms: h.quantile_us.map(|us| us as f64 / 1000.0),
    }
}

/// What happened since the watch began in this process.
struct Since {
    requests: u64,
    errors: u64,
    bad_outputs: u64,
    timed: u64,
    slow: u64,
}

impl Since {
    fn between(start: &History, now: &History) -> Since {
        let c = now.counters.since(&start.counters);
        Since {
            requests: c.requests,
            errors: c.errors,
            bad_outputs: c.bad_outputs,
            timed: now.count.saturating_sub(start.count),
            slow: now.over.saturating_sub(start.over),
        }
    }

    fn rate(&self, k: u64) -> f64 {
        if self.requests == 0 { 0.0 } else { k as f64 / self.requests as f64 }
    }
}

/// The rate tests: errors, slow requests and bad outputs, each against the
/// version's own record times the plan's ratio; the budget split three ways.
fn rates(r: &Rollout, baseline: &WatchBaseline, since: &Since) -> Vec<String> {
    let plan = &r.plan.rollback;
    let threshold = 3.0 / plan.false_rollback_budget;
    let mut out = Vec::new();
    let enough = baseline.requests >= MIN_BASELINE;
    let floor = 1.0 / baseline.requests.max(1) as f64;
    let bound = |rate: f64, ratio: f64| (ratio * rate.max(floor)).min(0.5);
    let mut test = |what: &str, k: u64, n: u64, before: f64, p0: f64, ratio: f64| {
        let e = rate_above(k, n, p0);
        if e >= threshold {
            out.push(format!(
                "{what} {} of {n} ({}) against {} before the rollback (allowed x{ratio}; e-value {e:.3e} >= {threshold:.0})",
                k,
                percent(if n == 0 { 0.0 } else { k as f64 / n as f64 }),
                percent(before),
            ));
        }
    };
    if enough {
        let errors = bound(baseline.error_rate, plan.error_rate_ratio);
        test("errors:", since.errors, since.requests, baseline.error_rate, errors, plan.error_rate_ratio);
        let bad = bound(baseline.bad_output_rate, plan.quality_ratio);
        test("bad outputs:", since.bad_outputs, since.requests, baseline.bad_output_rate, bad, plan.quality_ratio);
    }
    if baseline.latency_ms.is_some() && enough {
        let tail = 1.0 - plan.latency_quantile;
        test("slow requests:", since.slow, since.timed, tail, tail, plan.latency_ratio);
    }
    out
}

/// Every endpoint of the version failing its health checks.
fn health(dataplane: &dyn DataPlane, r: &Rollout, version: &str) -> Option<String> {
    let failures = dataplane.probe_failures(&r.service, version)?;
    let limit = r.plan.rollback.health_check_failures;
    let all_failing = !failures.is_empty() && failures.iter().all(|f| *f >= limit);
    all_failing.then(|| format!("every endpoint of {version} failed at least {limit} health checks in a row"))
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
