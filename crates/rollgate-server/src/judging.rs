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

/// A canary and its baseline as the gateway measures them, read a tick at a
/// time: what each did since the last read, as the judge takes it.
pub struct ArmPair {
    canary: Arc<Series>,
    stable: Arc<Series>,
    canary_seen: Counters,
    stable_seen: Counters,
}

impl ArmPair {
    /// Starts reading now: what happened before is not the judge's business.
    pub fn new(canary: Arc<Series>, stable: Arc<Series>) -> ArmPair {
        let _ = (canary.drain_latencies(), stable.drain_latencies());
        let (canary_seen, stable_seen) = (canary.counters(), stable.counters());
        ArmPair { canary, stable, canary_seen, stable_seen }
    }

    /// Feeds `judge` what both arms did since the last call, at canary `weight` (0..1).
    pub fn feed(
        &mut self,
        judge: &mut Judge,
        at_ms: u64,
        weight: f64,
        canary_health: Option<&[u32]>,
        external: &[ExternalReading],
    ) -> Verdict {
        let (canary_now, stable_now) = (self.canary.counters(), self.stable.counters());
        let (c, s) = (canary_now.since(&self.canary_seen), stable_now.since(&self.stable_seen));
        (self.canary_seen, self.stable_seen) = (canary_now, stable_now);
        let ((canary_latencies, canary_finished), (stable_latencies, stable_finished)) =
            (self.canary.drain_latencies(), self.stable.drain_latencies());
        let arm = |d: &Counters, latencies_us, latency_population| ArmTick {
            requests: d.requests,
            errors: d.errors,
            saturated: d.saturated,
            latencies_us,
            latency_population,
        };
        let bad = [WeightCell { weight, canary: c.bad_outputs, baseline: s.bad_outputs }];
        let complaints = [WeightCell { weight, canary: c.complaints, baseline: s.complaints }];
        let tick = Tick {
            at_ms,
            weight,
            canary: arm(&c, &canary_latencies, canary_finished),
            baseline: arm(&s, &stable_latencies, stable_finished),
            bad_outputs: &bad,
            complaints: &complaints,
            canary_health,
            external,
        };
        judge.tick(&tick).clone()
    }
}

struct Slot {
    judge: Judge,
    arms: ArmPair,
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

    /// One tick for one rollout: the verdict its log should record now, if any.
    pub async fn tick(&self, rollout: &Rollout) -> Option<CoreVerdict> {
        let gateway = self.gateway.as_ref()?;
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
            return None;
        }
        let now_ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due: Vec<_> = {
            let mut slots = self.slots();
            let slot = slots.entry(rollout.id.clone()).or_insert_with(|| Slot {
                judge: Judge::new(JudgeConfig::from_plan(&rollout.plan.rollback)),
                arms: ArmPair::new(
                    gateway.stats.series(&rollout.service, &rollout.candidate, Arm::Canary),
                    gateway.stats.series(&rollout.service, &rollout.stable, Arm::Stable),
                ),
            });
            slot.judge.external_due(now_ms).into_iter().cloned().collect()
        };
        let readings = match &self.prometheus {
            Some(p) if !due.is_empty() => p.read(&due, &rollout.candidate, &rollout.stable, now_ms).await,
            _ => Vec::new(),
        };
        let health = canary_health(gateway, rollout);
        let mut slots = self.slots();
        let slot = slots.get_mut(&rollout.id)?;
        let weight = rollout.weight.percent() / 100.0;
        slot.arms.feed(&mut slot.judge, now_ms, weight, health.as_deref(), &readings);
        slot.judge.news(rollout.verdict.as_ref().map(|v| &v.verdict))
    }
}

/// Probe failures in a row of each of the candidate's endpoints, when the service is probed.
fn canary_health(gateway: &Gateway, rollout: &Rollout) -> Option<Vec<u32>> {
    let table = gateway.table();
    let service = table.service(&rollout.service)?;
    service.health.as_ref()?;
    let version = service.versions.get(service.version_index(&rollout.candidate)?)?;
    Some(version.endpoints.iter().map(|e| e.health.consecutive_probe_failures()).collect())
}
