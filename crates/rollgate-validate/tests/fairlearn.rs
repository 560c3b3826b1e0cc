//! The bias measures against fairlearn itself (PyPI; scripts/test.sh
//! installs it) on data this test generates: three groups, one of them
//! treated worse, with seeded randomness.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_validate::bias::{Labelled, disparities, groups};
use std::io::Write;
use std::process::{Command, Stdio};

const ORACLE: &str = r#"
import json, sys
import numpy as np
from fairlearn.metrics import (MetricFrame, selection_rate, true_positive_rate, false_positive_rate,
    demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference, equal_opportunity_difference)
d = json.load(sys.stdin)
y_true, y_pred, g = np.array(d["truth"]), np.array(d["predicted"]), np.array(d["group"])
frame = MetricFrame(metrics={"selection": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
                    y_true=y_true, y_pred=y_pred, sensitive_features=g)
print(json.dumps({
    "by_group": {k: {m: float(v) for m, v in row.items()} for k, row in frame.by_group.to_dict(orient="index").items()},
    "dp_difference": float(demographic_parity_difference(y_true, y_pred, sensitive_features=g)),
    "dp_ratio": float(demographic_parity_ratio(y_true, y_pred, sensitive_features=g)),
    "eo_difference": float(equalized_odds_difference(y_true, y_pred, sensitive_features=g)),
    "eop_difference": float(equal_opportunity_difference(y_true, y_pred, sensitive_features=g)),
}))
"#;

fn oracle(cases: &[Labelled]) -> serde_json::Value {
    let input = serde_json::json!({
        "truth": cases.iter().map(|c| u8::from(c.truth.unwrap())).collect::<Vec<_>>(),
        "predicted": cases.iter().map(|c| u8::from(c.predicted)).collect::<Vec<_>>(),
        "group": cases.iter().map(|c| c.group.clone()).collect::<Vec<_>>(),
    });
    let mut child = Command::new("python3")
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the oracle failed (is fairlearn installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bias_measures_match_fairlearn() {
    for seed in 0..5u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cases = Vec::new();
        for (group, n, skew) in [("18-25", 300, 0.25), ("26-40", 500, 0.0), ("41+", 200, -0.1)] {
            for _ in 0..n {
                let truth = rng.random::<f64>() < 0.4;
                // The model favours some groups: more positives, right or wrong.
                let p = if truth { 0.8 } else { 0.15 } + skew * rng.random::<f64>();
                cases.push(Labelled { group: group.into(), truth: Some(truth), predicted: rng.random::<f64>() < p });
            }
        }
        let expected = oracle(&cases);
        let all: Vec<usize> = (0..cases.len()).collect();
        let d = disparities(&cases, &all, 1);
        let close = |ours: f64, theirs: &serde_json::Value, what: &str| {
            let theirs = theirs.as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-12, "seed {seed} {what}: ours {ours}, fairlearn {theirs}");
        };
        close(d.demographic_parity_difference, &expected["dp_difference"], "demographic parity difference");
        close(d.demographic_parity_ratio, &expected["dp_ratio"], "demographic parity ratio");
        close(d.equalized_odds_difference, &expected["eo_difference"], "equalized odds difference");
        close(d.equal_opportunity_difference, &expected["eop_difference"], "equal opportunity difference");
        for g in groups(&cases, 1) {
            let theirs = &expected["by_group"][&g.group];
            close(g.selection_rate, &theirs["selection"], "selection rate");
            close(g.true_positive_rate, &theirs["tpr"], "true positive rate");
            close(g.false_positive_rate, &theirs["fpr"], "false positive rate");
        }
        assert!(d.demographic_parity_difference > 0.05, "the generated data is biased: {d:?}");
    }
}
