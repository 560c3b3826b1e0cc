//! The one way commands reach the log, for the API and the reconciler alike:
//! append the event, route as the new state says (this replica's data plane
//! follows at once), and hand the event's effects to the reconciler.

use crate::fleet::Fleet;
use rollgate_core::rollout::Command;
use rollgate_store::{AnyStore, Rollouts, SubmitError, Submitted};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Log {
    rollouts: Rollouts<AnyStore>,
    fleet: Arc<Fleet>,
    /// Rollouts whose log holds effects to carry out.
    effects: mpsc::UnboundedSender<String>,
}

impl Log {
    pub fn new(store: AnyStore, fleet: Arc<Fleet>, effects: mpsc::UnboundedSender<String>) -> Log {
        Log { rollouts: Rollouts::new(store), fleet, effects }
    }

    pub fn rollouts(&self) -> &Rollouts<AnyStore> {
        &self.rollouts
    }

    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Decides `command` now against the latest log and records it.
    // A refusal carries every gate and why; its size costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub async fn submit(&self, id: &str, command: &Command) -> Result<Submitted, SubmitError> {
        let submitted = self.rollouts.submit(id, command, self.fleet.now()).await?;
        self.fleet.observe(submitted.event.seq, &submitted.state);
        if !submitted.effects.is_empty() {
            self.effects_due(id);
        }
        Ok(submitted)
    }

    /// Tells the reconciler that `id`'s log may hold effects to carry out.
    pub fn effects_due(&self, id: &str) {
        // The reconciler is gone only when the server stops (or never ran on
        // this replica); the effects then stay pending in the log for the next one.
        let _ = self.effects.send(id.to_string());
    }
}
