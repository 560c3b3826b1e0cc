//! Holding a version to a record when there is no concurrent control: after
//! a rollback (the version that came back, against its own record from
//! before) and in full deployment (the new version, against the previous
//! version's record). The tests themselves are `rollgate_judge::watch`'s
//! (pure, and shared with rehearsals); here is what this process counts
//! from, and the health checks.

use crate::dataplane::{DataPlane, History};
use rollgate_core::rollout::Rollout;
pub use rollgate_judge::watch::{Since, baseline_of, clean_window, rates};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What this process had measured of each watched version when it began
/// watching it: the comparison counts from there (a restart begins again).
#[derive(Default)]
pub struct Starts {
    started: Mutex<HashMap<String, History>>,
}

impl Starts {
    /// The reading the comparison for `key` counts from: the first one given.
    pub fn start(&self, key: &str, now: History) -> History {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner).entry(key.to_string()).or_insert(now)
    }

    pub fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        self.started.lock().unwrap_or_else(PoisonError::into_inner).retain(|id, _| keep(id));
    }
}

/// Every endpoint of the version failing its health checks.
pub fn health(dataplane: &dyn DataPlane, r: &Rollout, version: &str) -> Option<String> {
    let failures = dataplane.probe_failures(&r.service, version)?;
    let limit = r.plan.rollback.health_check_failures;
    let all_failing = !failures.is_empty() && failures.iter().all(|f| *f >= limit);
    all_failing.then(|| format!("every endpoint of {version} failed at least {limit} health checks in a row"))
}
