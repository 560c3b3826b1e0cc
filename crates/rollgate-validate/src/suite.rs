//! An evaluation suite: a directory with `suite.toml` (what to send, where
//! the answer is, which metrics must reach what) and a JSONL file of cases,
//! each an input (a request body in the service's wire protocol), an
//! expected answer where there is one, and group attributes for the bias
//! measures. Problems are reported at file:line:column.

use crate::metrics::Metric;
use rollgate_core::config::Diagnostic;
use rollgate_core::hold::Hold;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const MANIFEST: &str = "suite.toml";

/// The cases file a manifest names (`cases = "…"`), `cases.jsonl` when it names none or does not parse (its
/// problems are reported when the suite is parsed).
pub fn cases_file(manifest: &str) -> String {
    toml::from_str::<toml::Table>(manifest)
        .ok()
        .and_then(|t| t.get("cases").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| "cases.jsonl".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Expected answers are labels.
    Classification,
    /// Expected answers are numbers.
    Regression,
    /// Expected answers are text (exact match and token F1).
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub task: Task,
    /// The cases file, next to the manifest.
    #[serde(default = "default_cases")]
    pub cases: String,
    #[serde(default)]
    pub request: RequestSpec,
    pub response: ResponseSpec,
    /// The positive class, for ROC AUC and the bias measures.
    #[serde(default)]
    pub positive: Option<String>,
    #[serde(default)]
    pub run: RunSpec,
    /// Of every interval the suite is judged by.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub metrics: Vec<MetricRule>,
    #[serde(default)]
    pub bias: Option<BiasSpec>,
    /// Patterns for the cases' safety expectations (defaults apply when absent).
    #[serde(default)]
    pub safety: Option<crate::safety::SafetySpec>,
}

fn default_cases() -> String {
    "cases.jsonl".into()
}

fn default_confidence() -> f64 {
    0.95
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Appended to the endpoint's URL (e.g. `/v2/models/fraud/infer`).
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// JSON pointer to the answer in the response body (e.g. `/label`).
    pub prediction: String,
    /// JSON pointer to the positive class's score, when the model gives one.
    #[serde(default)]
    pub score: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    /// Cases in flight at once.
    pub concurrency: usize,
    /// For one case, each try.
    pub timeout: Hold,
    /// Tries again after a transport error (never after an answer).
    pub retries: u32,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec { concurrency: 8, timeout: Hold::from_secs(10), retries: 2 }
    }
}

/// A metric's requirement: at least `min`, at most `max`, and not worse than
/// the stable version (same suite, same run) by more than `max_drop`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    pub metric: Metric,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub max_drop: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiasSpec {
    /// The case attribute that names each case's group (e.g. `age_band`).
    pub attribute: String,
    /// Groups with fewer cases are reported as too small and never passed.
    #[serde(default = "default_min_group")]
    pub min_group_size: u64,
    #[serde(default)]
    pub max_demographic_parity_difference: Option<f64>,
    /// The four-fifths rule is `min_demographic_parity_ratio = 0.8`.
    #[serde(default)]
    pub min_demographic_parity_ratio: Option<f64>,
    #[serde(default)]
    pub max_equalized_odds_difference: Option<f64>,
    #[serde(default)]
    pub max_equal_opportunity_difference: Option<f64>,
}

fn default_min_group() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub id: Option<String>,
    pub input: Value,
    /// The input exactly as the case file writes it: what is sent.
    #[serde(skip)]
    pub input_text: String,
    #[serde(default)]
    pub expected: Option<Value>,
    #[serde(default)]
    pub group: BTreeMap<String, String>,
    /// What the answer must do for safety (refuse, never match, follow a schema, stay short).
    #[serde(default)]
    pub expect: Option<crate::safety::Expect>,
}

/// A suite as read: its manifest, its cases (each with an id), and the
/// SHA-256 of both files, which names exactly this suite in evidence.
#[derive(Debug, Clone)]
pub struct Suite {
    pub manifest: Manifest,
    pub cases: Vec<(String, Case)>,
    pub sha256: String,
}

impl Suite {
    /// Reads a suite from its two files' text; every problem, located.
    pub fn parse(
        manifest_file: &str,
        manifest_text: &str,
        cases_file: &str,
        cases_text: &str,
    ) -> Result<Suite, Vec<Diagnostic>> {
        let manifest: Manifest = toml::from_str(manifest_text).map_err(|e| {
            vec![Diagnostic::at(
                manifest_file,
                manifest_text,
                e.span().unwrap_or(0..0),
                e.message().to_string(),
                "see docs/validate.md for the suite format".into(),
            )]
        })?;
        let mut problems = manifest_problems(&manifest, manifest_file, manifest_text);
        let mut cases = Vec::new();
        for (i, line) in cases_text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<Case>(line) {
                Ok(mut case) => {
                    case.input_text = raw_input(line).unwrap_or_else(|| case.input.to_string());
                    let id = case.id.clone().unwrap_or_else(|| format!("line-{}", i + 1));
                    cases.push((id, case));
                }
                Err(e) => problems.push(Diagnostic {
                    file: cases_file.into(),
                    line: i + 1,
                    column: e.column(),
                    message: format!("not a case: {e}"),
                    hint: Some(
                        "a case is {\"input\": …, \"expected\": …, \"group\": {\"age_band\": \"18-25\"}}".into(),
                    ),
                }),
            }
        }
        if cases.is_empty() && problems.is_empty() {
            problems.push(Diagnostic {
                file: cases_file.into(),
                line: 1,
                column: 1,
                message: "the suite has no cases".into(),
                hint: None,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut hash = Sha256::new();
        for part in [manifest_text, cases_text] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        Ok(Suite { manifest, cases, sha256: hex::encode(hash.finalize()) })
    }

    /// A seed for the bootstrap that is the same for the same suite.
    pub fn seed(&self) -> u64 {
        u64::from_str_radix(&self.sha256[..16], 16).unwrap_or(0)
    }
}

/// The case's input as written, key order and spacing kept.
fn raw_input(line: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        input: &'a serde_json::value::RawValue,
    }
    // Every other field is ignored here: the full case was read already.
    serde_json::from_str::<Raw>(line).ok().map(|raw| raw.input.get().to_string())
}

/// What the manifest asks that cannot be done.
fn manifest_problems(m: &Manifest, file: &str, text: &str) -> Vec<Diagnostic> {
    let at = |needle: &str, message: String, hint: &str| {
        let start = text.find(needle).unwrap_or(0);
        Diagnostic::at(file, text, start..start, message, hint.into())
    };
    let mut out = Vec::new();
    if !(0.5..1.0).contains(&m.confidence) {
        out.push(at(
            "confidence",
            format!("confidence {} is not between 0.5 and 1", m.confidence),
            "e.g. confidence = 0.95",
        ));
    }
    if !m.response.prediction.starts_with('/') && !m.response.prediction.is_empty() {
        out.push(at(
            "prediction",
            format!("`{}` is not a JSON pointer", m.response.prediction),
            "e.g. prediction = \"/label\"",
        ));
    }
    if m.run.concurrency == 0 {
        out.push(at("concurrency", "concurrency must be at least 1".into(), "e.g. concurrency = 8"));
    }
    for rule in &m.metrics {
        let name = rule.metric.to_string();
        if rule.min.is_none() && rule.max.is_none() && rule.max_drop.is_none() {
            out.push(at(&name, format!("metric `{name}` has no requirement"), "give it min, max or max_drop"));
        }
        if rule.metric == Metric::RocAuc && (m.positive.is_none() || m.response.score.is_none()) {
            out.push(at(
                &name,
                "roc_auc needs the positive class and the score's place".into(),
                "set positive = \"…\" and response.score = \"/score\"",
            ));
        }
    }
    if let Err(e) = crate::safety::Checker::new(&m.safety.clone().unwrap_or_default()) {
        out.push(at("[safety]", e, "write the pattern as a Rust regular expression (case-insensitive)"));
    }
    if m.bias.is_some() && m.positive.is_none() {
        out.push(at(
            "[bias]",
            "the bias measures need the positive class".into(),
            "set positive = \"…\" (the favourable answer, e.g. \"approve\")",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST_TEXT: &str = "name = \"fraud\"\ntask = \"classification\"\npositive = \"approve\"\n[response]\nprediction = \"/label\"\n[[metrics]]\nmetric = \"accuracy\"\nmin = 0.9\n";

    #[test]
    fn a_suite_reads_with_ids_and_a_hash_of_both_files() {
        let cases = "{\"id\":\"a\",\"input\":{\"x\":1},\"expected\":\"approve\",\"group\":{\"age\":\"18-25\"}}\n\n{\"input\":{\"x\":2}}\n";
        let suite = Suite::parse("suite.toml", MANIFEST_TEXT, "cases.jsonl", cases).unwrap();
        assert_eq!(suite.cases.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a", "line-3"]);
        assert_eq!(suite.cases[0].1.group["age"], "18-25");
        let written = "{\"input\":{\"z\":1, \"a\":2}}";
        let suite_in_order = Suite::parse("suite.toml", MANIFEST_TEXT, "cases.jsonl", written).unwrap();
        assert_eq!(suite_in_order.cases[0].1.input_text, "{\"z\":1, \"a\":2}", "sent exactly as written");
        let other = Suite::parse("suite.toml", MANIFEST_TEXT, "cases.jsonl", &cases.replace("x\":2", "x\":3")).unwrap();
        assert_ne!(suite.sha256, other.sha256, "one byte of a case changes the suite's hash");
    }

    #[test]
    fn problems_are_located() {
        let bad =
            Suite::parse("suite.toml", MANIFEST_TEXT, "cases.jsonl", "{\"input\":1}\n{\"input\": oops}\n").unwrap_err();
        assert_eq!((bad[0].file.as_str(), bad[0].line), ("cases.jsonl", 2), "{bad:?}");
        let unknown = MANIFEST_TEXT.replace("min = 0.9", "minimum = 0.9");
        let bad = Suite::parse("suite.toml", &unknown, "c", "{\"input\":1}").unwrap_err();
        assert_eq!(bad[0].line, 8, "{}", bad[0]);
        let no_positive = MANIFEST_TEXT.replace("positive = \"approve\"\n", "") + "[bias]\nattribute = \"age\"\n";
        let bad = Suite::parse("suite.toml", &no_positive, "c", "{\"input\":1}").unwrap_err();
        assert!(bad[0].to_string().contains("the bias measures need the positive class"), "{}", bad[0]);
        let auc = MANIFEST_TEXT.replace("\"accuracy\"", "\"roc_auc\"");
        assert!(
            Suite::parse("suite.toml", &auc, "c", "{\"input\":1}").unwrap_err()[0].message.contains("roc_auc needs")
        );
    }
}
