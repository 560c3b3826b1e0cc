//! Pairs added up: agreement with its confidence interval, the flip matrix
//! and Cohen's kappa (classification), differences (numeric), text scores,
//! refusal, finish-reason and tool-call agreement, length, tokens and cost.

use super::PairResult;
use serde::Serialize;
use std::collections::BTreeMap;

/// A share with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub pairs: u64,
    pub agreed: u64,
    /// Production's label → candidate's label → how many pairs.
    pub flips: BTreeMap<String, BTreeMap<String, u64>>,
    score_deltas: Vec<f64>,
    abs_diffs: Vec<f64>,
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
    length_ratios: Vec<f64>,
    token_ratios: Vec<f64>,
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
    pub production_cost: f64,
    pub candidate_cost: f64,
}

impl Summary {
    pub fn add(&mut self, r: &PairResult) {
        self.pairs += 1;
        self.agreed += u64::from(r.agree);
        if let Some((a, b)) = &r.labels {
            *self.flips.entry(a.clone()).or_default().entry(b.clone()).or_default() += 1;
        }
        self.score_deltas.extend(r.score_delta);
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
        self.length_ratios.extend(r.length_ratio);
        self.token_ratios.extend(r.token_ratio);
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
            mean_score_delta: mean(self.score_deltas.iter().sum(), self.score_deltas.len() as u64),
            mean_abs_diff: mean(self.mean_abs_diff_sum, self.numeric_pairs),
            p99_abs_diff: quantile(&self.abs_diffs, 0.99),
            max_abs_diff: self.abs_diffs.iter().copied().reduce(f64::max),
            mean_token_f1: mean(self.token_f1_sum, self.text_pairs),
            mean_rouge_l: mean(self.rouge_l_sum, self.text_pairs),
            refusal_agreement: share(self.refusals_agree, self.refusal_pairs),
            finish_reason_agreement: share(self.finish_agree, self.finish_pairs),
            tool_call_agreement: share(self.tools_agree, self.tool_pairs),
            median_length_ratio: quantile(&self.length_ratios, 0.5),
            median_token_ratio: quantile(&self.token_ratios, 0.5),
            production_cost: self.production_cost,
            candidate_cost: self.candidate_cost,
        }
    }
}

/// The nearest-rank quantile.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
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
}
