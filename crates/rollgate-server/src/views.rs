//! What the API (and the CLI) show of a rollout. The views are the API's
//! contract: they change only on purpose, while the core's types evolve.

use rollgate_core::Timestamp;
use rollgate_core::plan::ChecklistKind;
use rollgate_core::rollout::{
    Action, ActionStatus, Effect, GateReport, GateStatus, RollbackCause, Rollout, Stage, checklist_items,
};
use rollgate_store::Delivery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GateView {
    /// e.g. `validation.bias`, `approval.security`, `hold 4h`, `judge: stable`, `deploy window`.
    pub gate: String,
    /// evidence, approval, checklist, hold, stable or window.
    pub kind: String,
    /// A blocking gate must pass before the stage is left.
    pub blocking: bool,
    /// passed, failed or pending.
    pub status: String,
    /// The proof of a passed gate, or what is missing and what to do.
    pub detail: String,
}

impl From<&GateReport> for GateView {
    fn from(report: &GateReport) -> GateView {
        let (status, detail) = match &report.status {
            GateStatus::Passed { proof } => ("passed", proof.clone()),
            GateStatus::Failed { why } => ("failed", why.clone()),
            GateStatus::Pending { why } => ("pending", why.clone()),
        };
        let kind = serde_json::to_value(&report.gate)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default();
        GateView { gate: report.gate.to_string(), kind, blocking: report.blocking, status: status.into(), detail }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceView {
    pub gate: String,
    pub passed: bool,
    pub summary: String,
    pub by: String,
    pub at: String,
    /// The numbers behind the result, as submitted.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub kind: String,
    pub by: String,
    pub at: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChecklistItemView {
    pub id: String,
    pub text: String,
    pub done: bool,
    /// Who ticked it, or the proof that ticked it.
    pub how: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChecklistView {
    pub checklist: String,
    pub items: Vec<ChecklistItemView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitView {
    pub stage: String,
    pub entered_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    pub by: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OverrideView {
    pub from: String,
    pub by: String,
    pub reason: String,
    pub at: String,
    pub bypassed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: String,
    pub sink: String,
    pub attempts: u32,
    pub delivered: bool,
    pub gave_up: bool,
    pub last_error: Option<String>,
}

impl From<&Delivery> for NotificationView {
    fn from(d: &Delivery) -> NotificationView {
        NotificationView {
            id: d.id.clone(),
            sink: d.sink.clone(),
            attempts: d.attempts,
            delivered: d.delivered_ms.is_some(),
            gave_up: d.gave_up,
            last_error: d.last_error.clone(),
        }
    }
}

/// The previous version, kept running at no traffic for an instant rollback.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WarmView {
    pub version: String,
    pub until: String,
    /// Whether its time has not run out yet (it is still in the route table).
    pub warm: bool,
}

/// After a rollback: the watch of the version that came back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WatchView {
    pub version: String,
    /// A full rollback: the redeployed endpoints are checked too.
    pub full: bool,
    pub from: String,
    pub until: String,
    /// `watching`, `stable` or `unhealthy`.
    pub status: String,
    /// What it is measured against: its own record before the rollback.
    #[schema(value_type = Option<Object>)]
    pub baseline: Option<serde_json::Value>,
    /// How the watch ended, with the numbers.
    pub summary: Option<String>,
    pub ended_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// In full deployment: the previous version's record the new version is held to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObservedView {
    /// The previous version, whose record it is.
    pub of: String,
    pub at: String,
    #[schema(value_type = Object)]
    pub baseline: serde_json::Value,
}

impl WatchView {
    fn new(w: &rollgate_core::rollout::WatchRecord) -> WatchView {
        let status = match &w.result {
            None => "watching",
            Some(result) if result.stable => "stable",
            Some(_) => "unhealthy",
        };
        WatchView {
            version: w.version.clone(),
            full: w.full,
            from: w.from.to_string(),
            until: w.until.to_string(),
            status: status.into(),
            baseline: w.baseline.as_ref().and_then(|b| serde_json::to_value(b).ok()),
            summary: w.result.as_ref().map(|r| r.summary.clone()),
            ended_at: w.result.as_ref().map(|r| r.at.to_string()),
            details: w.result.as_ref().map(|r| r.details.clone()),
        }
    }
}

/// One run of an action's hook.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionRunView {
    pub attempt: u32,
    pub ok: bool,
    pub via: String,
    pub detail: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Work the rollout left for the world: redeploy, retire, archive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    /// e.g. `redeploy-v1`: what `confirm-effect` names.
    pub id: String,
    /// redeploy, retire, archive, close_ticket, or for a rolling rollout's
    /// instances surge, replace, revert or unsurge.
    pub effect: String,
    pub version: Option<String>,
    /// The instances a rolling rollout's action acts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// pending, waiting_for_person, done or cancelled.
    pub status: String,
    /// Who or what did it and how, or why it waits.
    pub detail: String,
    pub requested_at: String,
    pub runs: Vec<ActionRunView>,
}

impl From<&Action> for ActionView {
    fn from(a: &Action) -> ActionView {
        let (effect, version, endpoints) = match &a.effect {
            Effect::Redeploy { version, .. } => ("redeploy", Some(version.clone()), Vec::new()),
            Effect::Retire { version, .. } => ("retire", Some(version.clone()), Vec::new()),
            Effect::Instances { op, version, endpoints, .. } => (op.as_str(), Some(version.clone()), endpoints.clone()),
            Effect::CloseTicket { .. } => ("close_ticket", None, Vec::new()),
            _ => ("archive", None, Vec::new()),
        };
        let (status, detail) = match &a.status {
            ActionStatus::Pending if a.not_before.is_some() => (
                "pending",
                format!(
                    "not before {}: the previous version is kept warm until then; a server then carries it out \
                     through the deploy hook",
                    a.not_before.unwrap_or_default()
                ),
            ),
            ActionStatus::Pending => (
                "pending",
                "not done yet: a server carries it out (deploy hook, archive), or a person does and runs confirm-effect"
                    .to_string(),
            ),
            ActionStatus::WaitingForPerson { why, since } => ("waiting_for_person", format!("since {since}: {why}")),
            ActionStatus::Done { by, at, summary } => ("done", format!("by {by} at {at}: {summary}")),
            ActionStatus::Cancelled { at, why } => ("cancelled", format!("at {at}: {why}")),
        };
        ActionView {
            id: a.id.clone(),
            effect: effect.into(),
            version,
            endpoints,
            status: status.into(),
            detail,
            requested_at: a.requested_at.to_string(),
            runs: a
                .runs
                .iter()
                .map(|r| ActionRunView {
                    attempt: r.attempt,
                    ok: r.ok,
                    via: r.via.clone(),
                    detail: r.detail.clone(),
                    details: r.details.clone(),
                })
                .collect(),
        }
    }
}

/// A rollout as of a moment: where it is, what traffic it has, and what stands in its way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    /// The moment this view describes (the server's clock).
    pub as_of: String,
    pub id: String,
    pub service: String,
    pub candidate: String,
    pub stable: String,
    pub requester: String,
    pub plan: String,
    /// How the plan moves traffic: canary or blue-green.
    pub strategy: String,
    /// pre_deployment, staging, shadow, canary, full, completed, rolled_back or aborted.
    pub stage: String,
    /// The stage in words, e.g. "canary step 2".
    pub stage_label: String,
    /// The canary step (from 1) while in canary.
    pub canary_step: Option<u32>,
    pub canary_steps: u32,
    pub terminal: bool,
    pub started_at: String,
    pub stage_entered_at: String,
    /// When the current stage's hold ends, if it has one.
    pub hold_ends_at: Option<String>,
    /// Share of served traffic on the candidate, in percent.
    pub candidate_percent: f64,
    /// Share of traffic mirrored to the candidate while shadowing, in percent.
    pub mirroring_percent: Option<f64>,
    pub paused: Option<PauseView>,
    pub waiting_for_window: Option<String>,
    /// Why a rolled-back or aborted rollout ended; after a rollback, how the
    /// version that came back is doing.
    pub outcome: Option<String>,
    /// The deployment ticket, closed through the ticket hook at the end.
    pub ticket: Option<String>,
    /// After a rollback: the watch of the version that came back.
    pub watch: Option<WatchView>,
    /// In full deployment: the previous version's record that rollgate's post-deployment check holds the new one to.
    pub observed: Option<ObservedView>,
    pub gates: Vec<GateView>,
    pub evidence: Vec<EvidenceView>,
    pub approvals: Vec<ApprovalView>,
    pub checklists: Vec<ChecklistView>,
    pub history: Vec<VisitView>,
    pub overrides: Vec<OverrideView>,
    /// Webhook deliveries of this rollout's notifications, failures included.
    pub notifications: Vec<NotificationView>,
    /// The previous version kept warm from full deployment on.
    pub warm: Option<WarmView>,
    /// Redeploy, retire and archive, in order, with every hook run.
    pub actions: Vec<ActionView>,
    /// Actions not done yet: pending or waiting for a person.
    pub open_actions: u32,
    /// The judge's live report while a canary step runs under `serve`: the
    /// verdict, and per trigger its events, e-value, threshold, confidence
    /// sequence and sample guard.
    #[schema(value_type = Option<Object>)]
    pub judge: Option<serde_json::Value>,
}

/// The stage's machine-readable name.
pub fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::PreDeployment => "pre_deployment",
        Stage::Staging => "staging",
        Stage::Shadow => "shadow",
        Stage::Canary { .. } => "canary",
        Stage::Full => "full",
        Stage::Completed => "completed",
        Stage::RolledBack { .. } => "rolled_back",
        Stage::Aborted { .. } => "aborted",
    }
}

fn outcome(r: &Rollout) -> Option<String> {
    let ended = ended(&r.stage)?;
    let Some(w) = &r.watch else { return Some(ended) };
    Some(match &w.result {
        None => format!("{ended}; watching {} until {}", w.version, w.until),
        Some(result) if result.stable => format!("{ended}; previous version {} stable since {}", w.version, w.from),
        Some(result) => {
            format!("{ended}; ALERT: previous version {} is not healthy either: {}", w.version, result.summary)
        }
    })
}

fn ended(stage: &Stage) -> Option<String> {
    match stage {
        Stage::RolledBack { kind, cause: RollbackCause::Judge { trigger } } => {
            Some(format!("{kind} rollback: the judge's {trigger} trigger fired"))
        }
        Stage::RolledBack { kind, cause: RollbackCause::Person { name, category, reason } } => {
            Some(format!("{kind} rollback by {name} ({category}): {reason}"))
        }
        Stage::RolledBack { kind, cause: RollbackCause::Rollgate { check, detail } } => {
            Some(format!("{kind} rollback: rollgate's check {check} failed: {detail}"))
        }
        Stage::Aborted { reason } => Some(format!("aborted: {reason}")),
        _ => None,
    }
}

impl RolloutView {
    pub fn new(r: &Rollout, now: Timestamp, deliveries: &[Delivery]) -> RolloutView {
        let gates = if r.is_terminal() { Vec::new() } else { r.gates(now).iter().map(GateView::from).collect() };
        let checklists = ChecklistKind::ALL
            .into_iter()
            .map(|kind| ChecklistView {
                checklist: kind.to_string(),
                items: checklist_items(r, kind)
                    .into_iter()
                    .map(|(id, text, how)| ChecklistItemView { id, text, done: how.is_some(), how })
                    .collect(),
            })
            .collect();
        RolloutView {
            as_of: now.to_string(),
            id: r.id.clone(),
            service: r.service.clone(),
            candidate: r.candidate.clone(),
            stable: r.stable.clone(),
            requester: r.requester.clone(),
            plan: r.plan_name.clone(),
            strategy: r.plan.strategy.as_str().to_string(),
            stage: stage_name(&r.stage).into(),
            stage_label: r.stage.to_string(),
            canary_step: match r.stage {
                Stage::Canary { step } => u32::try_from(step + 1).ok(),
                _ => None,
            },
            canary_steps: u32::try_from(r.plan.canary.steps.len()).unwrap_or(u32::MAX),
            terminal: r.is_terminal(),
            started_at: r.started_at.to_string(),
            stage_entered_at: r.stage_entered_at.to_string(),
            hold_ends_at: r.hold_ends_at().map(|t| t.to_string()),
            candidate_percent: r.weight.percent(),
            mirroring_percent: r.mirroring.map(|w| w.percent()),
            paused: r.paused.as_ref().map(|p| PauseView {
                by: p.by.clone(),
                reason: p.reason.clone(),
                at: p.at.to_string(),
            }),
            waiting_for_window: r.waiting_for_window.as_ref().map(ToString::to_string),
            outcome: outcome(r),
            ticket: r.ticket.clone(),
            watch: r.watch.as_ref().map(WatchView::new),
            observed: r.observed.as_ref().map(|o| ObservedView {
                of: o.of.clone(),
                at: o.at.to_string(),
                baseline: serde_json::to_value(&o.baseline).unwrap_or_default(),
            }),
            gates,
            evidence: r
                .evidence
                .iter()
                .map(|(gate, e)| EvidenceView {
                    gate: gate.clone(),
                    passed: e.passed,
                    summary: e.summary.clone(),
                    by: e.by.clone(),
                    at: e.at.to_string(),
                    details: e.details.clone(),
                })
                .collect(),
            approvals: r
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    kind: a.kind.to_string(),
                    by: a.by.clone(),
                    at: a.at.to_string(),
                    comment: a.comment.clone(),
                })
                .collect(),
            checklists,
            history: r
                .history
                .iter()
                .map(|v| VisitView { stage: v.stage.to_string(), entered_at: v.entered_at.to_string() })
                .collect(),
            overrides: r
                .overrides
                .iter()
                .map(|o| OverrideView {
                    from: o.from.to_string(),
                    by: o.by.clone(),
                    reason: o.reason.clone(),
                    at: o.at.to_string(),
                    bypassed: o.bypassed.clone(),
                })
                .collect(),
            notifications: deliveries.iter().map(NotificationView::from).collect(),
            warm: r.warm.as_ref().map(|w| WarmView {
                version: w.version.clone(),
                until: w.until.to_string(),
                warm: r.warm_at(now).is_some(),
            }),
            actions: r.actions.iter().map(ActionView::from).collect(),
            open_actions: u32::try_from(r.open_actions().count()).unwrap_or(u32::MAX),
            judge: None,
        }
    }
}
