//! Work a rollout's decisions leave for the world that moving traffic cannot
//! do: redeploy the previous version and retire the candidate (through the
//! team's deploy hook, or by a person), archive the finished rollout. Each
//! such action is kept in the rollout's state from the moment it is decided
//! until a run of its hook, rollgate itself or a named person records it
//! done: the log never says an action happened that did not.

use super::Effect;
use super::instances::InstanceOp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One action and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Unique within the rollout: `redeploy-v1`, `retire-v2`, `archive`, `replace-2`.
    pub id: String,
    pub effect: Effect,
    pub requested_at: Timestamp,
    pub status: ActionStatus,
    /// Every recorded run of its hook, failed ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<ActionRun>,
    /// Not to be run before then (retiring the previous version once its keep-warm time is over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ActionStatus {
    /// Decided; its hook has not succeeded yet (or runs now).
    Pending,
    /// No hook can do it (none configured, or it kept failing): a person must, then confirm.
    WaitingForPerson {
        why: String,
        since: Timestamp,
    },
    Done {
        by: String,
        at: Timestamp,
        summary: String,
    },
    /// No longer wanted (a rolling batch's replacement when the rollout was
    /// rolled back first): not run, or its run's outcome no longer matters.
    Cancelled {
        at: Timestamp,
        why: String,
    },
}

/// What one run of an action's hook reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    pub ok: bool,
    /// 1 for the first run, counting every retry.
    pub attempt: u32,
    /// What ran it: `command ./deploy.sh`, `webhook https://…`, `rollgate`.
    pub via: String,
    /// Exit code or HTTP status and the tail of the output, or what was done.
    pub detail: String,
    /// The last run the hook gets: the action now waits for a person.
    #[serde(default)]
    pub gave_up: bool,
    /// Numbers and names the run produced (an archive's path and hash).
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Action {
    pub fn new(effect: Effect, at: Timestamp) -> Option<Action> {
        let id = action_id(&effect)?;
        Some(Action { id, effect, requested_at: at, status: ActionStatus::Pending, runs: Vec::new(), not_before: None })
    }

    /// Whether it may be run at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.not_before.is_none_or(|t| t <= now)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.status, ActionStatus::Done { .. })
    }

    /// Done or cancelled: nothing more will be run for it.
    pub fn is_closed(&self) -> bool {
        matches!(self.status, ActionStatus::Done { .. } | ActionStatus::Cancelled { .. })
    }

    /// The key a hook gets with every run of this action: the same on every
    /// retry and after a restart, so the hook can recognise a repeat.
    pub fn idempotency_key(&self, rollout: &str) -> String {
        format!("{rollout}/{}", self.id)
    }
}

/// The id of the action that closes (or comments on) the rollout's ticket.
pub const CLOSE_TICKET: &str = "close-ticket";

/// The id of the action an effect asks for, if it asks for one.
pub fn action_id(effect: &Effect) -> Option<String> {
    match effect {
        Effect::Redeploy { version, .. } => Some(format!("redeploy-{version}")),
        Effect::Retire { version, .. } => Some(format!("retire-{version}")),
        Effect::Archive => Some("archive".into()),
        Effect::CloseTicket { .. } => Some(CLOSE_TICKET.into()),
        Effect::Instances { op, batch, .. } => Some(match op {
            InstanceOp::Surge | InstanceOp::Unsurge => op.to_string(),
            InstanceOp::Replace | InstanceOp::Revert => format!("{op}-{batch}"),
        }),
        _ => None,
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionStatus::Pending => f.write_str("pending"),
            ActionStatus::WaitingForPerson { why, since } => write!(f, "waiting for a person since {since}: {why}"),
            ActionStatus::Done { by, at, summary } => write!(f, "done by {by} at {at}: {summary}"),
            ActionStatus::Cancelled { at, why } => write!(f, "cancelled at {at}: {why}"),
        }
    }
}

/// What a person must do for an action no hook did, in words.
pub fn instructions(effect: &Effect) -> String {
    match effect {
        Effect::Redeploy { service, version } => {
            format!("deploy version {version} of {service} again as the serving version")
        }
        Effect::Retire { service, version } => format!("take version {version} of {service} out of service"),
        Effect::Archive => "archive the rollout's plan, evidence and log".into(),
        Effect::Instances { service, op, version, endpoints, .. } => {
            let which = endpoints.join(", ");
            match op {
                InstanceOp::Surge => format!("start {service} {version} on {which} and check it is healthy"),
                InstanceOp::Replace | InstanceOp::Revert => {
                    format!("redeploy {service} instance(s) {which} with version {version} and check they are healthy")
                }
                InstanceOp::Unsurge => format!("stop the surge instance(s) {which} of {service} {version}"),
            }
        }
        Effect::CloseTicket { ticket, outcome, summary } => {
            format!("close deployment ticket {ticket} (or comment on it) with the outcome `{outcome}`: {summary}")
        }
        other => format!("{other:?}"),
    }
}
