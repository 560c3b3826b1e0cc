//! Feature flags as records: every definition, change, kill and re-enable
//! is a record in the `@flags` stream, hash-chained like every rollout, with
//! who did it and why. The current flags are the last record of each name;
//! the fleet holds them, so an evaluation does not read them from the store
//! and a kill recorded by this server takes effect on the next evaluation.

use rollgate_core::Timestamp;
use rollgate_core::event::RecordedEvent;
use rollgate_core::weight::Weight;
use rollgate_flags::Flag;
use rollgate_flags::constraint::Operator;
use rollgate_flags::flag::Kind;
use rollgate_store::{AnyStore, StoreError, append_record_deciding};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const FLAGS_STREAM: &str = "@flags";
/// The longest flag name, in bytes.
pub const MAX_NAME: usize = 200;

/// The strategies rollgate evaluates (Unleash's names).
const STRATEGIES: [&str; 7] = [
    "default",
    "flexibleRollout",
    "userWithId",
    "gradualRolloutUserId",
    "gradualRolloutSessionId",
    "gradualRolloutRandom",
    "remoteAddress",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagAction {
    Create,
    Update,
    /// Switched off: every evaluation answers DISABLED from the next one on.
    Kill,
    Enable,
}

impl FlagAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagAction::Create => "created",
            FlagAction::Update => "changed",
            FlagAction::Kill => "killed",
            FlagAction::Enable => "re-enabled",
        }
    }
}

/// One change to a flag, as recorded: the flag as it is after the change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlagRecord {
    #[schema(value_type = String)]
    pub at: Timestamp,
    pub by: String,
    pub action: FlagAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In Unleash's client-API shape, with `kind` (boolean, string, number, object).
    #[schema(value_type = Object)]
    pub flag: Flag,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("there is already a flag `{0}`; change it with `rollgate flag set`")]
    Exists(String),
    #[error("no flag `{0}`; `rollgate flag list` shows the ones there are")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The records in the stream's events (unreadable ones are skipped), oldest first.
pub fn records(events: &[RecordedEvent]) -> Vec<FlagRecord> {
    events.iter().filter_map(|e| serde_json::from_str::<FlagRecord>(&e.body).ok()).collect()
}

/// A flag as it is now, and every change made to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlagHistory {
    /// The flag as it is now, with its last change.
    pub current: FlagRecord,
    /// Every change, oldest first.
    pub history: Vec<FlagRecord>,
}

/// The history of the flag `name` in the stream's events.
pub fn history(events: &[RecordedEvent], name: &str) -> Result<FlagHistory, FlagError> {
    let history: Vec<FlagRecord> = records(events).into_iter().filter(|r| r.flag.name == name).collect();
    let current = history.last().cloned().ok_or_else(|| FlagError::NotFound(name.to_string()))?;
    Ok(FlagHistory { current, history })
}

/// The flags as the records leave them, by name, each with its last record.
pub fn current(records: Vec<FlagRecord>) -> BTreeMap<String, FlagRecord> {
    records.into_iter().map(|r| (r.flag.name.clone(), r)).collect()
}

/// A flag in a few words: off, or whom it is on for.
pub fn summary(flag: &Flag) -> String {
    if !flag.enabled {
        return "off".into();
    }
    let rules: Vec<String> = flag
        .strategies
        .iter()
        .map(|s| {
            let rule = match s.name.as_str() {
                "default" => "everyone".to_string(),
                "flexibleRollout" => format!("{}% of users", s.percent("rollout")),
                "gradualRolloutUserId" | "gradualRolloutSessionId" | "gradualRolloutRandom" => {
                    format!("{}% of users", s.percent("percentage"))
                }
                other => other.to_string(),
            };
            match s.constraints.len() {
                0 => rule,
                n => format!("{rule} matching {n} constraint(s)"),
            }
        })
        .collect();
    let whom = if rules.is_empty() { "everyone".to_string() } else { rules.join(" or ") };
    match flag.variants.len() {
        0 => format!("on for {whom}"),
        n => format!("on for {whom}, {n} variants"),
    }
}

/// What is wrong with a definition, so that no flag is stored that would
/// evaluate to nobody by mistake or answer a value of the wrong kind.
pub fn problems(flag: &Flag) -> Vec<String> {
    let mut out = Vec::new();
    let name_ok = !flag.name.is_empty()
        && flag.name.len() <= MAX_NAME
        && flag.name.chars().all(|c| !c.is_control() && !c.is_whitespace() && c != '/');
    if !name_ok {
        out.push(format!("name `{}`: 1 to {MAX_NAME} bytes, no spaces, slashes or control characters", flag.name));
    }
    for (i, s) in flag.strategies.iter().enumerate() {
        let at = format!("strategies[{i}] ({})", s.name);
        if !STRATEGIES.contains(&s.name.as_str()) {
            out.push(format!("{at}: unknown strategy; use one of {}", STRATEGIES.join(", ")));
        }
        for key in ["rollout", "percentage"] {
            let percent = s.parameter(key).and_then(|p| p.trim().parse::<f64>().ok());
            if s.parameters.contains_key(key) && !percent.is_some_and(|p| (0.0..=100.0).contains(&p)) {
                out.push(format!("{at}: `{key}` must be a percentage from 0 to 100"));
            }
        }
        for c in s.constraints.iter().filter(|c| c.operator == Operator::Unknown) {
            out.push(format!("{at}: the constraint on `{}` has an unknown operator", c.context_name));
        }
        out.extend(variant_problems(flag.kind, &s.variants, &format!("{at}.variants")));
    }
    out.extend(variant_problems(flag.kind, &flag.variants, "variants"));
    let any_variants = !flag.variants.is_empty() || flag.strategies.iter().any(|s| !s.variants.is_empty());
    if flag.kind != Kind::Boolean && !any_variants {
        out.push(format!("a {} flag answers its variant's payload: give it variants", flag.kind.as_str()));
    }
    out
}

fn variant_problems(kind: Kind, variants: &[rollgate_flags::Variant], at: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !variants.is_empty() && variants.iter().all(|v| v.weight == 0) {
        out.push(format!("{at}: every weight is 0, so no variant can be chosen"));
    }
    for v in variants.iter().filter(|_| kind != Kind::Boolean) {
        if let Err(why) = v.value(kind) {
            out.push(format!("{at}: {why}"));
        }
    }
    out
}

/// Each flag's share of users now, for a dark launch: a killed flag none; a
/// flag with flexibleRollout strategies their largest percentage; any other, everyone.
pub fn shares(flags: &BTreeMap<String, FlagRecord>) -> rollgate_core::routing::FlagShares {
    flags
        .iter()
        .map(|(name, r)| {
            let f = &r.flag;
            let rolled = f.strategies.iter().filter(|s| s.name == ROLLED_STRATEGY).map(|s| s.percent("rollout")).max();
            let percent = if f.enabled { rolled.unwrap_or(100) } else { 0 };
            (name.clone(), Weight::from_percent(f64::from(percent)).unwrap_or(Weight::ZERO))
        })
        .collect()
}

/// A change a person asks for.
pub enum Change {
    Create(Flag),
    Update(Flag),
    Kill,
    Enable,
    /// A plan's step: the `rollout` percentage of every flexibleRollout
    /// strategy. A flag a person killed stays killed: a step never switches it back on.
    Rollout(u32),
}

/// The flag with its flexibleRollout strategies at `percent`.
fn rolled_to(mut flag: Flag, percent: u32) -> Flag {
    for s in flag.strategies.iter_mut().filter(|s| s.name == ROLLED_STRATEGY) {
        s.parameters.insert("rollout".into(), serde_json::Value::String(percent.to_string()));
    }
    flag
}

/// The strategy whose percentage a plan moves.
pub const ROLLED_STRATEGY: &str = "flexibleRollout";

/// Records `change` to the flag `name`, decided against the stream as it
/// stands (a concurrent writer makes it decide again); returns the record.
pub async fn change(
    store: &AnyStore,
    name: &str,
    change: Change,
    by: &str,
    reason: Option<String>,
    now: Timestamp,
) -> Result<FlagRecord, FlagError> {
    if let Change::Create(flag) | Change::Update(flag) = &change {
        let mut problems = problems(flag);
        if flag.name != name {
            problems.push(format!("the definition's name `{}` is not the flag's name `{name}`", flag.name));
        }
        if !problems.is_empty() {
            return Err(FlagError::Invalid(problems));
        }
    }
    let mut recorded = None;
    append_record_deciding(store, FLAGS_STREAM, |events| {
        let flags = current(records(events));
        let existing = flags.get(name).map(|r| r.flag.clone());
        let (action, flag) = match (&change, existing) {
            (Change::Create(_), Some(_)) => return Err(FlagError::Exists(name.into())),
            (Change::Create(flag), None) => (FlagAction::Create, flag.clone()),
            (_, None) => return Err(FlagError::NotFound(name.into())),
            (Change::Update(flag), Some(_)) => (FlagAction::Update, flag.clone()),
            (Change::Kill, Some(flag)) => (FlagAction::Kill, Flag { enabled: false, ..flag }),
            (Change::Enable, Some(flag)) => (FlagAction::Enable, Flag { enabled: true, ..flag }),
            (Change::Rollout(percent), Some(flag)) => (FlagAction::Update, rolled_to(flag, *percent)),
        };
        let record = FlagRecord { at: now, by: by.to_string(), action, reason: reason.clone(), flag };
        let body = serde_json::to_string(&record).unwrap_or_default();
        recorded = Some(record);
        Ok(body)
    })
    .await?;
    Ok(recorded.unwrap_or_else(|| unreachable!("an appended record was decided")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(value: serde_json::Value) -> Flag {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn definitions_that_would_misbehave_are_refused_with_reasons() {
        assert!(problems(&flag(json!({ "name": "new-scorer", "enabled": true }))).is_empty());
        let bad = flag(json!({ "name": "has space", "enabled": true, "kind": "number",
            "strategies": [{ "name": "flexibleRolout", "parameters": { "rollout": "150" },
                "constraints": [{ "contextName": "plan", "operator": "MATCHES", "values": [] }] }],
            "variants": [{ "name": "a", "weight": 1, "payload": { "type": "string", "value": "x" } }] }));
        let found = problems(&bad);
        for expected in [
            "name `has space`",
            "unknown strategy",
            "`rollout` must be a percentage",
            "unknown operator",
            "payload is not a number",
        ] {
            assert!(found.iter().any(|p| p.contains(expected)), "{expected}: {found:?}");
        }
        let no_variants = flag(json!({ "name": "model", "enabled": true, "kind": "string" }));
        assert!(problems(&no_variants)[0].contains("give it variants"));
    }
}
