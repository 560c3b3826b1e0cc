//! Numbers and tensors: the same names, shapes and types, and every value
//! within the tolerance of production's. NaN agrees only with NaN, an
//! infinity only with the same infinity.

use super::{CompareConfig, PairResult};
use crate::{Output, Tensor, TensorData};

/// The numbers of an output, tensor by tensor (name, shape, datatype, values).
fn numbers(output: &Output) -> Vec<(String, Vec<usize>, String, Vec<f64>)> {
    match output {
        Output::Tensors { tensors } => tensors.iter().filter_map(as_numbers).collect(),
        Output::Picked(p) => p.score.map(|s| ("score".into(), vec![1], "FP64".into(), vec![s])).into_iter().collect(),
        Output::Chat(_) => Vec::new(),
    }
}

fn as_numbers(t: &Tensor) -> Option<(String, Vec<usize>, String, Vec<f64>)> {
    match &t.data {
        TensorData::Numbers(n) => Some((t.name.clone(), t.shape.clone(), t.datatype.clone(), n.clone())),
        TensorData::Bools(b) => Some((
            t.name.clone(),
            t.shape.clone(),
            t.datatype.clone(),
            b.iter().map(|&x| f64::from(u8::from(x))).collect(),
        )),
        TensorData::Strings(_) => None,
    }
}

pub(super) fn compare(config: &CompareConfig, production: &Output, candidate: &Output) -> PairResult {
    let (a, b) = (numbers(production), numbers(candidate));
    if a.is_empty() {
        return PairResult::disagree("production's answer has no numbers to compare");
    }
    if a.len() != b.len() {
        return PairResult::disagree(format!("{} numeric outputs against {}", a.len(), b.len()));
    }
    let (mut max, mut sum, mut count, mut outside) = (0.0_f64, 0.0, 0usize, 0usize);
    let mut why = String::new();
    for ((name_a, shape_a, type_a, xs), (name_b, shape_b, type_b, ys)) in a.iter().zip(&b) {
        if name_a != name_b || shape_a != shape_b || type_a != type_b {
            return PairResult::disagree(format!(
                "output `{name_a}` {shape_a:?} {type_a} against `{name_b}` {shape_b:?} {type_b}"
            ));
        }
        for (x, y) in xs.iter().zip(ys) {
            let (diff, within) = difference(*x, *y, config);
            if !within {
                outside += 1;
                if why.is_empty() {
                    why = format!("`{name_a}`: {y} against production's {x}");
                }
            }
            if diff.is_finite() {
                max = max.max(diff);
                sum += diff;
                count += 1;
            } else {
                max = f64::INFINITY;
            }
        }
    }
    PairResult {
        agree: outside == 0,
        why: if outside == 0 {
            String::new()
        } else {
            format!("{outside} value(s) outside the tolerance; first: {why}")
        },
        max_abs_diff: Some(max),
        mean_abs_diff: Some(if count == 0 { 0.0 } else { sum / count as f64 }),
        ..PairResult::default()
    }
}

/// |x − y| and whether it is within the tolerance; non-finite values only match themselves.
fn difference(x: f64, y: f64, config: &CompareConfig) -> (f64, bool) {
    if x.is_nan() || y.is_nan() {
        return if x.is_nan() && y.is_nan() { (0.0, true) } else { (f64::INFINITY, false) };
    }
    if x.is_infinite() || y.is_infinite() {
        return if x == y { (0.0, true) } else { (f64::INFINITY, false) };
    }
    let diff = (x - y).abs();
    (diff, diff <= config.abs_tolerance || diff <= config.rel_tolerance * x.abs())
}
