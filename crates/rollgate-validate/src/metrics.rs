//! Performance metrics, as scikit-learn defines them (macro averages over
//! the classes seen in expectations or predictions; 0 where a ratio has no
//! denominator), each computable on any resample of the cases so that the
//! bootstrap can put an interval around it.

use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// One case as the metrics see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub expected: Option<Value>,
    /// `None` when the case got no usable answer (it counts as wrong).
    pub predicted: Option<Value>,
    /// The model's score for the positive class, when it gives one.
    pub score: Option<f64>,
    pub latency_ms: Option<f64>,
}

/// A label as text: strings as they are, anything else as JSON.
pub fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Metric {
    Accuracy,
    PrecisionMacro,
    RecallMacro,
    F1Macro,
    Precision(String),
    Recall(String),
    F1(String),
    RocAuc,
    Mae,
    Rmse,
    ExactMatch,
    TokenF1,
    LatencyP50,
    LatencyP95,
    LatencyP99,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Accuracy => f.write_str("accuracy"),
            Metric::PrecisionMacro => f.write_str("precision_macro"),
            Metric::RecallMacro => f.write_str("recall_macro"),
            Metric::F1Macro => f.write_str("f1_macro"),
            Metric::Precision(c) => write!(f, "precision:{c}"),
            Metric::Recall(c) => write!(f, "recall:{c}"),
            Metric::F1(c) => write!(f, "f1:{c}"),
            Metric::RocAuc => f.write_str("roc_auc"),
            Metric::Mae => f.write_str("mae"),
            Metric::Rmse => f.write_str("rmse"),
            Metric::ExactMatch => f.write_str("exact_match"),
            Metric::TokenF1 => f.write_str("token_f1"),
            Metric::LatencyP50 => f.write_str("latency_p50_ms"),
            Metric::LatencyP95 => f.write_str("latency_p95_ms"),
            Metric::LatencyP99 => f.write_str("latency_p99_ms"),
        }
    }
}

impl TryFrom<String> for Metric {
    type Error = String;

    fn try_from(s: String) -> Result<Metric, String> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

pub const NAMES: &str = "accuracy, precision_macro, recall_macro, f1_macro, precision:CLASS, recall:CLASS, f1:CLASS, \
                         roc_auc, mae, rmse, exact_match, token_f1, latency_p50_ms, latency_p95_ms, latency_p99_ms";

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Metric, String> {
        let per_class = |c: &str| (!c.is_empty()).then(|| c.to_string());
        Ok(match s {
            "accuracy" => Metric::Accuracy,
            "precision_macro" => Metric::PrecisionMacro,
            "recall_macro" => Metric::RecallMacro,
            "f1_macro" => Metric::F1Macro,
            "roc_auc" => Metric::RocAuc,
            "mae" => Metric::Mae,
            "rmse" => Metric::Rmse,
            "exact_match" => Metric::ExactMatch,
            "token_f1" => Metric::TokenF1,
            "latency_p50_ms" => Metric::LatencyP50,
            "latency_p95_ms" => Metric::LatencyP95,
            "latency_p99_ms" => Metric::LatencyP99,
            other => match other.split_once(':') {
                Some(("precision", c)) if per_class(c).is_some() => Metric::Precision(c.into()),
                Some(("recall", c)) if per_class(c).is_some() => Metric::Recall(c.into()),
                Some(("f1", c)) if per_class(c).is_some() => Metric::F1(c.into()),
                _ => return Err(format!("`{s}` is not a metric; the metrics are {NAMES}")),
            },
        })
    }
}

impl Metric {
    /// Whether a larger value is better (errors and latency are the other way).
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Metric::Mae | Metric::Rmse | Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99)
    }

    /// A share of cases, whose interval is exact.
    pub fn is_proportion(&self) -> bool {
        matches!(self, Metric::Accuracy | Metric::ExactMatch)
    }

    /// The metric over the cases at `idx` (a resample may repeat them); NaN where undefined.
    pub fn compute(&self, cases: &[Observation], idx: &[usize], positive: Option<&str>) -> f64 {
        let at = || idx.iter().map(|&i| &cases[i]);
        match self {
            Metric::Accuracy => share(at().filter(|c| c.expected.is_some()).map(|c| c.predicted == c.expected)),
            Metric::ExactMatch => {
                share(at().filter_map(|c| Some(squad(&label(c.expected.as_ref()?)) == squad(&predicted(c)))))
            }
            Metric::TokenF1 => mean(at().filter_map(|c| Some(token_f1(&label(c.expected.as_ref()?), &predicted(c))))),
            Metric::PrecisionMacro | Metric::RecallMacro | Metric::F1Macro => {
                let counts = Counts::of(at());
                let per = |class: &str| match self {
                    Metric::PrecisionMacro => counts.precision(class),
                    Metric::RecallMacro => counts.recall(class),
                    _ => counts.f1(class),
                };
                mean(counts.sorted().into_iter().map(per))
            }
            Metric::Precision(class) => Counts::of(at()).precision(class),
            Metric::Recall(class) => Counts::of(at()).recall(class),
            Metric::F1(class) => Counts::of(at()).f1(class),
            Metric::RocAuc => positive.map_or(f64::NAN, |p| roc_auc(at(), p)),
            Metric::Mae => mean(numbers(at()).map(|(e, p)| (e - p).abs())),
            Metric::Rmse => mean(numbers(at()).map(|(e, p)| (e - p).powi(2))).sqrt(),
            Metric::LatencyP50 => quantile(at().filter_map(|c| c.latency_ms).collect(), 0.50),
            Metric::LatencyP95 => quantile(at().filter_map(|c| c.latency_ms).collect(), 0.95),
            Metric::LatencyP99 => quantile(at().filter_map(|c| c.latency_ms).collect(), 0.99),
        }
    }
}

/// A case's prediction as text; no answer is the empty text.
fn predicted(c: &Observation) -> String {
    c.predicted.as_ref().map(label).unwrap_or_default()
}

fn share(hits: impl Iterator<Item = bool>) -> f64 {
    let (mut k, mut n) = (0u64, 0u64);
    for hit in hits {
        n += 1;
        k += u64::from(hit);
    }
    if n == 0 { f64::NAN } else { k as f64 / n as f64 }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0u64);
    for v in values {
        sum += v;
        n += 1;
    }
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Expected and predicted numbers of the cases that have both.
fn numbers<'a>(cases: impl Iterator<Item = &'a Observation>) -> impl Iterator<Item = (f64, f64)> {
    cases.filter_map(|c| Some((c.expected.as_ref()?.as_f64()?, c.predicted.as_ref()?.as_f64()?)))
}

/// The `q` quantile with linear interpolation between order statistics (numpy's default).
pub fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    // Selection, not a sort: a bootstrap asks for this thousands of times.
    let (_, low, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let low = *low;
    let high = if hi == lo { low } else { above.iter().copied().min_by(f64::total_cmp).unwrap_or(low) };
    low + (high - low) * (pos - lo as f64)
}

/// A label as text without copying a string label: a bootstrap counts every
/// case thousands of times.
fn label_of(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Per-class counts: true positives, false positives, false negatives.
/// Classes are few, so they are found by a scan, and kept sorted for the
/// macro averages.
struct Counts<'a> {
    classes: Vec<Cow<'a, str>>,
    tp: Vec<u64>,
    fp: Vec<u64>,
    fn_: Vec<u64>,
}

impl<'a> Counts<'a> {
    fn of(cases: impl Iterator<Item = &'a Observation>) -> Counts<'a> {
        let mut c = Counts { classes: Vec::new(), tp: Vec::new(), fp: Vec::new(), fn_: Vec::new() };
        for case in cases {
            let Some(expected) = case.expected.as_ref().map(label_of) else { continue };
            let e = c.index(expected);
            match case.predicted.as_ref().map(label_of) {
                Some(p) if p == c.classes[e] => c.tp[e] += 1,
                Some(p) => {
                    let p = c.index(p);
                    c.fp[p] += 1;
                    c.fn_[e] += 1;
                }
                // No answer: a miss for the expected class, nobody's false positive.
                None => c.fn_[e] += 1,
            }
        }
        c
    }

    fn index(&mut self, class: Cow<'a, str>) -> usize {
        if let Some(i) = self.classes.iter().position(|c| *c == class) {
            return i;
        }
        self.classes.push(class);
        for counts in [&mut self.tp, &mut self.fp, &mut self.fn_] {
            counts.push(0);
        }
        self.classes.len() - 1
    }

    /// The classes in order (the order a macro average sums them in).
    fn sorted(&self) -> Vec<&str> {
        let mut classes: Vec<&str> = self.classes.iter().map(|c| c.as_ref()).collect();
        classes.sort_unstable();
        classes
    }

    fn get(&self, counts: &[u64], class: &str) -> f64 {
        self.classes.iter().position(|c| c == class).map_or(0.0, |i| counts[i] as f64)
    }

    fn precision(&self, class: &str) -> f64 {
        let (tp, fp) = (self.get(&self.tp, class), self.get(&self.fp, class));
        if tp + fp == 0.0 { 0.0 } else { tp / (tp + fp) }
    }

    fn recall(&self, class: &str) -> f64 {
        let (tp, fn_) = (self.get(&self.tp, class), self.get(&self.fn_, class));
        if tp + fn_ == 0.0 { 0.0 } else { tp / (tp + fn_) }
    }

    fn f1(&self, class: &str) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

/// The chance a positive case scores above a negative one (ties count half):
/// the area under the ROC curve. NaN without both kinds, or without scores.
fn roc_auc<'a>(cases: impl Iterator<Item = &'a Observation>, positive: &str) -> f64 {
    let mut scored: Vec<(f64, bool)> = Vec::new();
    for c in cases {
        let (Some(expected), Some(score)) = (c.expected.as_ref(), c.score) else { continue };
        scored.push((score, label(expected) == positive));
    }
    let positives = scored.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Mann-Whitney U from midranks.
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j + 1 < scored.len() && scored[j + 1].0 == scored[i].0 {
            j += 1;
        }
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += scored[i..=j].iter().filter(|(_, p)| *p).count() as f64 * midrank;
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces.
pub fn squad(text: &str) -> String {
    let lower: String = text.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    lower.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

/// SQuAD's token F1: the overlap of the normalised answers' tokens, as a bag.
pub fn token_f1(expected: &str, predicted: &str) -> f64 {
    let (e, p) = (squad(expected), squad(predicted));
    let (e, p): (Vec<&str>, Vec<&str>) = (e.split_whitespace().collect(), p.split_whitespace().collect());
    if e.is_empty() || p.is_empty() {
        return f64::from(u8::from(e == p));
    }
    let mut left = e.clone();
    let mut common = 0usize;
    for token in &p {
        if let Some(at) = left.iter().position(|t| t == token) {
            left.swap_remove(at);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let (precision, recall) = (common as f64 / p.len() as f64, common as f64 / e.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cases(pairs: &[(&str, Option<&str>)]) -> Vec<Observation> {
        pairs
            .iter()
            .map(|(e, p)| Observation {
                expected: Some(json!(e)),
                predicted: p.map(|p| json!(p)),
                ..Observation::default()
            })
            .collect()
    }

    fn all(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    #[test]
    fn classification_metrics_match_hand_computed_values() {
        // expected: a a a b b c; predicted: a a b b c c (and one unanswered below).
        let c = cases(&[
            ("a", Some("a")),
            ("a", Some("a")),
            ("a", Some("b")),
            ("b", Some("b")),
            ("b", Some("c")),
            ("c", Some("c")),
        ]);
        let m = |metric: Metric| metric.compute(&c, &all(c.len()), None);
        assert_eq!(m(Metric::Accuracy), 4.0 / 6.0);
        // a: tp 2 fp 0 fn 1 → p 1, r 2/3, f1 0.8; b: tp 1 fp 1 fn 1 → 0.5, 0.5, 0.5; c: tp 1 fp 1 fn 0 → 0.5, 1, 2/3.
        assert!((m(Metric::PrecisionMacro) - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((m(Metric::RecallMacro) - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((m(Metric::F1Macro) - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((m(Metric::F1("a".into())) - 0.8).abs() < 1e-12);
        // An unanswered case is a miss for its class and nobody's false positive.
        let c = cases(&[("a", Some("a")), ("a", None)]);
        assert_eq!(Metric::Accuracy.compute(&c, &all(2), None), 0.5);
        assert_eq!(Metric::Precision("a".into()).compute(&c, &all(2), None), 1.0);
        assert_eq!(Metric::Recall("a".into()).compute(&c, &all(2), None), 0.5);
    }

    #[test]
    fn roc_auc_counts_ties_half() {
        let scored =
            |e: &str, s: f64| Observation { expected: Some(json!(e)), score: Some(s), ..Observation::default() };
        // Positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4, 0.9>0.1, 0.4=0.4 → ½, 0.4>0.1) = 3.5 of 4.
        let c = vec![scored("y", 0.9), scored("y", 0.4), scored("n", 0.4), scored("n", 0.1)];
        assert_eq!(Metric::RocAuc.compute(&c, &all(4), Some("y")), 0.875);
        assert!(Metric::RocAuc.compute(&c[..2], &all(2), Some("y")).is_nan(), "no negatives: undefined");
    }

    #[test]
    fn regression_text_and_latency_metrics_match_hand_computed_values() {
        let num = |e: f64, p: f64| Observation {
            expected: Some(json!(e)),
            predicted: Some(json!(p)),
            ..Observation::default()
        };
        let c = vec![num(1.0, 2.0), num(2.0, 2.0), num(3.0, 6.0)];
        assert_eq!(Metric::Mae.compute(&c, &all(3), None), 4.0 / 3.0);
        assert_eq!(Metric::Rmse.compute(&c, &all(3), None), (10.0f64 / 3.0).sqrt());
        assert_eq!(token_f1("The cat sat", "a cat sat down"), 2.0 * (2.0 / 3.0) * 1.0 / (2.0 / 3.0 + 1.0));
        assert_eq!(squad("The  Eiffel Tower!"), "eiffel tower");
        let t = cases(&[("Paris.", Some("paris")), ("Rome", Some("Milan"))]);
        assert_eq!(Metric::ExactMatch.compute(&t, &all(2), None), 0.5);
        assert_eq!(quantile(vec![1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(vec![10.0, 20.0], 0.99), 19.9);
    }

    #[test]
    fn metric_names_read_back() {
        for name in ["accuracy", "f1_macro", "f1:approve", "roc_auc", "latency_p99_ms", "token_f1"] {
            assert_eq!(name.parse::<Metric>().unwrap().to_string(), name);
        }
        assert!("f1:".parse::<Metric>().is_err());
        assert!("auc".parse::<Metric>().unwrap_err().contains("roc_auc"));
    }
}
