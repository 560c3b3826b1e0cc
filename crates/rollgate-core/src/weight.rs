//! Traffic shares. Internally every share is in basis points (0..=10000) so
//! that sub-percent canaries (0.5%) are exact; config and UI speak percent.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A share of traffic in basis points: 10000 is all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Weight(u16);

impl Weight {
    pub const ZERO: Weight = Weight(0);
    pub const FULL: Weight = Weight(10_000);
    pub const HALF: Weight = Weight(5_000);

    /// A weight from basis points; `None` above 10000.
    pub fn from_basis_points(bp: u16) -> Option<Weight> {
        (bp <= 10_000).then_some(Weight(bp))
    }

    /// A weight from a percentage such as `5` or `0.5`. Rejects values
    /// outside 0..=100 and values finer than a hundredth of a percent.
    pub fn from_percent(percent: f64) -> Result<Weight, WeightError> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(WeightError::OutOfRange(percent));
        }
        let bp = percent * 100.0;
        if (bp - bp.round()).abs() > 1e-6 {
            return Err(WeightError::TooFine(percent));
        }
        Ok(Weight(bp.round() as u16))
    }

    pub fn basis_points(self) -> u16 {
        self.0
    }

    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// The share left for the other arm.
    pub fn complement(self) -> Weight {
        Weight(10_000 - self.0)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    #[error("{0}% is not a share of traffic: use a percentage from 0 to 100")]
    OutOfRange(f64),
    #[error("{0}% is finer than the smallest step of 0.01%")]
    TooFine(f64),
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let text = match self.0 % 100 {
            0 => format!("{whole}%"),
            frac if frac % 10 == 0 => format!("{whole}.{}%", frac / 10),
            frac => format!("{whole}.{frac:02}%"),
        };
        // `pad` honours width and alignment, so tables line up.
        f.pad(&text)
    }
}

/// Serialized as a percentage, the unit people write in config files.
impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            s.serialize_u64(u64::from(self.0 / 100))
        } else {
            s.serialize_f64(self.percent())
        }
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let percent = f64::deserialize(d)?;
        Weight::from_percent(percent).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trips_through_basis_points() {
        assert_eq!(Weight::from_percent(5.0).unwrap().basis_points(), 500);
        assert_eq!(Weight::from_percent(0.5).unwrap().basis_points(), 50);
        assert_eq!(Weight::from_percent(0.25).unwrap().to_string(), "0.25%");
        assert_eq!(Weight::from_percent(12.5).unwrap().to_string(), "12.5%");
        assert_eq!(Weight::FULL.to_string(), "100%");
    }

    #[test]
    fn rejects_shares_outside_the_range_or_too_fine() {
        assert!(matches!(Weight::from_percent(101.0), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(-1.0), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(f64::NAN), Err(WeightError::OutOfRange(_))));
        assert!(matches!(Weight::from_percent(0.001), Err(WeightError::TooFine(_))));
        assert_eq!(Weight::from_basis_points(10_001), None);
    }
}
