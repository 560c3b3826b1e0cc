//! What a data plane counts for each service, version and arm: the numbers
//! the judge compares, whatever routes the traffic.

/// Which side of a comparison a version is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Stable,
    Canary,
    Shadow,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Canary => "canary",
            Arm::Shadow => "shadow",
        }
    }
}

/// A series' cumulative counters, as the judge reads them once a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub requests: u64,
    /// 5xx answers, timeouts and connection failures.
    pub errors: u64,
    pub saturated: u64,
    pub bad_outputs: u64,
    pub complaints: u64,
}

impl Counters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            saturated: self.saturated.saturating_sub(earlier.saturated),
            bad_outputs: self.bad_outputs.saturating_sub(earlier.bad_outputs),
            complaints: self.complaints.saturating_sub(earlier.complaints),
        }
    }
}

/// A series' whole record, read without taking anything away from the judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    pub counters: Counters,
    /// Latency at the asked quantile, in microseconds, once any was recorded.
    pub quantile_us: Option<u64>,
    /// Latencies recorded.
    pub count: u64,
    /// Of them, over the asked limit.
    pub over: u64,
}

/// A label value escaped as Prometheus' text format requires.
pub fn prometheus_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
