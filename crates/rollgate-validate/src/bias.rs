//! Bias across groups, with fairlearn's definitions: per group the selection
//! rate (the share predicted positive), the true positive rate and the false
//! positive rate; across groups the demographic parity difference (largest
//! minus smallest selection rate) and ratio (smallest over largest), the
//! equalized odds difference (the larger of the TPR and FPR differences) and
//! the equal opportunity difference (the TPR difference). Groups smaller
//! than the suite's minimum are reported as too small and take no part.

use serde::Serialize;
use std::collections::BTreeMap;

/// One case as the bias measures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub group: String,
    /// Whether the expected answer is the positive class (`None`: no expectation).
    pub truth: Option<bool>,
    /// Whether the model answered the positive class (no answer is not positive).
    pub predicted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRates {
    pub group: String,
    pub cases: u64,
    pub selection_rate: f64,
    /// NaN (null in JSON) when the group has no positive (negative) expectations.
    pub true_positive_rate: f64,
    pub false_positive_rate: f64,
    pub too_small: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disparities {
    pub demographic_parity_difference: f64,
    pub demographic_parity_ratio: f64,
    pub equalized_odds_difference: f64,
    pub equal_opportunity_difference: f64,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    n: u64,
    selected: u64,
    positives: u64,
    true_positives: u64,
    negatives: u64,
    false_positives: u64,
}

fn ratio(k: u64, n: u64) -> f64 {
    if n == 0 { f64::NAN } else { k as f64 / n as f64 }
}

fn tallies<'a>(cases: &'a [Labelled], idx: &[usize]) -> BTreeMap<&'a str, Tally> {
    let mut out: BTreeMap<&str, Tally> = BTreeMap::new();
    for c in idx.iter().map(|&i| &cases[i]) {
        let t = out.entry(c.group.as_str()).or_default();
        t.n += 1;
        t.selected += u64::from(c.predicted);
        match c.truth {
            Some(true) => {
                t.positives += 1;
                t.true_positives += u64::from(c.predicted);
            }
            Some(false) => {
                t.negatives += 1;
                t.false_positives += u64::from(c.predicted);
            }
            None => {}
        }
    }
    out
}

/// Each group's rates over all the cases.
pub fn groups(cases: &[Labelled], min_group_size: u64) -> Vec<GroupRates> {
    let all: Vec<usize> = (0..cases.len()).collect();
    tallies(cases, &all)
        .into_iter()
        .map(|(g, t)| GroupRates {
            group: g.to_string(),
            cases: t.n,
            selection_rate: ratio(t.selected, t.n),
            true_positive_rate: ratio(t.true_positives, t.positives),
            false_positive_rate: ratio(t.false_positives, t.negatives),
            too_small: t.n < min_group_size,
        })
        .collect()
}

/// The disparities among the groups of at least `min_group_size` cases, over
/// the cases at `idx` (a resample may repeat them). NaN where undefined.
pub fn disparities(cases: &[Labelled], idx: &[usize], min_group_size: u64) -> Disparities {
    let tallies: Vec<Tally> = tallies(cases, idx).into_values().filter(|t| t.n >= min_group_size).collect();
    let spread = |rate: fn(&Tally) -> f64| {
        let rates: Vec<f64> = tallies.iter().map(rate).collect();
        if rates.len() < 2 || rates.iter().any(|r| r.is_nan()) {
            return (f64::NAN, f64::NAN);
        }
        let (lo, hi) = rates.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        (hi - lo, if hi == 0.0 { f64::NAN } else { lo / hi })
    };
    let (dp_difference, dp_ratio) = spread(|t| ratio(t.selected, t.n));
    let (tpr_difference, _) = spread(|t| ratio(t.true_positives, t.positives));
    let (fpr_difference, _) = spread(|t| ratio(t.false_positives, t.negatives));
    Disparities {
        demographic_parity_difference: dp_difference,
        demographic_parity_ratio: dp_ratio,
        equalized_odds_difference: tpr_difference.max(fpr_difference),
        equal_opportunity_difference: tpr_difference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(group: &str, truth: bool, predicted: bool) -> Labelled {
        Labelled { group: group.into(), truth: Some(truth), predicted }
    }

    #[test]
    fn disparities_match_hand_computed_values() {
        // Group a: 4 cases, truth [1,1,0,0], predicted [1,0,1,0] → selection 0.5, TPR 0.5, FPR 0.5.
        // Group b: 4 cases, truth [1,1,0,0], predicted [1,1,0,0] → selection 0.5, TPR 1, FPR 0.
        // Group c: 4 cases, truth [1,1,0,0], predicted [1,1,1,1] → selection 1, TPR 1, FPR 1.
        let mut cases = Vec::new();
        for (g, predicted) in [("a", [true, false, true, false]), ("b", [true, true, false, false]), ("c", [true; 4])] {
            for (truth, p) in [true, true, false, false].into_iter().zip(predicted) {
                cases.push(case(g, truth, p));
            }
        }
        let all: Vec<usize> = (0..cases.len()).collect();
        let d = disparities(&cases, &all, 1);
        assert_eq!(d.demographic_parity_difference, 0.5);
        assert_eq!(d.demographic_parity_ratio, 0.5);
        assert_eq!(d.equal_opportunity_difference, 0.5);
        assert_eq!(d.equalized_odds_difference, 1.0, "FPR spans 0 to 1");
        // With a minimum size of 5 no group counts: nothing to compare.
        assert!(disparities(&cases, &all, 5).demographic_parity_difference.is_nan());
        let g = groups(&cases, 5);
        assert!(g.iter().all(|g| g.too_small && g.cases == 4));
        assert_eq!((g[1].true_positive_rate, g[1].false_positive_rate), (1.0, 0.0));
    }
}
