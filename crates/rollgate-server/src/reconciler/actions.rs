//! The action runner: each rollout's open actions, one at a time and in
//! order (a retire waits for the redeploy before it; an archive or a ticket
//! left to a person holds nothing up; an action not due yet, such as
//! retiring the previous version before its keep-warm time is over, waits). An archive is written
//! by rollgate itself; closing the ticket runs the `[tickets]` hook; a
//! redeploy or retire, and a rolling batch's instances (drained before,
//! health-checked after), run the service's deploy hook,
//! retried with backoff, each run recorded in the log with its outcome; with
//! no hook, or once the hook has failed its attempts, the action waits for a
//! person, who is told what to do and confirms it. Nothing is recorded done
//! that was not done.
//!
//! A process killed between a hook's run and its record runs the hook again
//! on restart with the same idempotency key: delivery is at least once, and
//! the log holds the action's outcome once (the machine refuses a second).

use super::Ctx;
use super::archive;
use super::hooks::{self, HookCall, HookOutcome, TicketCall};
use super::instances;
use crate::failpoint;
use rollgate_core::config::{Config, DeployHook};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Action, ActionRun, ActionStatus, Command, Effect, Input, Rollout};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The longest wait between two runs of a failing hook.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often rollgate tries to write an archive before a person is asked.
const ARCHIVE_ATTEMPTS: u32 = 5;

pub async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    while !*stop.borrow() {
        let next = round(&ctx, &mut not_before).await;
        let sleep = next.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = ctx.actions.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => {}
        }
    }
}

/// What became of a rollout's next action this round.
enum Progress {
    /// Recorded (done, failed or handed to a person): look at the rollout again.
    Recorded,
    /// Its next run is not due before then.
    Later(Instant),
    /// Nothing to do until a person acts.
    Blocked,
}

/// Works every rollout's open actions as far as they go; returns when the next retry is due.
async fn round(ctx: &Ctx, not_before: &mut HashMap<String, Instant>) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    let with_work: Vec<String> =
        ctx.fleet().rollouts().into_iter().filter(|r| r.open_actions().next().is_some()).map(|r| r.id).collect();
    for id in with_work {
        // Each recorded run changes the rollout; a bound keeps a rollout from starving the rest.
        for _ in 0..16 {
            let Some(rollout) = ctx.fleet().rollout(&id) else { break };
            // Actions in order, up to the first one not due yet (a retire waiting for the keep-warm time to end).
            let now = ctx.clock.now();
            let mut open: Vec<Action> = rollout.open_actions().cloned().collect();
            if let Some(waiting) = open.iter().position(|a| !a.is_due(now)) {
                let at = due_soon(now, open[waiting].not_before.unwrap_or(now));
                next = Some(next.map_or(at, |n| n.min(at)));
                open.truncate(waiting);
            }
            // An archive or a ticket waiting for a person holds nothing else up: no action depends on them.
            open.retain(|a| {
                let independent = matches!(a.effect, Effect::Archive | Effect::CloseTicket { .. });
                !(independent && matches!(a.status, ActionStatus::WaitingForPerson { .. }))
            });
            // What no hook can do goes to a person at once, each told what must come first.
            let config = ctx.fleet().config();
            let unrunnable = open.iter().enumerate().find_map(|(i, a)| {
                let pending = matches!(a.status, ActionStatus::Pending);
                no_way_to_run(&config, &a.effect).filter(|_| pending).map(|why| (i, a, why))
            });
            if let Some((i, action, why)) = unrunnable {
                let before: Vec<&str> = open[..i].iter().map(|a| a.id.as_str()).collect();
                let why = if before.is_empty() { why } else { format!("{why}; do it after {}", before.join(", ")) };
                match hand_to_a_person(ctx, &rollout, action, why).await {
                    Progress::Later(at) => next = Some(next.map_or(at, |n| n.min(at))),
                    Progress::Recorded | Progress::Blocked => continue,
                }
                break;
            }
            let Some(action) = open.first() else { break };
            match work(ctx, &rollout, action, not_before).await {
                Progress::Recorded => {}
                Progress::Later(at) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                Progress::Blocked => break,
            }
        }
    }
    next
}

async fn work(ctx: &Ctx, rollout: &Rollout, action: &Action, not_before: &mut HashMap<String, Instant>) -> Progress {
    if matches!(action.status, ActionStatus::WaitingForPerson { .. }) {
        return Progress::Blocked;
    }
    let key = action.idempotency_key(&rollout.id);
    if let Some(at) = not_before.get(&key).filter(|at| **at > Instant::now()) {
        return Progress::Later(*at);
    }
    let attempt = u32::try_from(action.runs.len()).unwrap_or(u32::MAX).saturating_add(1);
    let config = ctx.fleet().config();
    let (outcome, details, attempts, backoff) = match &action.effect {
        Effect::Archive => {
            let (outcome, details) = match archive::write(ctx, rollout).await {
                Ok(a) => {
                    let detail = format!(
                        "archived to {} (MANIFEST.json sha256 {}, {} bytes)",
                        a.path.display(),
                        a.sha256,
                        a.bytes
                    );
                    let details = serde_json::json!({ "path": a.path, "sha256": a.sha256, "bytes": a.bytes });
                    (HookOutcome { ok: true, via: "rollgate".into(), detail }, details)
                }
                Err(e) => (HookOutcome { ok: false, via: "rollgate".into(), detail: e }, serde_json::Value::Null),
            };
            (outcome, details, ARCHIVE_ATTEMPTS, Duration::from_secs(10))
        }
        Effect::Redeploy { service, version } | Effect::Retire { service, version } => {
            let Some(hook) = config.deploy_hook(service) else { return Progress::Blocked };
            let call = HookCall {
                effect: if matches!(action.effect, Effect::Redeploy { .. }) { "redeploy" } else { "retire" },
                service: service.clone(),
                version: version.clone(),
                endpoints: ctx.fleet().endpoints(service, version),
                rollout: rollout.id.clone(),
                effect_id: action.id.clone(),
                idempotency_key: key.clone(),
                ticket: None,
            };
            tracing::info!(rollout = %rollout.id, action = %action.id, attempt, "running the deploy hook");
            let outcome = hooks::run(hook, &call, &ctx.http).await;
            (outcome, serde_json::Value::Null, hook.attempts, backoff_of(hook))
        }
        Effect::Instances { service, op, version, endpoints, .. } => {
            let Some(hook) = config.deploy_hook(service) else { return Progress::Blocked };
            let rolling = &rollout.plan.rolling;
            let drained = match op.takes_down() {
                true => Some(instances::drain(ctx, service, endpoints, rolling.drain).await),
                false => None,
            };
            let call = HookCall {
                effect: op.as_str(),
                service: service.clone(),
                version: version.clone(),
                endpoints: endpoints.clone(),
                rollout: rollout.id.clone(),
                effect_id: action.id.clone(),
                idempotency_key: key.clone(),
                ticket: None,
            };
            tracing::info!(rollout = %rollout.id, action = %action.id, attempt, "running the deploy hook on instances");
            let outcome = hooks::run(hook, &call, &ctx.http).await;
            let health = config.services.get(service).and_then(|s| s.health.as_ref());
            let checked = match (outcome.ok && op.brings_up(), health) {
                (true, Some(health)) => Some(instances::healthy(ctx, endpoints, health, rolling.health_timeout).await),
                _ => None,
            };
            let outcome = instances::combined(drained, outcome, checked);
            (outcome, serde_json::Value::Null, hook.attempts, backoff_of(hook))
        }
        Effect::CloseTicket { ticket, outcome, summary } => {
            let Some(hook) = config.tickets.as_ref() else { return Progress::Blocked };
            let link = ctx.api_url.as_ref().map(|api| format!("{api}/api/v1/rollouts/{}", rollout.id));
            let call = HookCall {
                effect: "close_ticket",
                service: rollout.service.clone(),
                version: rollout.candidate.clone(),
                endpoints: Vec::new(),
                rollout: rollout.id.clone(),
                effect_id: action.id.clone(),
                idempotency_key: key.clone(),
                ticket: Some(TicketCall {
                    ticket: ticket.clone(),
                    outcome: outcome.clone(),
                    summary: summary.clone(),
                    link,
                }),
            };
            tracing::info!(rollout = %rollout.id, %ticket, attempt, "running the ticket hook");
            let outcome = hooks::run(hook, &call, &ctx.http).await;
            (outcome, serde_json::Value::Null, hook.attempts, backoff_of(hook))
        }
        _ => return Progress::Blocked,
    };
    failpoint("after-hook");
    let gave_up = !outcome.ok && attempt >= attempts;
    if !outcome.ok && !gave_up {
        let wait = backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(MAX_BACKOFF);
        not_before.insert(key, Instant::now() + wait);
    }
    let run = ActionRun { ok: outcome.ok, attempt, via: outcome.via, detail: outcome.detail, gave_up, details };
    record(ctx, rollout, Input::ActionRun { action: action.id.clone(), run }).await
}

/// When to look again for an action due at `at` on the control plane's
/// clock: then, or within a second (a clock that jumps, as tests' and
/// rehearsals' do, is not missed).
fn due_soon(now: rollgate_core::Timestamp, at: rollgate_core::Timestamp) -> Instant {
    let wait = at.duration_since(now).try_into().unwrap_or(Duration::ZERO).min(Duration::from_secs(1));
    Instant::now() + wait
}

/// Why rollgate cannot carry out `effect` itself or through a hook, if it cannot.
fn no_way_to_run(config: &Config, effect: &Effect) -> Option<String> {
    match effect {
        Effect::Archive => None,
        Effect::Redeploy { service, .. } | Effect::Retire { service, .. } | Effect::Instances { service, .. } => config.deploy_hook(service).is_none().then(|| {
            format!("no deploy hook is configured for service `{service}` ([deploy] or [services.{service}.deploy] in the config)")
        }),
        Effect::CloseTicket { .. } => {
            config.tickets.is_none().then(|| "no ticket hook is configured ([tickets] in the config)".to_string())
        }
        other => Some(format!("rollgate has no way to carry out {other:?}")),
    }
}

fn backoff_of(hook: &DeployHook) -> Duration {
    hook.backoff.duration().try_into().unwrap_or(Duration::from_secs(10))
}

async fn hand_to_a_person(ctx: &Ctx, rollout: &Rollout, action: &Action, why: String) -> Progress {
    record(ctx, rollout, Input::ActionNeedsPerson { action: action.id.clone(), why }).await
}

async fn record(ctx: &Ctx, rollout: &Rollout, input: Input) -> Progress {
    match ctx.log.submit(&rollout.id, &Command::new(Actor::system(), input)).await {
        Ok(_) => Progress::Recorded,
        Err(e) => {
            // The run happened but its record did not land: it is run again
            // (same idempotency key) once the log can be written.
            tracing::warn!(rollout = %rollout.id, error = %e, "cannot record an action's run");
            Progress::Later(Instant::now() + Duration::from_secs(5))
        }
    }
}
