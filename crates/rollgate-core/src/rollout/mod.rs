//! The rollout state machine: `step(state, command, now) -> (state, effects)`.
//! Pure: no I/O, no clock reads; the shell persists each accepted command as
//! an event and carries out the effects.

mod action;
mod effect;
mod gates;
mod input;
mod instances;
mod machine;
pub mod rehearsal;
mod watch;

pub use action::{Action, ActionRun, ActionStatus, CLOSE_TICKET, action_id, instructions};
pub use effect::{Effect, NotificationKind};
pub use gates::{Gate, GateReport, GateStatus, checklist_items};
pub use input::{Command, Input, RollbackCategory, Verdict};
pub use instances::{InstanceOp, Instances, Pool, endpoints_of as rolling_endpoints, own_endpoints, pool_for};
pub use machine::{Rejection, Transition, step};
pub use watch::{ObserveRecord, WatchBaseline, WatchRecord, WatchResult};

use crate::plan::{ChecklistKind, Plan};
use crate::roles::ApprovalKind;
use crate::weight::Weight;
use crate::window::WindowClosed;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A feature flag rolled out by a plan is a rollout of the service
/// `flag:NAME` (no service of the config can be named so), from `off` to
/// `on`: its weight is the flag's rollout percentage.
pub const FLAG_SERVICE_PREFIX: &str = "flag:";
/// The versions of a flag's rollout: users it is off for, users it is on for.
pub const FLAG_OFF: &str = "off";
pub const FLAG_ON: &str = "on";

/// The flag a rollout's service names, if it is a flag's.
pub fn flag_of(service: &str) -> Option<&str> {
    service.strip_prefix(FLAG_SERVICE_PREFIX)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    PreDeployment,
    Staging,
    Shadow,
    Canary { step: usize },
    Full,
    Completed,
    RolledBack { kind: RollbackKind, cause: RollbackCause },
    Aborted { reason: String },
}

impl Stage {
    pub fn is_terminal(&self) -> bool {
        matches!(self, Stage::Completed | Stage::RolledBack { .. } | Stage::Aborted { .. })
    }

    /// Stages in which the candidate sees real traffic (served or mirrored).
    pub fn candidate_sees_traffic(&self) -> bool {
        matches!(self, Stage::Shadow | Stage::Canary { .. } | Stage::Full)
    }

    /// Stages the judge watches: a canary step (canary against baseline) and
    /// full deployment (no baseline left; the absolute triggers watch).
    pub fn is_judged(&self) -> bool {
        matches!(self, Stage::Canary { .. } | Stage::Full)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::PreDeployment => f.write_str("pre-deployment"),
            Stage::Staging => f.write_str("staging"),
            Stage::Shadow => f.write_str("shadow"),
            Stage::Canary { step } => write!(f, "canary step {}", step + 1),
            Stage::Full => f.write_str("full deployment"),
            Stage::Completed => f.write_str("completed"),
            Stage::RolledBack { kind, .. } => write!(f, "rolled back ({kind})"),
            Stage::Aborted { .. } => f.write_str("aborted"),
        }
    }
}

/// Quick: traffic back to stable, candidate kept up for investigation.
/// Full: the previous version redeployed and the candidate retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackKind {
    Quick,
    Full,
}

impl fmt::Display for RollbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RollbackKind::Quick => "quick",
            RollbackKind::Full => "full",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RollbackCause {
    /// The judge's trigger fired; the evidence is in the verdict event.
    Judge {
        trigger: String,
    },
    Person {
        name: String,
        category: RollbackCategory,
        reason: String,
    },
    /// A check rollgate runs itself failed (a rolling batch's instances did
    /// not come back healthy); what it saw is in `detail`.
    Rollgate {
        check: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
    pub by: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub kind: ApprovalKind,
    pub by: String,
    pub at: Timestamp,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    pub by: String,
    pub at: Timestamp,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub verdict: Verdict,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// A promotion past gates that had not passed, by an admin, with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub from: Stage,
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
    pub bypassed: Vec<String>,
}

/// The previous version, kept running at no traffic for an instant rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmRecord {
    pub version: String,
    pub until: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageVisit {
    pub stage: Stage,
    pub entered_at: Timestamp,
}

/// The whole state of one rollout, derived from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub service: String,
    pub candidate: String,
    pub stable: String,
    pub requester: String,
    pub plan_name: String,
    pub plan: Plan,
    pub skip_shadow: bool,
    pub stage: Stage,
    pub stage_entered_at: Timestamp,
    pub started_at: Timestamp,
    /// The candidate's share of served traffic.
    pub weight: Weight,
    /// The share of traffic mirrored to the candidate, while shadowing.
    pub mirroring: Option<Weight>,
    pub paused: Option<PauseRecord>,
    /// Set while every gate but the deploy window has passed.
    pub waiting_for_window: Option<WindowClosed>,
    pub evidence: BTreeMap<String, EvidenceRecord>,
    pub approvals: Vec<ApprovalRecord>,
    /// Ticks by people, keyed by checklist and item id.
    pub ticks: BTreeMap<ChecklistKind, BTreeMap<String, TickRecord>>,
    /// The judge's latest verdict since the current stage began.
    pub verdict: Option<VerdictRecord>,
    pub overrides: Vec<Override>,
    pub history: Vec<StageVisit>,
    /// Set on entering full deployment: the previous version stays warm until then.
    pub warm: Option<WarmRecord>,
    /// Redeploy, retire, archive and closing the ticket, in the order they must be done.
    pub actions: Vec<Action>,
    /// The deployment ticket the rollout belongs to (a URL or a key).
    #[serde(default)]
    pub ticket: Option<String>,
    /// After a rollback: the watch of the version that came back.
    #[serde(default)]
    pub watch: Option<WatchRecord>,
    /// In full deployment: the previous version's record the new one is held to.
    #[serde(default)]
    pub observed: Option<ObserveRecord>,
    /// A rolling rollout's instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Instances>,
}

impl Rollout {
    pub fn is_terminal(&self) -> bool {
        self.stage.is_terminal()
    }

    /// Gate reports for leaving the current stage, as of `now`.
    pub fn gates(&self, now: Timestamp) -> Vec<GateReport> {
        gates::report(self, now)
    }

    /// The first moment after `now` at which time alone may move this
    /// rollout on (a hold ends, a deploy window opens): when the shell must
    /// feed it a timer. `None` when only a person or the judge can.
    pub fn next_timer(&self, now: Timestamp) -> Option<Timestamp> {
        if self.is_terminal() {
            return None;
        }
        let hold_ends = gates::hold_ends(self);
        let window_opens = self.waiting_for_window.as_ref().and_then(|w| w.opens_at);
        hold_ends.into_iter().chain(window_opens).filter(|at| *at > now).min()
    }

    /// When the current stage's hold ends, if the stage has one.
    pub fn hold_ends_at(&self) -> Option<Timestamp> {
        gates::hold_ends(self).into_iter().max()
    }

    /// The version kept warm for an instant rollback, if its time has not run out.
    pub fn warm_at(&self, now: Timestamp) -> Option<&WarmRecord> {
        self.warm.as_ref().filter(|w| now < w.until)
    }

    /// The action with this id.
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }

    /// Actions not done (nor cancelled) yet, in order.
    pub fn open_actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| !a.is_closed())
    }
}
