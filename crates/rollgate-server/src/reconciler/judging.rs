//! Feeds the judges. Once a tick, for every rollout the judge watches (a
//! canary step, full deployment), what canary and stable did since the last
//! tick (and any external metrics that are due, from Prometheus) goes into
//! that rollout's judge; its verdict goes to the state machine when it
//! changes kind, and a rollback verdict at once.
//!
//! Each judge's state and report are stored at every tick, so the API of
//! any replica serves the live e-values, and a restarted (or, later, failed
//! over) control plane restores the judge and continues the same test
//! instead of starting from zero evidence.

use super::Ctx;
use crate::dataplane::{Arm, ArmSource, Counters, DataPlane};
use crate::prometheus::Prometheus;
use rollgate_core::rollout::{Rollout, Stage, Verdict as CoreVerdict, flag_of};
use rollgate_core::weight::Weight;
use rollgate_judge::external::ExternalReading;
use rollgate_judge::ratio::WeightCell;
use rollgate_judge::trace::{Recorder, Trace};
use rollgate_judge::{Judge, JudgeConfig, JudgeState, Tick, Verdict};
use rollgate_store::{Analysis, AnalysisRecord, AnalysisStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// A canary and its baseline as the data plane measures them, read a tick
/// at a time: what each did since the last read, as the judge takes it.
pub struct ArmPair {
    dataplane: Arc<dyn ArmSource>,
    service: String,
    canary: String,
    stable: String,
    canary_seen: Counters,
    stable_seen: Counters,
}

impl ArmPair {
    /// Starts reading now: what happened before is not the judge's business.
    pub fn new(dataplane: Arc<dyn ArmSource>, service: &str, canary: &str, stable: &str) -> ArmPair {
        let canary_seen = dataplane.read_arm(service, canary, Arm::Canary).counters;
        let stable_seen = dataplane.read_arm(service, stable, Arm::Stable).counters;
        ArmPair {
            dataplane,
            service: service.to_string(),
            canary: canary.to_string(),
            stable: stable.to_string(),
            canary_seen,
            stable_seen,
        }
    }

    /// Feeds `judge` (and the trace people watch) what both arms did since
    /// the last call, at canary `weight` (0..1).
    pub fn feed(
        &mut self,
        judge: &mut Judge,
        recorder: &mut Recorder,
        at_ms: u64,
        weight: f64,
        canary_health: Option<&[u32]>,
        external: &[ExternalReading],
    ) -> Verdict {
        let canary_now = self.dataplane.read_arm(&self.service, &self.canary, Arm::Canary);
        let stable_now = self.dataplane.read_arm(&self.service, &self.stable, Arm::Stable);
        let (c, s) = (canary_now.counters.since(&self.canary_seen), stable_now.counters.since(&self.stable_seen));
        (self.canary_seen, self.stable_seen) = (canary_now.counters, stable_now.counters);
        let bad = [WeightCell { weight, canary: c.bad_outputs, baseline: s.bad_outputs }];
        let complaints = [WeightCell { weight, canary: c.complaints, baseline: s.complaints }];
        let (canary, baseline) = (canary_now.as_tick(&c), stable_now.as_tick(&s));
        recorder.observe(at_ms, (&canary, c.bad_outputs, c.complaints), (&baseline, s.bad_outputs, s.complaints));
        let tick = Tick {
            at_ms,
            weight,
            canary,
            baseline,
            bad_outputs: &bad,
            complaints: &complaints,
            canary_health,
            external,
        };
        judge.tick(&tick).clone()
    }
}

/// The judge's settings for a rollout: its plan's triggers, with the token
/// triggers when its service is a chat model.
pub(crate) fn judge_config(log: &crate::log::Log, rollout: &Rollout) -> JudgeConfig {
    let chat = log.fleet().config().serves_chat(&rollout.service);
    JudgeConfig::from_plan(&rollout.plan.rollback).judging_tokens(chat)
}

struct Slot {
    judge: Judge,
    arms: ArmPair,
    recorder: Recorder,
    /// The judge measures traffic in real milliseconds, whatever clock the
    /// rollout runs on (a compressed clock makes hours of holds pass in
    /// seconds, not the traffic); a restored judge's time goes on from where it was.
    started_at_ms: u64,
    since: Instant,
}

impl Slot {
    fn now_ms(&self) -> u64 {
        self.started_at_ms.saturating_add(u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

pub struct Judging {
    prometheus: Option<Prometheus>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Judging {
    pub fn new(prometheus: Option<Prometheus>) -> Judging {
        Judging { prometheus, slots: Mutex::new(HashMap::new()) }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the judges of rollouts `keep` says no to (they ended).
    pub fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        self.slots().retain(|id, _| keep(id));
    }

    /// One tick for one rollout: the verdict its log should record now, if any.
    pub async fn tick(&self, ctx: &Ctx, rollout: &Rollout) -> Option<CoreVerdict> {
        let dataplane = ctx.fleet().dataplane()?.clone();
        // In a canary step the judge compares; in full deployment (no
        // baseline left to compare with) its ratio tests learn nothing and
        // the absolute triggers (health, saturation, external metrics) watch.
        let judged = rollout.stage.is_judged() && (rollout.stage == Stage::Full || rollout.weight > Weight::ZERO);
        if !judged || rollout.paused.is_some() {
            self.slots().remove(&rollout.id);
            return None;
        }
        if !self.slots().contains_key(&rollout.id) {
            let slot = self.open(ctx, rollout, dataplane.clone()).await;
            self.slots().entry(rollout.id.clone()).or_insert(slot);
        }
        let due: Vec<_> = {
            let slots = self.slots();
            let slot = slots.get(&rollout.id)?;
            slot.judge.external_due(slot.now_ms()).into_iter().cloned().collect()
        };
        let readings = match &self.prometheus {
            Some(p) if !due.is_empty() => {
                let at = self.slots().get(&rollout.id)?.now_ms();
                p.read(&due, &rollout.candidate, &rollout.stable, at).await
            }
            _ => Vec::new(),
        };
        let health = dataplane.probe_failures(&rollout.service, &rollout.candidate);
        let (news, record, trace) = {
            let mut slots = self.slots();
            let slot = slots.get_mut(&rollout.id)?;
            let (weight, at) = (rollout.weight.percent() / 100.0, slot.now_ms());
            slot.arms.feed(&mut slot.judge, &mut slot.recorder, at, weight, health.as_deref(), &readings);
            let report = slot.judge.report();
            let closed = slot.recorder.close_if_due(at, crate::notify::now_ms(), &report);
            let trace = closed.then(|| trace_record(&rollout.id, slot.recorder.trace()));
            (
                slot.judge.news(rollout.verdict.as_ref().map(|v| &v.verdict)),
                record(&rollout.id, &slot.judge, &report),
                trace,
            )
        };
        if let Err(e) = ctx.store.save_analysis(Analysis::Judge, &record).await {
            tracing::warn!(rollout = %rollout.id, error = %e, "cannot store the judge's state");
        }
        if let Some(trace) = trace
            && let Err(e) = ctx.store.save_analysis(Analysis::Trace, &trace).await
        {
            tracing::warn!(rollout = %rollout.id, error = %e, "cannot store the judge's trace");
        }
        news
    }

    /// The rollout's judge: the stored one continued, or a new one.
    async fn open(&self, ctx: &Ctx, rollout: &Rollout, dataplane: Arc<dyn DataPlane>) -> Slot {
        let config = judge_config(&ctx.log, rollout);
        let stored = match ctx.store.analysis(Analysis::Judge, &rollout.id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the judge's stored state; it starts afresh");
                None
            }
        };
        let restored = stored.and_then(|record| {
            let state: JudgeState = serde_json::from_str(&record.state).ok()?;
            Judge::restore(config.clone(), state)
                .inspect_err(|e| tracing::warn!(rollout = %rollout.id, error = %e, "the stored judge is not usable"))
                .ok()
        });
        if restored.is_some() {
            tracing::info!(rollout = %rollout.id, "the judge continues from its stored state");
        }
        let judge = restored.unwrap_or_else(|| Judge::new(config));
        // A flag's two sides are what applications report; a model's, what the data plane counts.
        let source: Arc<dyn ArmSource> = match flag_of(&rollout.service) {
            Some(_) => ctx.fleet().flag_outcomes().clone(),
            None => dataplane,
        };
        let arms = ArmPair::new(source, &rollout.service, &rollout.candidate, &rollout.stable);
        let trace = match ctx.store.analysis(Analysis::Trace, &rollout.id).await {
            Ok(stored) => stored.and_then(|record| serde_json::from_str::<Trace>(&record.report).ok()),
            Err(e) => {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the judge's stored trace; it starts afresh");
                None
            }
        };
        let recorder = Recorder::resume(trace.unwrap_or_default());
        Slot { started_at_ms: judge.now_ms(), judge, arms, recorder, since: Instant::now() }
    }
}

/// The trace as stored: its points are the report (a trace has no other state).
fn trace_record(rollout: &str, trace: &Trace) -> AnalysisRecord {
    AnalysisRecord {
        rollout: rollout.to_string(),
        state: String::new(),
        report: serde_json::to_string(trace).unwrap_or_default(),
        updated_ms: crate::notify::now_ms(),
    }
}

/// The judge as stored: its state and its (just made) report, as JSON.
fn record(rollout: &str, judge: &Judge, report: &rollgate_judge::Report) -> AnalysisRecord {
    AnalysisRecord {
        rollout: rollout.to_string(),
        state: serde_json::to_string(&judge.snapshot()).unwrap_or_default(),
        report: serde_json::to_string(report).unwrap_or_default(),
        updated_ms: crate::notify::now_ms(),
    }
}
