//! rollgate's Mann-Whitney test against scipy's (`scripts/oracles/mann_whitney.py`),
//! on samples generated here: with and without ties, of several sizes.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_judge::mann_whitney::mann_whitney;
use std::io::Write;
use std::process::{Command, Stdio};

fn cases() -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut out = Vec::new();
    for (nx, ny, shift, rounding) in
        [(5, 7, 0.0, 0.0), (20, 20, 0.3, 0.0), (30, 45, 0.0, 0.5), (100, 80, 0.2, 0.1), (240, 240, 0.05, 0.01)]
    {
        for _ in 0..4 {
            let mut draw = |n: usize, shift: f64| -> Vec<f64> {
                (0..n)
                    .map(|_| {
                        let v: f64 = rng.random::<f64>() + shift;
                        // Rounding makes ties, as per-step error rates of sparse errors have.
                        if rounding > 0.0 { (v / rounding).round() * rounding } else { v }
                    })
                    .collect()
            };
            let x = draw(nx, shift);
            out.push((x, draw(ny, 0.0)));
        }
    }
    // Mostly zeros with a few values: Kayenta's error-rate series at a 1% canary.
    out.push((vec![0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.2, 0.0], vec![0.0, 0.01, 0.0, 0.02, 0.0, 0.01, 0.0, 0.0, 0.0]));
    out
}

#[test]
fn mann_whitney_matches_scipy() {
    let cases = cases();
    let input: Vec<_> = cases.iter().map(|(x, y)| serde_json::json!({ "x": x, "y": y })).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/oracles/mann_whitney.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the oracle (scripts/test.sh installs python3-scipy)");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the oracle failed (is python3-scipy installed?)");
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers.len(), cases.len());
    for ((x, y), answer) in cases.iter().zip(&answers) {
        let ours = mann_whitney(x, y);
        let (u, p) = (answer["u"].as_f64().unwrap(), answer["p"].as_f64().unwrap());
        assert!((ours.u - u).abs() < 1e-9, "U {} vs scipy {u} (n = {}, {})", ours.u, x.len(), y.len());
        assert!((ours.p_two_sided - p).abs() < 1e-9 * p.max(1e-3), "p {} vs scipy {p}", ours.p_two_sided);
    }
}
