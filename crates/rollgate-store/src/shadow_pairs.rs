//! Pairs of answers that followers' gateways mirrored in a shadow stage,
//! gathered for the leader's comparison (PostgreSQL), as `arms` gathers
//! what they measured for its judge. A pair is opaque text here (the
//! server's JSON form of it).

use crate::lease::NOW_MS;
use crate::{PgStore, StoreError};

/// How long pairs no leader took are kept: the publisher prunes older ones.
const PAIRS_KEPT_MS: i64 = 10 * 60 * 1000;

impl PgStore {
    /// Appends pairs mirrored for `rollout`'s shadow stage, in one
    /// transaction. Not fenced: every replica's gateway mirrors.
    pub async fn publish_shadow_pairs(&self, rollout: &str, pairs: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let insert = format!("INSERT INTO shadow_pairs (rollout, pair, published_ms) VALUES ($1, $2, {NOW_MS})");
        for pair in pairs {
            sqlx::query(sqlx::AssertSqlSafe(insert.as_str())).bind(rollout).bind(pair).execute(&mut *tx).await?;
        }
        let prune = format!("DELETE FROM shadow_pairs WHERE published_ms < {NOW_MS} - $1");
        sqlx::query(sqlx::AssertSqlSafe(prune)).bind(PAIRS_KEPT_MS).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the pairs published for `rollout`, oldest first (each is handed
    /// out once); on a fenced store only while it holds the lease.
    pub async fn take_shadow_pairs(&self, rollout: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut rows: Vec<(i64, String)> =
            sqlx::query_as("DELETE FROM shadow_pairs WHERE rollout = $1 RETURNING id, pair")
                .bind(rollout)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.sort_unstable_by_key(|(id, _)| *id);
        Ok(rows.into_iter().map(|(_, pair)| pair).collect())
    }
}
