//! Constraints on the context, with Unleash's operators: set membership,
//! strings (optionally case-insensitive), numbers, dates and semantic
//! versions, each optionally inverted. A value that does not parse (a date,
//! a number, a version) makes the constraint false, never an error: a
//! malformed context must not switch a flag on.

use crate::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Constraint {
    pub context_name: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
    /// The single value of the number, date and semver operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default)]
    pub inverted: bool,
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    In,
    NotIn,
    StrContains,
    StrStartsWith,
    StrEndsWith,
    NumEq,
    NumGt,
    NumGte,
    NumLt,
    NumLte,
    DateAfter,
    DateBefore,
    SemverEq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
    /// An operator this evaluator does not know: the constraint never holds.
    #[serde(other)]
    Unknown,
}

impl Constraint {
    /// Whether the context meets the constraint; `now` stands in for a missing `currentTime`.
    pub fn holds(&self, ctx: &Context, now: jiff::Timestamp) -> bool {
        let value = ctx.value(&self.context_name);
        let met = match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::StrContains | Operator::StrStartsWith | Operator::StrEndsWith => {
                value.is_some_and(|v| self.string(v))
            }
            Operator::NumEq | Operator::NumGt | Operator::NumGte | Operator::NumLt | Operator::NumLte => {
                value.is_some_and(|v| self.number(v))
            }
            Operator::DateAfter | Operator::DateBefore => {
                let at = match value {
                    Some(v) => v.parse::<jiff::Timestamp>().ok(),
                    None => Some(now),
                };
                at.is_some_and(|at| self.date(at))
            }
            Operator::SemverEq
            | Operator::SemverGt
            | Operator::SemverGte
            | Operator::SemverLt
            | Operator::SemverLte => value.is_some_and(|v| self.semver(v)),
            Operator::Unknown => return false,
        };
        met != self.inverted
    }

    fn string(&self, value: &str) -> bool {
        let fold = |s: &str| if self.case_insensitive { s.to_lowercase() } else { s.to_string() };
        let value = fold(value);
        self.values.iter().map(|x| fold(x)).any(|x| match self.operator {
            Operator::StrContains => value.contains(&x),
            Operator::StrStartsWith => value.starts_with(&x),
            _ => value.ends_with(&x),
        })
    }

    fn number(&self, value: &str) -> bool {
        let parse = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        let (Some(a), Some(b)) = (parse(value), self.value.as_deref().and_then(parse)) else { return false };
        match self.operator {
            Operator::NumEq => a == b,
            Operator::NumGt => a > b,
            Operator::NumGte => a >= b,
            Operator::NumLt => a < b,
            _ => a <= b,
        }
    }

    fn date(&self, at: jiff::Timestamp) -> bool {
        let Some(bound) = self.value.as_deref().and_then(|v| v.parse::<jiff::Timestamp>().ok()) else { return false };
        if self.operator == Operator::DateAfter { at > bound } else { at < bound }
    }

    fn semver(&self, value: &str) -> bool {
        let parse = |s: &str| semver::Version::parse(s.trim()).ok();
        let (Some(a), Some(b)) = (parse(value), self.value.as_deref().and_then(parse)) else { return false };
        // Build metadata takes no part in precedence (semver 2.0.0, item 10).
        let order = a.cmp_precedence(&b);
        match self.operator {
            Operator::SemverEq => order.is_eq(),
            Operator::SemverGt => order.is_gt(),
            Operator::SemverGte => order.is_ge(),
            Operator::SemverLt => order.is_lt(),
            _ => order.is_le(),
        }
    }
}
