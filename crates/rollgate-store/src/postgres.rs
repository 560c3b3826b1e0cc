//! PostgreSQL, for several control-plane replicas sharing one log.

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
}

// Two writers of the same event collide on the primary key, which the
// implementation reports as a conflict.
impl_event_store!(PgStore);
impl_record_stores!(PgStore);
