//! Deploy windows: when a rollout may start and when it may move traffic.
//! "No Friday deploys" is the default; freeze periods close both.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployWindow {
    /// IANA time zone in which days and freeze dates are read.
    pub timezone: Zone,
    /// Days on which a rollout may not start.
    pub no_start_on: Vec<Day>,
    /// Days on which a running rollout may not move traffic (its next step waits).
    pub no_traffic_changes_on: Vec<Day>,
    /// Periods in which nothing may start and no traffic may move.
    pub freezes: Vec<Freeze>,
}

impl Default for DeployWindow {
    fn default() -> Self {
        DeployWindow {
            timezone: Zone::utc(),
            no_start_on: vec![Day(Weekday::Friday)],
            no_traffic_changes_on: Vec::new(),
            freezes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// First moment of the freeze: a date (`"2026-12-21"`, start of that day) or an RFC 3339 instant.
    pub from: Moment,
    /// First moment after the freeze: a date (start of that day, so the day itself is open) or an instant.
    pub until: Moment,
    #[serde(default)]
    pub reason: String,
}

/// Why the window is closed now, and when it opens again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowClosed {
    pub reason: String,
    pub opens_at: Option<Timestamp>,
}

impl fmt::Display for WindowClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(at) = self.opens_at {
            write!(f, "; it opens at {at}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Start,
    TrafficChange,
}

impl DeployWindow {
    /// May a rollout start at `now`?
    pub fn check_start(&self, now: Timestamp) -> Result<(), WindowClosed> {
        self.check(now, Purpose::Start)
    }

    /// May a running rollout move traffic at `now`?
    pub fn check_traffic_change(&self, now: Timestamp) -> Result<(), WindowClosed> {
        self.check(now, Purpose::TrafficChange)
    }

    fn check(&self, now: Timestamp, purpose: Purpose) -> Result<(), WindowClosed> {
        let Some(reason) = self.closed_reason(now, purpose) else {
            return Ok(());
        };
        Err(WindowClosed { reason, opens_at: self.next_open(now, purpose) })
    }

    fn closed_days(&self, purpose: Purpose) -> &[Day] {
        match purpose {
            Purpose::Start => &self.no_start_on,
            Purpose::TrafficChange => &self.no_traffic_changes_on,
        }
    }

    fn closed_reason(&self, now: Timestamp, purpose: Purpose) -> Option<String> {
        let tz = self.timezone.tz();
        if let Some(freeze) = self.freezes.iter().find(|f| f.contains(now, &tz)) {
            let why = if freeze.reason.is_empty() { String::new() } else { format!(" ({})", freeze.reason) };
            return Some(format!("deploy freeze{why} from {} until {}", freeze.from, freeze.until));
        }
        let weekday = now.to_zoned_datetime(tz).weekday();
        self.closed_days(purpose).contains(&Day(weekday)).then(|| {
            let what = match purpose {
                Purpose::Start => "no rollout starts",
                Purpose::TrafficChange => "no traffic changes",
            };
            format!("{what} on {} ({}) by the deploy window policy", Day(weekday), self.timezone)
        })
    }

    /// The next moment the window is open: the end of a freeze or the
    /// start of the next allowed day, whichever chain of them applies.
    fn next_open(&self, now: Timestamp, purpose: Purpose) -> Option<Timestamp> {
        let tz = self.timezone.tz();
        let mut at = now;
        // Each round skips one closed day or one freeze; freezes and
        // seven closed days bound the chain.
        for _ in 0..(self.freezes.len() + 8) {
            if self.closed_reason(at, purpose).is_none() {
                return Some(at);
            }
            let freeze_end = self.freezes.iter().filter(|f| f.contains(at, &tz)).map(|f| f.until.resolve(&tz)).max();
            at = match freeze_end {
                Some(end) => end,
                None => start_of_next_day(at, &tz)?,
            };
        }
        None
    }
}

fn start_of_next_day(at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let next = at.to_zoned_datetime(tz.clone()).date().checked_add(1.day()).ok()?;
    next.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp())
}

impl Freeze {
    /// Why this freeze is not a span of time (its end not after its start), read in `zone`.
    pub fn problem(&self, zone: &Zone) -> Option<String> {
        let tz = zone.tz();
        (self.until.resolve(&tz) <= self.from.resolve(&tz)).then(|| {
            format!("the freeze `{}` ends ({}) before or when it begins ({})", self.reason, self.until, self.from)
        })
    }

    fn contains(&self, at: Timestamp, tz: &TimeZone) -> bool {
        self.from.resolve(tz) <= at && at < self.until.resolve(tz)
    }
}

/// A weekday, written in config as `"friday"` or `"fri"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day(pub Weekday);

const DAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Monday, "monday"),
    (Weekday::Tuesday, "tuesday"),
    (Weekday::Wednesday, "wednesday"),
    (Weekday::Thursday, "thursday"),
    (Weekday::Friday, "friday"),
    (Weekday::Saturday, "saturday"),
    (Weekday::Sunday, "sunday"),
];

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = DAY_NAMES.iter().find(|(d, _)| *d == self.0).map_or("?", |(_, n)| n);
        f.write_str(name)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .find(|(_, name)| *name == text || (text.len() == 3 && name.starts_with(&text)))
            .map(|(day, _)| Day(*day))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{text}` is not a weekday: use monday … sunday or mon … sun"))
            })
    }
}

/// An IANA time zone name, checked against the time zone database bundled
/// into the binary (so a plan means the same on every machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(String);

impl Zone {
    pub fn utc() -> Zone {
        Zone("UTC".into())
    }

    pub fn tz(&self) -> TimeZone {
        TimeZone::get(&self.0).unwrap_or(TimeZone::UTC)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match TimeZone::get(&name) {
            Ok(_) => Ok(Zone(name)),
            Err(_) => Err(serde::de::Error::custom(format!(
                "`{name}` is not a known time zone: use an IANA name such as \"UTC\" or \"Europe/Berlin\""
            ))),
        }
    }
}

/// A freeze boundary: a calendar date in the window's zone or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Date(Date),
    Instant(Timestamp),
}

impl Moment {
    fn resolve(&self, tz: &TimeZone) -> Timestamp {
        match self {
            Moment::Instant(t) => *t,
            Moment::Date(d) => d.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX),
        }
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Date(d) => write!(f, "{d}"),
            Moment::Instant(t) => write!(f, "{t}"),
        }
    }
}

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Ok(t) = text.parse::<Timestamp>() {
            return Ok(Moment::Instant(t));
        }
        text.parse::<Date>().map(Moment::Date).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is neither a date (\"2026-12-21\") nor an RFC 3339 instant (\"2026-12-21T18:00:00Z\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn friday_starts_are_refused_by_default_and_monday_is_next() {
        let window = DeployWindow::default();
        // 2026-11-27 is a Friday.
        let closed = window.check_start(ts("2026-11-27T10:00:00Z")).unwrap_err();
        assert!(closed.reason.contains("friday"), "{}", closed.reason);
        assert_eq!(closed.opens_at, Some(ts("2026-11-28T00:00:00Z")));
        assert!(window.check_start(ts("2026-11-26T10:00:00Z")).is_ok());
        // Traffic may still move on a Friday unless the plan says otherwise.
        assert!(window.check_traffic_change(ts("2026-11-27T10:00:00Z")).is_ok());
    }

    #[test]
    fn freezes_close_starts_and_steps_and_chain_with_closed_days() {
        let window: DeployWindow = toml::from_str(
            r#"
            timezone = "Europe/Berlin"
            no_start_on = ["fri", "saturday", "sun"]
            freezes = [{ from = "2026-12-21", until = "2027-01-01", reason = "holidays" }]
            "#,
        )
        .unwrap();
        let closed = window.check_traffic_change(ts("2026-12-24T12:00:00Z")).unwrap_err();
        assert!(closed.reason.contains("holidays"));
        assert_eq!(closed.opens_at, Some(ts("2026-12-31T23:00:00Z")));
        // 2027-01-01 is a Friday: starts wait for Monday 00:00 Berlin time.
        let closed = window.check_start(ts("2026-12-24T12:00:00Z")).unwrap_err();
        assert_eq!(closed.opens_at, Some(ts("2027-01-03T23:00:00Z")));
    }

    #[test]
    fn unknown_zones_and_days_are_refused_with_a_hint() {
        let err = toml::from_str::<DeployWindow>(r#"timezone = "Mars/Olympus""#).unwrap_err();
        assert!(err.message().contains("IANA"), "{err}");
        let err = toml::from_str::<DeployWindow>(r#"no_start_on = ["fryday"]"#).unwrap_err();
        assert!(err.message().contains("weekday"), "{err}");
    }
}
