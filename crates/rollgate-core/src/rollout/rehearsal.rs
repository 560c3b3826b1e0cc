//! The inputs that would pass a rollout's open gates, as a rehearsal (or a
//! test) feeds them: evidence that passed, approvals from stand-in
//! approvers, ticks, and a healthy verdict. Holds and deploy windows cannot
//! be satisfied by an input; only time passes them.

use super::gates::checklist_items;
use super::{ActionRun, Command, Effect, Gate, GateStatus, Input, Rollout, Verdict};
use crate::plan::PROOF_TICKET;
use crate::roles::{Actor, Role};
use jiff::Timestamp;

/// The commands that would pass every gate blocking the current stage, in gate order.
pub fn inputs_to_pass(r: &Rollout, now: Timestamp) -> Vec<Command> {
    let mut out = Vec::new();
    // A rolling batch's instances: the rehearsal stands in for the deploy hook and the health checks.
    for action in r.open_actions().filter(|a| matches!(a.effect, Effect::Instances { .. })) {
        let run = ActionRun {
            ok: true,
            attempt: 1,
            via: "rehearsal".into(),
            detail: "done in rehearsal: no hook ran".into(),
            gave_up: false,
            details: serde_json::Value::Null,
        };
        out.push(Command::new(Actor::system(), Input::ActionRun { action: action.id.clone(), run }));
    }
    for report in r.gates(now).into_iter().filter(|g| g.blocks()) {
        match &report.gate {
            Gate::Evidence { id } => out.push(Command::new(
                Actor::system(),
                Input::Evidence {
                    gate: id.clone(),
                    passed: true,
                    summary: "passed in rehearsal".into(),
                    details: serde_json::Value::Null,
                },
            )),
            Gate::Approval { approval } => out.push(Command::new(
                Actor::new(format!("rehearsal-{approval}-approver"), [Role::Approver(*approval)]),
                Input::Approve { kind: *approval, comment: None },
            )),
            Gate::Checklist { checklist } => {
                let ticker = Actor::new("rehearsal-deployer", [Role::Deployer]);
                // Items proved by the ticket are done after the end; they hold nothing.
                let after_the_end = |id: &str| {
                    r.plan
                        .checklists
                        .list(*checklist)
                        .iter()
                        .any(|i| i.id == id && i.proof.iter().any(|p| p == PROOF_TICKET))
                };
                for (item, _, done) in checklist_items(r, *checklist) {
                    if done.is_none() && !after_the_end(&item) {
                        let input = Input::Tick { checklist: *checklist, item, note: None };
                        out.push(Command::new(ticker.clone(), input));
                    }
                }
            }
            Gate::Stable if !matches!(report.status, GateStatus::Failed { .. }) => {
                out.push(Command::new(Actor::system(), Input::Verdict { verdict: Verdict::Healthy }));
            }
            Gate::Stable | Gate::Hold { .. } | Gate::Window => {}
        }
    }
    out
}

/// A rollout driven in memory: each accepted command is sealed into a
/// hash-chained event, and timers the machine asks for are remembered so
/// the caller can jump a virtual clock straight to the next one.
#[derive(Debug, Default)]
pub struct Rehearsal {
    state: Option<Rollout>,
    events: Vec<crate::event::RecordedEvent>,
    timers: Vec<Timestamp>,
}

impl Rehearsal {
    pub fn new() -> Rehearsal {
        Rehearsal::default()
    }

    pub fn state(&self) -> Option<&Rollout> {
        self.state.as_ref()
    }

    pub fn events(&self) -> &[crate::event::RecordedEvent] {
        &self.events
    }

    /// Applies one command at `now`; on success records it and returns its effects.
    pub fn send(&mut self, command: Command, now: Timestamp) -> Result<Vec<super::Effect>, super::Rejection> {
        let transition = super::step(self.state.as_ref(), &command, now)?;
        let stream = transition.state.id.clone();
        let body = crate::event::EventBody { at: now, command, effects: transition.effects.clone() };
        let event = crate::event::RecordedEvent::next(&stream, self.events.last(), &body);
        self.events.push(event);
        for effect in &transition.effects {
            if let super::Effect::ScheduleTimer { at } = effect {
                self.timers.push(*at);
            }
        }
        self.state = Some(transition.state);
        Ok(transition.effects)
    }

    /// Feeds the inputs that pass the open gates, one at a time (each may
    /// move the rollout on and change what is open). Returns how many were accepted.
    pub fn pass_gates(&mut self, now: Timestamp) -> usize {
        let mut accepted = 0;
        // Each round passes at least one gate or stops; a plan has far fewer gates than this bound.
        for _ in 0..256 {
            let Some(state) = &self.state else { break };
            let Some(command) = inputs_to_pass(state, now).into_iter().next() else {
                break;
            };
            match self.send(command, now) {
                Ok(_) => accepted += 1,
                Err(_) => break,
            }
        }
        accepted
    }

    /// The earliest requested timer after `now`, forgetting those at or before it.
    pub fn next_timer(&mut self, now: Timestamp) -> Option<Timestamp> {
        self.timers.retain(|t| *t > now);
        self.timers.iter().min().copied()
    }
}
