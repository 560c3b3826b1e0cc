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
use crate::dataplane::{Arm, ArmReading, ArmSource, Counters};
use crate::prometheus::Prometheus;
use crate::shared_arms;
use rollgate_core::rollout::{Rollout, Verdict as CoreVerdict};
use rollgate_judge::external::ExternalReading;
use rollgate_judge::ratio::WeightCell;
use rollgate_judge::trace::{Recorder, Trace};
use rollgate_judge::{Judge, JudgeConfig, JudgeState, Tick, Verdict};
use rollgate_store::{Analysis, AnalysisRecord, AnalysisStore, AnyStore, PgStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Where the judge reads what an arm did: this replica's data plane (or
/// flag reports) when it is the only server, the sums every replica
/// publishes when several route the traffic (see `crate::shared_arms`).
#[derive(Clone)]
pub(crate) enum Arms {
    Local(Arc<dyn ArmSource>),
    Replicas(PgStore),
}

impl Arms {
    async fn read(&self, service: &str, version: &str, arm: Arm) -> Result<ArmReading, StoreError> {
        match self {
            Arms::Local(source) => Ok(source.read_arm(service, version, arm)),
            Arms::Replicas(pg) => shared_arms::read(pg, service, version, arm).await,
        }
    }

    /// Whether the counters outlive this process (they are in the database),
    /// so a judge's position in them can be stored and resumed by the next
    /// leader; a restarted gateway counts from zero.
    fn lasting(&self) -> bool {
        matches!(self, Arms::Replicas(_))
    }
}

/// Where in the cumulative counters the judge has read up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seen {
    canary: Counters,
    stable: Counters,
}

/// A canary and its baseline as the data plane measures them, read a tick
/// at a time: what each did since the last read, as the judge takes it.
#[derive(Clone)]
pub(crate) struct ArmPair {
    arms: Arms,
    service: String,
    canary: String,
    stable: String,
    seen: Seen,
}

/// Both arms' readings of one tick.
pub(crate) struct Readings {
    canary: ArmReading,
    stable: ArmReading,
}

impl ArmPair {
    /// Reads on from `seen`, or from now when there is no position to resume
    /// (what happened before the judge started is not its business).
    pub(crate) async fn open(
        arms: Arms,
        (service, canary, stable): (&str, &str, &str),
        seen: Option<Seen>,
    ) -> Result<ArmPair, StoreError> {
        let mut pair = ArmPair {
            arms,
            service: service.to_string(),
            canary: canary.to_string(),
            stable: stable.to_string(),
            seen: Seen::default(),
        };
        match seen {
            // Resumed: the next reading brings what happened since, samples included.
            Some(seen) => pair.seen = seen,
            // Started: what happened before is dropped, samples included.
            None => {
                let now = pair.read().await?;
                pair.seen = Seen { canary: now.canary.counters, stable: now.stable.counters };
            }
        }
        Ok(pair)
    }

    pub(crate) async fn read(&self) -> Result<Readings, StoreError> {
        let canary = self.arms.read(&self.service, &self.canary, Arm::Canary).await?;
        let stable = self.arms.read(&self.service, &self.stable, Arm::Stable).await?;
        Ok(Readings { canary, stable })
    }

    /// Feeds `judge` (and the trace people watch) what both arms did since
    /// the previous reading, at canary `weight` (0..1).
    pub(crate) fn feed(
        &mut self,
        now: &Readings,
        judge: &mut Judge,
        recorder: &mut Recorder,
        (at_ms, weight): (u64, f64),
        canary_health: Option<&[u32]>,
        external: &[ExternalReading],
    ) -> Verdict {
        let c = now.canary.counters.since(&self.seen.canary);
        let s = now.stable.counters.since(&self.seen.stable);
        self.seen = Seen { canary: now.canary.counters, stable: now.stable.counters };
        let bad = [WeightCell { weight, canary: c.bad_outputs, baseline: s.bad_outputs }];
        let complaints = [WeightCell { weight, canary: c.complaints, baseline: s.complaints }];
        let (canary, baseline) = (now.canary.as_tick(&c), now.stable.as_tick(&s));
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

    /// The position to store with the judge, when the counters outlive this process.
    fn position(&self) -> Option<Seen> {
        self.arms.lasting().then_some(self.seen)
    }
}

/// The judge's state as stored: the judge's own, and where it had read the
/// replicas' counters up to (so the next leader counts every request once).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    judge: JudgeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen: Option<Seen>,
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
        if !shared_arms::is_judged(rollout) {
            self.slots().remove(&rollout.id);
            return None;
        }
        if !self.slots().contains_key(&rollout.id) {
            let slot = self.open(ctx, rollout).await?;
            self.slots().entry(rollout.id.clone()).or_insert(slot);
        }
        let (due, reader) = {
            let slots = self.slots();
            let slot = slots.get(&rollout.id)?;
            let due: Vec<_> = slot.judge.external_due(slot.now_ms()).into_iter().cloned().collect();
            (due, slot.arms.clone())
        };
        // Read with no lock held: on replicas the readings come from the database.
        let readings = reader
            .read()
            .await
            .inspect_err(
                |e| tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the arms; the judge waits a tick"),
            )
            .ok()?;
        let external = match &self.prometheus {
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
            let judge = &mut slot.judge;
            slot.arms.feed(&readings, judge, &mut slot.recorder, (at, weight), health.as_deref(), &external);
            let report = slot.judge.report();
            let closed = slot.recorder.close_if_due(at, crate::notify::now_ms(), &report);
            let trace = closed.then(|| trace_record(&rollout.id, slot.recorder.trace()));
            (
                slot.judge.news(rollout.verdict.as_ref().map(|v| &v.verdict)),
                record(&rollout.id, &slot.judge, slot.arms.position(), &report),
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

    /// The rollout's judge: the stored one continued, or a new one; `None`
    /// while its arms cannot be read.
    async fn open(&self, ctx: &Ctx, rollout: &Rollout) -> Option<Slot> {
        let config = judge_config(&ctx.log, rollout);
        let stored = match ctx.store.analysis(Analysis::Judge, &rollout.id).await {
            Ok(stored) => stored.and_then(|record| serde_json::from_str::<Stored>(&record.state).ok()),
            Err(e) => {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the judge's stored state; it starts afresh");
                None
            }
        };
        let (state, seen) = stored.map_or((None, None), |s| (Some(s.judge), s.seen));
        let restored = state.and_then(|state| {
            Judge::restore(config.clone(), state)
                .inspect_err(|e| tracing::warn!(rollout = %rollout.id, error = %e, "the stored judge is not usable"))
                .ok()
        });
        let arms = match &ctx.store {
            AnyStore::Postgres(pg) => Arms::Replicas(pg.clone()),
            AnyStore::Sqlite(_) => Arms::Local(shared_arms::local_source(ctx.fleet(), &rollout.service)?),
        };
        // A position is resumed only with the judge it belongs to, in counters that outlived the last leader.
        let resume = seen.filter(|_| restored.is_some() && arms.lasting());
        if restored.is_some() {
            tracing::info!(rollout = %rollout.id, resumed_counts = resume.is_some(), "the judge continues from its stored state");
        }
        let judge = restored.unwrap_or_else(|| Judge::new(config));
        let arms = ArmPair::open(arms, (&rollout.service, &rollout.candidate, &rollout.stable), resume)
            .await
            .inspect_err(
                |e| tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the arms; the judge starts later"),
            )
            .ok()?;
        let trace = match ctx.store.analysis(Analysis::Trace, &rollout.id).await {
            Ok(stored) => stored.and_then(|record| serde_json::from_str::<Trace>(&record.report).ok()),
            Err(e) => {
                tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the judge's stored trace; it starts afresh");
                None
            }
        };
        let recorder = Recorder::resume(trace.unwrap_or_default());
        Some(Slot { started_at_ms: judge.now_ms(), judge, arms, recorder, since: Instant::now() })
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

/// The judge as stored: its state (with its position in the counters) and its (just made) report, as JSON.
fn record(rollout: &str, judge: &Judge, seen: Option<Seen>, report: &rollgate_judge::Report) -> AnalysisRecord {
    let stored = Stored { judge: judge.snapshot(), seen };
    AnalysisRecord {
        rollout: rollout.to_string(),
        state: serde_json::to_string(&stored).unwrap_or_default(),
        report: serde_json::to_string(report).unwrap_or_default(),
        updated_ms: crate::notify::now_ms(),
    }
}
