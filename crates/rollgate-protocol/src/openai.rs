//! OpenAI-compatible chat completions and completions, whole or streamed as
//! server-sent events (each `data:` a chunk, `[DONE]` the end): streamed
//! content, tool-call fragments, finish reasons and the closing `usage` are
//! put back together into one answer.

use crate::{Chat, Choice, ProtocolError, ToolCall, Usage, json, kind_of};
use serde_json::Value;

pub fn parse(body: &[u8]) -> Result<Chat, ProtocolError> {
    if is_event_stream(body) { reassemble(body) } else { whole(&json(body)?) }
}

/// A body of server-sent events starts with a field (`data:`, `event:`, …) or a comment.
fn is_event_stream(body: &[u8]) -> bool {
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).map_or(&[][..], |i| &body[i..]);
    [&b"data:"[..], b"event:", b"id:", b"retry:", b":"].iter().any(|field| start.starts_with(field))
}

fn whole(v: &Value) -> Result<Chat, ProtocolError> {
    let choices = array(v, "choices")?;
    let choices = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let message = c.get("message");
            let text = match (message.and_then(|m| m.get("content")), c.get("text")) {
                (Some(content), _) => content_text(content),
                (None, Some(text)) => text.as_str().unwrap_or_default().to_string(),
                (None, None) => return Err(ProtocolError::Missing(format!("choices[{i}].message or .text"))),
            };
            let tool_calls = message
                .and_then(|m| m.get("tool_calls"))
                .and_then(Value::as_array)
                .map(|calls| calls.iter().map(tool_call).collect())
                .unwrap_or_default();
            Ok(Choice { text, finish_reason: string(c.get("finish_reason")), tool_calls })
        })
        .collect::<Result<_, _>>()?;
    Ok(Chat { model: string(v.get("model")), choices, usage: usage(v.get("usage")) })
}

/// Message content is a string, or (multimodal) a list of parts of which the text parts count.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

fn tool_call(v: &Value) -> ToolCall {
    let function = v.get("function");
    ToolCall {
        name: string(function.and_then(|f| f.get("name"))).unwrap_or_default(),
        arguments: string(function.and_then(|f| f.get("arguments"))).unwrap_or_default(),
    }
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>, ProtocolError> {
    match v.get(field) {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => {
            Err(ProtocolError::WrongType { field: field.into(), expected: "an array", found: kind_of(other) })
        }
        None => Err(ProtocolError::Missing(field.into())),
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn usage(v: Option<&Value>) -> Option<Usage> {
    let v = v?;
    let n = |field: &str| v.get(field).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage { prompt_tokens: n("prompt_tokens"), completion_tokens: n("completion_tokens") })
}

/// One choice being put back together from its deltas.
#[derive(Default)]
struct Partial {
    text: String,
    finish_reason: Option<String>,
    /// Tool calls by their index in the deltas.
    tool_calls: Vec<(u64, ToolCall)>,
}

fn reassemble(body: &[u8]) -> Result<Chat, ProtocolError> {
    let text = String::from_utf8_lossy(body);
    let mut chat = Chat::default();
    let mut partials: Vec<(u64, Partial)> = Vec::new();
    let mut done = false;
    let normalized = text.replace("\r\n", "\n");
    for event in normalized.split("\n\n") {
        // The data of an event: its `data:` lines, joined (comments and other fields set aside).
        let data: Vec<&str> =
            event.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
        if data.is_empty() {
            continue;
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            done = true;
            break;
        }
        let chunk: Value = serde_json::from_str(&data).map_err(|e| {
            if e.is_eof() {
                ProtocolError::Truncated(format!("the last event: {e}"))
            } else {
                ProtocolError::BadEvent(e.to_string())
            }
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(ProtocolError::BadEvent(format!("the stream reported an error: {error}")));
        }
        if chat.model.is_none() {
            chat.model = string(chunk.get("model"));
        }
        if let Some(u) = usage(chunk.get("usage")) {
            chat.usage = Some(u);
        }
        for c in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let at = match partials.iter().position(|(i, _)| *i == index) {
                Some(at) => at,
                None => {
                    partials.push((index, Partial::default()));
                    partials.len() - 1
                }
            };
            let partial = &mut partials[at].1;
            let delta = c.get("delta");
            if let Some(piece) = delta.and_then(|d| d.get("content")).or_else(|| c.get("text")) {
                partial.text.push_str(&content_text(piece));
            }
            for call in delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
                add_tool_call_fragment(&mut partial.tool_calls, call);
            }
            if let Some(reason) = string(c.get("finish_reason")) {
                partial.finish_reason = Some(reason);
            }
        }
    }
    // Without `[DONE]`, the stream counts as whole only if every choice said why it finished.
    let all_finished = !partials.is_empty() && partials.iter().all(|(_, p)| p.finish_reason.is_some());
    if !done && !all_finished {
        return Err(ProtocolError::Truncated("the stream ended before `[DONE]` or a finish reason".into()));
    }
    partials.sort_by_key(|(i, _)| *i);
    chat.choices = partials
        .into_iter()
        .map(|(_, p)| Choice {
            text: p.text,
            finish_reason: p.finish_reason,
            tool_calls: p.tool_calls.into_iter().map(|(_, c)| c).collect(),
        })
        .collect();
    Ok(chat)
}

/// A tool call arrives in pieces: its name in the first, its arguments spread over the rest.
fn add_tool_call_fragment(calls: &mut Vec<(u64, ToolCall)>, fragment: &Value) {
    let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(calls.len() as u64);
    let function = fragment.get("function");
    let at = match calls.iter().position(|(i, _)| *i == index) {
        Some(at) => at,
        None => {
            calls.push((index, ToolCall { name: String::new(), arguments: String::new() }));
            calls.len() - 1
        }
    };
    let call = &mut calls[at].1;
    if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
        call.name.push_str(name);
    }
    if let Some(arguments) = function.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
        call.arguments.push_str(arguments);
    }
}
