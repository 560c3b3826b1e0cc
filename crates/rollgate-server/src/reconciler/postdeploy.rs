//! Full deployment's check by rollgate. There is no concurrent control any
//! more, so on entering full deployment the previous version's record (all
//! it served on this data plane) is recorded in the log, and for the plan's
//! `observe` window the new version is held to it: errors, slow requests,
//! bad outputs and complaints (each an anytime-valid test against the
//! record times the plan's ratio) and its health checks. A regression is
//! recorded at once as failed evidence for `post_deployment.metrics_stable`
//! with the numbers, the team is told, and the plan's
//! `full.rollback_on_regression` says whether rollgate rolls back to the warm
//! previous version itself; a clean window is recorded as passed evidence,
//! which ticks the checklist items it proves.

use super::Ctx;
use super::record::{Since, baseline_of, clean_window, health, rates};
use crate::dataplane::{Arm, DataPlane};
use rollgate_core::Timestamp;
use rollgate_core::plan::gate_ids::POST_DEPLOYMENT_METRICS_STABLE;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage, Verdict, WatchBaseline, flag_of};
use serde_json::json;
use std::time::Duration;

/// The trigger named in a rollback the post-deployment check makes.
pub const TRIGGER: &str = "post_deployment";

/// Once a tick: every rollout in full deployment a step further.
pub async fn tick(ctx: &Ctx) {
    let Some(dataplane) = ctx.fleet().dataplane().cloned() else { return };
    // A flag's previous side has no record on the data plane: its post-deployment evidence is a person's.
    let full: Vec<Rollout> = ctx
        .fleet()
        .rollouts()
        .into_iter()
        .filter(|r| r.stage == Stage::Full && r.paused.is_none() && flag_of(&r.service).is_none())
        .collect();
    ctx.observations.keep_only(|id| full.iter().any(|r| r.id == id));
    for rollout in &full {
        for input in look(ctx, dataplane.as_ref(), rollout, ctx.clock.now()).await {
            let command = Command::new(Actor::system(), input);
            if let Err(e) = ctx.log.submit(&rollout.id, &command).await {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot record the post-deployment check");
                break;
            }
        }
    }
}

/// What the check of `r` has to record now.
async fn look(ctx: &Ctx, dataplane: &dyn DataPlane, r: &Rollout, now: Timestamp) -> Vec<Input> {
    let plan = &r.plan.rollback;
    let limit_of = |b: &WatchBaseline| b.latency_ms.map(|ms| Duration::from_secs_f64(ms * plan.latency_ratio / 1000.0));
    let read = |version: &str, arm, limit| dataplane.history(&r.service, version, arm, plan.latency_quantile, limit);
    let Some(observed) = &r.observed else {
        let baseline = baseline_of(&read(&r.stable, Arm::Stable, None));
        ctx.observations.start(&r.id, read(&r.candidate, Arm::Canary, limit_of(&baseline)));
        return vec![Input::ObserveBaseline { baseline }];
    };
    let decided = r
        .evidence
        .get(POST_DEPLOYMENT_METRICS_STABLE)
        .is_some_and(|e| e.by == Actor::system().name && e.at >= r.stage_entered_at);
    if decided {
        return Vec::new();
    }
    let baseline = &observed.baseline;
    let limit = limit_of(baseline);
    let record = read(&r.candidate, Arm::Canary, limit);
    let since = Since::between(&ctx.observations.start(&r.id, record), &record);
    let mut findings = rates(plan, baseline, &since, &format!("for {} before", observed.of));
    findings.extend(health(dataplane, r, &r.candidate));
    let details = json!({
        "version": r.candidate, "held_to": observed.of, "baseline": baseline,
        "requests": since.requests, "errors": since.errors, "bad_outputs": since.bad_outputs,
        "complaints": since.complaints, "latency_limit_ms": limit.map(|l| l.as_secs_f64() * 1000.0),
        "slow": since.slow, "timed": since.timed, "problems": findings,
    });
    let evidence = |passed, summary| Input::Evidence {
        gate: POST_DEPLOYMENT_METRICS_STABLE.into(),
        passed,
        summary,
        details: details.clone(),
    };
    if !findings.is_empty() {
        let mut out = vec![evidence(false, findings.join("; "))];
        if r.plan.full.rollback_on_regression {
            out.push(Input::Verdict {
                verdict: Verdict::Rollback { trigger: TRIGGER.into(), evidence: details.clone() },
            });
        }
        return out;
    }
    // The window's end as the stage's hold says (a rolling rollout's runs from its last batch's return).
    let Some(ends) = r.hold_ends_at() else { return Vec::new() };
    if now < ends {
        return Vec::new();
    }
    let then = format!("{} before", observed.of);
    let numbers = clean_window(&since, baseline, limit, r.plan.full.observe, &then);
    vec![evidence(true, format!("{numbers}, health checks fine"))]
}
