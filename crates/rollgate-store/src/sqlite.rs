//! The embedded default: one SQLite file in the data directory, in WAL mode,
//! created with its schema on first use.

use crate::StoreError;
use crate::records::impl_record_stores;
use crate::sql::impl_event_store;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file inside a data directory.
pub const DATABASE_FILE: &str = "rollgate.db";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let path = data_dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The audit log must survive a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction. IMMEDIATE takes the write lock at once, so two
    /// writers queue on the busy timeout instead of failing when one upgrades
    /// a read to a write.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// One server per SQLite store: nobody else to tell.
    pub(crate) async fn announce(
        &self,
        _tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        _stream: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

// IMMEDIATE takes the write lock at once, so two writers queue on the busy
// timeout instead of failing when one upgrades a read to a write.
impl_event_store!(SqliteStore);
impl_record_stores!(SqliteStore);
