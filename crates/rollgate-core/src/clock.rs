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

    /// The moment on this clock `real` after `from`: how a measurement in real
    /// time (an `Instant` difference) is laid on this clock's timeline.
    fn after(&self, from: Timestamp, real: std::time::Duration) -> Timestamp {
        from.checked_add(SignedDuration::try_from(real).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
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

/// A waiter on a manual clock looks again this soon: the clock may be moved at any moment.
const MANUAL_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(10);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(self.nanos.load(Ordering::SeqCst))).unwrap_or(Timestamp::MAX)
    }

    fn real_wait_until(&self, at: Timestamp) -> std::time::Duration {
        if at <= self.now() { std::time::Duration::ZERO } else { MANUAL_LOOK_AGAIN }
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
