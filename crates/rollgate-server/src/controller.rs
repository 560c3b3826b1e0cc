//! The controller loop: time passes for every active rollout (holds end,
//! windows open) once a tick, a rollout in staging gets its staging run,
//! and each canary's judge gets the tick's measurements; a verdict that
//! changes, and a rollback at once, is recorded. Holds are measured from
//! the recorded stage times, so a restart resumes each rollout exactly where
//! its log says it was and a hold ends when it would have without the outage.
//!
//! Each rollout's log is read once a tick: the timer is only submitted (a
//! second read, to append safely) when it would change something.

use crate::state::AppState;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rejection, Rollout, Verdict, step};
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
                    match pass_time(&state, id, &timer).await {
                        Some(rollout) if rollout.is_terminal() => {
                            finished.insert(id.clone());
                        }
                        Some(rollout) => {
                            state.staging().start_if_due(&state, &rollout);
                            judge(&state, &rollout).await;
                        }
                        None => {}
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

/// The rollout after letting time pass (`None` if it cannot be read).
async fn pass_time(state: &AppState, id: &str, timer: &Command) -> Option<Rollout> {
    let rollout = match state.rollouts().load(id).await {
        Ok(rollout) => rollout?,
        Err(e) => {
            tracing::warn!(rollout = %id, error = %e, "cannot read the rollout");
            return None;
        }
    };
    if matches!(step(Some(&rollout), timer, state.now()), Err(Rejection::Unchanged | Rejection::Terminal { .. })) {
        return Some(rollout);
    }
    match state.submit(id, timer).await {
        Ok(submitted) => Some(submitted.state),
        // Another writer got there first: what the log says is as good.
        Err(SubmitError::Rejected(Rejection::Unchanged | Rejection::Terminal { .. })) => Some(rollout),
        Err(e) => {
            tracing::warn!(rollout = %id, error = %e, "controller tick failed");
            None
        }
    }
}

/// Feeds the rollout's judge and records what it says, if that is news.
async fn judge(state: &AppState, rollout: &Rollout) {
    let Some(verdict) = state.judging().tick(rollout).await else { return };
    let id = &rollout.id;
    let rollback = matches!(verdict, Verdict::Rollback { .. });
    let command = Command::new(Actor::system(), Input::Verdict { verdict });
    match state.submit(id, &command).await {
        Ok(_) if rollback => tracing::warn!(rollout = %id, "the judge rolled the canary back"),
        Ok(_) | Err(SubmitError::Rejected(Rejection::Unchanged)) => {}
        Err(e) => tracing::warn!(rollout = %id, error = %e, "cannot record the judge's verdict"),
    }
}
