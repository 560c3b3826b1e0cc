//! Metrics computed elsewhere (GPU memory, a quality score from an offline
//! evaluator), read from Prometheus by the shell and judged here against the
//! plan's bounds. A query that fails or returns nothing is a warning and a
//! Hold: never a silent pass, never a rollback.

use crate::judge::TriggerReport;
use rollgate_core::plan::ExternalMetric;
use serde::{Deserialize, Serialize};

/// One external metric as the judge applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRule {
    pub name: String,
    /// PromQL; `{version}` stands for the version's name.
    pub query: String,
    pub bound: Bound,
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The canary's value must stay at or below this.
    Max(f64),
    /// canary ÷ baseline must stay at or below this.
    MaxRatio(f64),
}

impl ExternalRule {
    pub fn from_plan(metric: &ExternalMetric) -> ExternalRule {
        let bound = match (metric.max, metric.max_ratio) {
            (_, Some(ratio)) => Bound::MaxRatio(ratio),
            (Some(max), None) => Bound::Max(max),
            // The plan check refuses this; a rule that can never fire is the safe reading.
            (None, None) => Bound::Max(f64::INFINITY),
        };
        let interval_ms = u64::try_from(metric.interval.duration().as_millis()).unwrap_or(15_000).max(1000);
        ExternalRule { name: metric.name.clone(), query: metric.query.clone(), bound, interval_ms }
    }

    /// The query for one version.
    pub fn query_for(&self, version: &str) -> String {
        self.query.replace("{version}", version)
    }

    /// Whether the rule needs the baseline's value too.
    pub fn needs_baseline(&self) -> bool {
        matches!(self.bound, Bound::MaxRatio(_))
    }
}

/// What one query round returned. `Err` holds why there is no value
/// (the query failed, or returned no series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalReading {
    pub name: String,
    pub at_ms: u64,
    pub canary: Result<f64, String>,
    /// Only for ratio rules.
    pub baseline: Option<Result<f64, String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ExternalState {
    rules: Vec<ExternalRule>,
    latest: Vec<Option<ExternalReading>>,
}

impl ExternalState {
    pub fn new(rules: Vec<ExternalRule>) -> ExternalState {
        let latest = vec![None; rules.len()];
        ExternalState { rules, latest }
    }

    /// The latest reading of each rule, in rule order.
    pub fn latest(&self) -> &[Option<ExternalReading>] {
        &self.latest
    }

    /// Puts back stored readings (one per rule, in rule order).
    pub fn restore(&mut self, latest: Vec<Option<ExternalReading>>) -> Result<(), String> {
        if latest.len() != self.rules.len() {
            return Err(format!("{} stored external readings for {} rules", latest.len(), self.rules.len()));
        }
        self.latest = latest;
        Ok(())
    }

    pub fn observe(&mut self, readings: &[ExternalReading]) {
        for reading in readings {
            if let Some(i) = self.rules.iter().position(|r| r.name == reading.name) {
                self.latest[i] = Some(reading.clone());
            }
        }
    }

    /// Rules whose interval has passed since their last reading.
    pub fn due(&self, now_ms: u64) -> Vec<&ExternalRule> {
        self.rules
            .iter()
            .zip(&self.latest)
            .filter(|(rule, last)| last.as_ref().is_none_or(|r| r.at_ms + rule.interval_ms <= now_ms))
            .map(|(rule, _)| rule)
            .collect()
    }

    /// The value a rule compares with its bound, or why there is none.
    fn value(rule: &ExternalRule, reading: Option<&ExternalReading>) -> Result<f64, String> {
        let reading = reading.ok_or_else(|| format!("external metric `{}` has not been read yet", rule.name))?;
        let failed = |side: &str, e: &String| format!("external metric `{}` ({side}): {e}", rule.name);
        let canary = reading.canary.as_ref().map_err(|e| failed("canary", e))?;
        match rule.bound {
            Bound::Max(_) => Ok(*canary),
            Bound::MaxRatio(_) => match &reading.baseline {
                Some(Ok(baseline)) if *baseline > 0.0 => Ok(canary / baseline),
                Some(Ok(_)) => Err(failed("baseline", &"the baseline's value is 0, so there is no ratio".to_string())),
                Some(Err(e)) => Err(failed("baseline", e)),
                None => Err(failed("baseline", &"not read".to_string())),
            },
        }
    }

    fn limit(rule: &ExternalRule) -> f64 {
        match rule.bound {
            Bound::Max(max) | Bound::MaxRatio(max) => max,
        }
    }

    /// The first rule whose value is over its bound.
    pub fn breach(&self) -> Option<(String, String)> {
        self.rules.iter().zip(&self.latest).find_map(|(rule, reading)| {
            let value = Self::value(rule, reading.as_ref()).ok()?;
            let limit = Self::limit(rule);
            let what = if rule.needs_baseline() { "canary / baseline" } else { "canary value" };
            (value > limit)
                .then(|| (format!("external:{}", rule.name), format!("{} {what} {value:.4} > {limit}", rule.name)))
        })
    }

    pub fn warnings(&self) -> Vec<String> {
        self.rules.iter().zip(&self.latest).filter_map(|(rule, r)| Self::value(rule, r.as_ref()).err()).collect()
    }

    pub fn reports(&self) -> Vec<TriggerReport> {
        self.rules
            .iter()
            .zip(&self.latest)
            .map(|(rule, reading)| {
                let value = Self::value(rule, reading.as_ref());
                let limit = Self::limit(rule);
                let rule_text = match rule.bound {
                    Bound::Max(max) => format!("canary's `{}` > {max}", rule.query),
                    Bound::MaxRatio(ratio) => format!("canary's `{}` > {ratio}x baseline's", rule.query),
                };
                TriggerReport {
                    trigger: format!("external:{}", rule.name),
                    kind: "absolute",
                    rule: rule_text,
                    fired: value.as_ref().is_ok_and(|v| *v > limit),
                    canary_events: 0,
                    baseline_events: 0,
                    cells: Vec::new(),
                    e_value: None,
                    threshold: Some(limit),
                    alpha: None,
                    confidence: None,
                    equal_rates_e: None,
                    guard: "a value from Prometheus".into(),
                    guard_met: value.is_ok(),
                    detail: match value {
                        Ok(v) => format!("value {v:.4}"),
                        Err(e) => e,
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(bound: Bound) -> ExternalRule {
        ExternalRule { name: "gpu".into(), query: "gpu{v=\"{version}\"}".into(), bound, interval_ms: 15_000 }
    }

    fn reading(canary: Result<f64, String>, baseline: Option<Result<f64, String>>) -> ExternalReading {
        ExternalReading { name: "gpu".into(), at_ms: 1000, canary, baseline }
    }

    #[test]
    fn a_value_over_its_bound_is_a_breach() {
        let mut state = ExternalState::new(vec![rule(Bound::Max(0.9))]);
        state.observe(&[reading(Ok(0.95), None)]);
        assert_eq!(state.breach().map(|b| b.0), Some("external:gpu".to_string()));
        state.observe(&[reading(Ok(0.5), None)]);
        assert_eq!(state.breach(), None);
        assert!(state.warnings().is_empty());
    }

    #[test]
    fn ratios_compare_with_the_baseline() {
        let mut state = ExternalState::new(vec![rule(Bound::MaxRatio(1.2))]);
        state.observe(&[reading(Ok(1.3), Some(Ok(1.0)))]);
        assert!(state.breach().is_some());
        state.observe(&[reading(Ok(1.1), Some(Ok(1.0)))]);
        assert!(state.breach().is_none());
    }

    #[test]
    fn a_failed_or_missing_value_warns_and_never_breaches() {
        let mut state = ExternalState::new(vec![rule(Bound::MaxRatio(1.2))]);
        assert_eq!(state.warnings().len(), 1, "not read yet is a warning");
        state.observe(&[reading(Ok(5.0), Some(Err("no series".into())))]);
        assert!(state.breach().is_none());
        assert!(state.warnings()[0].contains("no series"), "{:?}", state.warnings());
    }

    #[test]
    fn queries_come_due_by_interval_and_name_the_version() {
        let mut state = ExternalState::new(vec![rule(Bound::Max(1.0))]);
        assert_eq!(state.due(0).len(), 1);
        state.observe(&[reading(Ok(0.1), None)]);
        assert!(state.due(15_999).is_empty());
        assert_eq!(state.due(16_000).len(), 1);
        assert_eq!(state.due(16_000)[0].query_for("v2"), "gpu{v=\"v2\"}");
    }
}
