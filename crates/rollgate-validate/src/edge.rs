//! Edge-case probes, generated from one well-formed request of the service's
//! protocol (a suite's first case, a staging sample, or the protocol's
//! example): an empty body, malformed JSON, the wrong top-level type, missing
//! fields, wrong types, very long text, unusual Unicode and a huge batch.
//! The rule: the model must answer below 500 within the timeout (2xx for an
//! unusual but valid input, 4xx for an invalid one); a 5xx, a hang or a
//! dropped connection fails. A failed probe is tried again, and fails only
//! when every try does: a model's background error rate does not fail it, an
//! input that breaks the model does.

use serde::Serialize;
use serde_json::{Value, json};

/// How many times a probe is sent before it counts as failed.
pub const TRIES: usize = 3;
/// The length of the "very long" text.
pub const LONG_TEXT: usize = 100_000;
/// The number of items in the "huge batch".
pub const HUGE_BATCH: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub name: &'static str,
    #[serde(skip)]
    pub body: String,
    pub bytes: usize,
}

/// A well-formed request of each protocol, when nothing better is at hand.
pub fn example(protocol: rollgate_protocol::Protocol) -> Value {
    use rollgate_protocol::Protocol;
    match protocol {
        Protocol::OpenaiChat => json!({ "model": "model", "messages": [{ "role": "user", "content": "Hello" }] }),
        Protocol::KserveV2 => {
            json!({ "inputs": [{ "name": "input", "shape": [1], "datatype": "FP32", "data": [1.0] }] })
        }
        Protocol::TfServing => json!({ "instances": [[1.0]] }),
        Protocol::Json => json!({ "input": "hello" }),
    }
}

/// The probes made from `sample`.
pub fn probes(sample: &Value) -> Vec<Probe> {
    let text = sample.to_string();
    // Cut at a character boundary: a sample may hold any Unicode.
    let middle = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let half = &text[..middle];
    let bodies: Vec<(&'static str, String)> = vec![
        ("empty body", String::new()),
        ("malformed JSON", format!("{half}{{")),
        ("wrong top-level type", "[null]".into()),
        ("missing fields", "{}".into()),
        (
            "wrong types",
            map_leaves(sample, &|v| match v {
                Value::String(_) => json!(12345),
                Value::Number(_) | Value::Bool(_) => json!("twelve"),
                other => other.clone(),
            })
            .to_string(),
        ),
        (
            "very long text",
            map_leaves(sample, &|v| match v {
                Value::String(_) => json!("a".repeat(LONG_TEXT)),
                other => other.clone(),
            })
            .to_string(),
        ),
        (
            "unusual Unicode",
            map_leaves(sample, &|v| match v {
                // Right-to-left override, zero-width space, a NUL, astral plane letters and emoji, a combining mark.
                Value::String(s) => json!(format!("\u{202e}\u{200b}\u{0}𝕏🙂e\u{301}\u{fffd}{s}")),
                other => other.clone(),
            })
            .to_string(),
        ),
        ("huge batch", huge_batch(sample).to_string()),
    ];
    bodies.into_iter().map(|(name, body)| Probe { name, bytes: body.len(), body }).collect()
}

/// `v` with `f` applied to every leaf (string, number, bool, null).
fn map_leaves(v: &Value, f: &dyn Fn(&Value) -> Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), map_leaves(v, f))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_leaves(v, f)).collect()),
        leaf => f(leaf),
    }
}

/// Every outermost array grown to many copies of its first item; a sample without arrays is sent many times over in one.
fn huge_batch(v: &Value) -> Value {
    fn grow(v: &Value, grew: &mut bool) -> Value {
        match v {
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), grow(v, grew))).collect()),
            Value::Array(items) if !items.is_empty() => {
                *grew = true;
                // Only the outermost arrays grow: nested ones would multiply the size.
                Value::Array(vec![items[0].clone(); HUGE_BATCH])
            }
            other => other.clone(),
        }
    }
    let mut grew = false;
    let out = grow(v, &mut grew);
    if grew { out } else { Value::Array(vec![v.clone(); HUGE_BATCH]) }
}

/// One try of a probe: the status the model answered, or what happened instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Try {
    Status(u16),
    /// No answer within the timeout.
    Hang,
    /// Refused, reset, or cut off mid-answer.
    Dropped(String),
}

impl Try {
    pub fn passed(&self) -> bool {
        matches!(self, Try::Status(s) if *s < 500)
    }

    pub fn describe(&self) -> String {
        match self {
            Try::Status(s) => format!("status {s}"),
            Try::Hang => "no answer within the timeout".into(),
            Try::Dropped(why) => format!("connection dropped ({why})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub probe: &'static str,
    pub bytes: usize,
    pub passed: bool,
    pub tries: Vec<Try>,
    pub why: String,
}

/// Sends `probe` with `send` until a try passes or [`TRIES`] have failed, and judges it. `send` is the
/// shell's I/O: it sends a body and says what came back.
pub async fn attempt<F, Fut>(probe: &Probe, mut send: F) -> ProbeResult
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Try>,
{
    let mut tries = Vec::new();
    while tries.len() < TRIES && !tries.iter().any(Try::passed) {
        tries.push(send(probe.body.clone()).await);
    }
    judge(probe, tries)
}

/// A probe's result from its tries (at most [`TRIES`]; the shell stops at the first that passes).
pub fn judge(probe: &Probe, tries: Vec<Try>) -> ProbeResult {
    let passed = tries.iter().any(Try::passed);
    let shown: Vec<String> = tries.iter().map(Try::describe).collect();
    let why = if passed {
        format!("{}: answered ({})", probe.name, shown.join(", then "))
    } else {
        format!("{}: {} in {} tries", probe.name, shown.join(", "), tries.len())
    };
    ProbeResult { probe: probe.name, bytes: probe.bytes, passed, tries, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_made_from_the_sample() {
        let sample = json!({ "inputs": [{ "name": "x", "shape": [1], "data": [1.5] }] });
        let probes = probes(&sample);
        let body = |name: &str| probes.iter().find(|p| p.name == name).unwrap().body.clone();
        assert_eq!(probes.len(), 8);
        assert_eq!(body("empty body"), "");
        assert!(serde_json::from_str::<Value>(&body("malformed JSON")).is_err());
        let wrong: Value = serde_json::from_str(&body("wrong types")).unwrap();
        assert_eq!(
            (wrong["inputs"][0]["name"].clone(), wrong["inputs"][0]["data"][0].clone()),
            (json!(12345), json!("twelve"))
        );
        let long: Value = serde_json::from_str(&body("very long text")).unwrap();
        assert_eq!(long["inputs"][0]["name"].as_str().unwrap().len(), LONG_TEXT);
        let batch: Value = serde_json::from_str(&body("huge batch")).unwrap();
        assert_eq!(batch["inputs"].as_array().unwrap().len(), HUGE_BATCH);
        assert!(body("unusual Unicode").contains("\\u0000"), "a NUL, escaped as JSON requires");
    }

    #[test]
    fn a_probe_passes_below_500_and_fails_only_when_every_try_fails() {
        let probe = &probes(&json!({ "input": "hi" }))[0];
        assert!(judge(probe, vec![Try::Status(400)]).passed);
        assert!(judge(probe, vec![Try::Status(200)]).passed, "an unusual but valid input may be answered");
        assert!(judge(probe, vec![Try::Status(503), Try::Status(200)]).passed, "a background error is tried again");
        let failed = judge(probe, vec![Try::Status(500), Try::Hang, Try::Dropped("reset".into())]);
        assert!(!failed.passed);
        assert_eq!(
            failed.why,
            "empty body: status 500, no answer within the timeout, connection dropped (reset) in 3 tries"
        );
    }
}
