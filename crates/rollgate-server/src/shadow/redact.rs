//! What is kept of a request or an answer for the report's examples: secrets
//! replaced by the plan's patterns first, then cut to a length, so that no
//! part of a secret survives in the store, not even its start at the cut.

#[cfg(test)]
use rollgate_core::redact::REDACTED;

/// The most of one text an example keeps, in characters.
pub const KEPT_CHARS: usize = 2048;

pub struct Redactor(rollgate_core::redact::Redactor);

impl Redactor {
    /// The plan's patterns; one that does not compile is skipped (the plan
    /// check refuses such a plan, so only an old stored plan can have one).
    pub fn new(patterns: &[String]) -> Redactor {
        Redactor(rollgate_core::redact::Redactor::lenient(patterns))
    }

    /// `bytes` as text with every match replaced, cut to [`KEPT_CHARS`].
    pub fn keep(&self, bytes: &[u8]) -> String {
        let text = self.0.text(&String::from_utf8_lossy(bytes)).into_owned();
        match text.char_indices().nth(KEPT_CHARS) {
            Some((cut, _)) => format!("{}…[{} more bytes]", &text[..cut], text.len() - cut),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_core::plan::Plan;

    #[test]
    fn the_default_patterns_hide_tokens_keys_emails_and_card_numbers() {
        let redactor = Redactor::new(&Plan::default().shadow.redact);
        let kept = redactor.keep(
            br#"{"auth":"Bearer abc.DEF-123","key":"sk-live_0123456789abcdefXYZ","user":"ann@example.com","card":"4111 1111 1111 1111","amount":120}"#,
        );
        for secret in ["abc.DEF-123", "sk-live_0123456789abcdefXYZ", "ann@example.com", "4111 1111 1111 1111"] {
            assert!(!kept.contains(secret), "{secret} survived in {kept}");
        }
        assert!(kept.contains(r#""amount":120"#), "{kept}");
        assert_eq!(kept.matches(REDACTED).count(), 4, "{kept}");
    }

    #[test]
    fn a_secret_across_the_cut_is_redacted_before_it_is_cut() {
        let redactor = Redactor::new(&["SECRET[0-9]+".to_string()]);
        let text = format!("{}SECRET0123456789", "x".repeat(KEPT_CHARS - 8));
        let kept = redactor.keep(text.as_bytes());
        // Cut first, "SECRET01" would have been kept; redacted first, only the mark is cut.
        assert!(!kept.contains("SECRET"), "{kept}");
        assert!(kept.ends_with("[redacte…[2 more bytes]"), "{kept}");
        let long = redactor.keep("é".repeat(KEPT_CHARS + 10).as_bytes());
        assert!(long.starts_with(&"é".repeat(KEPT_CHARS)) && long.ends_with("[20 more bytes]"), "{long}");
    }
}
