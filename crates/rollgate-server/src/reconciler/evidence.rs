//! Evidence rollgate proves itself, recorded only when it changes, and
//! looked for again every little while (not every tick).

use super::Ctx;
use crate::log::Log;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// How often one check of one rollout is made again.
pub const EVERY: Duration = Duration::from_secs(5);

/// Whether `key`'s check is due again (and notes that it is being made).
pub fn due(ctx: &Ctx, key: &str) -> bool {
    let mut checked = ctx.checked.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if checked.get(key).is_some_and(|at| now.duration_since(*at) < EVERY) {
        return false;
    }
    checked.insert(key.to_string(), now);
    true
}

/// Forgets the checks of rollouts `keep` says no to (keys are `ROLLOUT/CHECK`; a rollout id may hold a `/`).
pub fn keep_only(ctx: &Ctx, keep: impl Fn(&str) -> bool) {
    ctx.checked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|key, _| keep(key.rsplit_once('/').map_or(key.as_str(), |(id, _)| id)));
}

/// Records `gate`'s result for `r` by rollgate, unless rollgate's evidence
/// already says it (a person's with the same words is not rollgate's: a gate
/// may take only rollgate's).
pub async fn record(log: &Log, r: &Rollout, gate: &str, passed: bool, summary: String, details: serde_json::Value) {
    let said = |e: &rollgate_core::rollout::EvidenceRecord| {
        e.by == Actor::system().name && e.passed == passed && e.summary == summary
    };
    if r.evidence.get(gate).is_some_and(said) {
        return;
    }
    let input = Input::Evidence { gate: gate.into(), passed, summary, details };
    if let Err(e) = log.submit(&r.id, &Command::new(Actor::system(), input)).await {
        tracing::warn!(rollout = %r.id, gate, error = %e, "cannot record the evidence");
    }
}
