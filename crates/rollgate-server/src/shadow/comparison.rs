//! One shadow stage's comparison, pair by pair: each side's answer parsed in
//! the service's protocol, compared with production's, and counted: the
//! summary (agreement, flips, text and numeric figures, cost), the excess
//! disagreement test over production's disagreement with itself, latency
//! and time to first byte per side, errors by class, and the most divergent
//! examples, redacted. Its size is bounded however many pairs it sees, and
//! it is stored as it is, so a restarted server goes on counting.

use super::redact::Redactor;
use rollgate_core::Timestamp;
use rollgate_gateway::mirror::{Captured, CopyFailure, MirrorPair};
use rollgate_judge::shadow::{ExcessReport, ExcessTest};
use rollgate_protocol::compare::{Comparer, PairResult, Sample, Summary, SummaryView};
use rollgate_protocol::{Format, Output, ProtocolError, parse_answer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a comparison works with, from the plan and the service.
pub struct Settings {
    pub comparer: Comparer,
    pub format: Format,
    pub redactor: Redactor,
    /// The most divergent examples kept.
    pub examples: usize,
}

/// A figure for each answer of a pair: production's (served), the
/// candidate's, and production's second answer (the noise-floor copy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sides<T> {
    pub production: T,
    pub candidate: T,
    pub production_again: T,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Production,
    Candidate,
    ProductionAgain,
}

impl<T> Sides<T> {
    fn get_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Production => &mut self.production,
            Side::Candidate => &mut self.candidate,
            Side::ProductionAgain => &mut self.production_again,
        }
    }
}

/// One divergent pair, as the report shows it: redacted and cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Which pair of the stage it was (1 for the first).
    pub pair: u64,
    /// 1 for any disagreement, up to 2 for the farthest (a failed answer, no text in common).
    pub divergence: f64,
    pub why: String,
    pub request: String,
    pub production: String,
    pub candidate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The candidate's answers against production's.
    pub summary: Summary,
    /// Production's second answers against its first.
    pub noise: Summary,
    pub excess: ExcessTest,
    pub latency_ms: Sides<Sample>,
    pub first_byte_ms: Sides<Sample>,
    /// Answers that failed, by class (`http_500`, `timeout`, `not_json`, …).
    pub errors: Sides<BTreeMap<String, u64>>,
    /// Pairs that could not be compared, by why.
    pub not_compared: BTreeMap<String, u64>,
    /// The most divergent pairs, most divergent first.
    pub examples: Vec<Example>,
    /// When the first pair was added: the traffic's pace, for the forecast.
    pub first_pair_at: Option<Timestamp>,
}

/// How one answer turned out.
enum Seen {
    Answer(Output),
    Failed(String),
    /// Longer than the capture limit: it cannot be compared whole.
    Cut,
}

impl Comparison {
    /// A comparison where a share `noise_share` (0 to 1) of pairs has a copy to production.
    pub fn new(noise_share: f64) -> Comparison {
        Comparison {
            summary: Summary::default(),
            noise: Summary::default(),
            excess: ExcessTest::new(noise_share),
            latency_ms: Sides::default(),
            first_byte_ms: Sides::default(),
            errors: Sides::default(),
            not_compared: BTreeMap::new(),
            examples: Vec::new(),
            first_pair_at: None,
        }
    }

    pub fn pairs(&self) -> u64 {
        self.summary.pairs
    }

    pub fn add(&mut self, pair: &MirrorPair, settings: &mut Settings, now: Timestamp) {
        self.first_pair_at.get_or_insert(now);
        let Some(primary) = &pair.primary else {
            // The user went away before production's answer ended.
            return self.not_compared("production's answer was not captured whole");
        };
        let production = self.see(Side::Production, Ok(primary), &settings.format);
        let candidate = self.see(Side::Candidate, pair.shadow.as_ref(), &settings.format);
        let again = pair.noise.as_ref().map(|copy| self.see(Side::ProductionAgain, copy.as_ref(), &settings.format));
        let production = match production {
            Seen::Answer(output) => output,
            Seen::Failed(_) => return self.not_compared("production failed"),
            Seen::Cut => return self.not_compared("an answer was longer than the capture limit"),
        };
        let result = match candidate {
            Seen::Answer(output) => settings.comparer.compare_answers(&pair.request_body, &production, &output),
            Seen::Failed(class) => {
                PairResult { agree: false, why: format!("the candidate failed ({class})"), ..PairResult::default() }
            }
            Seen::Cut => return self.not_compared("an answer was longer than the capture limit"),
        };
        // A copy that failed disagrees with production as a failed candidate would.
        let noise_disagrees = match again {
            Some(Seen::Answer(output)) => {
                let copy = settings.comparer.compare_answers(&pair.request_body, &production, &output);
                self.noise.add(&copy);
                Some(!copy.agree)
            }
            Some(Seen::Failed(_)) => Some(true),
            Some(Seen::Cut) | None => None,
        };
        self.summary.add(&result);
        self.excess.add(!result.agree, noise_disagrees);
        if !result.agree {
            self.keep_example(pair, &result, settings);
        }
    }

    fn not_compared(&mut self, why: &str) {
        *self.not_compared.entry(why.to_string()).or_default() += 1;
    }

    /// Parses one answer and counts its timing or its error.
    fn see(&mut self, side: Side, answer: Result<&Captured, &CopyFailure>, format: &Format) -> Seen {
        let captured = match answer {
            Ok(captured) => captured,
            Err(failure) => return self.failed(side, failure_class(failure)),
        };
        self.latency_ms.get_mut(side).push(ms(captured.latency));
        self.first_byte_ms.get_mut(side).push(ms(captured.first_byte));
        if !captured.status.is_success() {
            return self.failed(side, format!("http_{}", captured.status.as_u16()));
        }
        if captured.truncated {
            return Seen::Cut;
        }
        match parse_answer(format, &captured.body) {
            Ok(output) => Seen::Answer(output),
            Err(e) => self.failed(side, malformed_class(&e)),
        }
    }

    fn failed(&mut self, side: Side, class: String) -> Seen {
        *self.errors.get_mut(side).entry(class.clone()).or_default() += 1;
        Seen::Failed(class)
    }

    /// Keeps the pair among the most divergent if it is one of them; only a
    /// kept pair is redacted and copied.
    fn keep_example(&mut self, pair: &MirrorPair, result: &PairResult, settings: &Settings) {
        let divergence = divergence(result);
        if self.examples.len() >= settings.examples {
            match self.examples.last() {
                Some(least) if least.divergence < divergence => {
                    self.examples.pop();
                }
                _ => return,
            }
        }
        let keep = |answer: Result<&Captured, &CopyFailure>| match answer {
            Ok(captured) => settings.redactor.keep(&captured.body),
            Err(failure) => format!("(no answer: {failure})"),
        };
        let example = Example {
            pair: self.summary.pairs,
            divergence,
            why: result.why.clone(),
            request: settings.redactor.keep(&pair.request_body),
            production: pair.primary.as_ref().map_or_else(String::new, |p| keep(Ok(p))),
            candidate: keep(pair.shadow.as_ref()),
        };
        // Most divergent first; among equals, the earliest first.
        let at = self.examples.partition_point(|e| e.divergence >= divergence);
        self.examples.insert(at, example);
    }

    /// The figures as the report shows them, the gate's test at `bound` and
    /// level `alpha` once `min_pairs` have been seen.
    pub fn view(&self, bound: f64, alpha: f64, min_pairs: u64) -> ComparisonView {
        let candidate_classes = self.errors.candidate.keys();
        let seen_in_production = |class: &String| {
            self.errors.production.contains_key(class) || self.errors.production_again.contains_key(class)
        };
        ComparisonView {
            pairs: self.pairs(),
            agreement: self.summary.view(),
            noise_floor: (self.noise.pairs > 0).then(|| self.noise.view()),
            excess: self.excess.report(bound, alpha, min_pairs),
            latency_ms: self.distributions(|c| &c.latency_ms),
            first_byte_ms: self.distributions(|c| &c.first_byte_ms),
            errors: self.errors.clone(),
            new_error_classes: candidate_classes.filter(|c| !seen_in_production(c)).cloned().collect(),
            not_compared: self.not_compared.clone(),
            cost: Cost {
                production: self.summary.production_cost,
                candidate: self.summary.candidate_cost,
                production_again: self.noise.candidate_cost,
                mirrored: self.summary.candidate_cost + self.noise.candidate_cost,
            },
            examples: self.examples.clone(),
        }
    }

    fn distributions(&self, of: impl Fn(&Comparison) -> &Sides<Sample>) -> Sides<Distribution> {
        let sides = of(self);
        Sides {
            production: Distribution::of(&sides.production),
            candidate: Distribution::of(&sides.candidate),
            production_again: Distribution::of(&sides.production_again),
        }
    }
}

/// What the report shows of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonView {
    pub pairs: u64,
    /// The candidate against production: agreement with its 95% interval,
    /// flips, kappa, text and numeric figures.
    pub agreement: SummaryView,
    /// Production against itself, when copies were asked for.
    pub noise_floor: Option<SummaryView>,
    /// The gate's test: the candidate's disagreement over production's own.
    pub excess: ExcessReport,
    pub latency_ms: Sides<Distribution>,
    pub first_byte_ms: Sides<Distribution>,
    pub errors: Sides<BTreeMap<String, u64>>,
    /// Error classes the candidate showed that production never did.
    pub new_error_classes: Vec<String>,
    pub not_compared: BTreeMap<String, u64>,
    pub cost: Cost,
    pub examples: Vec<Example>,
}

/// Spend from `usage` at the plan's prices. The mirrored cost (the
/// candidate's and production's second answers) is counted apart from
/// production's, which users were served anyway.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    pub production: f64,
    pub candidate: f64,
    pub production_again: f64,
    pub mirrored: f64,
}

/// A distribution of milliseconds, side by side with the other answers'.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    fn of(sample: &Sample) -> Distribution {
        Distribution {
            count: sample.count(),
            mean: sample.mean(),
            p50: sample.quantile(0.5),
            p90: sample.quantile(0.9),
            p99: sample.quantile(0.99),
            max: sample.max(),
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn failure_class(failure: &CopyFailure) -> String {
    match failure {
        CopyFailure::Timeout(_) => "timeout".into(),
        CopyFailure::Failed(_) => "connection_failed".into(),
    }
}

fn malformed_class(e: &ProtocolError) -> String {
    format!("malformed_{}", e.class())
}

/// How far apart a disagreeing pair is: 1 plus what the comparator measured
/// (1 − ROUGE-L for texts, a squashed absolute difference for numbers, the
/// score change for labels), 2 when nothing was measured (a failed answer).
fn divergence(result: &PairResult) -> f64 {
    let text = result.rouge_l.map(|rouge| 1.0 - rouge);
    let numeric = result.max_abs_diff.map(|d| d / (1.0 + d));
    let score = result.score_delta.map(|d| d.abs().min(1.0));
    1.0 + text.or(numeric).or(score).unwrap_or(1.0).clamp(0.0, 1.0)
}
