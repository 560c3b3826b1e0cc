//! Rollouts on a store: load = read + replay; submit = decide with the pure
//! core, seal the event, append it with optimistic concurrency (retrying on
//! a concurrent writer), and only then carry out the effects.
//!
//! Effects are carried out after their event is durable and marked done
//! after they are carried out. A process killed in between finds them
//! pending on restart and carries them out then: each effect reaches its
//! sink at least once, under a key that is the same every time
//! (stream/seq/index), so sinks drop repeats.

use crate::{ActiveRollout, EventStore, StoreError, append_deciding, append_record_deciding};
use rollgate_core::Timestamp;
use rollgate_core::event::{EventBody, RecordedEvent, ReplayError, replay};
use rollgate_core::report::RefusedStart;
use rollgate_core::rollout::{Command, Effect, Input, Rejection, Rollout, step};
use std::fmt;
use std::future::Future;

pub struct Rollouts<S> {
    store: S,
}

/// An accepted command: the state after it, its event and its effects.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub state: Rollout,
    pub event: RecordedEvent,
    pub effects: Vec<Effect>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("refused: {0}")]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored log of rollout {id} does not replay ({source}); run `rollgate audit verify`")]
    Replay { id: String, source: ReplayError },
    #[error("effect {key} could not be carried out: {message}; it stays pending and is retried on the next run")]
    Effect { key: EffectKey, message: String },
}

/// The stable identity of one effect: the same on every retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EffectKey {
    pub stream: String,
    pub seq: u64,
    pub index: usize,
}

impl fmt::Display for EffectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.stream, self.seq, self.index)
    }
}

/// Where effects are carried out (route tables, notifications, …).
pub trait EffectSink: Send + Sync {
    /// Carries out one effect. Called again with the same key after a crash, so it must drop repeats.
    fn carry_out(&self, key: &EffectKey, effect: &Effect) -> impl Future<Output = Result<(), String>> + Send;
}

/// Starts refused because the deploy window was closed, kept for the period report.
pub const REFUSED_STARTS_STREAM: &str = "@refused-starts";

/// The effects of one event that are not yet marked done.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub stream: String,
    pub seq: u64,
    pub effects: Vec<Effect>,
}

impl<S: EventStore> Rollouts<S> {
    pub fn new(store: S) -> Rollouts<S> {
        Rollouts { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The rollout's state, rebuilt from its log; `None` if it has no events.
    pub async fn load(&self, id: &str) -> Result<Option<Rollout>, SubmitError> {
        let events = self.store.read(id).await?;
        replay(&events).map_err(|source| SubmitError::Replay { id: id.to_string(), source })
    }

    /// Every rollout in the store, in stream order.
    pub async fn all(&self) -> Result<Vec<Rollout>, SubmitError> {
        let mut out = Vec::new();
        for id in self.store.streams().await?.into_iter().filter(|s| crate::is_rollout_stream(s)) {
            out.extend(self.load(&id).await?);
        }
        Ok(out)
    }

    /// The rollout's state and the `seq` of the last event it was rebuilt from.
    pub async fn load_with_seq(&self, id: &str) -> Result<Option<(u64, Rollout)>, SubmitError> {
        let events = self.store.read(id).await?;
        let seq = events.last().map_or(0, |e| e.seq);
        let state = replay(&events).map_err(|source| SubmitError::Replay { id: id.to_string(), source })?;
        Ok(state.map(|s| (seq, s)))
    }

    /// Decides `command` at `now` against the latest log and appends its event.
    // A refusal carries every gate and why; it is returned once per refused
    // command, so its size costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub async fn submit(&self, id: &str, command: &Command, now: Timestamp) -> Result<Submitted, SubmitError> {
        let result = self.decide_and_append(id, command, now).await;
        if let (Err(SubmitError::Rejected(Rejection::WindowClosed(closed))), Input::Start { service, candidate, .. }) =
            (&result, &command.input)
        {
            // No rollout exists for a refused start: its record goes to a stream of its own.
            let record = RefusedStart {
                at: now,
                rollout: id.to_string(),
                by: command.actor.name.clone(),
                service: service.clone(),
                candidate: candidate.clone(),
                reason: closed.to_string(),
            };
            let body = serde_json::to_string(&record).unwrap_or_default();
            append_record_deciding(&self.store, REFUSED_STARTS_STREAM, |_| Ok::<_, StoreError>(body.clone())).await?;
        }
        result
    }

    /// Starts the deploy window refused, oldest first.
    pub async fn refused_starts(&self) -> Result<Vec<RefusedStart>, StoreError> {
        let events = self.store.read(REFUSED_STARTS_STREAM).await?;
        Ok(events.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect())
    }

    #[allow(clippy::result_large_err)]
    async fn decide_and_append(&self, id: &str, command: &Command, now: Timestamp) -> Result<Submitted, SubmitError> {
        append_deciding(&self.store, id, |events| {
            let state = replay(events).map_err(|source| SubmitError::Replay { id: id.to_string(), source })?;
            let transition = step(state.as_ref(), command, now)?;
            let active = active_change(state.as_ref(), &transition.state);
            let body = EventBody { at: now, command: command.clone(), effects: transition.effects.clone() };
            let event = RecordedEvent::next(id, events.last(), &body);
            let submitted = Submitted { state: transition.state, event: event.clone(), effects: transition.effects };
            Ok((event, active, submitted))
        })
        .await
    }

    /// Every event, across all rollouts, whose effects are not marked done.
    pub async fn pending(&self) -> Result<Vec<Pending>, SubmitError> {
        let mut out = Vec::new();
        for stream in self.store.streams().await?.into_iter().filter(|s| crate::is_rollout_stream(s)) {
            out.extend(self.pending_in(&stream).await?);
        }
        Ok(out)
    }

    /// The events of one stream whose effects are not marked done.
    pub async fn pending_in(&self, stream: &str) -> Result<Vec<Pending>, SubmitError> {
        let done = self.store.effects_done(stream).await?;
        let mut out = Vec::new();
        for event in self.store.read(stream).await?.into_iter().filter(|e| e.seq > done) {
            let body = event.decode().map_err(|source| SubmitError::Replay {
                id: stream.to_string(),
                source: ReplayError::Unreadable { seq: event.seq, source },
            })?;
            out.push(Pending { stream: stream.to_string(), seq: event.seq, effects: body.effects });
        }
        Ok(out)
    }
}

/// A rollout that starts takes its service's one active slot; one that ends gives it back.
fn active_change(before: Option<&Rollout>, after: &Rollout) -> Option<ActiveRollout> {
    let (service, rollout) = (after.service.clone(), after.id.clone());
    match before {
        None => Some(ActiveRollout::Take { service, rollout }),
        Some(b) if !b.is_terminal() && after.is_terminal() => Some(ActiveRollout::Release { service, rollout }),
        Some(_) => None,
    }
}

/// Carries out every pending effect in log order, marking each event done
/// once all its effects are out. Returns how many effects were carried out.
pub async fn carry_out_pending<S: EventStore, K: EffectSink>(
    rollouts: &Rollouts<S>,
    sink: &K,
) -> Result<usize, SubmitError> {
    carry_out(rollouts, rollouts.pending().await?, sink).await
}

/// The same for one stream: what a submit calls for the rollout it changed.
pub async fn carry_out_pending_in<S: EventStore, K: EffectSink>(
    rollouts: &Rollouts<S>,
    stream: &str,
    sink: &K,
) -> Result<usize, SubmitError> {
    carry_out(rollouts, rollouts.pending_in(stream).await?, sink).await
}

async fn carry_out<S: EventStore, K: EffectSink>(
    rollouts: &Rollouts<S>,
    pending: Vec<Pending>,
    sink: &K,
) -> Result<usize, SubmitError> {
    let mut carried = 0;
    for pending in pending {
        for (index, effect) in pending.effects.iter().enumerate() {
            let key = EffectKey { stream: pending.stream.clone(), seq: pending.seq, index };
            sink.carry_out(&key, effect).await.map_err(|message| SubmitError::Effect { key, message })?;
            carried += 1;
        }
        rollouts.store().mark_effects_done(&pending.stream, pending.seq).await?;
    }
    Ok(carried)
}
