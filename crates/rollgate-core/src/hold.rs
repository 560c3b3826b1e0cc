//! Durations written in config as `"4h"`, `"30m"`, `"1h30m"` or `"2d"`.

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A non-negative span of time, as written in a plan (holds, observation
/// periods, keep-warm times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hold(SignedDuration);

impl Hold {
    pub const ZERO: Hold = Hold(SignedDuration::ZERO);

    pub fn from_secs(secs: i64) -> Hold {
        Hold(SignedDuration::from_secs(secs.max(0)))
    }

    pub fn from_hours(hours: i64) -> Hold {
        Hold::from_secs(hours * 3600)
    }

    pub fn duration(self) -> SignedDuration {
        self.0
    }

    pub fn as_secs(self) -> i64 {
        self.0.as_secs()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{input}` is not a duration: write it like \"4h\", \"30m\", \"1h30m\" or \"2d\"{detail}")]
pub struct HoldError {
    input: String,
    detail: String,
}

impl FromStr for Hold {
    type Err = HoldError;

    fn from_str(s: &str) -> Result<Hold, HoldError> {
        let err = |detail: &str| HoldError { input: s.to_string(), detail: detail.to_string() };
        let trimmed = s.trim();
        if trimmed.starts_with('-') {
            return Err(err(" (it must not be negative)"));
        }
        // A bare number is ambiguous (seconds? hours?), so it is refused.
        if trimmed.is_empty() || trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(" (a unit is required)"));
        }
        if let Some(ms) = trimmed.strip_suffix("ms").and_then(|n| n.trim().parse::<i64>().ok()) {
            return Ok(Hold(SignedDuration::from_millis(ms)));
        }
        parse_units(trimmed).map(|secs| Hold(SignedDuration::from_secs(secs))).ok_or_else(|| err(""))
    }
}

/// Sums `<number><unit>` parts with units d, h, m and s; `None` on anything else or on overflow.
fn parse_units(s: &str) -> Option<i64> {
    let (mut total, mut number) = (0i64, None::<i64>);
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        if let Some(digit) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(digit))?);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() { None } else { Some(total) }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if secs == 0 {
            return if millis > 0 { write!(f, "{millis}ms") } else { f.write_str("0s") };
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Hold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_write() {
        assert_eq!("4h".parse::<Hold>().unwrap().as_secs(), 4 * 3600);
        assert_eq!("30m".parse::<Hold>().unwrap().as_secs(), 1800);
        assert_eq!("1h30m".parse::<Hold>().unwrap().as_secs(), 5400);
        assert_eq!("2d".parse::<Hold>().unwrap().as_secs(), 2 * 86_400);
        assert_eq!("90s".parse::<Hold>().unwrap().as_secs(), 90);
        assert_eq!("250ms".parse::<Hold>().unwrap().duration(), SignedDuration::from_millis(250));
    }

    #[test]
    fn refuses_ambiguous_or_negative_or_garbage() {
        for bad in ["", "4", "four hours", "-4h", "4x", "h"] {
            assert!(bad.parse::<Hold>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["4h", "1d12h", "30m", "1h0m5s", "0s", "500ms"] {
            let hold: Hold = text.parse().unwrap();
            assert_eq!(hold.to_string().parse::<Hold>().unwrap(), hold);
        }
        assert_eq!(Hold::from_hours(36).to_string(), "1d12h");
    }
}
