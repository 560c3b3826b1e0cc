//! Classification: the top label of each answer (per row, for a batch), and
//! the change in score where both sides give one.

use super::{PairResult, first_numbers};
use crate::{Output, TensorData};

/// Each row's top label, and each row's top score, where the output has them.
pub(super) fn labels(output: &Output) -> (Vec<String>, Vec<f64>) {
    match output {
        Output::Picked(p) => (p.label.iter().cloned().collect(), p.score.into_iter().collect()),
        Output::Chat(c) => (c.choices.first().map(|c| c.text.trim().to_string()).into_iter().collect(), Vec::new()),
        Output::Tensors { tensors } => {
            if let Some(strings) = tensors.iter().find_map(|t| match &t.data {
                TensorData::Strings(s) => Some(s.clone()),
                _ => None,
            }) {
                return (strings, Vec::new());
            }
            let Some((tensor, numbers)) = first_numbers(tensors) else { return (Vec::new(), Vec::new()) };
            let width = match tensor.shape.as_slice() {
                [_, k] if *k > 1 => *k,
                _ => 1,
            };
            if width == 1 {
                // One score per row: a binary classifier at 0.5.
                let labels = numbers.iter().map(|s| if *s >= 0.5 { "1".to_string() } else { "0".to_string() });
                return (labels.collect(), numbers.to_vec());
            }
            numbers
                .chunks(width)
                .map(|row| {
                    let (top, score) = row
                        .iter()
                        .enumerate()
                        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best });
                    (top.to_string(), score)
                })
                .unzip()
        }
    }
}

pub(super) fn compare(production: &Output, candidate: &Output) -> PairResult {
    let ((a, score_a), (b, score_b)) = (labels(production), labels(candidate));
    if a.is_empty() || b.is_empty() {
        return PairResult::disagree("one side has no label to compare");
    }
    if a.len() != b.len() {
        return PairResult::disagree(format!("{} rows against {}", a.len(), b.len()));
    }
    let flipped = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    let score_delta = match (score_a.first(), score_b.first()) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    PairResult {
        agree: flipped == 0,
        why: if flipped == 0 {
            String::new()
        } else {
            format!("{flipped} of {} labels flipped ({} → {})", a.len(), a[0], b[0])
        },
        labels: Some((a.join(","), b.join(","))),
        score_delta,
        ..PairResult::default()
    }
}
