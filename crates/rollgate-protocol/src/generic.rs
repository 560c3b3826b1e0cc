//! Any JSON answer: the service's JSON pointers name its label, score or text.

use crate::{Picked, Pointers, ProtocolError, json, lenient};
use serde_json::Value;

pub fn parse(body: &[u8], pointers: &Pointers) -> Result<Picked, ProtocolError> {
    let v = json(&lenient::quote_non_finite(body))?;
    let at = |pointer: &Option<String>| -> Result<Option<&Value>, ProtocolError> {
        match pointer {
            Some(p) => v.pointer(p).map(Some).ok_or_else(|| ProtocolError::Missing(p.clone())),
            None => Ok(None),
        }
    };
    let label = at(&pointers.label)?.map(|l| match l {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let score = match at(&pointers.score)? {
        Some(s) => Some(lenient::number(s).ok_or_else(|| ProtocolError::WrongType {
            field: pointers.score.clone().unwrap_or_default(),
            expected: "a number",
            found: crate::kind_of(s),
        })?),
        None => None,
    };
    let text = at(&pointers.text)?.map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string));
    // With no pointer at all, the whole answer is the text.
    let text = if pointers.label.is_none() && pointers.score.is_none() && pointers.text.is_none() {
        Some(canonical(&v))
    } else {
        text
    };
    Ok(Picked { label, score, text })
}

/// JSON with object keys in order, so that two equal answers read the same.
fn canonical(v: &Value) -> String {
    // serde_json's Map keeps keys sorted (no preserve_order feature): to_string is canonical.
    v.to_string()
}
