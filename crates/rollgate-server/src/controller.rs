//! The controller loop: time passes for every active rollout (holds end,
//! windows open) once a tick. Holds are measured from the recorded stage
//! times, so a restart resumes each rollout exactly where its log says it
//! was and a hold ends when it would have without the outage.

use crate::state::AppState;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rejection};
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
                        Ok(_) | Err(SubmitError::Rejected(Rejection::Unchanged)) => {}
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
