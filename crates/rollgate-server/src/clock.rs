//! Clocks for the shell. The core never reads time; the server asks one of
//! these. A scaled clock runs faster than the wall clock (one hour a second
//! for a demo or a test) and, given the same spec, continues across restarts.

use jiff::{SignedDuration, Timestamp};
use rollgate_core::clock::Clock;
use std::str::FromStr;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// `virtual = origin + (wall − anchor) × speed`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledClock {
    pub origin: Timestamp,
    pub anchor: Timestamp,
    pub speed: f64,
}

impl ScaledClock {
    /// This clock's reading at wall-clock moment `wall`.
    pub fn at_wall(&self, wall: Timestamp) -> Timestamp {
        self.after(self.origin, wall.duration_since(self.anchor).try_into().unwrap_or_default())
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        self.at_wall(Timestamp::now())
    }

    fn after(&self, from: Timestamp, real: std::time::Duration) -> Timestamp {
        let scaled = SignedDuration::from_secs_f64(real.as_secs_f64() * self.speed);
        from.checked_add(scaled).unwrap_or(Timestamp::MAX)
    }

    fn real_wait_until(&self, at: Timestamp) -> std::time::Duration {
        let ahead = (at - self.now()).as_secs_f64().max(0.0);
        std::time::Duration::from_secs_f64((ahead / self.speed).min(1e9))
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a clock spec: write speed=3600,origin=2026-11-26T09:00:00Z[,anchor=2026-11-26T13:00:00Z] (anchor: the wall-clock moment that maps to origin; default now)"
)]
pub struct ClockSpecError(String);

impl FromStr for ScaledClock {
    type Err = ClockSpecError;
    fn from_str(s: &str) -> Result<ScaledClock, ClockSpecError> {
        let err = || ClockSpecError(s.to_string());
        let (mut speed, mut origin, mut anchor) = (None, None, None);
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(err)?;
            match key.trim() {
                "speed" => speed = Some(value.trim().parse::<f64>().map_err(|_| err())?),
                "origin" => origin = Some(value.trim().parse::<Timestamp>().map_err(|_| err())?),
                "anchor" => anchor = Some(value.trim().parse::<Timestamp>().map_err(|_| err())?),
                _ => return Err(err()),
            }
        }
        let speed = speed.filter(|s| s.is_finite() && *s > 0.0).ok_or_else(err)?;
        Ok(ScaledClock { origin: origin.ok_or_else(err)?, anchor: anchor.unwrap_or_else(Timestamp::now), speed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_spec_parses_and_rejects_nonsense() {
        let clock: ScaledClock = "speed=3600,origin=2026-11-26T09:00:00Z,anchor=2026-11-26T13:00:00Z".parse().unwrap();
        assert_eq!(clock.speed, 3600.0);
        assert_eq!(clock.anchor, "2026-11-26T13:00:00Z".parse::<Timestamp>().unwrap());
        for bad in ["", "speed=0,origin=2026-11-26T09:00:00Z", "speed=2", "speed=2,origin=yesterday", "warp=9"] {
            assert!(bad.parse::<ScaledClock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_hour_ahead_on_a_clock_at_3600x_is_a_second_away() {
        let clock: ScaledClock = "speed=3600,origin=2026-11-26T09:00:00Z".parse().unwrap();
        let wait = clock.real_wait_until(clock.now() + SignedDuration::from_hours(1));
        assert!(wait <= std::time::Duration::from_secs(1) && wait > std::time::Duration::from_millis(900), "{wait:?}");
        assert_eq!(clock.real_wait_until(clock.now() - SignedDuration::from_hours(1)), std::time::Duration::ZERO);
    }

    #[test]
    fn the_same_spec_gives_the_same_time_so_restarts_continue() {
        let spec = "speed=3600,origin=2026-11-26T09:00:00Z,anchor=2026-11-30T12:00:00Z";
        let (a, b): (ScaledClock, ScaledClock) = (spec.parse().unwrap(), spec.parse().unwrap());
        let wall: Timestamp = "2026-11-30T12:00:02Z".parse().unwrap();
        assert_eq!(a.at_wall(wall), b.at_wall(wall));
        assert_eq!(
            a.at_wall(wall),
            "2026-11-26T11:00:00Z".parse::<Timestamp>().unwrap(),
            "two real seconds, two hours"
        );
    }
}
