//! A flag in the shape Unleash's client API hands out (so Unleash toggles
//! import as they are), with a kind for OpenFeature: a boolean flag's value
//! is whether it is on; a string, number or object flag's value is its
//! variant's payload.

use crate::constraint::Constraint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Boolean,
    String,
    Number,
    Object,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Boolean => "boolean",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Object => "object",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Off: every evaluation says so (the kill switch).
    pub enabled: bool,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub strategies: Vec<Strategy>,
    #[serde(default)]
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// `default`, `flexibleRollout`, `userWithId`, `gradualRolloutUserId`,
    /// `gradualRolloutSessionId`, `gradualRolloutRandom`, `remoteAddress`.
    pub name: String,
    /// Unleash sends numbers as strings or numbers: both are kept as JSON.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub variants: Vec<Variant>,
}

impl Strategy {
    /// A parameter as text (a number as its decimal form).
    pub fn parameter(&self, name: &str) -> Option<String> {
        match self.parameters.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A percentage parameter, 0 to 100 (unparseable: 0, so nobody is let in by mistake).
    pub fn percent(&self, name: &str) -> u32 {
        self.parameter(name).and_then(|p| p.trim().parse::<f64>().ok()).map_or(0, |p| p.clamp(0.0, 100.0) as u32)
    }

    /// The bucketing group: the `groupId` parameter, or the flag's name.
    pub fn group_id(&self, flag: &str) -> String {
        self.parameter("groupId").filter(|g| !g.is_empty()).unwrap_or_else(|| flag.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// Which context field buckets users (`default`: userId, then sessionId, then random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<String>,
    /// Contexts that always get this variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

impl Variant {
    /// The variant's payload as a value of a flag of `kind`, or why it is not one.
    pub fn value(&self, kind: Kind) -> Result<serde_json::Value, String> {
        let payload = self.payload.as_ref().ok_or_else(|| format!("variant `{}` has no payload", self.name))?;
        let value = payload.typed().map_err(|e| format!("variant `{}`: {e}", self.name))?;
        let fits = match kind {
            Kind::Boolean => value.is_boolean(),
            Kind::String => value.is_string(),
            Kind::Number => value.is_number(),
            Kind::Object => value.is_object() || value.is_array(),
        };
        if fits {
            Ok(value)
        } else {
            Err(format!("variant `{}`'s payload is not a {}: {value}", self.name, kind.as_str()))
        }
    }
}

/// Unleash's payload: a type and the value as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Payload {
    /// The payload as a JSON value: `json` parsed, `number` as a number (an
    /// integer when it is one), anything else as text.
    pub fn typed(&self) -> Result<serde_json::Value, String> {
        match self.kind.as_str() {
            "json" => serde_json::from_str(&self.value).map_err(|e| format!("the json payload does not parse: {e}")),
            "number" => {
                let text = self.value.trim();
                let number = match text.parse::<i64>() {
                    Ok(n) => Some(serde_json::Number::from(n)),
                    Err(_) => text.parse::<f64>().ok().and_then(serde_json::Number::from_f64),
                };
                number
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| format!("the number payload `{}` is not a number", self.value))
            }
            _ => Ok(serde_json::Value::String(self.value.clone())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    pub context_name: String,
    pub values: Vec<String>,
}
