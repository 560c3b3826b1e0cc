//! What the shell must do after a transition. Effects are data: the core
//! decides, the shell carries them out, each at most once per event.

use super::instances::InstanceOp;
use crate::weight::Weight;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Route `candidate_weight` of the service's traffic to the candidate, the rest to stable.
    SetWeights {
        service: String,
        stable: String,
        candidate: String,
        candidate_weight: Weight,
    },
    StartMirroring {
        service: String,
        shadow: String,
        share: Weight,
    },
    StopMirroring {
        service: String,
    },
    /// Deploy the candidate into the plan's staging environment and run its checks.
    StartStaging {
        service: String,
        candidate: String,
    },
    /// Feed a `Timer` input at (or soon after) this moment.
    ScheduleTimer {
        at: Timestamp,
    },
    /// Keep the previous version running, ready for an instant rollback, until `until`.
    KeepWarm {
        service: String,
        version: String,
        until: Timestamp,
    },
    /// Full rollback: bring the previous version back as the deployed one.
    Redeploy {
        service: String,
        version: String,
    },
    /// Full rollback: take the candidate out of service.
    Retire {
        service: String,
        version: String,
    },
    /// Rolling: the deploy hook acts on some of the service's instances
    /// (batch 0 for the surge).
    Instances {
        service: String,
        op: InstanceOp,
        version: String,
        endpoints: Vec<String>,
        batch: usize,
    },
    Notify {
        kind: NotificationKind,
        message: String,
    },
    /// Store the plan, evidence, checklists and log of the finished rollout.
    Archive,
    /// Close the rollout's deployment ticket, or comment on it, with how it ended.
    CloseTicket {
        ticket: String,
        /// `completed`, `rolled_back` or `aborted`.
        outcome: String,
        summary: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Started,
    StageChanged,
    Waiting,
    Paused,
    Resumed,
    RolledBack,
    Aborted,
    Completed,
    /// A person must do something rollgate could not (an action without a working hook).
    ActionNeeded,
    /// After a rollback, the version that came back stayed healthy through the watch.
    PreviousVersionStable,
    /// After a rollback, the version that came back is not healthy either.
    PreviousVersionUnhealthy,
    /// In full deployment, rollgate's check found the new version worse than the previous one's record.
    RegressionAfterDeployment,
}
