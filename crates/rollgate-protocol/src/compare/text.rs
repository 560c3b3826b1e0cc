//! Text: equal after normalisation, or close by token F1; ROUGE-L beside it;
//! a refusal on one side only is always a disagreement.

use super::{CompareConfig, PairResult};
use regex::Regex;
use std::collections::HashMap;

/// ROUGE-L's longest common subsequence costs |a|·|b|: past this many tokens a side is cut.
const ROUGE_TOKENS: usize = 2000;

pub(super) fn normalise(config: &CompareConfig, text: &str) -> String {
    let text = if config.lowercase { text.to_lowercase() } else { text.to_string() };
    if config.collapse_whitespace { text.split_whitespace().collect::<Vec<_>>().join(" ") } else { text }
}

/// Words and numbers, punctuation dropped.
pub(super) fn tokens(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).collect()
}

/// Harmonic mean of precision and recall over token counts (SQuAD's F1); two empty texts score 1.
pub(super) fn token_f1(a: &[&str], b: &[&str]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in a {
        *counts.entry(t).or_default() += 1;
    }
    let common: i64 = b
        .iter()
        .filter(|t| {
            let left = counts.entry(t).or_default();
            *left -= 1;
            *left >= 0
        })
        .count() as i64;
    if common == 0 {
        return 0.0;
    }
    let (precision, recall) = (common as f64 / b.len() as f64, common as f64 / a.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// ROUGE-L F-measure (β = 1): the longest common subsequence of tokens.
pub(super) fn rouge_l(a: &[&str], b: &[&str]) -> f64 {
    let (a, b) = (&a[..a.len().min(ROUGE_TOKENS)], &b[..b.len().min(ROUGE_TOKENS)]);
    if a.is_empty() || b.is_empty() {
        return if a.is_empty() && b.is_empty() { 1.0 } else { 0.0 };
    }
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y { diagonal + 1 } else { above.max(row[j]) };
            diagonal = above;
        }
    }
    let lcs = row[b.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (lcs / b.len() as f64, lcs / a.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

pub(super) fn compare(config: &CompareConfig, refusals: &[Regex], production: &str, candidate: &str) -> PairResult {
    let refused = |t: &str| refusals.iter().any(|r| r.is_match(t));
    let (na, nb) = (normalise(config, production), normalise(config, candidate));
    let (ta, tb) = (tokens(&na), tokens(&nb));
    let f1 = token_f1(&ta, &tb);
    let refusal = (refused(production), refused(candidate));
    let close = if config.text_agreement >= 1.0 { na == nb } else { f1 >= config.text_agreement };
    let agree = close && refusal.0 == refusal.1;
    let why = match (agree, refusal) {
        (true, _) => String::new(),
        (false, (a, b)) if a != b => {
            format!("{} refused and the other did not", if b { "the candidate" } else { "production" })
        }
        _ => format!("the texts differ (token F1 {f1:.3})"),
    };
    PairResult {
        agree,
        why,
        token_f1: Some(f1),
        rouge_l: Some(rouge_l(&ta, &tb)),
        refusals: Some(refusal),
        length_ratio: (!production.is_empty())
            .then(|| candidate.chars().count() as f64 / production.chars().count() as f64),
        ..PairResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_f1_and_rouge_l_match_hand_computed_values() {
        let (a, b) = (tokens("the cat sat on the mat"), tokens("the cat lay on a mat"));
        // Common tokens: the, cat, on, mat = 4 of 6 each: F1 = 4/6.
        assert!((token_f1(&a, &b) - 4.0 / 6.0).abs() < 1e-12);
        // LCS: the cat on mat = 4: ROUGE-L = 4/6.
        assert!((rouge_l(&a, &b) - 4.0 / 6.0).abs() < 1e-12);
        let (c, d) = (tokens("a b c d"), tokens("d c b a"));
        assert_eq!(token_f1(&c, &d), 1.0, "the same bag of tokens");
        assert!((rouge_l(&c, &d) - 0.25).abs() < 1e-12, "but in reverse order: LCS 1 of 4");
        assert_eq!((token_f1(&[], &[]), rouge_l(&[], &tokens("x"))), (1.0, 0.0));
    }
}
