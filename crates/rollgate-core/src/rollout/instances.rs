//! A rolling rollout's instances: which of the pool run the candidate, which
//! are out of service, and the deploy-hook actions that move them. Routing
//! reads the endpoints from here, so traffic follows what the hook has done
//! and nothing else.

use super::{Action, ActionStatus, Effect, Rollout};
use crate::plan::strategy::{self, Strategy};
use crate::weight::Weight;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The instances a rolling rollout works on, as the rollout's start records them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pool {
    /// The stable version's endpoints, in the order they are replaced.
    pub instances: Vec<String>,
    /// The candidate's own endpoints started before the first batch (at most `max_surge`).
    #[serde(default)]
    pub surge: Vec<String>,
}

/// What the deploy hook is asked to do to some instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceOp {
    /// Start the candidate on the surge endpoints; they join the pool when healthy.
    Surge,
    /// Redeploy these instances (out of the pool, drained) with the candidate.
    Replace,
    /// Redeploy these instances with the previous version again (a rollback).
    Revert,
    /// Stop the surge instances (out of the pool, drained).
    Unsurge,
}

impl InstanceOp {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceOp::Surge => "surge",
            InstanceOp::Replace => "replace",
            InstanceOp::Revert => "revert",
            InstanceOp::Unsurge => "unsurge",
        }
    }

    /// Ops that leave an instance serving: it must pass its health check first.
    pub fn brings_up(self) -> bool {
        matches!(self, InstanceOp::Surge | InstanceOp::Replace | InstanceOp::Revert)
    }

    /// Ops that act on instances which served: they are drained first.
    pub fn takes_down(self) -> bool {
        matches!(self, InstanceOp::Replace | InstanceOp::Revert | InstanceOp::Unsurge)
    }
}

impl fmt::Display for InstanceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rolling rollout's instances stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instances {
    pub pool: Vec<String>,
    pub surge: Vec<String>,
    /// Instances replaced at once.
    pub batch: usize,
    /// The first `replaced` of the pool run the candidate and are back in service.
    pub replaced: usize,
    /// The surge instances are up and serving.
    pub surged: bool,
    /// Instances out of service now: draining, or being redeployed.
    pub out: Vec<String>,
    /// When the current batch came back into service (its hold runs from then).
    pub back_in_at: Option<Timestamp>,
}

impl Instances {
    pub fn new(pool: &Pool, batch: usize) -> Instances {
        Instances {
            pool: pool.instances.clone(),
            surge: pool.surge.clone(),
            batch,
            replaced: 0,
            surged: false,
            out: Vec::new(),
            back_in_at: None,
        }
    }

    /// The stable version's instances in service.
    pub fn stable_endpoints(&self) -> Vec<String> {
        self.pool[self.replaced.min(self.pool.len())..].iter().filter(|e| !self.out.contains(e)).cloned().collect()
    }

    /// The candidate's instances in service.
    pub fn candidate_endpoints(&self) -> Vec<String> {
        let surge = self.surge.iter().filter(|_| self.surged);
        self.pool[..self.replaced.min(self.pool.len())].iter().chain(surge).cloned().collect()
    }

    /// The candidate's share of traffic: its share of the instances in service.
    pub fn candidate_weight(&self) -> Weight {
        let candidate = self.candidate_endpoints().len();
        strategy::share(candidate, candidate + self.stable_endpoints().len())
    }

    /// The instances of batch `number` (counted from 1).
    fn batch_of(&self, number: usize, upto: usize) -> &[String] {
        let start = (number - 1) * self.batch;
        &self.pool[start.min(upto)..(start + self.batch).min(upto)]
    }
}

/// The instances of a rolling rollout's rollback or abort: its unfinished
/// surge and replacements are cancelled, and every instance the candidate
/// touched is reverted, the latest batch first, then the surge stopped.
pub(super) fn undo(r: &mut Rollout, now: Timestamp) -> Vec<Effect> {
    let Some(inst) = r.instances.clone() else { return Vec::new() };
    for action in r.actions.iter_mut().filter(|a| !a.is_closed()) {
        if matches!(action.effect, Effect::Instances { op: InstanceOp::Surge | InstanceOp::Replace, .. }) {
            action.status = ActionStatus::Cancelled { at: now, why: format!("the rollout ended ({})", r.stage) };
        }
    }
    let mut effects = Vec::new();
    let effect = |op, version: &str, endpoints: &[String], batch| Effect::Instances {
        service: r.service.clone(),
        op,
        version: version.to_string(),
        endpoints: endpoints.to_vec(),
        batch,
    };
    let touched = inst.replaced + inst.out.len();
    let batches = touched.div_ceil(inst.batch.max(1));
    for number in (1..=batches).rev() {
        effects.push(effect(InstanceOp::Revert, &r.stable, inst.batch_of(number, touched), number));
    }
    let surge_started = r.actions.iter().any(|a| matches!(a.effect, Effect::Instances { op: InstanceOp::Surge, .. }));
    if surge_started && !r.actions.iter().any(|a| matches!(a.effect, Effect::Instances { op: InstanceOp::Unsurge, .. }))
    {
        effects.push(effect(InstanceOp::Unsurge, &r.candidate, &inst.surge, 0));
    }
    if let Some(i) = r.instances.as_mut() {
        // Reverted instances come back to the stable version as their reverts
        // are done (routing reads the open ones); none is the candidate's any more.
        i.out = i.pool[..touched].to_vec();
        i.replaced = 0;
        i.surged = false;
    }
    effects
}

/// The actions that put batch `step` (counted from 0) into motion. With a
/// surge, the first batch waits for the surge instances to serve, so no more
/// than `max_unavailable` fewer than the pool ever serve.
pub(super) fn enter_batch(r: &mut Rollout, step: usize) -> Vec<Effect> {
    if r.instances.as_ref().is_none_or(|i| i.replaced >= i.pool.len()) {
        return Vec::new();
    }
    let Some(inst) = r.instances.as_mut() else { return Vec::new() };
    inst.back_in_at = None;
    if step == 0 && !inst.surge.is_empty() && !inst.surged {
        return vec![Effect::Instances {
            service: r.service.clone(),
            op: InstanceOp::Surge,
            version: r.candidate.clone(),
            endpoints: inst.surge.clone(),
            batch: 0,
        }];
    }
    let upto = inst.pool.len();
    let batch = inst.batch_of(step + 1, upto).to_vec();
    inst.out = batch.clone();
    vec![Effect::Instances {
        service: r.service.clone(),
        op: InstanceOp::Replace,
        version: r.candidate.clone(),
        endpoints: batch,
        batch: step + 1,
    }]
}

/// The surge instances leave once every pool instance runs the candidate.
fn leave_surge(r: &mut Rollout) -> Option<Effect> {
    let inst = r.instances.as_mut()?;
    if inst.surge.is_empty() {
        return None;
    }
    inst.surged = false;
    Some(Effect::Instances {
        service: r.service.clone(),
        op: InstanceOp::Unsurge,
        version: r.candidate.clone(),
        endpoints: inst.surge.clone(),
        batch: 0,
    })
}

/// The batch the rollout is on (counted from 0): a canary step's, or in
/// full deployment the last.
fn current_batch(r: &Rollout) -> usize {
    match r.stage {
        super::Stage::Canary { step } => step,
        _ => r.plan.canary.steps.len().saturating_sub(1),
    }
}

/// A hook run that left instances serving: they join the candidate's
/// pool. Returns the actions that follow (the first batch after the surge;
/// the surge's retirement after the last batch), or `None` when the
/// instances did not change.
pub(super) fn done(r: &mut Rollout, action: &Action, now: Timestamp) -> Option<Vec<Effect>> {
    let Effect::Instances { op, .. } = &action.effect else { return None };
    if r.is_terminal() {
        return None;
    }
    let batch = current_batch(r);
    let inst = r.instances.as_mut()?;
    match op {
        InstanceOp::Surge => {
            inst.surged = true;
            Some(enter_batch(r, batch))
        }
        InstanceOp::Replace => {
            inst.replaced += inst.out.len();
            inst.out.clear();
            inst.back_in_at = Some(now);
            let all = inst.replaced >= inst.pool.len();
            Some(if all { leave_surge(r).into_iter().collect() } else { Vec::new() })
        }
        InstanceOp::Revert | InstanceOp::Unsurge => None,
    }
}

/// The instances the last rolling rollout of `service` gives `version`,
/// when it decides them: while it runs, the stable and candidate shares of
/// the pool; once completed, the whole pool is the candidate's; once rolled
/// back or aborted, the pool is the stable version's again except instances
/// whose revert is not done yet.
pub fn endpoints_of<'a>(
    rollouts: impl IntoIterator<Item = &'a Rollout>,
    service: &str,
    version: &str,
) -> Option<Vec<String>> {
    let r = rollouts
        .into_iter()
        .filter(|r| r.service == service && r.plan.strategy == Strategy::Rolling && r.instances.is_some())
        .filter(|r| r.stable == version || r.candidate == version)
        .max_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)))?;
    let inst = r.instances.as_ref()?;
    let candidate = r.candidate == version;
    match &r.stage {
        super::Stage::Completed => candidate.then(|| inst.pool.clone()),
        stage if stage.is_terminal() => {
            if candidate {
                return Some(Vec::new());
            }
            let reverting: Vec<&String> = r
                .actions
                .iter()
                .filter(|a| !a.is_closed())
                .filter_map(|a| match &a.effect {
                    Effect::Instances { op: InstanceOp::Revert, endpoints, .. } => Some(endpoints),
                    _ => None,
                })
                .flatten()
                .collect();
            Some(inst.pool.iter().filter(|e| !reverting.contains(e)).cloned().collect())
        }
        _ if candidate => Some(inst.candidate_endpoints()),
        _ => Some(inst.stable_endpoints()),
    }
}

/// A version's own instances (what checks and hooks address, and what a new
/// rolling rollout replaces), when a finished rolling rollout decided them; a
/// running one's share of the pool is routing's business only.
pub fn own_endpoints<'a>(
    rollouts: impl IntoIterator<Item = &'a Rollout>,
    service: &str,
    version: &str,
) -> Option<Vec<String>> {
    endpoints_of(rollouts.into_iter().filter(|r| r.is_terminal()), service, version)
}

/// The pool a rollout of `service` on `plan` starts with, when the plan is
/// rolling: the stable version's instances (`stable_endpoints`, as routed
/// now) and the first `max_surge` of the candidate's endpoints to surge
/// onto. Refused, saying what to add, when the service cannot be rolled:
/// no deploy hook to redeploy instances, no health check to know they came
/// back, or too few endpoints.
pub fn pool_for(
    config: &crate::config::Config,
    service: &str,
    plan: &crate::plan::Plan,
    stable_endpoints: Vec<String>,
    candidate_endpoints: &[String],
) -> Result<Option<Pool>, String> {
    if plan.strategy != Strategy::Rolling {
        return Ok(None);
    }
    if config.deploy_hook(service).is_none() {
        return Err(format!(
            "a rolling rollout redeploys instances through the deploy hook, and service `{service}` has none: \
             add [deploy] or [services.{service}.deploy] to the config"
        ));
    }
    if config.services.get(service).is_none_or(|s| s.health.is_none()) {
        return Err(format!(
            "a rolling rollout health-checks each redeployed instance, and service `{service}` has no health \
             check: add [services.{service}.health] with its path"
        ));
    }
    if stable_endpoints.is_empty() {
        return Err(format!("the stable version of `{service}` has no instances to replace"));
    }
    let wanted = plan.rolling.max_surge;
    if candidate_endpoints.len() < wanted {
        return Err(format!(
            "the plan's max_surge is {wanted}, but the candidate has {} endpoint(s) to start surge instances on: \
             give it at least {wanted}, or lower max_surge",
            candidate_endpoints.len()
        ));
    }
    let surge = candidate_endpoints.iter().filter(|e| !stable_endpoints.contains(e)).take(wanted).cloned().collect();
    Ok(Some(Pool { instances: stable_endpoints, surge }))
}
