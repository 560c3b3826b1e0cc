//! The SQL both stores share (SQLite and PostgreSQL accept the same text,
//! `$N` parameters included) and the one implementation of
//! [`EventStore`](crate::EventStore) written over either pool.

pub(crate) const HEAD: &str = "SELECT seq, hash FROM events WHERE stream = $1 ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT: &str = "INSERT INTO events (stream, seq, prev_hash, hash, body) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const READ: &str = "SELECT stream, seq, prev_hash, hash, body FROM events WHERE stream = $1 ORDER BY seq";
pub(crate) const STREAMS: &str = "SELECT DISTINCT stream FROM events ORDER BY stream";
pub(crate) const HEADS: &str = "SELECT e.stream, e.seq, e.hash FROM events e \
     JOIN (SELECT stream, MAX(seq) AS seq FROM events GROUP BY stream) h ON e.stream = h.stream AND e.seq = h.seq \
     ORDER BY e.stream";
pub(crate) const TAKE_ACTIVE: &str = "INSERT INTO active_rollouts (service, rollout) VALUES ($1, $2)";
pub(crate) const RELEASE_ACTIVE: &str = "DELETE FROM active_rollouts WHERE service = $1 AND rollout = $2";
pub(crate) const ACTIVE_OF: &str = "SELECT rollout FROM active_rollouts WHERE service = $1";
pub(crate) const EFFECTS_DONE: &str = "SELECT done_through FROM effect_progress WHERE stream = $1";
// Progress only moves forward, even if two processes finish effects out of order.
pub(crate) const MARK_EFFECTS_DONE: &str = "INSERT INTO effect_progress (stream, done_through) VALUES ($1, $2) \
     ON CONFLICT (stream) DO UPDATE SET done_through = CASE \
     WHEN excluded.done_through > effect_progress.done_through THEN excluded.done_through \
     ELSE effect_progress.done_through END";

use crate::StoreError;
use rollgate_core::event::RecordedEvent;

/// Checks a batch is one stream's, consecutive and chained within itself.
pub(crate) fn check_batch(events: &[RecordedEvent]) -> Result<(), StoreError> {
    let well_formed = events.windows(2).all(|pair| {
        pair[1].stream == pair[0].stream && pair[1].seq == pair[0].seq + 1 && pair[1].prev_hash == pair[0].hash
    });
    if well_formed && events.first().is_some_and(|e| e.seq >= 1) { Ok(()) } else { Err(StoreError::MalformedBatch) }
}

/// Turns a duplicate-key error on insert into the conflict it means.
pub(crate) fn conflict_or(err: sqlx::Error, first: &RecordedEvent) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { stream: first.stream.clone(), expected: first.seq, head_seq: first.seq }
        }
        _ => StoreError::Database(err),
    }
}

/// Turns a duplicate-key error on taking a service's active rollout into
/// `ServiceBusy`, naming the rollout that holds it.
pub(crate) async fn busy_or<DB: sqlx::Database>(err: sqlx::Error, service: &str, pool: &sqlx::Pool<DB>) -> StoreError
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let holder: Result<Option<(String,)>, sqlx::Error> =
                sqlx::query_as(ACTIVE_OF).bind(service).fetch_optional(pool).await;
            let rollout = holder.ok().flatten().map_or_else(|| "unknown".into(), |(r,)| r);
            StoreError::ServiceBusy { service: service.to_string(), rollout }
        }
        _ => StoreError::Database(err),
    }
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Implements [`EventStore`](crate::EventStore) for a store type with a
/// `pool` field, a `begin_write` method (a write transaction in that
/// database's way, checked against the lease's token on a fenced store) and
/// an `announce` method (tells other replicas a stream moved, at commit).
macro_rules! impl_event_store {
    ($store:ty) => {
        impl $crate::EventStore for $store {
            async fn append_marking(
                &self,
                events: &[rollgate_core::event::RecordedEvent],
                active: Option<&$crate::ActiveRollout>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::sql;
                let Some(first) = events.first() else {
                    return Ok(());
                };
                sql::check_batch(events)?;
                let mut tx = self.begin_write().await?;
                match active {
                    Some($crate::ActiveRollout::Take { service, rollout }) => {
                        let taken = sqlx::query(sql::TAKE_ACTIVE).bind(service).bind(rollout).execute(&mut *tx).await;
                        if let Err(err) = taken {
                            drop(tx);
                            return Err(sql::busy_or(err, service, &self.pool).await);
                        }
                    }
                    Some($crate::ActiveRollout::Release { service, rollout }) => {
                        sqlx::query(sql::RELEASE_ACTIVE).bind(service).bind(rollout).execute(&mut *tx).await?;
                    }
                    None => {}
                }
                let head: Option<(i64, String)> =
                    sqlx::query_as(sql::HEAD).bind(&first.stream).fetch_optional(&mut *tx).await?;
                let (head_seq, head_hash) =
                    head.map_or((0, rollgate_core::audit::GENESIS.to_string()), |(s, h)| (sql::to_u64(s), h));
                if first.seq != head_seq + 1 || first.prev_hash != head_hash {
                    return Err($crate::StoreError::Conflict {
                        stream: first.stream.clone(),
                        expected: first.seq,
                        head_seq,
                    });
                }
                for e in events {
                    sqlx::query(sql::INSERT)
                        .bind(&e.stream)
                        .bind(sql::to_i64(e.seq))
                        .bind(&e.prev_hash)
                        .bind(&e.hash)
                        .bind(&e.body)
                        .execute(&mut *tx)
                        .await
                        .map_err(|err| sql::conflict_or(err, first))?;
                }
                self.announce(&mut tx, &first.stream).await?;
                tx.commit().await.map_err(|err| sql::conflict_or(err, first))
            }

            async fn read(&self, stream: &str) -> Result<Vec<rollgate_core::event::RecordedEvent>, $crate::StoreError> {
                let rows: Vec<(String, i64, String, String, String)> =
                    sqlx::query_as($crate::sql::READ).bind(stream).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(stream, seq, prev_hash, hash, body)| rollgate_core::event::RecordedEvent {
                        stream,
                        seq: $crate::sql::to_u64(seq),
                        prev_hash,
                        hash,
                        body,
                    })
                    .collect())
            }

            async fn heads(&self) -> Result<Vec<rollgate_core::audit::StreamHead>, $crate::StoreError> {
                let rows: Vec<(String, i64, String)> = sqlx::query_as($crate::sql::HEADS).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(stream, seq, hash)| rollgate_core::audit::StreamHead {
                        stream,
                        seq: $crate::sql::to_u64(seq),
                        hash,
                    })
                    .collect())
            }

            async fn head(&self, stream: &str) -> Result<Option<rollgate_core::audit::StreamHead>, $crate::StoreError> {
                let row: Option<(i64, String)> =
                    sqlx::query_as($crate::sql::HEAD).bind(stream).fetch_optional(&self.pool).await?;
                Ok(row.map(|(seq, hash)| rollgate_core::audit::StreamHead {
                    stream: stream.to_string(),
                    seq: $crate::sql::to_u64(seq),
                    hash,
                }))
            }

            async fn streams(&self) -> Result<Vec<String>, $crate::StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as($crate::sql::STREAMS).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(s,)| s).collect())
            }

            async fn effects_done(&self, stream: &str) -> Result<u64, $crate::StoreError> {
                let row: Option<(i64,)> =
                    sqlx::query_as($crate::sql::EFFECTS_DONE).bind(stream).fetch_optional(&self.pool).await?;
                Ok(row.map_or(0, |(n,)| $crate::sql::to_u64(n)))
            }

            async fn mark_effects_done(&self, stream: &str, seq: u64) -> Result<(), $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::sql::MARK_EFFECTS_DONE)
                    .bind(stream)
                    .bind($crate::sql::to_i64(seq))
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }
        }
    };
}

pub(crate) use impl_event_store;
