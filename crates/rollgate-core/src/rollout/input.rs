//! What can happen to a rollout: the inputs of the state machine.

use super::{ActionRun, Pool, WatchBaseline};
use crate::plan::{ChecklistKind, Plan};
use crate::roles::{Actor, ApprovalKind};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An input and the actor behind it, as recorded in the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub actor: Actor,
    pub input: Input,
}

impl Command {
    pub fn new(actor: Actor, input: Input) -> Command {
        Command { actor, input }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// Begin a rollout of `candidate` replacing `stable` on `service`. The
    /// plan is copied in so that the log alone reproduces the rollout.
    Start {
        rollout_id: String,
        service: String,
        candidate: String,
        stable: String,
        plan_name: String,
        plan: Box<Plan>,
        #[serde(default)]
        skip_shadow: bool,
        /// The deployment ticket (a URL or a key), closed through the ticket hook at the end.
        #[serde(default)]
        ticket: Option<String>,
        /// For a rolling plan: the instances it replaces.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<Pool>,
    },
    /// The result of a gate's check (measured by rollgate or attached as a report).
    Evidence {
        gate: String,
        passed: bool,
        summary: String,
        #[serde(default)]
        details: serde_json::Value,
    },
    Approve {
        kind: ApprovalKind,
        #[serde(default)]
        comment: Option<String>,
    },
    Tick {
        checklist: ChecklistKind,
        item: String,
        #[serde(default)]
        note: Option<String>,
    },
    Verdict {
        verdict: Verdict,
    },
    /// Time has passed: holds may have ended, windows opened.
    Timer,
    Promote,
    Pause {
        reason: String,
    },
    Resume,
    Abort {
        reason: String,
    },
    Rollback {
        category: RollbackCategory,
        reason: String,
        /// Redeploy the previous version instead of only moving traffic back.
        #[serde(default)]
        full: bool,
    },
    ForcePromote {
        reason: String,
    },
    /// A run of an action's hook (or rollgate's own work, for an archive) and how it went.
    ActionRun {
        action: String,
        run: ActionRun,
    },
    /// No hook can carry out the action: it waits for a person.
    ActionNeedsPerson {
        action: String,
        why: String,
    },
    /// A person did the action by hand, and says what they did.
    ConfirmAction {
        action: String,
        note: String,
    },
    /// The record the version that came back is watched against, as measured.
    WatchBaseline {
        baseline: WatchBaseline,
    },
    /// How the watch of the version that came back ended.
    WatchResult {
        stable: bool,
        summary: String,
        #[serde(default)]
        details: serde_json::Value,
    },
    /// In full deployment: the previous version's record, as measured, that
    /// the new version is held to while the plan's `observe` window runs.
    ObserveBaseline {
        baseline: WatchBaseline,
    },
}

impl Input {
    /// A short name for logs and listings.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Start { .. } => "start",
            Input::Evidence { .. } => "evidence",
            Input::Approve { .. } => "approve",
            Input::Tick { .. } => "tick",
            Input::Verdict { .. } => "verdict",
            Input::Timer => "timer",
            Input::Promote => "promote",
            Input::Pause { .. } => "pause",
            Input::Resume => "resume",
            Input::Abort { .. } => "abort",
            Input::Rollback { .. } => "rollback",
            Input::ForcePromote { .. } => "force_promote",
            Input::ActionRun { .. } => "action_run",
            Input::ActionNeedsPerson { .. } => "action_needs_person",
            Input::ConfirmAction { .. } => "confirm_action",
            Input::WatchBaseline { .. } => "watch_baseline",
            Input::WatchResult { .. } => "watch_result",
            Input::ObserveBaseline { .. } => "observe_baseline",
        }
    }

    /// Inputs that a finished rollout still takes: its actions are done, and
    /// the version a rollback brought back is watched, after it ends.
    pub fn applies_after_the_end(&self) -> bool {
        matches!(
            self,
            Input::ActionRun { .. }
                | Input::ActionNeedsPerson { .. }
                | Input::ConfirmAction { .. }
                | Input::WatchBaseline { .. }
                | Input::WatchResult { .. }
        )
    }
}

/// The judge's word on the candidate, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    Hold {
        reason: String,
    },
    Rollback {
        trigger: String,
        #[serde(default)]
        evidence: serde_json::Value,
    },
}

impl Verdict {
    pub fn same_kind(&self, other: &Verdict) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Why a person rolled back, as our users' guide lists the manual triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RollbackCategory {
    Quality,
    Complaints,
    HarmfulOutputs,
    Security,
    Other,
}

impl fmt::Display for RollbackCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RollbackCategory::Quality => "quality",
            RollbackCategory::Complaints => "complaints",
            RollbackCategory::HarmfulOutputs => "harmful_outputs",
            RollbackCategory::Security => "security",
            RollbackCategory::Other => "other",
        })
    }
}
