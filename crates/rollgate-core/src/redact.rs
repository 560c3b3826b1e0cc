//! Secrets taken out of a request or an answer before any of it is kept:
//! regular expressions (tokens, keys, e-mail addresses and card numbers are
//! built in) and, for JSON bodies, JSON pointers whose values go whole.

use regex::Regex;
use std::borrow::Cow;

/// What stands where a secret was.
pub const REDACTED: &str = "[redacted]";

/// Bearer tokens, API keys (`sk-…`, `pk-…`, `rk-…`), e-mail addresses and card numbers.
pub const BUILT_IN: [&str; 4] = [
    r"(?i)bearer\s+[a-z0-9._~+/-]+=*",
    r"\b(sk|pk|rk)-[A-Za-z0-9_-]{16,}",
    r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    r"\b\d(?:[ -]?\d){12,18}\b",
];

#[derive(Debug, Clone)]
pub struct Redactor {
    patterns: Vec<Regex>,
    pointers: Vec<String>,
}

impl Redactor {
    /// Matches of `patterns` and values at `pointers` redacted; a pattern
    /// that does not compile is refused, naming it.
    pub fn new(patterns: &[String], pointers: &[String]) -> Result<Redactor, String> {
        let patterns = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("redaction pattern `{p}` does not compile: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Redactor { patterns, pointers: pointers.to_vec() })
    }

    /// The built-in patterns, then `extra`.
    pub fn with_built_in(extra: &[String], pointers: &[String]) -> Result<Redactor, String> {
        let all: Vec<String> = BUILT_IN.iter().map(|p| p.to_string()).chain(extra.iter().cloned()).collect();
        Redactor::new(&all, pointers)
    }

    /// `patterns` that compile; the others skipped (for a plan stored before the check refused them).
    pub fn lenient(patterns: &[String]) -> Redactor {
        Redactor { patterns: patterns.iter().filter_map(|p| Regex::new(p).ok()).collect(), pointers: Vec::new() }
    }

    /// `text` with every match of every pattern replaced.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for pattern in &self.patterns {
            if let Cow::Owned(replaced) = pattern.replace_all(&out, REDACTED) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// A body as JSON with its pointers' values and every pattern's match
    /// redacted; a body that is not JSON becomes a redacted string.
    pub fn body(&self, bytes: &[u8]) -> serde_json::Value {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return serde_json::Value::String(self.text(&String::from_utf8_lossy(bytes)).into_owned());
        };
        for pointer in &self.pointers {
            if let Some(secret) = value.pointer_mut(pointer) {
                *secret = serde_json::Value::String(REDACTED.into());
            }
        }
        self.json(&mut value);
        value
    }

    /// Every string (and object key) in `value` redacted by the patterns.
    fn json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(redacted) = self.text(s) {
                    *s = redacted;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&key).into_owned(), v);
                }
            }
            // A number can be a card number too (written without quotes).
            serde_json::Value::Number(n) => {
                let text = n.to_string();
                if let Cow::Owned(redacted) = self.text(&text) {
                    *value = serde_json::Value::String(redacted);
                }
            }
            serde_json::Value::Bool(_) | serde_json::Value::Null => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn built_in() -> Redactor {
        Redactor::with_built_in(&[], &["/user".to_string()]).unwrap()
    }

    proptest! {
        /// Whatever secret of a built-in kind a request carries, and wherever
        /// (a string, a key, free text, a number), none of it is kept.
        #[test]
        fn no_generated_secret_survives(
            local in "[a-z][a-z0-9._%+-]{0,15}",
            domain in "[a-z][a-z0-9-]{0,10}\\.(com|org|io|de)",
            card in proptest::collection::vec(0u8..10, 13..=19),
            separator in prop_oneof![Just(""), Just(" "), Just("-")],
            key_kind in prop_oneof![Just("sk"), Just("pk"), Just("rk")],
            key in "[A-Za-z0-9_-]{16,40}",
            token in "[A-Za-z0-9._~+/-]{8,40}",
            user in "[A-Za-z0-9 ]{1,20}",
        ) {
            let email = format!("{local}@{domain}");
            let digits: Vec<String> = card.iter().map(u8::to_string).collect();
            let card = digits.join(separator);
            let api_key = format!("{key_kind}-{key}");
            let body = serde_json::json!({
                "user": user,
                "messages": [{ "role": "user", "content": format!("mail {email} or call, card {card}, key {api_key}") }],
                "headers": { "authorization": format!("Bearer {token}") },
                email.clone(): 1,
                "card_number": card.replace([' ', '-'], "").parse::<u64>().ok(),
            });
            let redacted = built_in().body(body.to_string().as_bytes());
            let kept = redacted.to_string();
            for secret in [&email, &card, &api_key, &token, &card.replace([' ', '-'], "")] {
                prop_assert!(!kept.contains(secret.as_str()), "{} survived in {}", secret, kept);
            }
            prop_assert_eq!(&redacted["user"], REDACTED, "the pointer's value survived: {}", kept);
        }
    }

    #[test]
    fn what_is_not_secret_is_kept_and_a_body_that_is_not_json_is_redacted_as_text() {
        let kept = built_in().body(br#"{"amount":120,"country":"FR","note":"order 1234"}"#);
        assert_eq!(kept, serde_json::json!({ "amount": 120, "country": "FR", "note": "order 1234" }));
        let text = built_in().body(b"not json: ann@example.com");
        assert_eq!(text, serde_json::json!("not json: [redacted]"));
        let err = Redactor::new(&["(unclosed".to_string()], &[]).unwrap_err();
        assert!(err.contains("`(unclosed` does not compile"), "{err}");
    }
}
