//! Problems found in a config file, each with the place it is at
//! (file:line:column) and a hint saying what to do.

use serde::Serialize;
use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error: {}", self.file, self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    /// A problem found outside the parser (the environment a config needs), at `span` of `text`.
    pub fn at(file: &str, text: &str, span: std::ops::Range<usize>, message: String, hint: String) -> Diagnostic {
        Locator::new(file, text).at(Some(span), message, Some(hint))
    }
}

/// Turns byte spans into line and column numbers for one file.
pub(super) struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Locator<'a> {
        Locator { file, text }
    }

    /// A diagnostic at the start of `span` (1-based line and column, columns in characters).
    pub(super) fn at(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        // Spans come from the parser and fall on character boundaries; a
        // stray one is moved back to the nearest boundary, never panicking.
        let offset = (0..=offset).rev().find(|&i| self.text.is_char_boundary(i)).unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Diagnostic { file: self.file.to_string(), line, column, message: message.into(), hint }
    }

    /// A diagnostic from a TOML parse or deserialization error, with a hint
    /// chosen from what the message says.
    pub(super) fn toml_error(&self, err: &toml::de::Error) -> Diagnostic {
        let message = err.message().trim().to_string();
        let hint = hint_for(&message);
        self.at(err.span(), message, hint)
    }
}

fn hint_for(message: &str) -> Option<String> {
    let hint = if message.contains("unknown field") {
        "remove or correct the key; `rollgate init` writes an example with every key explained"
    } else if message.contains("missing field") {
        "add the missing key; `rollgate init` writes an example with every key explained"
    } else if message.contains("invalid type") {
        "check the value's type: strings in quotes, numbers bare, tables in { } or under [headers]"
    } else if message.contains("unknown variant") {
        "use one of the values the message lists"
    } else {
        "fix the value as the message says; `rollgate plan show default` prints every plan key with its default"
    };
    Some(hint.to_string())
}
