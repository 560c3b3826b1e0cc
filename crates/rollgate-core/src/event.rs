//! Events: a rollout is the fold of its accepted commands. Each event keeps
//! the command (actor, input, evidence), the moment it was applied, and the
//! effects it caused, so that replay can check it reproduces them exactly.

use crate::audit::{GENESIS, chain_hash};
use crate::rollout::{Command, Effect, Rejection, Rollout, step};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What an event says, before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub at: Timestamp,
    pub command: Command,
    pub effects: Vec<Effect>,
}

/// An event as stored: numbered within its stream and hash-chained to the
/// one before it. `body` is kept as the exact JSON text that was hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub stream: String,
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub body: String,
}

impl RecordedEvent {
    /// Numbers and chains a body as event `seq` of `stream`, after the event whose hash is `prev_hash`.
    pub fn seal(stream: &str, seq: u64, prev_hash: &str, body: &EventBody) -> RecordedEvent {
        // Serializing these plain data types cannot fail: no maps with non-string keys, no foreign types.
        RecordedEvent::seal_text(stream, seq, prev_hash, serde_json::to_string(body).unwrap_or_default())
    }

    /// Chains any body text: streams other than rollouts (the version
    /// registry) keep their own records under the same chain.
    pub fn seal_text(stream: &str, seq: u64, prev_hash: &str, body: String) -> RecordedEvent {
        RecordedEvent {
            stream: stream.to_string(),
            seq,
            prev_hash: prev_hash.to_string(),
            hash: chain_hash(stream, seq, prev_hash, &body),
            body,
        }
    }

    /// Seals the event that follows `prev` (or the first one of the stream).
    pub fn next(stream: &str, prev: Option<&RecordedEvent>, body: &EventBody) -> RecordedEvent {
        RecordedEvent::next_text(stream, prev, serde_json::to_string(body).unwrap_or_default())
    }

    /// Seals the event that follows `prev` (or the first one) with body text.
    pub fn next_text(stream: &str, prev: Option<&RecordedEvent>, body: String) -> RecordedEvent {
        match prev {
            Some(p) => RecordedEvent::seal_text(stream, p.seq + 1, &p.hash, body),
            None => RecordedEvent::seal_text(stream, 1, GENESIS, body),
        }
    }

    /// Seals the first event of a stream.
    pub fn first(stream: &str, body: &EventBody) -> RecordedEvent {
        RecordedEvent::seal(stream, 1, GENESIS, body)
    }

    pub fn decode(&self) -> Result<EventBody, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("event {seq} cannot be read: {source}")]
    Unreadable { seq: u64, source: serde_json::Error },
    #[error("event {seq} ({input}) is refused on replay: {rejection}")]
    Refused { seq: u64, input: &'static str, rejection: Rejection },
    #[error("event {seq} ({input}) produces different effects on replay than were recorded")]
    Diverged { seq: u64, input: &'static str },
}

/// Rebuilds a rollout from its events, checking each one replays to the
/// effects it recorded. `None` for an empty stream.
pub fn replay(events: &[RecordedEvent]) -> Result<Option<Rollout>, ReplayError> {
    let mut state: Option<Rollout> = None;
    for event in events {
        let body = event.decode().map_err(|source| ReplayError::Unreadable { seq: event.seq, source })?;
        let input = body.command.input.name();
        let transition = step(state.as_ref(), &body.command, body.at).map_err(|rejection| ReplayError::Refused {
            seq: event.seq,
            input,
            rejection,
        })?;
        if transition.effects != body.effects {
            return Err(ReplayError::Diverged { seq: event.seq, input });
        }
        state = Some(transition.state);
    }
    Ok(state)
}
