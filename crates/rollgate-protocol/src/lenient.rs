//! TF-Serving (and some KServe runtimes) write `NaN`, `Infinity` and
//! `-Infinity` as bare tokens, which is not JSON. Outside strings they are
//! quoted here before parsing, and read back as the numbers they stand for.

use serde_json::Value;

const TOKENS: [(&str, f64); 3] = [("-Infinity", f64::NEG_INFINITY), ("Infinity", f64::INFINITY), ("NaN", f64::NAN)];

/// The text with each bare non-finite token outside a string put in quotes.
pub fn quote_non_finite(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let (mut i, mut in_string) = (0, false);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' if i + 1 < body.len() => {
                    out.push(body[i + 1]);
                    i += 1;
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
            continue;
        }
        match TOKENS.iter().find(|(token, _)| body[i..].starts_with(token.as_bytes())) {
            Some((token, _)) => {
                out.push(b'"');
                out.extend_from_slice(token.as_bytes());
                out.push(b'"');
                i += token.len();
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A number, or one of the quoted non-finite tokens.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => TOKENS.iter().find(|(token, _)| token == s).map(|(_, value)| *value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_are_quoted_and_strings_left_alone() {
        let text = br#"{"a": [NaN, -Infinity, Infinity, 1.5], "b": "NaN stays \"Infinity\" here"}"#;
        let v: Value = serde_json::from_slice(&quote_non_finite(text)).unwrap();
        let a: Vec<f64> = v["a"].as_array().unwrap().iter().map(|x| number(x).unwrap()).collect();
        assert!(a[0].is_nan());
        assert_eq!(&a[1..], [f64::NEG_INFINITY, f64::INFINITY, 1.5]);
        assert_eq!(v["b"], r#"NaN stays "Infinity" here"#);
    }
}
