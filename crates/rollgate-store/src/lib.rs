//! Where rollouts live: an append-only, hash-chained event log with one
//! trait and two real implementations, SQLite (embedded default, a file in
//! the data directory) and PostgreSQL (for several replicas).
//!
//! Appends use optimistic concurrency: a batch names the position it
//! expects the stream to be at, and two writers can never both write event
//! N. Effects are tracked per stream, so a process killed between
//! recording an event and carrying out its effects finishes them on restart.

mod arms;
mod error;
mod lease;
mod postgres;
mod records;
mod rollouts;
mod shadow_pairs;
mod sql;
mod sqlite;

pub use arms::{ArmKey, ArmReport, Sample, SampleKind};
pub use error::StoreError;
pub use lease::{Fence, LeaseHolder, Member};
pub use postgres::{LogListener, PgStore};
pub use records::{Analysis, AnalysisRecord, AnalysisStore, Delivery, DeliveryStore};
pub use rollouts::{
    EffectKey, EffectSink, Pending, Rollouts, SubmitError, Submitted, carry_out_pending, carry_out_pending_in,
};
pub use sqlite::{DATABASE_FILE, SqliteStore};

use rollgate_core::audit::StreamHead;
use rollgate_core::event::RecordedEvent;
use std::future::Future;

/// What an append does to a service's one active rollout, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveRollout {
    /// The rollout starts: the service must have no active rollout.
    Take { service: String, rollout: String },
    /// The rollout ends: the service is free again.
    Release { service: String, rollout: String },
}

/// The operations every store offers; both implementations pass the same suite.
pub trait EventStore: Send + Sync {
    /// Appends `events`, which must continue their stream: the first one's
    /// `seq` is one past the stored head and its `prev_hash` is the head's
    /// hash. Otherwise nothing is written and the result is `Conflict`.
    fn append(&self, events: &[RecordedEvent]) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.append_marking(events, None)
    }

    /// [`EventStore::append`], taking or releasing a service's active rollout
    /// in the same transaction: a take when the service already has one
    /// writes nothing and is `ServiceBusy`.
    fn append_marking(
        &self,
        events: &[RecordedEvent],
        active: Option<&ActiveRollout>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every stream's last event (position and hash), in name order: what a
    /// reader compares to see which streams moved on, and what an auditor
    /// keeps outside the database to detect events cut off the end later.
    fn heads(&self) -> impl Future<Output = Result<Vec<StreamHead>, StoreError>> + Send;

    /// A stream's last event (position and hash); `None` for an unknown
    /// stream. What a reader compares to see whether one stream moved on.
    fn head(&self, stream: &str) -> impl Future<Output = Result<Option<StreamHead>, StoreError>> + Send {
        async move { Ok(self.heads().await?.into_iter().find(|h| h.stream == stream)) }
    }

    /// A stream's events in order; empty for an unknown stream.
    fn read(&self, stream: &str) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Every stream, in name order.
    fn streams(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The last event whose effects have all been carried out (0 for none).
    fn effects_done(&self, stream: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that every effect up to and including event `seq` was carried out.
    fn mark_effects_done(&self, stream: &str, seq: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Streams whose names start with this hold records other than rollout
/// events (the version registry, the token audit trail).
pub const RECORD_STREAM_PREFIX: char = '@';

/// Whether a stream holds a rollout's events.
pub fn is_rollout_stream(stream: &str) -> bool {
    !stream.starts_with(RECORD_STREAM_PREFIX)
}

/// How many times a writer re-reads a stream after losing a race to another writer.
const CONFLICT_RETRIES: usize = 8;

/// Appends the event `decide` builds from the stream as it stands, reading
/// the stream again and deciding anew when another writer takes the
/// position first; gives up with the conflict after a few tries.
pub(crate) async fn append_deciding<S, T, E>(
    store: &S,
    stream: &str,
    mut decide: impl FnMut(&[RecordedEvent]) -> Result<(RecordedEvent, Option<ActiveRollout>, T), E>,
) -> Result<T, E>
where
    S: EventStore,
    E: From<StoreError>,
{
    for attempt in 1..=CONFLICT_RETRIES {
        let events = store.read(stream).await?;
        let (event, active, decided) = decide(&events)?;
        match store.append_marking(std::slice::from_ref(&event), active.as_ref()).await {
            Ok(()) => return Ok(decided),
            Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns either way")
}

/// Appends a record (any body text) to a stream that is not a rollout, such
/// as the version registry or the token audit trail, chained like every
/// event; retries when another writer takes the position first.
pub async fn append_record<S: EventStore>(store: &S, stream: &str, body: String) -> Result<RecordedEvent, StoreError> {
    append_record_deciding(store, stream, |_| Ok::<_, StoreError>(body.clone())).await
}

/// Appends the record `decide` writes given the stream as it stands (or its
/// refusal), deciding again on the fresh stream when another writer got
/// there first: a check and its write can never be split by another write.
pub async fn append_record_deciding<S, E>(
    store: &S,
    stream: &str,
    mut decide: impl FnMut(&[RecordedEvent]) -> Result<String, E>,
) -> Result<RecordedEvent, E>
where
    S: EventStore,
    E: From<StoreError>,
{
    append_deciding(store, stream, |events| {
        let event = RecordedEvent::next_text(stream, events.last(), decide(events)?);
        Ok((event.clone(), None, event))
    })
    .await
}

/// The store chosen at start-up: the binary holds one of these.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens `postgres://…` URLs on PostgreSQL and anything else as a
    /// SQLite data directory, running migrations either way.
    pub async fn open(location: &str) -> Result<AnyStore, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(PgStore::connect(location).await?))
        } else {
            Ok(AnyStore::Sqlite(SqliteStore::open(std::path::Path::new(location)).await?))
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl AnyStore {
    /// The same store, writing only while `fence` holds the leader's lease
    /// (PostgreSQL; one SQLite server needs no fence: its data directory is locked).
    pub fn fenced(&self, fence: Fence) -> AnyStore {
        match self {
            AnyStore::Sqlite(s) => AnyStore::Sqlite(s.clone()),
            AnyStore::Postgres(p) => AnyStore::Postgres(p.fenced(fence)),
        }
    }

    /// Refused (`Fenced`) when this store's fence no longer holds the lease: asked before an effect
    /// that cannot be taken back (a webhook sent), so a deposed leader does not send it.
    pub async fn check_fence(&self) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(_) => Ok(()),
            AnyStore::Postgres(p) => p.begin_write().await.map(drop),
        }
    }
}

impl EventStore for AnyStore {
    async fn append_marking(&self, events: &[RecordedEvent], active: Option<&ActiveRollout>) -> Result<(), StoreError> {
        delegate!(self, s => s.append_marking(events, active))
    }
    async fn heads(&self) -> Result<Vec<StreamHead>, StoreError> {
        delegate!(self, s => s.heads())
    }
    async fn head(&self, stream: &str) -> Result<Option<StreamHead>, StoreError> {
        delegate!(self, s => s.head(stream))
    }
    async fn read(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, s => s.read(stream))
    }
    async fn streams(&self) -> Result<Vec<String>, StoreError> {
        delegate!(self, s => s.streams())
    }
    async fn effects_done(&self, stream: &str) -> Result<u64, StoreError> {
        delegate!(self, s => s.effects_done(stream))
    }
    async fn mark_effects_done(&self, stream: &str, seq: u64) -> Result<(), StoreError> {
        delegate!(self, s => s.mark_effects_done(stream, seq))
    }
}

impl AnalysisStore for AnyStore {
    async fn save_analysis(&self, kind: Analysis, record: &AnalysisRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.save_analysis(kind, record))
    }
    async fn analysis(&self, kind: Analysis, rollout: &str) -> Result<Option<AnalysisRecord>, StoreError> {
        delegate!(self, s => s.analysis(kind, rollout))
    }
}

impl DeliveryStore for AnyStore {
    async fn enqueue(&self, delivery: &Delivery) -> Result<(), StoreError> {
        delegate!(self, s => s.enqueue(delivery))
    }
    async fn due(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        delegate!(self, s => s.due(now_ms, limit))
    }
    async fn record_attempt(&self, delivery: &Delivery) -> Result<(), StoreError> {
        delegate!(self, s => s.record_attempt(delivery))
    }
    async fn deliveries_for(&self, rollout: &str) -> Result<Vec<Delivery>, StoreError> {
        delegate!(self, s => s.deliveries_for(rollout))
    }
}
