//! Feeds the judge. Once a tick, for every rollout in a canary step, the
//! gateway's counters and latencies of canary and stable since the last
//! tick (and any external metrics that are due, from Prometheus) go into
//! that rollout's judge; its verdict goes to the state machine when it
//! changes kind, and a rollback verdict at once. The judges live in memory:
//! after a restart each starts afresh, which only costs evidence, never validity.

use crate::prometheus::Prometheus;
use rollgate_core::rollout::{Rollout, Stage, Verdict as CoreVerdict};
use rollgate_core::weight::Weight;
use rollgate_gateway::Gateway;
use rollgate_gateway::stats::{Arm, Counters, Series};
use rollgate_judge::external::ExternalReading;
use rollgate_judge::ratio::WeightCell;
use rollgate_judge::{ArmTick, Judge, JudgeConfig, Report, Tick, Verdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

struct Slot {
    judge: Judge,
    canary_seen: Counters,
    stable_seen: Counters,
}

pub struct Judging {
    /// The judge measures traffic in real seconds, whatever clock the
    /// rollout runs on (a rehearsal's compressed clock makes hours of holds
    /// pass in seconds, not the traffic).
    origin: Instant,
    gateway: Option<Arc<Gateway>>,
    prometheus: Option<Prometheus>,
    slots: Mutex<HashMap<String, Slot>>,
}

/// What a tick of judging asks of the state machine.
pub enum Outcome {
    /// Nothing new to record.
    Unchanged,
    Record(CoreVerdict),
}

impl Judging {
    pub fn new(gateway: Option<Arc<Gateway>>, prometheus: Option<Prometheus>) -> Judging {
        Judging { origin: Instant::now(), gateway, prometheus, slots: Mutex::new(HashMap::new()) }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live report of a rollout's judge, if one is running (computed on
    /// request: the confidence sequences cost more than a tick).
    pub fn report(&self, rollout: &str) -> Option<Report> {
        self.slots().get(rollout).map(|s| s.judge.report())
    }

    /// One tick for one rollout.
    pub async fn tick(&self, rollout: &Rollout) -> Outcome {
        let Some(gateway) = &self.gateway else { return Outcome::Unchanged };
        // In a canary step the judge compares; in full deployment (no
        // baseline left to compare with) its ratio tests learn nothing and
        // the absolute triggers (health, saturation, external metrics) watch.
        let judged = match rollout.stage {
            Stage::Canary { .. } => rollout.weight > Weight::ZERO,
            Stage::Full => true,
            _ => false,
        };
        if !judged || rollout.paused.is_some() {
            self.slots().remove(&rollout.id);
            return Outcome::Unchanged;
        }
        let canary = gateway.stats.series(&rollout.service, &rollout.candidate, Arm::Canary);
        let stable = gateway.stats.series(&rollout.service, &rollout.stable, Arm::Stable);
        let now_ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due: Vec<_> = {
            let mut slots = self.slots();
            let slot = slots.entry(rollout.id.clone()).or_insert_with(|| fresh(rollout, &canary, &stable));
            slot.judge.external_due(now_ms).into_iter().cloned().collect()
        };
        let readings = match &self.prometheus {
            Some(p) if !due.is_empty() => p.read(&due, &rollout.candidate, &rollout.stable, now_ms).await,
            _ => Vec::new(),
        };
        let health = canary_health(gateway, rollout);
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(&rollout.id) else { return Outcome::Unchanged };
        let verdict = judge_once(slot, &canary, &stable, rollout.weight, now_ms, health.as_deref(), &readings);
        to_record(rollout, &verdict, &slot.judge)
    }
}

fn fresh(rollout: &Rollout, canary: &Series, stable: &Series) -> Slot {
    // What happened before the judge started is not its business.
    let _ = (canary.drain_latencies(), stable.drain_latencies());
    let judge = Judge::new(JudgeConfig::from_plan(&rollout.plan.rollback));
    Slot { judge, canary_seen: canary.counters(), stable_seen: stable.counters() }
}

fn judge_once(
    slot: &mut Slot,
    canary: &Series,
    stable: &Series,
    weight: Weight,
    now_ms: u64,
    health: Option<&[u32]>,
    external: &[ExternalReading],
) -> Verdict {
    let (canary_now, stable_now) = (canary.counters(), stable.counters());
    let (c, s) = (canary_now.since(&slot.canary_seen), stable_now.since(&slot.stable_seen));
    slot.canary_seen = canary_now;
    slot.stable_seen = stable_now;
    let ((canary_latencies, canary_finished), (stable_latencies, stable_finished)) =
        (canary.drain_latencies(), stable.drain_latencies());
    let w = f64::from(weight.basis_points()) / 10_000.0;
    let bad = [WeightCell { weight: w, canary: c.bad_outputs, baseline: s.bad_outputs }];
    let complaints = [WeightCell { weight: w, canary: c.complaints, baseline: s.complaints }];
    let tick = Tick {
        at_ms: now_ms,
        weight: w,
        canary: ArmTick {
            requests: c.requests,
            errors: c.errors,
            saturated: c.saturated,
            latencies_us: &canary_latencies,
            latency_population: canary_finished,
        },
        baseline: ArmTick {
            requests: s.requests,
            errors: s.errors,
            saturated: s.saturated,
            latencies_us: &stable_latencies,
            latency_population: stable_finished,
        },
        bad_outputs: &bad,
        complaints: &complaints,
        canary_health: health,
        external,
    };
    slot.judge.tick(&tick).clone()
}

/// Probe failures in a row of each of the candidate's endpoints, when the service is probed.
fn canary_health(gateway: &Gateway, rollout: &Rollout) -> Option<Vec<u32>> {
    let table = gateway.table();
    let service = table.service(&rollout.service)?;
    service.health.as_ref()?;
    let version = service.versions.get(service.version_index(&rollout.candidate)?)?;
    Some(version.endpoints.iter().map(|e| e.health.consecutive_probe_failures()).collect())
}

/// The state machine hears of a verdict when its kind changes; a rollback always.
fn to_record(rollout: &Rollout, verdict: &Verdict, judge: &Judge) -> Outcome {
    let core = match verdict {
        Verdict::Rollback { .. } => verdict.to_core(&judge.report()),
        _ => verdict.to_core_without_report(),
    };
    let news = matches!(verdict, Verdict::Rollback { .. })
        || !rollout.verdict.as_ref().is_some_and(|v| v.verdict.same_kind(&core));
    if news { Outcome::Record(core) } else { Outcome::Unchanged }
}
