//! After a rollback, the version that came back is watched for the plan's
//! `rollback.watch` against its own record from before: there is no
//! concurrent control any more. The shell measures; the log holds the
//! baseline it measured against and the watch's result, so the rollout's
//! last word is "previous version stable since …" or an alert with the numbers.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One rollback's watch of the version that came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// The version that came back.
    pub version: String,
    /// A full rollback: the version was redeployed, so its endpoints are checked too.
    pub full: bool,
    pub from: Timestamp,
    pub until: Timestamp,
    /// What the version did before the rollback, as the shell measured it.
    pub baseline: Option<WatchBaseline>,
    pub result: Option<WatchResult>,
}

/// The version's own record before the rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchBaseline {
    /// Requests it answered before the rollback (on this data plane).
    pub requests: u64,
    pub error_rate: f64,
    pub bad_output_rate: f64,
    /// Its latency at the plan's quantile, in milliseconds, when it has one.
    pub latency_ms: Option<f64>,
    /// Complaints per request (feedback attributed to the version).
    #[serde(default)]
    pub complaint_rate: f64,
}

/// In full deployment: the previous version's record, which the new one is
/// held to while the plan's `observe` window runs (there is no concurrent
/// control any more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObserveRecord {
    /// The previous version, whose record this is.
    pub of: String,
    pub at: Timestamp,
    pub baseline: WatchBaseline,
}

/// How the watch ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchResult {
    /// True when the version stayed healthy through the whole window.
    pub stable: bool,
    pub at: Timestamp,
    pub summary: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

impl WatchRecord {
    /// Still watching: no result yet.
    pub fn is_open(&self) -> bool {
        self.result.is_none()
    }
}
