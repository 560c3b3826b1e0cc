//! Time enters the core only through a [`Clock`]: the shell passes a
//! system clock, tests and rehearsals a [`ManualClock`] they move by hand,
//! which is how a 48-hour rollout is tested in milliseconds.

use jiff::{SignedDuration, Timestamp};
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// How long to wait in real time until this clock reads `at` (zero if it
    /// already has). A clock that runs faster than the wall clock overrides it.
    fn real_wait_until(&self, at: Timestamp) -> std::time::Duration {
        (at - self.now()).try_into().unwrap_or(std::time::Duration::ZERO)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { nanos: AtomicI64::new(nanos_of(start)) }
    }

    pub fn advance(&self, by: SignedDuration) {
        let step = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(step, Ordering::SeqCst);
    }

    pub fn set(&self, to: Timestamp) {
        self.nanos.store(nanos_of(to), Ordering::SeqCst);
    }
}

fn nanos_of(t: Timestamp) -> i64 {
    // Timestamps in the range jiff supports fit in i64 nanoseconds until 2262,
    // far beyond any rollout; clamp rather than panic on absurd inputs.
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(self.nanos.load(Ordering::SeqCst))).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_hours(48));
        assert_eq!(clock.now(), "2026-11-25T09:00:00Z".parse::<Timestamp>().unwrap());
    }
}
