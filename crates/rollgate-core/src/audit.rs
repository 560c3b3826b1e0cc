//! The tamper-evident log. Every event carries the hash of the one before
//! it; editing, dropping or reordering an event breaks the chain at that
//! event, and `verify` names the first one that is wrong.
//!
//! What a chain cannot show on its own: events cut off the end of a stream
//! leave a shorter but valid chain. Comparing with a head kept outside the
//! database ([`check_head`]: `audit verify --expect-head`, or the signed head
//! file `serve --head-file` keeps) catches that.

use crate::event::RecordedEvent;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// The `prev_hash` of a stream's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// sha256 over the stream, the position, the previous hash and the exact body text.
pub fn chain_hash(stream: &str, seq: u64, prev_hash: &str, body: &str) -> String {
    let mut h = Sha256::new();
    for part in [stream.as_bytes(), seq.to_string().as_bytes(), prev_hash.as_bytes(), body.as_bytes()] {
        // Length prefixes keep the parts apart: no two different inputs hash alike by shifting bytes.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// The event's content no longer matches its own hash.
    Edited,
    /// The event before this one is missing.
    Dropped,
    /// The event is not where its chain says it belongs.
    Reordered,
    /// The stream ends before a head recorded earlier: events were cut off.
    Truncated,
    /// The event at a recorded head is not the one that was recorded there.
    Replaced,
}

/// Where a stream ended when it was looked at: its last event's position and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamHead {
    pub stream: String,
    pub seq: u64,
    pub hash: String,
}

/// Checks that a stream still holds the head recorded for it: at least that
/// many events, with that hash at that position. (The chain itself is
/// [`verify_stream`]'s to check.)
pub fn check_head(expected: &StreamHead, events: &[RecordedEvent]) -> Result<(), AuditFailure> {
    let fail = |seq, tamper, detail: String| AuditFailure { stream: expected.stream.clone(), seq, tamper, detail };
    let at = usize::try_from(expected.seq).ok().and_then(|seq| seq.checked_sub(1)).and_then(|i| events.get(i));
    match at {
        None => Err(fail(
            events.len() as u64 + 1,
            Tamper::Truncated,
            format!(
                "the stream has {} event(s) but had {} when its head was recorded: events were cut off the end",
                events.len(),
                expected.seq
            ),
        )),
        Some(event) if event.hash != expected.hash => Err(fail(
            expected.seq,
            Tamper::Replaced,
            format!(
                "its hash is {} but {} was recorded: the stream was rewritten from here",
                event.hash, expected.hash
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// The first event at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFailure {
    pub stream: String,
    pub seq: u64,
    pub tamper: Tamper,
    pub detail: String,
}

impl fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {} event {}: {}", self.stream, self.seq, self.detail)
    }
}

/// The head of a verified stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedStream {
    pub stream: String,
    pub events: u64,
    pub head: String,
}

/// Verifies one stream's events as read from the store in position order.
pub fn verify_stream(events: &[RecordedEvent]) -> Result<Option<VerifiedStream>, AuditFailure> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let stream = first.stream.clone();
    let fail = |seq: u64, tamper: Tamper, detail: String| AuditFailure { stream: stream.clone(), seq, tamper, detail };
    let mut prev_hash = GENESIS.to_string();
    for (index, event) in events.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if event.seq > expected_seq {
            let detail =
                format!("event {expected_seq} is missing: the log jumps from {} to {}", expected_seq - 1, event.seq);
            return Err(fail(expected_seq, Tamper::Dropped, detail));
        }
        let recomputed = chain_hash(&event.stream, event.seq, &event.prev_hash, &event.body);
        if event.seq < expected_seq || event.stream != stream {
            return Err(fail(event.seq, Tamper::Reordered, "the event appears out of its position".into()));
        }
        if recomputed != event.hash {
            // An intact event moved to another position still hashes right
            // at the position it was written for.
            let written_at = (1..=events.len() as u64)
                .find(|&seq| chain_hash(&event.stream, seq, &event.prev_hash, &event.body) == event.hash);
            return Err(match written_at {
                Some(seq) => {
                    fail(event.seq, Tamper::Reordered, format!("it was written as event {seq}: the log was reordered"))
                }
                None => fail(event.seq, Tamper::Edited, "its content does not match its hash: it was edited".into()),
            });
        }
        if event.prev_hash != prev_hash {
            // Intact itself but not chained to its predecessor: either its
            // real predecessor is gone or the events were swapped.
            let follows_nothing_here = events.iter().all(|e| e.hash != event.prev_hash);
            let (tamper, detail) = if follows_nothing_here {
                (Tamper::Dropped, "the event it follows is missing from the log".to_string())
            } else {
                (
                    Tamper::Reordered,
                    "it follows a different event than the one before it: the log was reordered".to_string(),
                )
            };
            return Err(fail(event.seq, tamper, detail));
        }
        prev_hash = event.hash.clone();
    }
    Ok(Some(VerifiedStream { stream, events: events.len() as u64, head: prev_hash }))
}
