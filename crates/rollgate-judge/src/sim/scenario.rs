//! Scenarios of the judge benchmark: a TOML file of traffic and faults
//! (the built-in set is `scenarios.toml`, the research note's §4.2).

use serde::Deserialize;

pub const BUILT_IN: &str = include_str!("scenarios.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    #[serde(default)]
    pub settings: Settings,
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub rates: Vec<u32>,
    pub steps: Vec<f64>,
    pub dwell_s: u64,
    pub baseline_error_rate: f64,
    pub latency_median_ms: f64,
    pub latency_sigma: f64,
    pub baseline_bad_output_rate: f64,
    pub complaint_rate: f64,
    pub latency_samples_per_s: usize,
    /// Chat scenarios: the baseline's median time to first token and time per output token.
    pub ttft_median_ms: f64,
    pub token_ms: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rates: vec![20, 100, 1000],
            steps: vec![1.0, 5.0, 25.0, 50.0],
            dwell_s: 600,
            baseline_error_rate: 0.01,
            latency_median_ms: 100.0,
            latency_sigma: 0.5,
            baseline_bad_output_rate: 0.02,
            complaint_rate: 1e-4,
            latency_samples_per_s: 250,
            ttft_median_ms: 300.0,
            token_ms: 20.0,
        }
    }
}

impl Settings {
    pub fn horizon_s(&self) -> u64 {
        self.dwell_s * self.steps.len() as u64
    }

    /// The canary weight (0..1) at second `t`.
    pub fn weight_at(&self, t: u64) -> f64 {
        let step = usize::try_from(t / self.dwell_s.max(1)).unwrap_or(usize::MAX).min(self.steps.len() - 1);
        self.steps[step] / 100.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// A healthy canary: any rollback is a false rollback.
    Negative,
    /// Exactly at a trigger's limit: a sequential judge rolls back at most its α share.
    Boundary,
    /// A faulty canary: it should be rolled back, fast.
    Positive,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub id: String,
    pub description: String,
    pub truth: Truth,
    /// Run with drift only (true), without only (false), or both (absent).
    #[serde(default)]
    pub drift: Option<bool>,
    /// Both arms: at a random time in minutes 5-35, latency x1.5 and errors x3.
    #[serde(default)]
    pub shared_step: bool,
    #[serde(default = "one")]
    pub error_ratio: f64,
    #[serde(default = "one")]
    pub latency_ratio: f64,
    /// Overrides the settings' lognormal sigma for both arms.
    #[serde(default)]
    pub latency_sigma: Option<f64>,
    /// A share of canary requests slowed by `tail_ratio` (the median stays put).
    #[serde(default)]
    pub tail_share: f64,
    #[serde(default = "one")]
    pub tail_ratio: f64,
    #[serde(default = "one")]
    pub bad_output_ratio: f64,
    #[serde(default = "one")]
    pub complaint_ratio: f64,
    /// Mean delay (exponential) before a complaint reaches the judge.
    #[serde(default)]
    pub complaint_delay_s: f64,
    /// Seconds from the start of the canary until the fault begins.
    #[serde(default)]
    pub onset_s: u64,
    /// A chat model: answers stream tokens, and the judge's token triggers run.
    #[serde(default)]
    pub chat: bool,
    /// A chat canary's time to first token, and time per output token, as multiples of the baseline's.
    #[serde(default = "one")]
    pub ttft_ratio: f64,
    #[serde(default = "one")]
    pub token_time_ratio: f64,
}

fn one() -> f64 {
    1.0
}

impl Scenario {
    /// The drift conditions this scenario runs under.
    pub fn drift_conditions(&self) -> Vec<bool> {
        match self.drift {
            Some(d) => vec![d],
            None => vec![false, true],
        }
    }

    /// Which judge triggers its fault concerns (for the oracle).
    pub fn faults(&self) -> Faults {
        Faults {
            errors: self.error_ratio != 1.0,
            latency: self.latency_ratio != 1.0 || self.tail_share > 0.0,
            quality: self.bad_output_ratio != 1.0,
            complaints: self.complaint_ratio != 1.0,
            tokens: self.ttft_ratio != 1.0 || self.token_time_ratio != 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    pub errors: bool,
    pub latency: bool,
    pub quality: bool,
    pub complaints: bool,
    /// Time to first token or tokens per second (chat scenarios).
    pub tokens: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Parses and checks a scenario file.
pub fn parse(text: &str) -> Result<ScenarioFile, ScenarioError> {
    let file: ScenarioFile = toml::from_str(text)?;
    let s = &file.settings;
    let invalid = |m: String| Err(ScenarioError::Invalid(m));
    if s.steps.is_empty() || s.steps.iter().any(|p| !(*p > 0.0 && *p < 100.0)) {
        return invalid(
            "settings.steps: give canary percents between 0 and 100 (exclusive), e.g. [1, 5, 25, 50]".into(),
        );
    }
    if s.rates.is_empty() || s.rates.contains(&0) || s.dwell_s == 0 {
        return invalid("settings: rates must be positive and dwell_s at least 1".into());
    }
    for p in [s.baseline_error_rate, s.baseline_bad_output_rate, s.complaint_rate] {
        if !(0.0..1.0).contains(&p) {
            return invalid(format!("settings: rate {p} is not a probability below 1"));
        }
    }
    for sc in &file.scenarios {
        let ratios = [
            sc.error_ratio,
            sc.latency_ratio,
            sc.tail_ratio,
            sc.bad_output_ratio,
            sc.complaint_ratio,
            sc.ttft_ratio,
            sc.token_time_ratio,
        ];
        if ratios.iter().any(|r| !(*r > 0.0 && r.is_finite())) || !(0.0..=1.0).contains(&sc.tail_share) {
            return invalid(format!("scenario {}: ratios must be positive and tail_share within 0..1", sc.id));
        }
        if !sc.chat && (sc.ttft_ratio != 1.0 || sc.token_time_ratio != 1.0) {
            return invalid(format!("scenario {}: ttft_ratio and token_time_ratio need chat = true", sc.id));
        }
        if sc.onset_s >= s.horizon_s() {
            return invalid(format!("scenario {}: onset_s is after the last step ends", sc.id));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_is_the_research_notes() {
        let file = parse(BUILT_IN).unwrap();
        let ids: Vec<&str> = file.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), 20);
        for id in ["N0", "N3", "B1", "B2", "P1", "P11"] {
            assert!(ids.contains(&id), "{id}");
        }
        assert_eq!(file.settings.horizon_s(), 2400);
        assert_eq!(file.settings.weight_at(0), 0.01);
        assert_eq!(file.settings.weight_at(1799), 0.25);
        assert_eq!(file.settings.weight_at(5000), 0.5);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err =
            parse("[[scenario]]\nid = 'x'\ndescription = 'd'\ntruth = 'positive'\nerror_ratio = -1\n").unwrap_err();
        assert!(err.to_string().contains("ratios must be positive"), "{err}");
        let err = parse("[[scenario]]\nid = 'x'\n").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
