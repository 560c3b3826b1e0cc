//! The controller loop: time passes for every active rollout (holds end,
//! windows open) once a tick, and each canary's judge gets the tick's
//! measurements; a verdict that changes, and a rollback at once, is recorded. Holds are measured from the recorded stage
//! times, so a restart resumes each rollout exactly where its log says it
//! was and a hold ends when it would have without the outage.

use crate::state::AppState;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rejection, Verdict};
use rollgate_store::{EventStore, SubmitError, is_rollout_stream};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(state: AppState, tick: Duration, mut stop: watch::Receiver<bool>) {
    let mut finished: HashSet<String> = HashSet::new();
    let timer = Command::new(Actor::system(), Input::Timer);
    while !*stop.borrow() {
        match state.store().streams().await {
            Ok(streams) => {
                let active: Vec<&String> =
                    streams.iter().filter(|s| is_rollout_stream(s) && !finished.contains(*s)).collect();
                for id in active {
                    match state.submit(id, &timer).await {
                        Ok(_) | Err(SubmitError::Rejected(Rejection::Unchanged)) => judge(&state, id).await,
                        Err(SubmitError::Rejected(Rejection::Terminal { .. })) => {
                            finished.insert(id.clone());
                        }
                        Err(e) => tracing::warn!(rollout = %id, error = %e, "controller tick failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list rollouts"),
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Feeds the rollout's judge and records what it says, if that is news.
async fn judge(state: &AppState, id: &str) {
    let rollout = match state.rollouts().load(id).await {
        Ok(Some(rollout)) => rollout,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(rollout = %id, error = %e, "cannot load the rollout to judge it");
            return;
        }
    };
    let Some(verdict) = state.judging().tick(&rollout).await else { return };
    let rollback = matches!(verdict, Verdict::Rollback { .. });
    let command = Command::new(Actor::system(), Input::Verdict { verdict });
    match state.submit(id, &command).await {
        Ok(_) if rollback => tracing::warn!(rollout = %id, "the judge rolled the canary back"),
        Ok(_) | Err(SubmitError::Rejected(Rejection::Unchanged)) => {}
        Err(e) => tracing::warn!(rollout = %id, error = %e, "cannot record the judge's verdict"),
    }
}
