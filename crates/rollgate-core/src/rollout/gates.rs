//! Which gates stand between a rollout and its next stage, and whether each
//! has passed. A report always says why: the proof of a passed gate, or what
//! is missing or failed and what would make it pass.

use super::{EvidenceRecord, Rollout, Stage, Verdict};
use crate::hold::Hold;
use crate::plan::{ChecklistKind, EvidenceSource, GateSpec, PROOF_APPROVALS, PROOF_JUDGE, PROOF_TICKET};
use crate::roles::ApprovalKind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gate {
    /// A named check (validation, documentation, staging tests, …).
    Evidence {
        id: String,
    },
    Approval {
        approval: ApprovalKind,
    },
    Checklist {
        checklist: ChecklistKind,
    },
    /// The stage has been held this long.
    Hold {
        hold: Hold,
    },
    /// The judge's latest verdict in this stage is healthy.
    Stable,
    /// The deploy window allows traffic to move now.
    Window,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Evidence { id } => f.write_str(id),
            Gate::Approval { approval } => write!(f, "approval.{approval}"),
            Gate::Checklist { checklist } => write!(f, "checklist.{checklist}"),
            Gate::Hold { hold } => write!(f, "hold {hold}"),
            Gate::Stable => f.write_str("judge: stable"),
            Gate::Window => f.write_str("deploy window"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GateStatus {
    Passed { proof: String },
    Failed { why: String },
    Pending { why: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub gate: Gate,
    /// A required gate blocks the transition until it passes; others are advisory.
    pub blocking: bool,
    pub status: GateStatus,
}

impl GateReport {
    pub fn passed(&self) -> bool {
        matches!(self.status, GateStatus::Passed { .. })
    }

    /// Blocks the transition now.
    pub fn blocks(&self) -> bool {
        self.blocking && !self.passed()
    }
}

impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            GateStatus::Passed { proof } => write!(f, "{}: passed ({proof})", self.gate),
            GateStatus::Failed { why } => write!(f, "{}: failed: {why}", self.gate),
            GateStatus::Pending { why } => write!(f, "{}: pending: {why}", self.gate),
        }
    }
}

/// The stage the rollout moves to when the current one's gates pass.
pub(super) fn next_stage(r: &Rollout) -> Option<Stage> {
    let steps = r.plan.canary.steps.len();
    let first_canary = || {
        if steps <= 1 { Stage::Full } else { Stage::Canary { step: 0 } }
    };
    Some(match r.stage {
        Stage::PreDeployment => Stage::Staging,
        Stage::Staging if r.skip_shadow => first_canary(),
        Stage::Staging => Stage::Shadow,
        Stage::Shadow => first_canary(),
        Stage::Canary { step } if step + 2 >= steps => Stage::Full,
        Stage::Canary { step } => Stage::Canary { step: step + 1 },
        Stage::Full => Stage::Completed,
        Stage::Completed | Stage::RolledBack { .. } | Stage::Aborted { .. } => return None,
    })
}

/// The gates of leaving the current stage, in the order they are shown.
fn exit_gates(r: &Rollout) -> Vec<(Gate, bool)> {
    let plan = &r.plan;
    let evidence = |pairs: Vec<(String, &GateSpec)>| {
        pairs.into_iter().map(|(id, spec)| (Gate::Evidence { id }, spec.required)).collect::<Vec<_>>()
    };
    let entering_traffic =
        || vec![(Gate::Checklist { checklist: ChecklistKind::DeploymentDay }, true), (Gate::Window, true)];
    match &r.stage {
        Stage::PreDeployment => {
            let p = &plan.pre_deployment;
            let mut gates =
                evidence(p.validation.iter().chain(p.documentation.iter()).chain(p.infrastructure.iter()).collect());
            gates.extend(p.approvals.required().into_iter().map(|approval| (Gate::Approval { approval }, true)));
            gates.push((Gate::Checklist { checklist: ChecklistKind::PreDeployment }, true));
            gates
        }
        Stage::Staging => {
            let mut gates = evidence(plan.staging.gates.iter().collect());
            if r.skip_shadow {
                gates.extend(entering_traffic());
            }
            gates
        }
        Stage::Shadow => {
            let mut gates = vec![(Gate::Hold { hold: plan.shadow.duration }, true)];
            gates.extend(evidence(plan.shadow.gates.iter().collect()));
            gates.extend(entering_traffic());
            gates
        }
        Stage::Canary { step } => {
            let hold = plan.canary.steps.get(*step).and_then(|s| s.hold).unwrap_or(Hold::ZERO);
            vec![(Gate::Hold { hold }, true), (Gate::Stable, true), (Gate::Window, true)]
        }
        Stage::Full => {
            let mut gates = vec![(Gate::Hold { hold: plan.full.observe }, true), (Gate::Stable, true)];
            gates.extend(evidence(plan.full.gates.iter().collect()));
            gates.push((Gate::Checklist { checklist: ChecklistKind::PostDeployment }, true));
            gates
        }
        Stage::Completed | Stage::RolledBack { .. } | Stage::Aborted { .. } => Vec::new(),
    }
}

/// When the current stage's holds start: on entering it, except for a
/// rolling batch (the last one's in full deployment), held from when its
/// instances are back in service (`None` before).
fn hold_start(r: &Rollout) -> Option<Timestamp> {
    match (&r.stage, &r.instances) {
        (Stage::Canary { .. } | Stage::Full, Some(inst)) => inst.back_in_at,
        _ => Some(r.stage_entered_at),
    }
}

/// When each hold gate of the current stage ends.
pub(super) fn hold_ends(r: &Rollout) -> Vec<Timestamp> {
    let Some(start) = hold_start(r) else { return Vec::new() };
    exit_gates(r)
        .into_iter()
        .filter_map(|(gate, _)| match gate {
            Gate::Hold { hold } => start.checked_add(hold.duration()).ok(),
            _ => None,
        })
        .collect()
}

pub(super) fn report(r: &Rollout, now: Timestamp) -> Vec<GateReport> {
    exit_gates(r)
        .into_iter()
        .map(|(gate, blocking)| {
            let status = evaluate(r, &gate, now);
            GateReport { gate, blocking, status }
        })
        .collect()
}

fn evaluate(r: &Rollout, gate: &Gate, now: Timestamp) -> GateStatus {
    match gate {
        Gate::Evidence { id } => evidence_status(r, id),
        Gate::Approval { approval } => approval_status(r, *approval),
        Gate::Checklist { checklist } => checklist_status(r, *checklist),
        Gate::Hold { hold } => {
            let Some(start) = hold_start(r) else {
                let out = r.instances.as_ref().map_or_else(String::new, |i| i.out.join(", "));
                return GateStatus::Pending {
                    why: format!(
                        "the batch's instances ({out}) are not back in service yet: the deploy hook and their health checks run"
                    ),
                };
            };
            let ends = start.checked_add(hold.duration()).unwrap_or(Timestamp::MAX);
            if now >= ends {
                GateStatus::Passed { proof: format!("held {hold} since {start}") }
            } else {
                GateStatus::Pending { why: format!("held until {ends}") }
            }
        }
        Gate::Stable => judge_status(r),
        Gate::Window => match r.plan.window.check_traffic_change(now) {
            Ok(()) => GateStatus::Passed { proof: "deploy window open".into() },
            Err(closed) => GateStatus::Pending { why: closed.to_string() },
        },
    }
}

/// The gate's evidence, if it is of a kind the plan accepts for it.
fn counted<'a>(r: &'a Rollout, id: &str) -> Result<Option<&'a EvidenceRecord>, GateStatus> {
    let Some(e) = r.evidence.get(id) else { return Ok(None) };
    let rollgate_only = r.plan.gate(id).is_some_and(|g| g.source == EvidenceSource::Rollgate);
    if rollgate_only && e.by != crate::roles::Actor::system().name {
        let why = format!(
            "the plan accepts only evidence recorded by rollgate itself; {}'s of {} does not count",
            e.by, e.at
        );
        return Err(GateStatus::Pending { why });
    }
    Ok(Some(e))
}

fn evidence_status(r: &Rollout, id: &str) -> GateStatus {
    let evidence = match counted(r, id) {
        Ok(e) => e,
        Err(status) => return status,
    };
    match evidence {
        Some(e) if e.passed => GateStatus::Passed { proof: format!("{} (by {} at {})", e.summary, e.by, e.at) },
        Some(e) => GateStatus::Failed {
            why: format!("{} (by {} at {}); submit passing evidence after fixing it", e.summary, e.by, e.at),
        },
        None => {
            let what = r.plan.gate(id).map_or("", |g| g.description.as_str());
            GateStatus::Pending { why: format!("no evidence yet: {what}") }
        }
    }
}

fn approval_status(r: &Rollout, kind: ApprovalKind) -> GateStatus {
    match r.approvals.iter().find(|a| a.kind == kind) {
        Some(a) => GateStatus::Passed { proof: format!("approved by {} at {}", a.by, a.at) },
        None => GateStatus::Pending {
            why: format!("needs an approval from someone with role approver:{kind} other than {}", r.requester),
        },
    }
}

fn judge_status(r: &Rollout) -> GateStatus {
    let Some(record) = &r.verdict else {
        return GateStatus::Pending { why: "no verdict from the judge in this stage yet".into() };
    };
    match &record.verdict {
        Verdict::Healthy => GateStatus::Passed { proof: format!("judge healthy at {}", record.at) },
        Verdict::Hold { reason } => GateStatus::Pending { why: format!("judge holds: {reason}") },
        Verdict::Rollback { trigger, .. } => {
            GateStatus::Failed { why: format!("judge called for rollback: {trigger}") }
        }
    }
}

/// A checklist item is done when a person ticked it or its proof holds.
fn item_done(r: &Rollout, kind: ChecklistKind, id: &str, proof: &[String]) -> Option<String> {
    if let Some(t) = r.ticks.get(&kind).and_then(|items| items.get(id)) {
        return Some(format!("ticked by {} at {}", t.by, t.at));
    }
    if proof.is_empty() {
        return None;
    }
    if proof.iter().any(|p| p == PROOF_TICKET) {
        return ticket_closed(r);
    }
    let holds = |p: &String| match p.as_str() {
        PROOF_APPROVALS => {
            r.plan.pre_deployment.approvals.required().iter().all(|k| r.approvals.iter().any(|a| a.kind == *k))
        }
        PROOF_JUDGE => r.verdict.as_ref().is_some_and(|v| v.verdict == Verdict::Healthy),
        gate => counted(r, gate).ok().flatten().is_some_and(|e| e.passed),
    };
    proof.iter().all(holds).then(|| format!("proved by {}", proof.join(", ")))
}

/// How the rollout's ticket was closed, when it was; an item proved by it is done then.
fn ticket_closed(r: &Rollout) -> Option<String> {
    let Some(ticket) = &r.ticket else { return Some("no ticket was given".into()) };
    match &r.action(super::action::CLOSE_TICKET)?.status {
        super::ActionStatus::Done { by, at, summary } => Some(format!("{ticket} closed by {by} at {at}: {summary}")),
        _ => None,
    }
}

fn checklist_status(r: &Rollout, kind: ChecklistKind) -> GateStatus {
    // Items proved by the ticket are done after the end, so they never hold the rollout.
    let items: Vec<_> =
        r.plan.checklists.list(kind).iter().filter(|i| !i.proof.iter().any(|p| p == PROOF_TICKET)).collect();
    let open: Vec<&str> =
        items.iter().filter(|i| item_done(r, kind, &i.id, &i.proof).is_none()).map(|i| i.id.as_str()).collect();
    if open.is_empty() {
        GateStatus::Passed { proof: format!("all {} items done", items.len()) }
    } else {
        GateStatus::Pending { why: format!("open items: {}", open.join(", ")) }
    }
}

/// Each item of a checklist with how it was done, for status displays.
pub fn checklist_items(r: &Rollout, kind: ChecklistKind) -> Vec<(String, String, Option<String>)> {
    r.plan
        .checklists
        .list(kind)
        .iter()
        .map(|i| (i.id.clone(), i.text.clone(), item_done(r, kind, &i.id, &i.proof)))
        .collect()
}
