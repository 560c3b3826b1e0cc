//! PostgreSQL, for several control-plane replicas sharing one log: each
//! append is announced (LISTEN/NOTIFY) so replicas read it at once.

use crate::StoreError;
use crate::records::impl_record_stores;
use crate::sql::impl_event_store;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Set on a leader's store: every write checks the lease's token first.
    pub(crate) fence: Option<crate::lease::Fence>,
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool =
            PgPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, fence: None })
    }

    /// Tells every replica listening (`log_listener`) that `stream` moved, when `tx` commits.
    pub(crate) async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        stream: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(LOG_CHANNEL).bind(stream).execute(&mut **tx).await?;
        Ok(())
    }

    /// A listener told the name of every stream another writer appends to.
    /// Notifications are lost while its connection is down: readers re-read
    /// periodically as well.
    pub async fn log_listener(&self) -> Result<LogListener, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(LOG_CHANNEL).await?;
        Ok(LogListener(listener))
    }
}

/// The channel appends are announced on (the stream's name as payload).
pub const LOG_CHANNEL: &str = "rollgate_log";

/// Told of every append to the log, by any replica.
pub struct LogListener(sqlx::postgres::PgListener);

impl LogListener {
    /// The stream of the next append (reconnecting after a lost connection; appends meanwhile are not told).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

// Two writers of the same event collide on the primary key, which the
// implementation reports as a conflict.
impl_event_store!(PgStore);
impl_record_stores!(PgStore);
