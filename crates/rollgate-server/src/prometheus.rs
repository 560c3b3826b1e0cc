//! Reads the plans' external metrics from a Prometheus server over its HTTP
//! API (`/api/v1/query`). Every way a query can fail (unreachable server,
//! a PromQL error, no series, several series, NaN) comes back as a reason,
//! which the judge shows as a warning and a hold.

use rollgate_judge::external::{ExternalReading, ExternalRule};
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone)]
pub struct Prometheus {
    base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<QueryData>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RulesResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<RulesData>,
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

/// A rule group as Prometheus reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default)]
    pub rules: Vec<LoadedRule>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoadedRule {
    pub name: String,
    #[serde(default)]
    pub health: String,
    #[serde(default, rename = "lastError")]
    pub last_error: Option<String>,
}

#[derive(Deserialize)]
struct Sample {
    value: (f64, String),
}

impl Prometheus {
    pub fn new(base: &str) -> Result<Prometheus, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Prometheus { base: base.trim_end_matches('/').to_string(), client })
    }

    /// One reading per rule: the canary's value and, for ratio rules, the baseline's.
    pub async fn read(&self, rules: &[ExternalRule], canary: &str, baseline: &str, at_ms: u64) -> Vec<ExternalReading> {
        let mut readings = Vec::with_capacity(rules.len());
        for rule in rules {
            let canary_value = self.value(&rule.query_for(canary)).await;
            let baseline_value = match rule.needs_baseline() {
                true => Some(self.value(&rule.query_for(baseline)).await),
                false => None,
            };
            readings.push(ExternalReading {
                name: rule.name.clone(),
                at_ms,
                canary: canary_value,
                baseline: baseline_value,
            });
        }
        readings
    }

    /// The rule groups loaded now, each with its rules' names and health (`ok`, `unknown` before the
    /// first evaluation, `err`).
    pub async fn rule_groups(&self) -> Result<Vec<RuleGroup>, String> {
        let url = format!("{}/api/v1/rules", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} did not answer: {e}", self.base))?;
        let status = response.status();
        let body: RulesResponse =
            response.json().await.map_err(|e| format!("Prometheus answered {status} with an unreadable body: {e}"))?;
        match body.data {
            Some(data) if body.status == "success" => Ok(data.groups),
            _ => Err(format!("the rules query failed: {}", body.error.unwrap_or_else(|| status.to_string()))),
        }
    }

    /// The single number a query returns now.
    pub async fn value(&self, query: &str) -> Result<f64, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.base), &[("query", query)])
            .map_err(|e| format!("`{}` is not a usable Prometheus address: {e}", self.base))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} did not answer: {e}", self.base))?;
        let status = response.status();
        let body: QueryResponse =
            response.json().await.map_err(|e| format!("Prometheus answered {status} with an unreadable body: {e}"))?;
        if body.status != "success" {
            return Err(format!("the query failed: {}", body.error.unwrap_or_else(|| status.to_string())));
        }
        let data = body.data.ok_or("Prometheus answered without data")?;
        let unreadable = |e: serde_json::Error| format!("Prometheus sent a result it does not document: {e}");
        let text = match data.result_type.as_str() {
            "scalar" => serde_json::from_value::<(f64, String)>(data.result).map_err(unreadable)?.1,
            "vector" => match serde_json::from_value::<Vec<Sample>>(data.result).map_err(unreadable)?.as_slice() {
                [] => return Err("the query returned no series".into()),
                [one] => one.value.1.clone(),
                many => {
                    return Err(format!(
                        "the query returned {} series; aggregate it to one (e.g. with avg or max)",
                        many.len()
                    ));
                }
            },
            _ => {
                return Err("the query must return one number (an instant vector of one series, or a scalar)".into());
            }
        };
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("the query returned `{text}`, not a finite number")),
        }
    }
}
