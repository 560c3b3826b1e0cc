//! The leader's lease among replicas on PostgreSQL, with fencing.
//!
//! One row per lease names its holder, a token and when it expires, on the
//! database's clock. Taking the lease is one statement: it succeeds when the
//! lease is free, expired, or already ours, and the token grows by one
//! whenever the holder changes or the lease had run out. A [`Fence`] carries
//! the token a leader holds; a store made [`PgStore::fenced`] checks it
//! inside every write's transaction (reading the lease row `FOR SHARE`, so a
//! takeover waits for writes in flight and every later write sees the new
//! token) and refuses the write when the token is stale. A leader paused
//! past its lease (a long GC, `SIGSTOP`, a partition) therefore cannot append
//! or record an effect once another replica has taken over.

use crate::{PgStore, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The database's clock, in Unix milliseconds.
pub(crate) const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The token a leader writes under; 0 while it holds none (every write refused).
#[derive(Debug, Clone)]
pub struct Fence {
    lease: String,
    token: Arc<AtomicI64>,
}

impl Fence {
    pub fn new(lease: &str) -> Fence {
        Fence { lease: lease.to_string(), token: Arc::new(AtomicI64::new(0)) }
    }

    pub fn token(&self) -> i64 {
        self.token.load(Ordering::Acquire)
    }

    /// Writes from now on carry `token` (0: none).
    pub fn set(&self, token: i64) {
        self.token.store(token, Ordering::Release);
    }
}

/// A lease as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub address: String,
    pub token: i64,
    pub expires_ms: i64,
    /// The database's clock when this was read.
    pub now_ms: i64,
}

/// A replica, as its last heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub address: String,
    pub heartbeat_ms: i64,
    /// The database's clock when this was read.
    pub now_ms: i64,
}

impl PgStore {
    /// Takes or renews lease `name` for `holder` for `duration_ms`: its token,
    /// or `None` while another holder's lease runs.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        address: &str,
        duration_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = format!(
            "INSERT INTO leases (name, holder, address, token, expires_ms) VALUES ($1, $2, $3, 1, {NOW_MS} + $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address, \
             token = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms > {NOW_MS} \
                          THEN leases.token ELSE leases.token + 1 END, \
             expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms <= {NOW_MS} \
             RETURNING token"
        );
        let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(address)
            .bind(duration_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(token,)| token))
    }

    /// Lets lease `name` go at once if `holder` holds it (a clean shutdown).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = format!("UPDATE leases SET expires_ms = {NOW_MS} WHERE name = $1 AND holder = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).bind(holder).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn lease(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let sql = format!("SELECT holder, address, token, expires_ms, {NOW_MS} FROM leases WHERE name = $1");
        let row: Option<(String, String, i64, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|(holder, address, token, expires_ms, now_ms)| LeaseHolder {
            holder,
            address,
            token,
            expires_ms,
            now_ms,
        }))
    }

    /// Records that replica `id` at `address` is alive now.
    pub async fn heartbeat(&self, id: &str, address: &str) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO members (id, address, heartbeat_ms) VALUES ($1, $2, {NOW_MS}) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_ms = excluded.heartbeat_ms"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(address).execute(&self.pool).await?;
        Ok(())
    }

    /// Every replica that sent a heartbeat within `within_ms`, by id.
    pub async fn members(&self, within_ms: i64) -> Result<Vec<Member>, StoreError> {
        let sql = format!(
            "SELECT id, address, heartbeat_ms, {NOW_MS} FROM members WHERE heartbeat_ms >= {NOW_MS} - $1 ORDER BY id"
        );
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(within_ms).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, address, heartbeat_ms, now_ms)| Member { id, address, heartbeat_ms, now_ms })
            .collect())
    }

    /// The same store, whose every write is refused unless `fence` holds the lease's current token.
    pub fn fenced(&self, fence: Fence) -> PgStore {
        PgStore { pool: self.pool.clone(), fence: Some(fence) }
    }

    /// A write transaction; on a fenced store, only while its token is the lease's.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(fence) = &self.fence {
            let held = fence.token();
            let current: Option<(i64,)> = sqlx::query_as("SELECT token FROM leases WHERE name = $1 FOR SHARE")
                .bind(&fence.lease)
                .fetch_optional(&mut *tx)
                .await?;
            let current = current.map_or(0, |(t,)| t);
            if held == 0 || current != held {
                return Err(StoreError::Fenced { held, current });
            }
        }
        Ok(tx)
    }
}
