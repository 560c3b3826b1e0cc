//! What every replica's gateway measured, gathered for the leader's judge
//! (PostgreSQL). Replicas publish; the leader reads the sums and takes the
//! samples. Why publishing rather than the leader scraping each replica: a
//! replica the leader cannot reach still counts (its report waits in the
//! database), a new leader finds every replica's totals where the old one
//! left them, and no replica needs to know the others' addresses.

use crate::lease::NOW_MS;
use crate::{PgStore, StoreError};
use rollgate_core::measure::{Arm, Counters};

/// How long unclaimed samples are kept (no leader judged them): the publisher prunes older ones.
const SAMPLES_KEPT_MS: i64 = 10 * 60 * 1000;

/// One arm of one version of one service, as a gateway measures it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArmKey {
    pub service: String,
    pub version: String,
    pub arm: Arm,
}

/// Which measurement a sample is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    Latency,
    TimeToFirstToken,
    PerToken,
}

impl SampleKind {
    const ALL: [SampleKind; 3] = [SampleKind::Latency, SampleKind::TimeToFirstToken, SampleKind::PerToken];

    fn as_str(self) -> &'static str {
        match self {
            SampleKind::Latency => "latency",
            SampleKind::TimeToFirstToken => "ttft",
            SampleKind::PerToken => "per_token",
        }
    }

    fn parse(s: &str) -> Option<SampleKind> {
        SampleKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Values in microseconds (all of a population, or a uniform sample of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub values_us: Vec<u32>,
    pub population: u64,
}

/// What one replica measured of one arm: its cumulative counters, and the
/// samples recorded since its previous report.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmReport {
    pub key: ArmKey,
    pub counters: Counters,
    pub samples: Vec<(SampleKind, Sample)>,
}

fn db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PgStore {
    /// Publishes replica `replica`'s reports in one transaction. Not fenced:
    /// every replica, leader or not, publishes what its gateway measured.
    pub async fn publish_arms(&self, replica: &str, reports: &[ArmReport]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let upsert = format!(
            "INSERT INTO arm_counters (service, version, arm, replica, requests, errors, saturated, bad_outputs, \
             complaints, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {NOW_MS}) \
             ON CONFLICT (service, version, arm, replica) DO UPDATE SET requests = excluded.requests, \
             errors = excluded.errors, saturated = excluded.saturated, bad_outputs = excluded.bad_outputs, \
             complaints = excluded.complaints, updated_ms = excluded.updated_ms"
        );
        let insert = format!(
            "INSERT INTO arm_samples (service, version, arm, kind, values_us, population, published_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS})"
        );
        for report in reports {
            let (k, c) = (&report.key, &report.counters);
            sqlx::query(sqlx::AssertSqlSafe(upsert.as_str()))
                .bind(&k.service)
                .bind(&k.version)
                .bind(k.arm.as_str())
                .bind(replica)
                .bind(db(c.requests))
                .bind(db(c.errors))
                .bind(db(c.saturated))
                .bind(db(c.bad_outputs))
                .bind(db(c.complaints))
                .execute(&mut *tx)
                .await?;
            for (kind, sample) in report.samples.iter().filter(|(_, s)| s.population > 0) {
                let values: Vec<i64> = sample.values_us.iter().map(|&v| i64::from(v)).collect();
                sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                    .bind(&k.service)
                    .bind(&k.version)
                    .bind(k.arm.as_str())
                    .bind(kind.as_str())
                    .bind(values)
                    .bind(db(sample.population))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let prune = format!("DELETE FROM arm_samples WHERE published_ms < {NOW_MS} - $1");
        sqlx::query(sqlx::AssertSqlSafe(prune)).bind(SAMPLES_KEPT_MS).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An arm's counters summed over every replica that ever reported it.
    pub async fn arm_totals(&self, key: &ArmKey) -> Result<Counters, StoreError> {
        let (requests, errors, saturated, bad_outputs, complaints): (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(requests), 0)::BIGINT, COALESCE(SUM(errors), 0)::BIGINT, \
             COALESCE(SUM(saturated), 0)::BIGINT, COALESCE(SUM(bad_outputs), 0)::BIGINT, \
             COALESCE(SUM(complaints), 0)::BIGINT \
             FROM arm_counters WHERE service = $1 AND version = $2 AND arm = $3",
        )
        .bind(&key.service)
        .bind(&key.version)
        .bind(key.arm.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(Counters {
            requests: count(requests),
            errors: count(errors),
            saturated: count(saturated),
            bad_outputs: count(bad_outputs),
            complaints: count(complaints),
        })
    }

    /// Takes every sample published for an arm (each is handed out once);
    /// on a fenced store only while it holds the lease, so a deposed leader
    /// cannot take what the new one should judge.
    pub async fn take_arm_samples(&self, key: &ArmKey) -> Result<Vec<(SampleKind, Sample)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, Vec<i64>, i64)> = sqlx::query_as(
            "DELETE FROM arm_samples WHERE service = $1 AND version = $2 AND arm = $3 \
             RETURNING kind, values_us, population",
        )
        .bind(&key.service)
        .bind(&key.version)
        .bind(key.arm.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, values, population)| {
                let values_us = values.into_iter().map(|v| u32::try_from(v).unwrap_or(u32::MAX)).collect();
                Some((SampleKind::parse(&kind)?, Sample { values_us, population: count(population) }))
            })
            .collect())
    }
}
