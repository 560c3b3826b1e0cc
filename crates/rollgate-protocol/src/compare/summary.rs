//! Pairs added up: agreement with its confidence interval, the flip matrix
//! and Cohen's kappa (classification), differences (numeric), text scores,
//! refusal, finish-reason and tool-call agreement, length, tokens and cost.
//! A summary's size is bounded whatever the number of pairs: distributions
//! are kept as samples of at most [`SAMPLE_SIZE`] values, and labels past
//! [`MAX_LABELS`] distinct ones are counted together.

use super::PairResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Values a [`Sample`] keeps for its quantiles.
pub const SAMPLE_SIZE: usize = 4096;
/// Distinct labels the flip matrix keeps per side; the rest are [`OTHER_LABEL`].
pub const MAX_LABELS: usize = 64;
pub const OTHER_LABEL: &str = "(other)";

/// A stream of values in bounded memory: count, sum and maximum exactly, and
/// a uniform sample of at most [`SAMPLE_SIZE`] of them (reservoir sampling,
/// drawn from a hash of the count so it is the same on every run) for quantiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    seen: u64,
    sum: f64,
    max: Option<f64>,
    kept: Vec<f64>,
}

impl Sample {
    pub fn push(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        self.seen += 1;
        self.sum += value;
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        if self.kept.len() < SAMPLE_SIZE {
            self.kept.push(value);
        } else {
            // Keep the n-th value with chance SAMPLE_SIZE / n, in place of a uniformly chosen one.
            let slot = splitmix64(self.seen) % self.seen;
            if let Some(kept) = usize::try_from(slot).ok().and_then(|i| self.kept.get_mut(i)) {
                *kept = value;
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.seen
    }

    pub fn mean(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.sum / self.seen as f64)
    }

    pub fn max(&self) -> Option<f64> {
        self.max
    }

    /// The nearest-rank quantile of the kept values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.kept.is_empty() {
            return None;
        }
        let mut sorted = self.kept.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A share with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// The Wilson score interval of `k` successes in `n` (z = 1.96).
pub fn wilson(k: u64, n: u64) -> Interval {
    if n == 0 {
        return Interval { value: 0.0, low: 0.0, high: 1.0 };
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_963_984_540_054);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Interval { value: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub pairs: u64,
    pub agreed: u64,
    /// Production's label → candidate's label → how many pairs.
    pub flips: BTreeMap<String, BTreeMap<String, u64>>,
    score_deltas: Sample,
    abs_diffs: Sample,
    mean_abs_diff_sum: f64,
    numeric_pairs: u64,
    token_f1_sum: f64,
    rouge_l_sum: f64,
    text_pairs: u64,
    refusals_agree: u64,
    refusal_pairs: u64,
    finish_agree: u64,
    finish_pairs: u64,
    tools_agree: u64,
    tool_pairs: u64,
    length_ratios: Sample,
    token_ratios: Sample,
    schema_pairs: u64,
    schema_valid: (u64, u64),
    pub production_cost: f64,
    pub candidate_cost: f64,
}

/// What a summary reports, every figure with its sample size where it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryView {
    pub pairs: u64,
    pub agreement: Interval,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohens_kappa: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flips: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_score_delta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_abs_diff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_abs_diff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_diff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_token_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_rouge_l: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal_agreement: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason_agreement: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_agreement: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_length_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_token_ratio: Option<f64>,
    /// Where a JSON schema was asked for: how often each side's answer followed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_validity: Option<SchemaValidity>,
    pub production_cost: f64,
    pub candidate_cost: f64,
}

/// How often each side's structured answers followed their schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaValidity {
    pub production: Interval,
    pub candidate: Interval,
}

impl Summary {
    pub fn add(&mut self, r: &PairResult) {
        if let Some((production, candidate)) = r.schema_valid {
            self.schema_pairs += 1;
            self.schema_valid.0 += u64::from(production);
            self.schema_valid.1 += u64::from(candidate);
        }
        self.pairs += 1;
        self.agreed += u64::from(r.agree);
        if let Some((a, b)) = &r.labels {
            let a = bounded_label(self.flips.keys(), a);
            let b = bounded_label(self.flips.values().flat_map(BTreeMap::keys), b);
            *self.flips.entry(a).or_default().entry(b).or_default() += 1;
        }
        if let Some(delta) = r.score_delta {
            self.score_deltas.push(delta);
        }
        if let (Some(max), Some(mean)) = (r.max_abs_diff, r.mean_abs_diff) {
            self.abs_diffs.push(max);
            self.mean_abs_diff_sum += mean;
            self.numeric_pairs += 1;
        }
        if let (Some(f1), Some(rouge)) = (r.token_f1, r.rouge_l) {
            self.token_f1_sum += f1;
            self.rouge_l_sum += rouge;
            self.text_pairs += 1;
        }
        if let Some((a, b)) = r.refusals {
            self.refusal_pairs += 1;
            self.refusals_agree += u64::from(a == b);
        }
        if let Some(agree) = r.finish_reason_agree {
            self.finish_pairs += 1;
            self.finish_agree += u64::from(agree);
        }
        if let Some(agree) = r.tool_calls_agree {
            self.tool_pairs += 1;
            self.tools_agree += u64::from(agree);
        }
        if let Some(ratio) = r.length_ratio {
            self.length_ratios.push(ratio);
        }
        if let Some(ratio) = r.token_ratio {
            self.token_ratios.push(ratio);
        }
        if let Some((a, b)) = r.costs {
            self.production_cost += a;
            self.candidate_cost += b;
        }
    }

    pub fn view(&self) -> SummaryView {
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        let share = |k: u64, n: u64| (n > 0).then(|| wilson(k, n));
        SummaryView {
            pairs: self.pairs,
            agreement: wilson(self.agreed, self.pairs),
            cohens_kappa: cohens_kappa(&self.flips),
            flips: self.flips.clone(),
            mean_score_delta: self.score_deltas.mean(),
            mean_abs_diff: mean(self.mean_abs_diff_sum, self.numeric_pairs),
            p99_abs_diff: self.abs_diffs.quantile(0.99),
            max_abs_diff: self.abs_diffs.max(),
            mean_token_f1: mean(self.token_f1_sum, self.text_pairs),
            mean_rouge_l: mean(self.rouge_l_sum, self.text_pairs),
            refusal_agreement: share(self.refusals_agree, self.refusal_pairs),
            finish_reason_agreement: share(self.finish_agree, self.finish_pairs),
            tool_call_agreement: share(self.tools_agree, self.tool_pairs),
            median_length_ratio: self.length_ratios.quantile(0.5),
            median_token_ratio: self.token_ratios.quantile(0.5),
            schema_validity: (self.schema_pairs > 0).then(|| SchemaValidity {
                production: wilson(self.schema_valid.0, self.schema_pairs),
                candidate: wilson(self.schema_valid.1, self.schema_pairs),
            }),
            production_cost: self.production_cost,
            candidate_cost: self.candidate_cost,
        }
    }
}

/// `label`, or [`OTHER_LABEL`] once `known` holds [`MAX_LABELS`] others.
fn bounded_label<'a>(known: impl Iterator<Item = &'a String>, label: &str) -> String {
    let distinct: std::collections::BTreeSet<&String> = known.collect();
    let room = distinct.len() < MAX_LABELS || distinct.iter().any(|k| *k == label);
    if room { label.to_string() } else { OTHER_LABEL.to_string() }
}

/// Cohen's kappa of the two sides' labels: agreement beyond what their label frequencies give by chance.
pub fn cohens_kappa(flips: &BTreeMap<String, BTreeMap<String, u64>>) -> Option<f64> {
    let n: u64 = flips.values().flat_map(BTreeMap::values).sum();
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let observed = flips.iter().filter_map(|(a, row)| row.get(a)).sum::<u64>() as f64 / n;
    let mut candidate_totals: BTreeMap<&String, u64> = BTreeMap::new();
    for row in flips.values() {
        for (label, count) in row {
            *candidate_totals.entry(label).or_default() += count;
        }
    }
    let chance: f64 = flips
        .iter()
        .map(|(label, row)| {
            let production = row.values().sum::<u64>() as f64 / n;
            production * candidate_totals.get(label).copied().unwrap_or(0) as f64 / n
        })
        .sum();
    if (1.0 - chance).abs() < 1e-12 {
        return Some(if observed >= 1.0 { 1.0 } else { 0.0 });
    }
    Some((observed - chance) / (1.0 - chance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohens_kappa_and_wilson_match_hand_computed_values() {
        // 50 pairs: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
        let mut flips = BTreeMap::new();
        flips.insert("yes".to_string(), BTreeMap::from([("yes".to_string(), 20), ("no".to_string(), 5)]));
        flips.insert("no".to_string(), BTreeMap::from([("yes".to_string(), 10), ("no".to_string(), 15)]));
        // p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; kappa = 0.2/0.5 = 0.4.
        assert!((cohens_kappa(&flips).unwrap() - 0.4).abs() < 1e-12);
        // Wilson 95% for 8 of 10: [0.4902, 0.9433].
        let w = wilson(8, 10);
        assert!((w.low - 0.4902).abs() < 1e-3 && (w.high - 0.9433).abs() < 1e-3, "{w:?}");
    }

    #[test]
    fn a_summary_stays_bounded_however_many_pairs_and_labels() {
        let mut summary = Summary::default();
        for i in 0..20_000u32 {
            let r = PairResult {
                agree: false,
                labels: Some((format!("p{i}"), format!("c{i}"))),
                score_delta: Some(f64::from(i)),
                length_ratio: Some(1.0),
                ..PairResult::default()
            };
            summary.add(&r);
        }
        assert!(summary.flips.len() <= MAX_LABELS + 1);
        assert_eq!(summary.flips[OTHER_LABEL][OTHER_LABEL], 20_000 - MAX_LABELS as u64);
        assert_eq!(summary.score_deltas.count(), 20_000);
        assert!(summary.score_deltas.kept.len() <= SAMPLE_SIZE);
        // The exact figures stay exact; the median of 0..20000 from the sample is near 10000.
        assert_eq!(summary.score_deltas.mean(), Some(9999.5));
        assert_eq!(summary.score_deltas.max(), Some(19_999.0));
        let median = summary.score_deltas.quantile(0.5).unwrap();
        assert!((median - 10_000.0).abs() < 800.0, "{median}");
    }
}
