//! The judge's traffic when several replicas route it (PostgreSQL). Every
//! replica's gateway serves a share of the requests, so every replica
//! publishes what it measured once a tick (`rollgate_store::ArmReport`) and
//! the leader's judge reads the sums over replicas: it sees all traffic, not
//! its own replica's share. On SQLite the one server's judge reads its own
//! data plane directly.

use crate::dataplane::{Arm, ArmReading, ArmSource};
use crate::fleet::Fleet;
use rollgate_core::rollout::{Rollout, Stage, flag_of};
use rollgate_core::weight::Weight;
use rollgate_judge::pooled::pool;
use rollgate_store::{ArmKey, ArmReport, PgStore, Sample, SampleKind, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Whether the judge watches `rollout` now: a canary step with traffic on
/// the candidate, or full deployment; not while paused.
pub fn is_judged(rollout: &Rollout) -> bool {
    rollout.stage.is_judged()
        && (rollout.stage == Stage::Full || rollout.weight > Weight::ZERO)
        && rollout.paused.is_none()
}

/// Where this replica measures a service's arms: what applications report
/// for a flag, the data plane for a model (none when it routes nothing).
pub fn local_source(fleet: &Fleet, service: &str) -> Option<Arc<dyn ArmSource>> {
    match flag_of(service) {
        Some(_) => Some(fleet.flag_outcomes().clone()),
        None => fleet.dataplane().map(|d| d.clone() as Arc<dyn ArmSource>),
    }
}

pub fn key(service: &str, version: &str, arm: Arm) -> ArmKey {
    ArmKey { service: service.to_string(), version: version.to_string(), arm }
}

/// The arms this replica reports, and of those the judged ones. Counters go
/// out for every arm it routes and every running rollout's two arms, so the
/// totals are in the database before a judge starts reading them (a judge's
/// first reading must not take a replica's whole history for new traffic);
/// samples only for judged arms (nobody would take the others').
fn arms(fleet: &Fleet) -> (BTreeSet<ArmKey>, BTreeSet<ArmKey>) {
    let (mut counted, mut judged) = (BTreeSet::new(), BTreeSet::new());
    for (name, service) in fleet.applied().map(|r| r.services).unwrap_or_default() {
        for version in service.versions.keys() {
            let arm = if *version == service.stable { Arm::Stable } else { Arm::Canary };
            counted.insert(key(&name, version, arm));
        }
    }
    for rollout in fleet.rollouts().iter().filter(|r| !r.stage.is_terminal()) {
        let pair = [
            key(&rollout.service, &rollout.candidate, Arm::Canary),
            key(&rollout.service, &rollout.stable, Arm::Stable),
        ];
        if is_judged(rollout) {
            judged.extend(pair.iter().cloned());
        }
        counted.extend(pair);
    }
    (counted, judged)
}

/// Publishes what this replica's data plane (and the flag reports it
/// received) measured since its last report.
pub async fn publish(fleet: &Fleet, pg: &PgStore, replica: &str) -> Result<(), StoreError> {
    let (counted, judged) = arms(fleet);
    let reports: Vec<ArmReport> = counted
        .into_iter()
        .filter_map(|key| {
            let (arm, source) = (key.arm, local_source(fleet, &key.service)?);
            // Samples are taken only of judged arms: others' stay with whoever reads them here (a staging drill).
            Some(if judged.contains(&key) {
                let reading = source.read_arm(&key.service, &key.version, arm);
                ArmReport { counters: reading.counters, samples: samples_of(reading), key }
            } else {
                ArmReport { counters: source.counters(&key.service, &key.version, arm), samples: Vec::new(), key }
            })
        })
        .collect();
    pg.publish_arms(replica, &reports).await
}

fn samples_of(reading: ArmReading) -> Vec<(SampleKind, Sample)> {
    let sample = |(values_us, population): (Vec<u32>, u64)| Sample { values_us, population };
    vec![
        (SampleKind::Latency, sample((reading.latencies_us, reading.latency_population))),
        (SampleKind::TimeToFirstToken, sample(reading.ttft)),
        (SampleKind::PerToken, sample(reading.per_token)),
    ]
}

/// An arm as every replica measured it: counters summed over replicas, and
/// one uniform sample of everything published since the last read (taken:
/// each sample is judged once). `pg` is the leader's fenced store.
pub async fn read(pg: &PgStore, service: &str, version: &str, arm: Arm) -> Result<ArmReading, StoreError> {
    let key = key(service, version, arm);
    let counters = pg.arm_totals(&key).await?;
    let taken = pg.take_arm_samples(&key).await?;
    let pooled = |kind: SampleKind| {
        let parts: Vec<(&[u32], u64)> =
            taken.iter().filter(|(k, _)| *k == kind).map(|(_, s)| (s.values_us.as_slice(), s.population)).collect();
        pool(&parts)
    };
    let (latencies_us, latency_population) = pooled(SampleKind::Latency);
    Ok(ArmReading {
        counters,
        latencies_us,
        latency_population,
        ttft: pooled(SampleKind::TimeToFirstToken),
        per_token: pooled(SampleKind::PerToken),
    })
}
