//! What the control plane keeps besides the event log: webhook deliveries
//! with their retry state, and each rollout's analyses (the canary's judge,
//! the shadow's comparison). Both stores
//! implement these with the same SQL. (API tokens are events of the
//! `@tokens` stream, in the log itself.)

use crate::StoreError;
use std::future::Future;

/// One webhook delivery of one notification to one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The notification's effect key and the sink's index: the same on every retry.
    pub id: String,
    pub rollout: String,
    pub sink: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub delivered_ms: Option<i64>,
    pub gave_up: bool,
    pub last_error: Option<String>,
}

pub trait DeliveryStore: Send + Sync {
    /// Queues a delivery; one already queued under the same id is left as it is.
    fn enqueue(&self, delivery: &Delivery) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deliveries still to make whose next attempt is due at `now_ms`, oldest first.
    fn due(&self, now_ms: i64, limit: u32) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
    /// Stores the outcome of an attempt (attempts, next attempt, delivered, given up, error).
    fn record_attempt(&self, delivery: &Delivery) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn deliveries_for(&self, rollout: &str) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
}

/// The analyses kept per rollout, each in a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analysis {
    /// The canary's judge.
    Judge,
    /// The shadow stage's comparison of answers.
    Shadow,
    /// The judge's trace over time, for the dashboard's charts.
    Trace,
}

impl Analysis {
    pub(crate) fn save_sql(self) -> &'static str {
        match self {
            Analysis::Judge => {
                "INSERT INTO judges (rollout, state, report, updated_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rollout) DO UPDATE SET state = excluded.state, report = excluded.report, updated_ms = excluded.updated_ms"
            }
            Analysis::Shadow => {
                "INSERT INTO shadow_comparisons (rollout, state, report, updated_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rollout) DO UPDATE SET state = excluded.state, report = excluded.report, updated_ms = excluded.updated_ms"
            }
            Analysis::Trace => {
                "INSERT INTO judge_traces (rollout, state, report, updated_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rollout) DO UPDATE SET state = excluded.state, report = excluded.report, updated_ms = excluded.updated_ms"
            }
        }
    }

    pub(crate) fn load_sql(self) -> &'static str {
        match self {
            Analysis::Judge => "SELECT rollout, state, report, updated_ms FROM judges WHERE rollout = $1",
            Analysis::Shadow => "SELECT rollout, state, report, updated_ms FROM shadow_comparisons WHERE rollout = $1",
            Analysis::Trace => "SELECT rollout, state, report, updated_ms FROM judge_traces WHERE rollout = $1",
        }
    }
}

/// A rollout's analysis as last stored: its state (JSON, to continue the
/// same sequential test after a restart) and its latest report (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisRecord {
    pub rollout: String,
    pub state: String,
    pub report: String,
    pub updated_ms: i64,
}

pub trait AnalysisStore: Send + Sync {
    /// Stores a rollout's analysis, replacing what was stored before.
    fn save_analysis(
        &self,
        kind: Analysis,
        record: &AnalysisRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn analysis(
        &self,
        kind: Analysis,
        rollout: &str,
    ) -> impl Future<Output = Result<Option<AnalysisRecord>, StoreError>> + Send;
}

pub(crate) const ENQUEUE: &str = "INSERT INTO deliveries \
     (id, rollout, sink, body, attempts, next_attempt_ms, delivered_ms, gave_up, last_error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
pub(crate) const DELIVERY_COLUMNS: &str =
    "SELECT id, rollout, sink, body, attempts, next_attempt_ms, delivered_ms, gave_up, last_error FROM deliveries";
pub(crate) const RECORD_ATTEMPT: &str = "UPDATE deliveries SET attempts = $2, next_attempt_ms = $3, delivered_ms = $4, \
     gave_up = $5, last_error = $6 WHERE id = $1";

pub(crate) type DeliveryRow = (String, String, String, String, i64, i64, Option<i64>, i64, Option<String>);

pub(crate) fn delivery_from(row: DeliveryRow) -> Delivery {
    let (id, rollout, sink, body, attempts, next_attempt_ms, delivered_ms, gave_up, last_error) = row;
    let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    Delivery { id, rollout, sink, body, attempts, next_attempt_ms, delivered_ms, gave_up: gave_up != 0, last_error }
}

/// Implements [`DeliveryStore`] and [`AnalysisStore`] for a store type with a `pool` field.
macro_rules! impl_record_stores {
    ($store:ty) => {
        impl $crate::records::AnalysisStore for $store {
            async fn save_analysis(
                &self,
                kind: $crate::records::Analysis,
                j: &$crate::records::AnalysisRecord,
            ) -> Result<(), $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(kind.save_sql())
                    .bind(&j.rollout)
                    .bind(&j.state)
                    .bind(&j.report)
                    .bind(j.updated_ms)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }

            async fn analysis(
                &self,
                kind: $crate::records::Analysis,
                rollout: &str,
            ) -> Result<Option<$crate::records::AnalysisRecord>, $crate::StoreError> {
                let row: Option<(String, String, String, i64)> =
                    sqlx::query_as(kind.load_sql()).bind(rollout).fetch_optional(&self.pool).await?;
                Ok(row.map(|(rollout, state, report, updated_ms)| $crate::records::AnalysisRecord {
                    rollout,
                    state,
                    report,
                    updated_ms,
                }))
            }
        }

        impl $crate::records::DeliveryStore for $store {
            async fn enqueue(&self, d: &$crate::records::Delivery) -> Result<(), $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::records::ENQUEUE)
                    .bind(&d.id)
                    .bind(&d.rollout)
                    .bind(&d.sink)
                    .bind(&d.body)
                    .bind(i64::from(d.attempts))
                    .bind(d.next_attempt_ms)
                    .bind(d.delivered_ms)
                    .bind(i64::from(d.gave_up))
                    .bind(&d.last_error)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }

            async fn due(&self, now_ms: i64, limit: u32) -> Result<Vec<$crate::records::Delivery>, $crate::StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{} WHERE delivered_ms IS NULL AND gave_up = 0 AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, id LIMIT $2",
                    $crate::records::DELIVERY_COLUMNS
                ));
                let rows: Vec<$crate::records::DeliveryRow> =
                    sqlx::query_as(sql).bind(now_ms).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map($crate::records::delivery_from).collect())
            }

            async fn record_attempt(&self, d: &$crate::records::Delivery) -> Result<(), $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::records::RECORD_ATTEMPT)
                    .bind(&d.id)
                    .bind(i64::from(d.attempts))
                    .bind(d.next_attempt_ms)
                    .bind(d.delivered_ms)
                    .bind(i64::from(d.gave_up))
                    .bind(&d.last_error)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }

            async fn deliveries_for(&self, rollout: &str) -> Result<Vec<$crate::records::Delivery>, $crate::StoreError> {
                let sql = sqlx::AssertSqlSafe(format!("{} WHERE rollout = $1 ORDER BY id", $crate::records::DELIVERY_COLUMNS));
                let rows: Vec<$crate::records::DeliveryRow> = sqlx::query_as(sql).bind(rollout).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map($crate::records::delivery_from).collect())
            }
        }
    };
}

pub(crate) use impl_record_stores;
