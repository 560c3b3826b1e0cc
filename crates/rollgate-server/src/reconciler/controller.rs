//! The controller: rollouts get a timer when the log asked for one (a hold
//! ends, a deploy window opens), and once a tick each judged rollout's judge
//! gets the tick's measurements; a verdict that changes, and a rollback at
//! once, is recorded. The watches of versions that rollbacks brought back
//! take their step once a tick too. Holds are measured from the recorded stage times, so a
//! restart resumes each rollout where its log says it was, and a hold ends
//! when it would have without the outage.
//!
//! Each tick also compares the store's stream heads with what this replica
//! knows, to take in what other writers appended (their effects are carried
//! out and their timers scheduled like this process's own).

use super::{Ctx, Due};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rejection, Rollout, Verdict};
use rollgate_store::SubmitError;
use std::sync::Arc;
use tokio::sync::watch;

pub async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    // Catch up on what came due while no controller ran, then follow the log's timers.
    let now = ctx.clock.now();
    for rollout in ctx.fleet().rollouts().iter().filter(|r| !r.is_terminal()) {
        ctx.timers.at(now, Due::Rollout(rollout.id.clone()));
        // A run cut short by the last stop left its evidence missing: run it again.
        ctx.staging.start_if_due(rollout);
    }
    schedule_routing_change(&ctx);
    let mut ticker = tokio::time::interval(ctx.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.timers.wait(ctx.clock.as_ref()) => {
                for due in ctx.timers.take_due(ctx.clock.now()) {
                    fire(&ctx, due).await;
                }
            }
            _ = ticker.tick() => tick(&ctx).await,
            // Another replica appended: take up what moved now rather than at the next tick.
            () = ctx.appended.notified() => catch_up(&ctx).await,
            _ = stop.changed() => break,
        }
    }
}

async fn fire(ctx: &Ctx, due: Due) {
    match due {
        Due::Rollout(id) => {
            if let Some(rollout) = pass_time(ctx, &id).await
                && let Some(at) = rollout.next_timer(ctx.clock.now())
            {
                ctx.timers.at(at, Due::Rollout(id));
            }
        }
        Due::Routing => {
            if let Some(problem) = ctx.fleet().apply() {
                tracing::warn!(%problem, "the routing could not be applied");
            }
            schedule_routing_change(ctx);
        }
    }
}

fn schedule_routing_change(ctx: &Ctx) {
    if let Some(at) = ctx.fleet().desired().next_change {
        ctx.timers.at(at, Due::Routing);
    }
}

/// Feeds a rollout a timer; its state after (`None` if it cannot be read).
async fn pass_time(ctx: &Ctx, id: &str) -> Option<Rollout> {
    let timer = Command::new(Actor::system(), Input::Timer);
    match ctx.log.submit(id, &timer).await {
        Ok(submitted) => Some(submitted.state),
        Err(SubmitError::Rejected(Rejection::Unchanged | Rejection::Terminal { .. })) => ctx.fleet().rollout(id),
        Err(e) => {
            tracing::warn!(rollout = %id, error = %e, "a timer could not be recorded");
            None
        }
    }
}

/// What other writers appended since the last look: routed, and each moved
/// rollout's timers and effects taken up.
async fn catch_up(ctx: &Ctx) {
    match ctx.fleet().sync(&ctx.store).await {
        Ok(moved) => {
            let now = ctx.clock.now();
            for id in moved {
                let Some(rollout) = ctx.fleet().rollout(&id) else { continue };
                ctx.timers.at(now, Due::Rollout(id.clone()));
                if let Some(at) = rollout.next_timer(now) {
                    ctx.timers.at(at, Due::Rollout(id.clone()));
                }
                ctx.log.effects_due(&id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read what changed in the store"),
    }
}

/// What other writers appended since the last look, then the judges.
async fn tick(ctx: &Arc<Ctx>) {
    catch_up(ctx).await;
    ctx.record_heads().await;
    let active: Vec<Rollout> = ctx.fleet().rollouts().into_iter().filter(|r| !r.is_terminal()).collect();
    for rollout in &active {
        judge(ctx, rollout).await;
    }
    ctx.judging.keep_only(|id| active.iter().any(|r| r.id == id));
    super::evidence::keep_only(ctx, |id| active.iter().any(|r| r.id == id));
    super::aftercare::tick(ctx).await;
    super::postdeploy::tick(ctx).await;
    super::monitoring::tick(ctx).await;
    super::infrastructure::tick(ctx).await;
    super::validating::tick(ctx);
}

/// Feeds the rollout's judge and records what it says, if that is news.
async fn judge(ctx: &Ctx, rollout: &Rollout) {
    let Some(verdict) = ctx.judging.tick(ctx, rollout).await else { return };
    let id = &rollout.id;
    let rollback = matches!(verdict, Verdict::Rollback { .. });
    let command = Command::new(Actor::system(), Input::Verdict { verdict });
    match ctx.log.submit(id, &command).await {
        Ok(_) if rollback => tracing::warn!(rollout = %id, "the judge rolled the canary back"),
        Ok(_) | Err(SubmitError::Rejected(Rejection::Unchanged)) => {}
        Err(e) => tracing::warn!(rollout = %id, error = %e, "cannot record the judge's verdict"),
    }
}
