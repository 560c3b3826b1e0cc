//! The inference wire formats rollgate reads, and comparing two models'
//! answers to the same request. Pure: bytes in, values out, no I/O.
//!
//! An answer is parsed into an [`Output`] according to the service's
//! [`Format`]: OpenAI-compatible chat and completions (with streamed answers
//! reassembled from server-sent events), KServe v2 / Open Inference Protocol
//! tensors, TF-Serving / KServe v1 predictions (with the `NaN` and `Infinity`
//! tokens TF-Serving writes), or any JSON answer with JSON pointers naming its
//! label, score or text. Malformed or truncated input is a typed
//! [`ProtocolError`], never a panic. [`compare`] then says how two outputs
//! differ.

pub mod compare;
mod generic;
mod kserve;
mod lenient;
mod openai;
mod tfserving;

use serde::{Deserialize, Serialize};

/// The wire format of a service's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OpenAI-compatible chat completions or completions (vLLM, TGI, KServe's OpenAI route).
    OpenaiChat,
    /// KServe v2 / Open Inference Protocol.
    KserveV2,
    /// TF-Serving's REST API, also KServe v1.
    TfServing,
    /// Any JSON: the label, score or text are named by JSON pointers.
    Json,
}

/// JSON pointers (RFC 6901) to the parts of a generic JSON answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointers {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub score: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// How a service's answers are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub protocol: Protocol,
    pub pointers: Pointers,
}

impl Format {
    pub fn new(protocol: Protocol) -> Format {
        Format { protocol, pointers: Pointers::default() }
    }
}

/// What a model answered, in the terms the comparators use.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    Chat(Chat),
    Tensors { tensors: Vec<Tensor> },
    Picked(Picked),
}

/// A chat or completion answer. Fields that differ by design between two
/// answers (`id`, `created`, `system_fingerprint`) are not kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Chat {
    pub model: Option<String>,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Choice {
    pub text: String,
    pub finish_reason: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub name: String,
    /// As the model wrote them: compared as JSON when both sides parse.
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A named tensor, its values flat in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    pub data: TensorData,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TensorData {
    /// Numbers; NaN and infinities kept as they came.
    Numbers(Vec<f64>),
    Strings(Vec<String>),
    Bools(Vec<bool>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::Numbers(v) => v.len(),
            TensorData::Strings(v) => v.len(),
            TensorData::Bools(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The label, score and text a generic JSON answer's pointers found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Picked {
    pub label: Option<String>,
    pub score: Option<f64>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the answer is not JSON: {message} at line {line}, column {column}")]
    NotJson { message: String, line: usize, column: usize },
    #[error("the answer ends early: {0}")]
    Truncated(String),
    #[error("the answer has no `{0}`")]
    Missing(String),
    #[error("`{field}` is {found}, not {expected}")]
    WrongType { field: String, expected: &'static str, found: String },
    #[error("tensor `{name}`: shape {shape:?} needs {expected} values, the data has {found}")]
    Shape { name: String, shape: Vec<usize>, expected: usize, found: usize },
    #[error("a streamed answer's event is not JSON: {0}")]
    BadEvent(String),
    #[error("the answer was cut at the capture limit, so it cannot be compared whole")]
    Cut,
}

impl ProtocolError {
    /// A short name for the kind of problem, for counting errors by class.
    pub fn class(&self) -> &'static str {
        match self {
            ProtocolError::NotJson { .. } => "not_json",
            ProtocolError::Truncated(_) => "truncated",
            ProtocolError::Missing(_) => "missing_field",
            ProtocolError::WrongType { .. } => "wrong_type",
            ProtocolError::Shape { .. } => "wrong_shape",
            ProtocolError::BadEvent(_) => "bad_stream_event",
            ProtocolError::Cut => "cut_at_capture_limit",
        }
    }
}

/// Parses one answer body of a service in `format`.
pub fn parse_answer(format: &Format, body: &[u8]) -> Result<Output, ProtocolError> {
    match format.protocol {
        Protocol::OpenaiChat => openai::parse(body).map(Output::Chat),
        Protocol::KserveV2 => kserve::parse(body).map(|tensors| Output::Tensors { tensors }),
        Protocol::TfServing => tfserving::parse(body).map(|tensors| Output::Tensors { tensors }),
        Protocol::Json => generic::parse(body, &format.pointers).map(Output::Picked),
    }
}

/// Reads JSON text, naming the place of the first problem; a text that ends
/// inside a value is [`ProtocolError::Truncated`].
pub(crate) fn json(body: &[u8]) -> Result<serde_json::Value, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_eof() {
            ProtocolError::Truncated(e.to_string())
        } else {
            ProtocolError::NotJson { message: e.to_string(), line: e.line(), column: e.column() }
        }
    })
}

/// What a value is, for error messages.
pub(crate) fn kind_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(_) => "a boolean".into(),
        serde_json::Value::Number(_) => "a number".into(),
        serde_json::Value::String(_) => "a string".into(),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}
