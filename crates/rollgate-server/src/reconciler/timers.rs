//! Moments the log asked to be woken at: a rollout's `ScheduleTimer` (a
//! hold ends, a deploy window opens) and the routing's next change (a warm
//! version's time runs out). The controller sleeps until the earliest, on
//! the control plane's clock, instead of looking every so often.

use rollgate_core::Timestamp;
use rollgate_core::clock::Clock;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// What is due at a moment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// Feed this rollout a timer.
    Rollout(String),
    /// Apply the routing again: time alone changed it.
    Routing,
}

#[derive(Default)]
pub struct Timers {
    queue: Mutex<BinaryHeap<Reverse<(Timestamp, Due)>>>,
    added: Notify,
}

/// The longest sleep with nothing scheduled; anything scheduled wakes it sooner.
const IDLE: Duration = Duration::from_secs(3600);

impl Timers {
    pub fn at(&self, at: Timestamp, due: Due) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Reverse((at, due)));
        self.added.notify_one();
    }

    /// Everything due at `now`, each once, earliest first.
    pub fn take_due(&self, now: Timestamp) -> Vec<Due> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = BTreeSet::new();
        while queue.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, what))) = queue.pop() {
                due.insert(what);
            }
        }
        due.into_iter().collect()
    }

    fn next(&self) -> Option<Timestamp> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).peek().map(|Reverse((at, _))| *at)
    }

    /// Returns when the earliest moment is due on `clock`, or sooner when
    /// another is scheduled (the caller then takes what is due and waits again).
    pub async fn wait(&self, clock: &dyn Clock) {
        let sleep = self.next().map_or(IDLE, |at| clock.real_wait_until(at));
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = self.added.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_core::clock::ManualClock;

    #[test]
    fn what_is_due_comes_out_once_in_order_and_the_rest_waits() {
        let t0: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        let timers = Timers::default();
        let hour = jiff::SignedDuration::from_hours(1);
        timers.at(t0 + hour, Due::Rollout("b".into()));
        timers.at(t0, Due::Rollout("a".into()));
        timers.at(t0, Due::Rollout("a".into()));
        timers.at(t0 + hour * 2, Due::Routing);
        assert_eq!(timers.take_due(t0), [Due::Rollout("a".into())]);
        assert_eq!(timers.take_due(t0 + hour), [Due::Rollout("b".into())]);
        assert!(timers.take_due(t0 + hour).is_empty());
        assert_eq!(timers.next(), Some(t0 + hour * 2));
    }

    /// A clock standing still, that waits the plain difference (as the system clock does).
    struct Still(Timestamp);

    impl Clock for Still {
        fn now(&self) -> Timestamp {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_when_the_earliest_is_due_on_the_clock() {
        let clock = Still("2026-11-26T09:00:00Z".parse().unwrap());
        let timers = Timers::default();
        timers.at(clock.now() + jiff::SignedDuration::from_secs(30), Due::Routing);
        let _ = timers.take_due(clock.now());
        let started = tokio::time::Instant::now();
        // The notification of the `at` above ends the first wait at once; the second sleeps 30 s.
        timers.wait(&clock).await;
        timers.wait(&clock).await;
        assert_eq!(started.elapsed().as_secs(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_manual_clock_a_wait_looks_again_soon_and_fires_once_the_clock_is_moved() {
        let clock = ManualClock::new("2026-11-26T09:00:00Z".parse().unwrap());
        let timers = Timers::default();
        timers.at(clock.now() + jiff::SignedDuration::from_hours(4), Due::Rollout("r1".into()));
        let _ = timers.take_due(clock.now());
        let started = tokio::time::Instant::now();
        timers.wait(&clock).await;
        timers.wait(&clock).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "no real four hours");
        assert!(timers.take_due(clock.now()).is_empty());
        clock.advance(jiff::SignedDuration::from_hours(4));
        assert_eq!(timers.take_due(clock.now()), [Due::Rollout("r1".into())]);
    }
}
