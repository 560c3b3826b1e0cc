//! Comparing production's answer with the candidate's, to the same request.
//! The comparator depends on what was answered: labels (classification),
//! numbers and tensors (within an absolute or relative tolerance), or text
//! (after normalisation, by token F1 and ROUGE-L, with refusals, finish
//! reasons and tool calls compared too). Each pair says whether the two
//! agree and, when they do not, why; [`Summary`] adds pairs up.

mod label;
mod numeric;
pub mod schema;
mod summary;
mod text;

pub use summary::{Interval, Sample, SchemaValidity, Summary, SummaryView, cohens_kappa, wilson};

use crate::{Chat, Output, Tensor, TensorData};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which comparator a service's answers get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparatorKind {
    /// By what was answered: chat → text; tensors → numeric; a picked label → classification.
    #[default]
    Auto,
    /// The top label: the arg-max of each row of the first tensor, the picked label, or the whole text.
    Classification,
    Numeric,
    Text,
}

/// A comparator and its settings, as a plan writes them (`[plans.NAME.shadow.compare]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    pub comparator: ComparatorKind,
    /// Numbers agree when |a − b| ≤ abs_tolerance or ≤ rel_tolerance·|production's|.
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
    /// Texts are compared lower-cased …
    pub lowercase: bool,
    /// … and with runs of white space as one space.
    pub collapse_whitespace: bool,
    /// Two texts agree when their token F1 is at least this (1.0: equal after normalisation).
    pub text_agreement: f64,
    /// An answer matching any of these (regular expressions, case-insensitive) is a refusal.
    pub refusal_patterns: Vec<String>,
    /// Prices per thousand tokens, for the cost of each side from `usage`.
    pub prompt_price_per_1k: f64,
    pub completion_price_per_1k: f64,
    /// A JSON schema every answer's text must follow, where the request asks for none of its own.
    pub json_schema: Option<serde_json::Value>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            comparator: ComparatorKind::Auto,
            abs_tolerance: 1e-6,
            rel_tolerance: 1e-3,
            lowercase: true,
            collapse_whitespace: true,
            text_agreement: 1.0,
            refusal_patterns: vec![
                r"\bI (can(no|')t|am unable to|won't) (help|assist|do|provide)".into(),
                r"\bI'?m sorry, but\b".into(),
                r"\bas an AI\b".into(),
            ],
            prompt_price_per_1k: 0.0,
            completion_price_per_1k: 0.0,
            json_schema: None,
        }
    }
}

/// How one pair compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairResult {
    pub agree: bool,
    /// When they disagree: what differs, in words.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// The top labels (classification), for the flip matrix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<(String, String)>,
    /// Candidate's score minus production's (classification with scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_delta: Option<f64>,
    /// Largest and mean absolute difference over all numbers (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_diff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_abs_diff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// Whether each side refused (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusals: Option<(bool, bool)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason_agree: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls_agree: Option<bool>,
    /// Candidate's length (characters) over production's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_ratio: Option<f64>,
    /// Candidate's completion tokens over production's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ratio: Option<f64>,
    /// What each answer cost, from `usage` and the configured prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub costs: Option<(f64, f64)>,
    /// Whether each side's answer follows the JSON schema asked for (production, candidate).
    pub schema_valid: Option<(bool, bool)>,
}

impl PairResult {
    fn disagree(why: impl Into<String>) -> PairResult {
        PairResult { agree: false, why: why.into(), ..PairResult::default() }
    }
}

/// A comparator ready to use: its patterns and schemas compiled once.
#[derive(Debug, Clone)]
pub struct Comparer {
    config: CompareConfig,
    refusals: Vec<Regex>,
    schemas: schema::Schemas,
}

impl Comparer {
    pub fn new(config: CompareConfig) -> Result<Comparer, String> {
        let refusals = config
            .refusal_patterns
            .iter()
            .map(|p| Regex::new(&format!("(?i){p}")).map_err(|e| format!("refusal pattern `{p}`: {e}")))
            .collect::<Result<_, _>>()?;
        let fixed = match &config.json_schema {
            Some(schema) => Some(schema::Schema::compile(schema).map_err(|e| format!("json_schema: {e}"))?),
            None => None,
        };
        Ok(Comparer { config, refusals, schemas: schema::Schemas::new(fixed) })
    }

    /// Compares two answers to `request`: as [`Comparer::compare`], and when
    /// the request asks for a JSON schema (or the plan names one), whether
    /// each answer follows it. A candidate that breaks the schema where
    /// production follows it disagrees.
    pub fn compare_answers(&mut self, request: &[u8], production: &Output, candidate: &Output) -> PairResult {
        let mut result = self.compare(production, candidate);
        let structured = matches!(production, Output::Chat(_) | Output::Picked(_));
        if let Some(schema) = self.schemas.for_request(request).filter(|_| structured) {
            let valid = (schema.accepts(&text_of(production)), schema.accepts(&text_of(candidate)));
            result.schema_valid = Some(valid);
            if result.agree && valid.0 && !valid.1 {
                result.agree = false;
                result.why = "the candidate's answer does not follow the requested JSON schema".into();
            }
        }
        result
    }

    pub fn config(&self) -> &CompareConfig {
        &self.config
    }

    /// How `candidate`'s answer compares with `production`'s.
    pub fn compare(&self, production: &Output, candidate: &Output) -> PairResult {
        let kind = match self.config.comparator {
            ComparatorKind::Auto => match production {
                Output::Chat(_) => ComparatorKind::Text,
                Output::Tensors { .. } => ComparatorKind::Numeric,
                Output::Picked(p) if p.label.is_some() => ComparatorKind::Classification,
                Output::Picked(p) if p.score.is_some() => ComparatorKind::Numeric,
                Output::Picked(_) => ComparatorKind::Text,
            },
            chosen => chosen,
        };
        match kind {
            ComparatorKind::Classification => label::compare(production, candidate),
            ComparatorKind::Numeric => numeric::compare(&self.config, production, candidate),
            ComparatorKind::Text | ComparatorKind::Auto => match (production, candidate) {
                (Output::Chat(a), Output::Chat(b)) => self.chats(a, b),
                _ => {
                    let (a, b) = (text_of(production), text_of(candidate));
                    text::compare(&self.config, &self.refusals, &a, &b)
                }
            },
        }
    }

    fn chats(&self, a: &Chat, b: &Chat) -> PairResult {
        let (Some(first_a), Some(first_b)) = (a.choices.first(), b.choices.first()) else {
            return PairResult::disagree(format!("{} choice(s) against {}", a.choices.len(), b.choices.len()));
        };
        let mut result = text::compare(&self.config, &self.refusals, &first_a.text, &first_b.text);
        let finish = first_a.finish_reason == first_b.finish_reason;
        let tools = tool_calls_agree(&first_a.tool_calls, &first_b.tool_calls);
        result.finish_reason_agree = Some(finish);
        result.tool_calls_agree = Some(tools);
        if result.agree && !tools {
            result.agree = false;
            result.why = "the tool calls differ (name or arguments)".into();
        }
        if result.agree && !finish {
            result.agree = false;
            result.why = format!("finished `{:?}` against `{:?}`", first_a.finish_reason, first_b.finish_reason);
        }
        if let (Some(ua), Some(ub)) = (a.usage, b.usage) {
            if ua.completion_tokens > 0 {
                result.token_ratio = Some(ub.completion_tokens as f64 / ua.completion_tokens as f64);
            }
            let cost = |u: crate::Usage| {
                (u.prompt_tokens as f64 * self.config.prompt_price_per_1k
                    + u.completion_tokens as f64 * self.config.completion_price_per_1k)
                    / 1000.0
            };
            result.costs = Some((cost(ua), cost(ub)));
        }
        result
    }
}

/// Tool calls agree when they call the same functions in the same order with
/// the same arguments, arguments compared as JSON where both sides parse.
fn tool_calls_agree(a: &[crate::ToolCall], b: &[crate::ToolCall]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let as_json = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
            x.name == y.name
                && match (as_json(&x.arguments), as_json(&y.arguments)) {
                    (Some(jx), Some(jy)) => jx == jy,
                    _ => x.arguments == y.arguments,
                }
        })
}

/// The text of any output, for text comparison.
fn text_of(output: &Output) -> String {
    match output {
        Output::Chat(c) => c.choices.first().map(|c| c.text.clone()).unwrap_or_default(),
        Output::Picked(p) => p.text.clone().or_else(|| p.label.clone()).unwrap_or_default(),
        Output::Tensors { tensors } => tensors
            .iter()
            .map(|t| match &t.data {
                TensorData::Strings(s) => s.join(" "),
                TensorData::Numbers(n) => n.iter().map(f64::to_string).collect::<Vec<_>>().join(" "),
                TensorData::Bools(b) => b.iter().map(bool::to_string).collect::<Vec<_>>().join(" "),
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The first tensor with numbers, if any.
fn first_numbers(tensors: &[Tensor]) -> Option<(&Tensor, &[f64])> {
    tensors.iter().find_map(|t| match &t.data {
        TensorData::Numbers(n) => Some((t, n.as_slice())),
        _ => None,
    })
}
