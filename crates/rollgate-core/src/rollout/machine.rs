//! The transition function. Every input is checked (role, stage, gates),
//! applied to a copy of the state, and followed by automatic promotion
//! while the plan allows it; the effects say what the shell must do.

use super::gates::{self, GateReport, next_stage};
use super::instances;
use super::{
    Action, ActionStatus, ApprovalRecord, Command, Effect, EvidenceRecord, Input, InstanceOp, Instances,
    NotificationKind, ObserveRecord, Override, PauseRecord, Pool, RollbackCause, RollbackKind, Rollout, Stage,
    StageVisit, TickRecord, Verdict, VerdictRecord, WarmRecord, WatchRecord, WatchResult, instructions,
};
use crate::plan::Plan;
use crate::plan::strategy::{self, Strategy};
use crate::roles::{Actor, Role};
use crate::weight::Weight;
use crate::window::WindowClosed;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// An accepted input: the new state and what the shell must now do.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: Rollout,
    pub effects: Vec<Effect>,
}

/// Why an input was refused. Refused inputs are not recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("no rollout has been started; start one first")]
    NotStarted,
    #[error("the rollout has already started")]
    AlreadyStarted,
    #[error("the rollout is {stage}, which is final; start a new rollout instead")]
    Terminal { stage: String },
    #[error("{actor} may not {action}: it needs the role {needs}")]
    Forbidden { actor: String, action: &'static str, needs: String },
    #[error("{actor} requested this rollout and so may not approve it; another approver must")]
    SeparationOfDuties { actor: String },
    #[error("{actor} has already given the {kind} approval")]
    AlreadyApproved { actor: String, kind: String },
    #[error("cannot leave {stage} yet:{}", blocking_list(.gates))]
    Blocked { stage: String, gates: Vec<GateReport> },
    #[error("unknown gate `{gate}`: this plan's gates are {known}")]
    UnknownGate { gate: String, known: String },
    #[error("checklist {checklist} has no item `{item}`; its items are {known}")]
    UnknownItem { checklist: String, item: String, known: String },
    #[error("item `{item}` of checklist {checklist} was already ticked by {by}")]
    AlreadyTicked { checklist: String, item: String, by: String },
    #[error("the rollout is paused ({reason}); resume it first")]
    Paused { reason: String },
    #[error("the rollout is not paused")]
    NotPaused,
    #[error("the deploy window is closed: {0}")]
    WindowClosed(WindowClosed),
    #[error("a reason is required to {action}")]
    ReasonRequired { action: &'static str },
    #[error("nothing to roll back in {stage}: the candidate has had no traffic; use abort to cancel the rollout")]
    NothingToRollBack { stage: String },
    #[error("judge verdicts apply while the candidate sees traffic (shadow, canary, full); the rollout is in {stage}")]
    NotJudged { stage: String },
    #[error("invalid start: {0}")]
    InvalidStart(String),
    #[error("the rollout has no action `{action}`; its actions are {known}")]
    UnknownAction { action: String, known: String },
    #[error("action `{action}` is already done ({status})")]
    ActionDone { action: String, status: String },
    /// The input was valid but changes nothing (a timer before any hold ends,
    /// a verdict the same as the last); the shell need not record it.
    #[error("nothing changed")]
    Unchanged,
}

fn blocking_list(gates: &[GateReport]) -> String {
    gates.iter().filter(|g| g.blocks()).map(|g| format!("\n  - {g}")).collect()
}

/// `(state, input, now) -> (state, effects)`. `state` is `None` before the
/// rollout's first event, which must be a start.
pub fn step(state: Option<&Rollout>, command: &Command, now: Timestamp) -> Result<Transition, Rejection> {
    let Some(current) = state else {
        return start(command, now);
    };
    if matches!(command.input, Input::Start { .. }) {
        return Err(Rejection::AlreadyStarted);
    }
    if current.is_terminal() && !command.input.applies_after_the_end() {
        return Err(Rejection::Terminal { stage: current.stage.to_string() });
    }
    let mut rollout = current.clone();
    let mut effects = Vec::new();
    apply(&mut rollout, command, now, &mut effects)?;
    advance(&mut rollout, now, &mut effects);
    if &rollout == current && effects.is_empty() {
        return Err(Rejection::Unchanged);
    }
    Ok(Transition { state: rollout, effects })
}

fn require(actor: &Actor, allowed: bool, action: &'static str, needs: &str) -> Result<(), Rejection> {
    if allowed {
        Ok(())
    } else {
        Err(Rejection::Forbidden { actor: actor.name.clone(), action, needs: needs.to_string() })
    }
}

fn require_reason(reason: &str, action: &'static str) -> Result<(), Rejection> {
    if reason.trim().is_empty() { Err(Rejection::ReasonRequired { action }) } else { Ok(()) }
}

fn start(command: &Command, now: Timestamp) -> Result<Transition, Rejection> {
    let Input::Start { rollout_id, service, candidate, stable, plan_name, plan, skip_shadow, ticket, pool } =
        &command.input
    else {
        return Err(Rejection::NotStarted);
    };
    let actor = &command.actor;
    require(actor, actor.may_operate(), "start a rollout", "deployer or admin")?;
    for (what, value) in
        [("rollout id", rollout_id), ("service", service), ("candidate", candidate), ("stable", stable)]
    {
        if value.trim().is_empty() {
            return Err(Rejection::InvalidStart(format!("the {what} is empty")));
        }
    }
    if !crate::config::is_slug(rollout_id) {
        return Err(Rejection::InvalidStart(format!("rollout id `{rollout_id}`: {}", crate::config::SLUG_HINT)));
    }
    if candidate == stable {
        return Err(Rejection::InvalidStart(format!("the candidate and the stable version are both `{stable}`")));
    }
    if let Some(ticket) = ticket
        && (ticket.trim().is_empty() || ticket.len() > MAX_TICKET_LEN || ticket.chars().any(char::is_control))
    {
        return Err(Rejection::InvalidStart(format!(
            "the ticket must be a URL or key of 1 to {MAX_TICKET_LEN} characters on one line"
        )));
    }
    if let Some(problem) = plan.problems().into_iter().next() {
        return Err(Rejection::InvalidStart(format!("plan `{plan_name}`: {} ({})", problem.message, problem.hint)));
    }
    if *skip_shadow && plan.shadow.mode == crate::plan::ShadowMode::Required {
        return Err(Rejection::InvalidStart(format!(
            "plan `{plan_name}` requires a shadow stage; it cannot be skipped"
        )));
    }
    plan.window.check_start(now).map_err(Rejection::WindowClosed)?;
    let (plan, instances) = rolling(plan_name, plan, pool.as_ref())?;
    let mut rollout = Rollout {
        id: rollout_id.clone(),
        service: service.clone(),
        candidate: candidate.clone(),
        stable: stable.clone(),
        requester: actor.name.clone(),
        plan_name: plan_name.clone(),
        plan,
        skip_shadow: *skip_shadow,
        stage: Stage::PreDeployment,
        stage_entered_at: now,
        started_at: now,
        weight: Weight::ZERO,
        mirroring: None,
        paused: None,
        waiting_for_window: None,
        evidence: BTreeMap::new(),
        approvals: Vec::new(),
        ticks: BTreeMap::new(),
        verdict: None,
        overrides: Vec::new(),
        history: vec![StageVisit { stage: Stage::PreDeployment, entered_at: now }],
        warm: None,
        actions: Vec::new(),
        ticket: ticket.clone(),
        watch: None,
        observed: None,
        instances,
    };
    let mut effects = vec![notify(
        NotificationKind::Started,
        format!("{} started rolling out {service} {candidate} (replacing {stable}) on plan `{plan_name}`", actor.name),
    )];
    advance(&mut rollout, now, &mut effects);
    Ok(Transition { state: rollout, effects })
}

/// A rolling plan's batches, laid out over the pool the start names.
fn rolling(plan_name: &str, plan: &Plan, pool: Option<&Pool>) -> Result<(Plan, Option<Instances>), Rejection> {
    let mut plan = plan.clone();
    if plan.strategy != Strategy::Rolling {
        return Ok((plan, None));
    }
    let pool = pool.filter(|p| !p.instances.is_empty()).ok_or_else(|| {
        Rejection::InvalidStart(format!(
            "plan `{plan_name}` is rolling, so the start must name the stable version's instances to replace"
        ))
    })?;
    if pool.surge.len() > plan.rolling.max_surge {
        return Err(Rejection::InvalidStart(format!(
            "{} surge instances named, but plan `{plan_name}` allows max_surge = {}",
            pool.surge.len(),
            plan.rolling.max_surge
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(e) = pool.instances.iter().chain(&pool.surge).find(|e| !seen.insert(*e)) {
        return Err(Rejection::InvalidStart(format!("instance {e} is named twice")));
    }
    let batch = plan.rolling.batch(pool.instances.len(), pool.surge.len());
    plan.canary.steps = strategy::rolling_steps(&plan.rolling, pool.instances.len(), pool.surge.len());
    Ok((plan, Some(Instances::new(pool, batch))))
}

fn apply(r: &mut Rollout, command: &Command, now: Timestamp, fx: &mut Vec<Effect>) -> Result<(), Rejection> {
    let actor = &command.actor;
    let by = actor.name.clone();
    match &command.input {
        Input::Start { .. } => Err(Rejection::AlreadyStarted),
        Input::Evidence { gate, passed, summary, details } => {
            require(actor, actor.may_operate() || actor.has(Role::System), "submit evidence", "deployer or admin")?;
            if r.plan.gate(gate).is_none() {
                return Err(Rejection::UnknownGate { gate: gate.clone(), known: r.plan.gate_ids().join(", ") });
            }
            let record =
                EvidenceRecord { passed: *passed, summary: summary.clone(), details: details.clone(), by, at: now };
            r.evidence.insert(gate.clone(), record);
            if !passed && actor.has(Role::System) && r.stage == Stage::Full && gate.starts_with("post_deployment.") {
                fx.push(notify(NotificationKind::RegressionAfterDeployment, regression_message(r, gate, summary)));
            }
            Ok(())
        }
        Input::Approve { kind, comment } => {
            require(actor, actor.has(Role::Approver(*kind)), "approve", &Role::Approver(*kind).to_string())?;
            if actor.name == r.requester {
                return Err(Rejection::SeparationOfDuties { actor: by });
            }
            if r.approvals.iter().any(|a| a.kind == *kind && a.by == actor.name) {
                return Err(Rejection::AlreadyApproved { actor: by, kind: kind.to_string() });
            }
            r.approvals.push(ApprovalRecord { kind: *kind, by, at: now, comment: comment.clone() });
            Ok(())
        }
        Input::Tick { checklist, item, note } => {
            let may_tick =
                actor.roles.iter().any(|role| matches!(role, Role::Deployer | Role::Admin | Role::Approver(_)));
            require(actor, may_tick, "tick a checklist item", "deployer, approver or admin")?;
            let items = r.plan.checklists.list(*checklist);
            if !items.iter().any(|i| &i.id == item) {
                let known = items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(", ");
                return Err(Rejection::UnknownItem { checklist: checklist.to_string(), item: item.clone(), known });
            }
            let ticked = r.ticks.entry(*checklist).or_default();
            if let Some(previous) = ticked.get(item) {
                return Err(Rejection::AlreadyTicked {
                    checklist: checklist.to_string(),
                    item: item.clone(),
                    by: previous.by.clone(),
                });
            }
            ticked.insert(item.clone(), TickRecord { by, at: now, note: note.clone() });
            Ok(())
        }
        Input::Verdict { verdict } => {
            require(actor, actor.has(Role::System), "report a judge verdict", "system")?;
            if !r.stage.candidate_sees_traffic() {
                return Err(Rejection::NotJudged { stage: r.stage.to_string() });
            }
            if let Verdict::Rollback { trigger, .. } = verdict {
                let kind = if r.plan.rollback.full_rollback { RollbackKind::Full } else { RollbackKind::Quick };
                roll_back(r, kind, RollbackCause::Judge { trigger: trigger.clone() }, now, fx);
                return Ok(());
            }
            if !r.verdict.as_ref().is_some_and(|v| v.verdict.same_kind(verdict)) {
                r.verdict = Some(VerdictRecord { verdict: verdict.clone(), at: now });
            }
            Ok(())
        }
        Input::Timer => Ok(()),
        Input::Promote => {
            require(actor, actor.may_operate(), "promote", "deployer or admin")?;
            if let Some(p) = &r.paused {
                return Err(Rejection::Paused { reason: p.reason.clone() });
            }
            let reports = gates::report(r, now);
            if reports.iter().any(GateReport::blocks) {
                return Err(Rejection::Blocked { stage: r.stage.to_string(), gates: reports });
            }
            enter_next(r, now, fx);
            Ok(())
        }
        Input::Pause { reason } => {
            require(actor, actor.may_operate(), "pause", "deployer or admin")?;
            require_reason(reason, "pause")?;
            if let Some(p) = &r.paused {
                return Err(Rejection::Paused { reason: p.reason.clone() });
            }
            r.paused = Some(PauseRecord { by: by.clone(), reason: reason.clone(), at: now });
            fx.push(notify(NotificationKind::Paused, format!("{by} paused the rollout at {}: {reason}", r.stage)));
            Ok(())
        }
        Input::Resume => {
            require(actor, actor.may_operate(), "resume", "deployer or admin")?;
            if r.paused.take().is_none() {
                return Err(Rejection::NotPaused);
            }
            fx.push(notify(NotificationKind::Resumed, format!("{by} resumed the rollout at {}", r.stage)));
            Ok(())
        }
        Input::Abort { reason } => {
            require(actor, actor.may_operate(), "abort", "deployer or admin")?;
            require_reason(reason, "abort")?;
            move_traffic_back(r, fx);
            enter(r, Stage::Aborted { reason: reason.clone() }, now);
            for effect in instances::undo(r, now) {
                request(r, effect, now, fx);
            }
            fx.push(notify(NotificationKind::Aborted, format!("{by} aborted the rollout: {reason}")));
            close_ticket(r, now, fx);
            Ok(())
        }
        Input::Rollback { category, reason, full } => {
            require(actor, actor.may_operate(), "roll back", "deployer or admin")?;
            require_reason(reason, "roll back")?;
            if !r.stage.candidate_sees_traffic() {
                return Err(Rejection::NothingToRollBack { stage: r.stage.to_string() });
            }
            let kind = if *full { RollbackKind::Full } else { RollbackKind::Quick };
            let cause = RollbackCause::Person { name: by, category: *category, reason: reason.clone() };
            roll_back(r, kind, cause, now, fx);
            Ok(())
        }
        Input::ForcePromote { reason } => {
            require(actor, actor.is_admin(), "force a promotion", "admin")?;
            require_reason(reason, "force a promotion")?;
            let bypassed =
                gates::report(r, now).into_iter().filter(GateReport::blocks).map(|g| g.to_string()).collect();
            r.overrides.push(Override { from: r.stage.clone(), by, reason: reason.clone(), at: now, bypassed });
            enter_next(r, now, fx);
            Ok(())
        }
        Input::ActionRun { action, run } => {
            require(actor, actor.has(Role::System), "record an action's run", "system")?;
            let service = r.service.clone();
            let active = !r.is_terminal();
            let open = open_action(r, action)?;
            open.runs.push(run.clone());
            let closed = open.clone();
            if run.ok {
                open.status = ActionStatus::Done { by: run.via.clone(), at: now, summary: run.detail.clone() };
                if let Some(next) = instances::done(r, &closed, now) {
                    // The judge speaks of the instances now in service, not of those before.
                    r.verdict = None;
                    for effect in next {
                        request(r, effect, now, fx);
                    }
                    let weight = r.instances.as_ref().map_or(r.weight, Instances::candidate_weight);
                    set_weight(r, weight, fx);
                    if let Some(at) = r.hold_ends_at() {
                        fx.push(Effect::ScheduleTimer { at });
                    }
                }
            } else if run.gave_up && brings_up_instances(&closed) && active {
                // A batch that does not come back healthy stops the rollout: every instance it touched is reverted.
                open.status = ActionStatus::Cancelled { at: now, why: format!("failed: {}", run.detail) };
                let cause = RollbackCause::Rollgate {
                    check: format!("{action}: instances back in service and healthy"),
                    detail: run.detail.clone(),
                };
                roll_back(r, RollbackKind::Full, cause, now, fx);
            } else if run.gave_up {
                let why = format!("its hook failed {} time(s), last: {}", run.attempt, run.detail);
                let message = format!("{service}: {} ({why}); do it by hand", instructions(&open.effect));
                open.status = ActionStatus::WaitingForPerson { why, since: now };
                fx.push(notify(NotificationKind::ActionNeeded, confirm_hint(message, &r.id, action)));
            }
            Ok(())
        }
        Input::ActionNeedsPerson { action, why } => {
            require(actor, actor.has(Role::System), "hand an action to a person", "system")?;
            let service = r.service.clone();
            let open = open_action(r, action)?;
            if matches!(open.status, ActionStatus::WaitingForPerson { .. }) {
                return Err(Rejection::Unchanged);
            }
            open.status = ActionStatus::WaitingForPerson { why: why.clone(), since: now };
            let message = format!("{service}: {} ({why})", instructions(&open.effect));
            fx.push(notify(NotificationKind::ActionNeeded, confirm_hint(message, &r.id, action)));
            Ok(())
        }
        Input::ConfirmAction { action, note } => {
            require(actor, actor.may_operate(), "confirm an action", "deployer or admin")?;
            require_reason(note, "confirm an action")?;
            let open = open_action(r, action)?;
            open.status = ActionStatus::Done { by, at: now, summary: note.clone() };
            Ok(())
        }
        Input::ObserveBaseline { baseline } => {
            require(actor, actor.has(Role::System), "record the previous version's record", "system")?;
            if r.stage != Stage::Full || r.observed.is_some() {
                return Err(Rejection::Unchanged);
            }
            r.observed = Some(ObserveRecord { of: r.stable.clone(), at: now, baseline: baseline.clone() });
            Ok(())
        }
        Input::WatchBaseline { baseline } => {
            require(actor, actor.has(Role::System), "record the watch's baseline", "system")?;
            let watch = r.watch.as_mut().filter(|w| w.is_open() && w.baseline.is_none()).ok_or(Rejection::Unchanged)?;
            watch.baseline = Some(baseline.clone());
            Ok(())
        }
        Input::WatchResult { stable, summary, details } => {
            require(actor, actor.has(Role::System), "record the watch's result", "system")?;
            let watch = r.watch.as_mut().filter(|w| w.is_open()).ok_or(Rejection::Unchanged)?;
            watch.result =
                Some(WatchResult { stable: *stable, at: now, summary: summary.clone(), details: details.clone() });
            let (kind, message) = if *stable {
                let message =
                    format!("{} {} is stable again since {}: {summary}", r.service, watch.version, watch.from);
                (NotificationKind::PreviousVersionStable, message)
            } else {
                let message = format!(
                    "{} {} came back after the rollback but is not healthy either: {summary}",
                    r.service, watch.version
                );
                (NotificationKind::PreviousVersionUnhealthy, message)
            };
            fx.push(notify(kind, message));
            Ok(())
        }
    }
}

fn brings_up_instances(action: &Action) -> bool {
    matches!(&action.effect, Effect::Instances { op: InstanceOp::Surge | InstanceOp::Replace, .. })
}

/// The longest ticket reference a rollout takes.
const MAX_TICKET_LEN: usize = 512;

/// The rollout has ended: its ticket is closed with the outcome, through the ticket hook or by a person.
fn close_ticket(r: &mut Rollout, now: Timestamp, fx: &mut Vec<Effect>) {
    let Some(ticket) = r.ticket.clone() else { return };
    let (outcome, summary) = match &r.stage {
        Stage::Completed => ("completed", format!("{} now serves {}", r.candidate, r.service)),
        Stage::RolledBack { kind, cause } => {
            let why = match cause {
                RollbackCause::Judge { trigger } => format!("the judge's {trigger} trigger fired"),
                RollbackCause::Person { name, category, reason } => format!("{name} ({category}): {reason}"),
                RollbackCause::Rollgate { check, detail } => format!("rollgate's check {check} failed: {detail}"),
            };
            (
                "rolled_back",
                format!("{} rolled back ({kind}), {} serves {} again: {why}", r.candidate, r.stable, r.service),
            )
        }
        Stage::Aborted { reason } => {
            ("aborted", format!("{} aborted, {} still serves {}: {reason}", r.candidate, r.stable, r.service))
        }
        _ => return,
    };
    request(r, Effect::CloseTicket { ticket, outcome: outcome.into(), summary }, now, fx);
}

/// The action `id` of the rollout, if it is not done yet.
fn open_action<'a>(r: &'a mut Rollout, id: &str) -> Result<&'a mut Action, Rejection> {
    let known = r.actions.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ");
    let action = r.actions.iter_mut().find(|a| a.id == id).ok_or_else(|| Rejection::UnknownAction {
        action: id.to_string(),
        known: if known.is_empty() { "none".into() } else { known },
    })?;
    if action.is_closed() {
        return Err(Rejection::ActionDone { action: id.to_string(), status: action.status.to_string() });
    }
    Ok(action)
}

fn confirm_hint(message: String, rollout: &str, action: &str) -> String {
    format!("{message}; then record it: rollgate rollout confirm-effect {rollout} {action} --note \"what you did\"")
}

/// An effect that needs the world's work is also kept as an action until it is done.
fn request(r: &mut Rollout, effect: Effect, now: Timestamp, fx: &mut Vec<Effect>) {
    if let Some(action) = Action::new(effect.clone(), now) {
        r.actions.push(action);
    }
    fx.push(effect);
}

/// Promote automatically while every blocking gate has passed.
fn advance(r: &mut Rollout, now: Timestamp, fx: &mut Vec<Effect>) {
    while !r.is_terminal() && r.paused.is_none() && r.plan.auto_promote {
        let reports = gates::report(r, now);
        let blocking: Vec<&GateReport> = reports.iter().filter(|g| g.blocks()).collect();
        if blocking.is_empty() {
            enter_next(r, now, fx);
            continue;
        }
        let only_window = blocking.iter().all(|g| g.gate == gates::Gate::Window);
        let closed = if only_window { r.plan.window.check_traffic_change(now).err() } else { None };
        if closed != r.waiting_for_window {
            if let Some(c) = &closed {
                fx.push(notify(NotificationKind::Waiting, format!("{} is ready to move on but waits: {c}", r.stage)));
                if let Some(at) = c.opens_at {
                    fx.push(Effect::ScheduleTimer { at });
                }
            }
            r.waiting_for_window = closed;
        }
        return;
    }
}

fn enter_next(r: &mut Rollout, now: Timestamp, fx: &mut Vec<Effect>) {
    let Some(next) = next_stage(r) else { return };
    if r.mirroring.take().is_some() {
        fx.push(Effect::StopMirroring { service: r.service.clone() });
    }
    let from = r.stage.to_string();
    enter(r, next.clone(), now);
    let after = |hold: crate::hold::Hold| now.checked_add(hold.duration()).unwrap_or(Timestamp::MAX);
    match &next {
        Stage::Staging => fx.push(Effect::StartStaging { service: r.service.clone(), candidate: r.candidate.clone() }),
        Stage::Shadow => {
            let share = r.plan.shadow.mirror_percent;
            r.mirroring = Some(share);
            fx.push(Effect::StartMirroring { service: r.service.clone(), shadow: r.candidate.clone(), share });
            fx.push(Effect::ScheduleTimer { at: after(r.plan.shadow.duration) });
        }
        Stage::Canary { step } if r.instances.is_some() => {
            // The batch's hold starts when its instances are back, healthy.
            for effect in instances::enter_batch(r, *step) {
                request(r, effect, now, fx);
            }
            let weight = r.instances.as_ref().map_or(r.weight, Instances::candidate_weight);
            set_weight(r, weight, fx);
        }
        Stage::Canary { step } => {
            let step = &r.plan.canary.steps[*step];
            let hold = step.hold.unwrap_or_default();
            set_weight(r, step.percent, fx);
            fx.push(Effect::ScheduleTimer { at: after(hold) });
        }
        Stage::Full if r.instances.is_some() => {
            // The last batch is replaced now; the window runs from its return.
            let last = r.plan.canary.steps.len().saturating_sub(1);
            for effect in instances::enter_batch(r, last) {
                request(r, effect, now, fx);
            }
            set_weight(r, Weight::FULL, fx);
        }
        Stage::Full => {
            set_weight(r, Weight::FULL, fx);
            let until = after(r.plan.full.keep_warm);
            r.warm = Some(WarmRecord { version: r.stable.clone(), until });
            fx.push(Effect::KeepWarm { service: r.service.clone(), version: r.stable.clone(), until });
            fx.push(Effect::ScheduleTimer { at: after(r.plan.full.observe) });
        }
        Stage::Completed => {
            request(r, Effect::Archive, now, fx);
            close_ticket(r, now, fx);
            // The previous version is retired once its keep-warm time is over, not before.
            if let Some(warm) = r.warm.clone() {
                let retire = Effect::Retire { service: r.service.clone(), version: warm.version };
                if let Some(mut action) = Action::new(retire.clone(), now) {
                    action.not_before = Some(warm.until);
                    r.actions.push(action);
                }
                fx.push(retire);
            }
        }
        Stage::PreDeployment | Stage::RolledBack { .. } | Stage::Aborted { .. } => {}
    }
    let kind = if next == Stage::Completed { NotificationKind::Completed } else { NotificationKind::StageChanged };
    fx.push(notify(kind, format!("{} {}: {from} → {next}", r.service, r.candidate)));
}

fn enter(r: &mut Rollout, stage: Stage, now: Timestamp) {
    r.stage = stage.clone();
    r.stage_entered_at = now;
    r.verdict = None;
    r.waiting_for_window = None;
    r.history.push(StageVisit { stage, entered_at: now });
}

fn set_weight(r: &mut Rollout, weight: Weight, fx: &mut Vec<Effect>) {
    r.weight = weight;
    fx.push(Effect::SetWeights {
        service: r.service.clone(),
        stable: r.stable.clone(),
        candidate: r.candidate.clone(),
        candidate_weight: weight,
    });
}

/// Every way out of a rollout short of completion puts stable back at 100%.
fn move_traffic_back(r: &mut Rollout, fx: &mut Vec<Effect>) {
    if r.weight != Weight::ZERO {
        set_weight(r, Weight::ZERO, fx);
    }
    if r.mirroring.take().is_some() {
        fx.push(Effect::StopMirroring { service: r.service.clone() });
    }
}

fn roll_back(r: &mut Rollout, kind: RollbackKind, cause: RollbackCause, now: Timestamp, fx: &mut Vec<Effect>) {
    // In full deployment the previous version serves nothing; once its warm
    // time has run out it may be gone, and moving traffic back is not enough.
    let gone_cold = r.stage == Stage::Full && r.warm_at(now).is_none();
    // A rolling rollout's instances run the candidate in place: only redeploying them brings the previous version back.
    let rolling = r.instances.is_some();
    let kind = if gone_cold || rolling { RollbackKind::Full } else { kind };
    move_traffic_back(r, fx);
    if kind == RollbackKind::Full && !rolling {
        request(r, Effect::Redeploy { service: r.service.clone(), version: r.stable.clone() }, now, fx);
        request(r, Effect::Retire { service: r.service.clone(), version: r.candidate.clone() }, now, fx);
    }
    let why = match &cause {
        RollbackCause::Judge { trigger } => format!("the judge's {trigger} trigger fired"),
        RollbackCause::Person { name, category, reason } => format!("{name} rolled back ({category}): {reason}"),
        RollbackCause::Rollgate { check, detail } => format!("rollgate's check {check} failed: {detail}"),
    };
    let message = format!("{} {} rolled back ({kind}) at {}: {why}", r.service, r.candidate, r.stage);
    enter(r, Stage::RolledBack { kind, cause }, now);
    for effect in instances::undo(r, now) {
        request(r, effect, now, fx);
    }
    fx.push(notify(NotificationKind::RolledBack, message));
    let watch = r.plan.rollback.watch;
    if watch.duration() > jiff::SignedDuration::ZERO {
        let until = now.checked_add(watch.duration()).unwrap_or(Timestamp::MAX);
        let version = r.stable.clone();
        r.watch = Some(WatchRecord {
            version,
            full: kind == RollbackKind::Full,
            from: now,
            until,
            baseline: None,
            result: None,
        });
    }
    close_ticket(r, now, fx);
}

fn notify(kind: NotificationKind, message: String) -> Effect {
    Effect::Notify { kind, message }
}

/// What the team is told when rollgate's post-deployment check fails.
fn regression_message(r: &Rollout, gate: &str, summary: &str) -> String {
    let previous = &r.stable;
    let what = format!("{} {}: rollgate's check {gate} failed in full deployment: {summary}", r.service, r.candidate);
    if r.plan.full.rollback_on_regression {
        format!("{what}; rolling back to {previous} (the plan says so)")
    } else {
        let warm = r.warm.as_ref().map_or(String::new(), |w| format!(", kept warm until {}", w.until));
        format!(
            "{what}; `rollgate rollout rollback {} --category quality --reason …` returns to {previous}{warm}",
            r.id
        )
    }
}
