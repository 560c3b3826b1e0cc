//! The shadow stage's comparison. The gateway hands each pair of answers
//! (production's, the candidate's, and for a share production's second) to
//! [`ShadowPairs`], which queues it without waiting and drops it, counted,
//! when the queue is full: comparing never slows a user's request. One task
//! takes pairs off the queue and adds each to the comparison of the rollout
//! whose shadow stage mirrors it; once a tick it stores every open
//! comparison with its report and records the shadow gates' evidence when a
//! finding is new. The report is what `GET /api/v1/rollouts/{id}/shadow`
//! and `rollgate shadow report` show.

mod comparison;
mod evidence;
mod redact;
mod wire;

use crate::fleet::Fleet;
use crate::log::Log;
use comparison::{Comparison, ComparisonView, Settings};
use evidence::Finding;
use redact::Redactor;
use rollgate_core::Timestamp;
use rollgate_core::plan::gate_ids;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage};
use rollgate_gateway::mirror::{ComparisonHook, MirrorPair};
use rollgate_judge::shadow::ShadowDecision;
use rollgate_protocol::Format;
use rollgate_protocol::compare::Comparer;
use rollgate_store::{Analysis, AnalysisRecord, AnalysisStore, AnyStore, PgStore, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Pairs waiting to be compared …
const QUEUE_PAIRS: usize = 1024;
/// … and the bytes they may hold (bodies); past either, pairs are dropped.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Where the gateway's pairs go: a bounded queue that never waits.
pub struct ShadowPairs {
    queue: mpsc::Sender<MirrorPair>,
    /// The receiving end: the leader's comparison holds it while it runs; a
    /// follower takes what waits in it once a tick and publishes it.
    waiting: tokio::sync::Mutex<mpsc::Receiver<MirrorPair>>,
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
}

impl ShadowPairs {
    pub fn new() -> Arc<ShadowPairs> {
        let (queue, pairs) = mpsc::channel(QUEUE_PAIRS);
        Arc::new(ShadowPairs {
            queue,
            waiting: tokio::sync::Mutex::new(pairs),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Pairs dropped because the comparison fell behind, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn size_of(pair: &MirrorPair) -> usize {
    let captured = |c: &rollgate_gateway::mirror::Captured| c.body.len();
    pair.request_body.len()
        + pair.primary.as_ref().map_or(0, captured)
        + pair.shadow.as_ref().map_or(0, captured)
        + pair.noise.as_ref().and_then(|n| n.as_ref().ok()).map_or(0, captured)
}

impl ComparisonHook for ShadowPairs {
    fn compare(&self, pair: MirrorPair) {
        let size = size_of(&pair);
        let queued = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued + size > QUEUE_BYTES || self.queue.try_send(pair).is_err() {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The stored report of one rollout's shadow stage.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    pub rollout: String,
    pub service: String,
    pub production: String,
    pub candidate: String,
    /// Whether the stage still runs (pairs are still added).
    pub running: bool,
    pub updated_at: Timestamp,
    /// The share of pairs with a second answer from production.
    pub noise_percent: f64,
    /// Pairs the gateway paired but the comparison dropped, falling behind,
    /// while this comparison ran (for any service).
    pub dropped_pairs: u64,
    /// While the gate cannot decide: when it is expected to, at the pace pairs have come so far.
    pub decision_expected_at: Option<Timestamp>,
    #[serde(flatten)]
    pub comparison: ComparisonView,
    /// What the shadow gates say now; a gate with too little evidence yet is absent.
    pub findings: Vec<Finding>,
}

/// One rollout's comparison while its shadow stage runs.
struct Open {
    comparison: Comparison,
    settings: Settings,
    /// The dropped counter when last looked at.
    dropped_seen: u64,
    dropped: u64,
    /// Pairs when last stored.
    stored_pairs: Option<u64>,
}

/// Compares pairs as they come and stores the comparisons once a tick, until `stop`.
pub async fn run(
    log: Arc<Log>,
    store: AnyStore,
    pairs: Arc<ShadowPairs>,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Held while this task runs, and free again however it ends (this replica may lead again later).
    let mut queue = pairs.waiting.lock().await;
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            pair = queue.recv() => {
                let Some(pair) = pair else { break };
                pairs.queued_bytes.fetch_sub(size_of(&pair), Ordering::Relaxed);
                add(&log, &store, &mut open, pairs.dropped(), &pair).await;
            }
            _ = ticker.tick() => {
                compare_published(&log, &store, &mut open, pairs.dropped()).await;
                look(&log, &store, &mut open, pairs.dropped()).await;
            }
            _ = stop.changed() => break,
        }
    }
    look(&log, &store, &mut open, pairs.dropped()).await;
}

/// With replicas: the pairs followers' gateways mirrored for each rollout in
/// its shadow stage, taken (each once) and compared as the leader's own.
async fn compare_published(log: &Log, store: &AnyStore, open: &mut HashMap<String, Open>, dropped: u64) {
    let AnyStore::Postgres(pg) = store else { return };
    for rollout in in_shadow(log.fleet()) {
        let published = match pg.take_shadow_pairs(&rollout.id).await {
            Ok(published) => published,
            Err(e) => {
                return tracing::warn!(rollout = %rollout.id, error = %e, "cannot take the replicas' shadow pairs");
            }
        };
        for pair in published.iter().filter_map(|text| wire::decode(text)) {
            add(log, store, open, dropped, &pair).await;
        }
    }
}

/// A follower's share: publishes the pairs its gateway mirrored for rollouts
/// in their shadow stage, for the leader to compare. Does nothing while this
/// replica's own comparison runs (it holds the queue).
pub async fn publish_followed(fleet: &Fleet, pg: &PgStore, pairs: &ShadowPairs) -> Result<(), StoreError> {
    let Ok(mut queue) = pairs.waiting.try_lock() else { return Ok(()) };
    let shadowing = in_shadow(fleet);
    let mut by_rollout: HashMap<&str, Vec<String>> = HashMap::new();
    while let Ok(pair) = queue.try_recv() {
        pairs.queued_bytes.fetch_sub(size_of(&pair), Ordering::Relaxed);
        // Copies of a static mirror (no rollout) are not compared.
        if let Some(rollout) = mirrored_by(&shadowing, &pair) {
            by_rollout.entry(&rollout.id).or_default().push(wire::encode(&pair));
        }
    }
    drop(queue);
    for (rollout, published) in by_rollout {
        pg.publish_shadow_pairs(rollout, &published).await?;
    }
    Ok(())
}

/// The rollouts in their shadow stage now.
fn in_shadow(fleet: &Fleet) -> Vec<Rollout> {
    fleet.rollouts().into_iter().filter(|r| r.stage == Stage::Shadow).collect()
}

/// The rollout (of those in their shadow stage) whose shadow stage mirrors this pair.
fn mirrored_by<'a>(shadowing: &'a [Rollout], pair: &MirrorPair) -> Option<&'a Rollout> {
    shadowing.iter().find(|r| {
        r.service == *pair.service && r.candidate == *pair.shadow_version && r.stable == *pair.primary_version
    })
}

async fn add(log: &Log, store: &AnyStore, open: &mut HashMap<String, Open>, dropped: u64, pair: &MirrorPair) {
    // Copies of a static mirror (no rollout) are not compared.
    let shadowing = in_shadow(log.fleet());
    let Some(rollout) = mirrored_by(&shadowing, pair) else { return };
    if !open.contains_key(&rollout.id) {
        let Some(opened) = start(log, store, rollout, dropped).await else { return };
        open.insert(rollout.id.clone(), opened);
    }
    if let Some(o) = open.get_mut(&rollout.id) {
        o.comparison.add(pair, &mut o.settings, log.fleet().now());
    }
}

/// The rollout's comparison: the stored one continued, or a new one.
async fn start(log: &Log, store: &AnyStore, rollout: &Rollout, dropped: u64) -> Option<Open> {
    let shadow = &rollout.plan.shadow;
    let config = log.fleet().config();
    let service = config.services.get(&rollout.service)?;
    let comparer = match Comparer::new(shadow.compare.clone()) {
        Ok(comparer) => comparer,
        Err(e) => {
            tracing::warn!(rollout = %rollout.id, error = %e, "the plan's comparator cannot be used; no comparison");
            return None;
        }
    };
    let format = Format { protocol: service.protocol, pointers: service.outputs.clone() };
    let settings = Settings { comparer, format, redactor: Redactor::new(&shadow.redact), examples: shadow.examples };
    let noise_share = shadow.noise_percent.percent() / 100.0;
    let stored = match store.analysis(Analysis::Shadow, &rollout.id).await {
        Ok(stored) => stored.and_then(|s| serde_json::from_str::<Stored>(&s.state).ok()),
        Err(e) => {
            tracing::warn!(rollout = %rollout.id, error = %e, "cannot read the stored comparison; it starts afresh");
            None
        }
    };
    let (comparison, earlier_drops) = match stored {
        Some(stored) => (stored.comparison, stored.dropped),
        None => (Comparison::new(noise_share), 0),
    };
    Some(Open { comparison, settings, dropped_seen: dropped, dropped: earlier_drops, stored_pairs: None })
}

/// What is stored to go on after a restart.
#[derive(serde::Deserialize, Serialize)]
struct Stored {
    comparison: Comparison,
    dropped: u64,
}

/// Once a tick: stores what changed, records new findings, closes the
/// comparisons of rollouts that left the shadow stage.
async fn look(log: &Log, store: &AnyStore, open: &mut HashMap<String, Open>, dropped: u64) {
    let mut closed = Vec::new();
    for (id, o) in open.iter_mut() {
        o.dropped += dropped - o.dropped_seen;
        o.dropped_seen = dropped;
        let Some(rollout) = log.fleet().rollout(id) else { continue };
        let running = rollout.stage == Stage::Shadow;
        if !running {
            closed.push(id.clone());
        }
        if o.stored_pairs == Some(o.comparison.pairs()) && running {
            continue;
        }
        let report = report(&rollout, o, running, log.fleet().now());
        save(store, o, &report).await;
        if running {
            record(log, &rollout, &report.findings).await;
        }
    }
    for id in closed {
        open.remove(&id);
    }
}

fn report(rollout: &Rollout, o: &Open, running: bool, now: Timestamp) -> ShadowReport {
    let shadow = &rollout.plan.shadow;
    let comparison = o.comparison.view(shadow.max_excess_disagreement, shadow.false_block_budget, shadow.min_pairs);
    ShadowReport {
        rollout: rollout.id.clone(),
        service: rollout.service.clone(),
        production: rollout.stable.clone(),
        candidate: rollout.candidate.clone(),
        running,
        updated_at: now,
        noise_percent: shadow.noise_percent.percent(),
        dropped_pairs: o.dropped,
        findings: evidence::findings(&comparison, &rollout.plan),
        decision_expected_at: expected_at(&comparison.excess.decision, &o.comparison, now),
        comparison,
    }
}

/// The moment `pairs_needed` pairs will have been seen if they keep coming at
/// the pace they came since the first.
fn expected_at(decision: &ShadowDecision, comparison: &Comparison, now: Timestamp) -> Option<Timestamp> {
    let ShadowDecision::NotYet { pairs_needed: Some(needed) } = decision else { return None };
    let elapsed = now.duration_since(comparison.first_pair_at?).as_secs_f64();
    let pairs = comparison.pairs();
    if pairs == 0 || elapsed <= 0.0 {
        return None;
    }
    let remaining = needed.saturating_sub(pairs) as f64 * elapsed / pairs as f64;
    now.checked_add(jiff::SignedDuration::try_from_secs_f64(remaining).ok()?).ok()
}

async fn save(store: &AnyStore, o: &mut Open, report: &ShadowReport) {
    let stored = Stored { comparison: o.comparison.clone(), dropped: o.dropped };
    let record = AnalysisRecord {
        rollout: report.rollout.clone(),
        state: serde_json::to_string(&stored).unwrap_or_default(),
        report: serde_json::to_string(report).unwrap_or_default(),
        updated_ms: crate::notify::now_ms(),
    };
    match store.save_analysis(Analysis::Shadow, &record).await {
        Ok(()) => o.stored_pairs = Some(o.comparison.pairs()),
        Err(e) => tracing::warn!(rollout = %report.rollout, error = %e, "cannot store the shadow comparison"),
    }
}

/// Records each finding whose outcome the log does not hold yet. A block
/// stays: the test may stop at its first crossing and keep its error bound,
/// not at a later look. Evidence a person recorded is theirs to change.
async fn record(log: &Log, rollout: &Rollout, findings: &[Finding]) {
    for finding in findings.iter().filter(|f| rollout.plan.gate(f.gate).is_some()) {
        let recorded = rollout.evidence.get(finding.gate);
        let news = match recorded {
            None => true,
            Some(r) if r.by != Actor::system().name => false,
            Some(r) if finding.gate == gate_ids::SHADOW_OUTPUT_AGREEMENT && !r.passed => false,
            Some(r) => r.passed != finding.passed,
        };
        if !news {
            continue;
        }
        let input = Input::Evidence {
            gate: finding.gate.to_string(),
            passed: finding.passed,
            summary: finding.summary.clone(),
            details: finding.details.clone(),
        };
        if let Err(e) = log.submit(&rollout.id, &Command::new(Actor::system(), input)).await {
            tracing::warn!(rollout = %rollout.id, gate = finding.gate, error = %e, "cannot record shadow evidence");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_expected_when_the_pairs_needed_will_have_come_at_the_pace_so_far() {
        let start: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        let mut comparison = Comparison::new(0.25);
        comparison.first_pair_at = Some(start);
        comparison.summary.pairs = 100;
        let now = start + jiff::SignedDuration::from_secs(100);
        let waiting = ShadowDecision::NotYet { pairs_needed: Some(400) };
        // 100 pairs in 100 s: the other 300 in 300 s more.
        assert_eq!(expected_at(&waiting, &comparison, now), Some(now + jiff::SignedDuration::from_secs(300)));
        assert_eq!(expected_at(&ShadowDecision::Pass, &comparison, now), None);
        assert_eq!(expected_at(&ShadowDecision::NotYet { pairs_needed: None }, &comparison, now), None);
    }
}
