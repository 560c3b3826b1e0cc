//! An OpenAI-compatible chat answer measured as it passes: time to first
//! token, the gaps between streamed chunks, output tokens per second, the
//! token counts from `usage` (or counted from the stream when absent) and
//! how the answer finished. Frames are never held back: the meter reads a
//! copy of each frame's lines as they go by, keeping only an unfinished
//! line (bounded) between frames.

use http::{HeaderMap, header};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// The longest server-sent-event line kept while it arrives; a longer one
/// (an enormous chunk) is skipped, not buffered.
const MAX_LINE: usize = 64 * 1024;
/// How much of a whole (non-streamed) JSON answer is kept to read its `usage`.
const MAX_WHOLE: usize = 256 * 1024;

/// How an answer ended, as the finish-reason label counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A reason this gateway does not know by name.
    Other,
    /// The model's stream ended or broke without a finish reason or `[DONE]`.
    Aborted,
    /// The client went away before the answer was over.
    Cancelled,
}

impl FinishReason {
    pub const ALL: [FinishReason; 7] = [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
        FinishReason::Other,
        FinishReason::Aborted,
        FinishReason::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "other",
            FinishReason::Aborted => "aborted",
            FinishReason::Cancelled => "cancelled",
        }
    }

    fn of(reason: &str) -> FinishReason {
        match reason {
            "stop" | "eos" | "stop_sequence" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
}

/// How the exchange around the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The model's body ended.
    Complete,
    /// The model's body failed (connection cut, over the limit, timed out).
    ModelFailed,
    /// The client went away first.
    ClientGone,
}

/// One answer's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// From the request to the first chunk carrying output (streams only).
    pub time_to_first_token: Option<Duration>,
    /// Mean gap between output chunks (streams with two or more).
    pub inter_token: Option<Duration>,
    /// Output tokens after the first per second of generation after it (streams with two or more tokens).
    pub tokens_per_second: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub finish: FinishReason,
}

impl TokenRecord {
    /// Microseconds per output token (the inverse of the rate), as the judge compares it.
    pub fn micros_per_token(&self) -> Option<u32> {
        let rate = self.tokens_per_second.filter(|r| *r > 0.0)?;
        Some((1e6 / rate).round().clamp(1.0, f64::from(u32::MAX)) as u32)
    }
}

/// Reads one answer as it passes.
pub struct TokenMeter {
    started: Instant,
    streaming: bool,
    /// A stream's unfinished line, or a whole answer's bytes.
    pending: Vec<u8>,
    /// The unfinished line grew past [`MAX_LINE`]: the rest of it is skipped.
    skipping: bool,
    first: Option<Instant>,
    last: Option<Instant>,
    chunks: u64,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    done: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The parts of a chunk, or of a whole answer, the meter reads; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoicePart<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChoicePart<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// The completions API streams `text` instead of a delta.
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

impl ChoicePart<'_> {
    fn carries_output(&self) -> bool {
        let delta = self
            .delta
            .as_ref()
            .is_some_and(|d| d.content.as_deref().is_some_and(|c| !c.is_empty()) || d.tool_calls.is_some());
        delta || self.text.as_deref().is_some_and(|t| !t.is_empty())
    }
}

impl TokenMeter {
    /// A meter for an answer with these headers, to a request that started at `started`.
    pub fn for_answer(headers: &HeaderMap, started: Instant) -> TokenMeter {
        let streaming = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        TokenMeter {
            started,
            streaming,
            pending: Vec::new(),
            skipping: false,
            first: None,
            last: None,
            chunks: 0,
            usage: None,
            finish: None,
            done: false,
        }
    }

    /// Reads the bytes of one frame, which arrived at `now`.
    pub fn feed(&mut self, data: &[u8], now: Instant) {
        if !self.streaming {
            let room = MAX_WHOLE.saturating_sub(self.pending.len());
            self.pending.extend_from_slice(&data[..data.len().min(room)]);
            return;
        }
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = rest.split_at(end);
            rest = &after[1..];
            if self.skipping {
                self.skipping = false;
            } else if self.pending.is_empty() {
                self.line(piece, now);
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(piece);
                self.line(&line, now);
                line.clear();
                self.pending = line;
            }
        }
        if !self.skipping && !rest.is_empty() {
            if self.pending.len() + rest.len() > MAX_LINE {
                self.pending.clear();
                self.skipping = true;
            } else {
                self.pending.extend_from_slice(rest);
            }
        }
    }

    /// One server-sent-event line: only `data:` fields matter.
    fn line(&mut self, line: &[u8], now: Instant) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else { return };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else { return };
        if chunk.choices.iter().any(ChoicePart::carries_output) {
            self.chunks += 1;
            self.first.get_or_insert(now);
            self.last = Some(now);
        }
        self.read_finish(&chunk);
    }

    fn read_finish(&mut self, chunk: &Chunk<'_>) {
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if let Some(reason) = chunk.choices.iter().find_map(|c| c.finish_reason.as_deref()) {
            self.finish = Some(FinishReason::of(reason));
        }
    }

    /// The answer's measurements, once it has ended as `end` says.
    pub fn finish(mut self, end: End) -> TokenRecord {
        if !self.streaming {
            let whole = std::mem::take(&mut self.pending);
            // A whole answer has the chunk's shape where the meter looks: choices with a finish reason, and usage.
            if let Ok(answer) = serde_json::from_slice::<Chunk<'_>>(&whole) {
                self.read_finish(&answer);
            }
        }
        let finish = match (self.finish, end) {
            (Some(reason), _) => reason,
            (None, End::ClientGone) if !self.done => FinishReason::Cancelled,
            // `[DONE]` without a reason, or a whole answer that names none.
            (None, _) if self.done => FinishReason::Other,
            (None, End::Complete) if !self.streaming => FinishReason::Other,
            (None, _) => FinishReason::Aborted,
        };
        let completion_tokens = self.usage.map_or(self.chunks, |u| u.completion_tokens);
        let (mut inter_token, mut tokens_per_second) = (None, None);
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let span = last.saturating_duration_since(first);
            if self.chunks >= 2 {
                inter_token = Some(span / u32::try_from(self.chunks - 1).unwrap_or(u32::MAX));
            }
            if completion_tokens >= 2 && !span.is_zero() {
                tokens_per_second = Some((completion_tokens - 1) as f64 / span.as_secs_f64());
            }
        }
        TokenRecord {
            time_to_first_token: self.first.map(|f| f.saturating_duration_since(self.started)),
            inter_token,
            tokens_per_second,
            prompt_tokens: self.usage.map_or(0, |u| u.prompt_tokens),
            completion_tokens,
            finish,
        }
    }

    /// Whether the stream so far ended as a model's stream should (a finish reason or `[DONE]`).
    pub fn ended_properly(&self) -> bool {
        !self.streaming || self.done || self.finish.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream; charset=utf-8"));
        h
    }

    fn chunk(content: &str) -> String {
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{content:?}}}}}]}}\n\n")
    }

    #[test]
    fn a_stream_split_anywhere_gives_the_same_first_token_gaps_and_usage() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let frames = [
            (chunk("Hello"), 100),
            (chunk(" there"), 120),
            (chunk(" friend"), 140),
            (
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n".to_string(),
                141,
            ),
        ];
        let text: String = frames.iter().map(|(f, _)| f.as_str()).collect();
        // Whole frames, then the same bytes cut at every byte boundary of the first two chunks.
        for cut in [None, Some(3), Some(17), Some(60), Some(71)] {
            let mut meter = TokenMeter::for_answer(&stream_headers(), t0);
            let mut offset = 0;
            for (frame, at) in &frames {
                let at = t0 + ms(*at);
                match cut {
                    Some(c) if offset == 0 => {
                        let (a, b) = frame.split_at(c.min(frame.len()));
                        meter.feed(a.as_bytes(), at);
                        meter.feed(b.as_bytes(), at);
                    }
                    _ => meter.feed(frame.as_bytes(), at),
                }
                offset += frame.len();
            }
            assert_eq!(offset, text.len());
            let record = meter.finish(End::Complete);
            assert_eq!(record.time_to_first_token, Some(ms(100)), "cut {cut:?}");
            assert_eq!(record.inter_token, Some(ms(20)));
            // Usage says 5 tokens: 4 after the first in 40 ms.
            assert_eq!(record.tokens_per_second, Some(100.0));
            assert_eq!((record.prompt_tokens, record.completion_tokens), (7, 5));
            assert_eq!(record.finish, FinishReason::Length);
        }
    }

    #[test]
    fn without_usage_the_stream_is_counted_and_a_stream_cut_short_is_aborted() {
        let t0 = Instant::now();
        let mut meter = TokenMeter::for_answer(&stream_headers(), t0);
        for (i, word) in ["a", "b", "c"].iter().enumerate() {
            meter.feed(chunk(word).as_bytes(), t0 + Duration::from_millis(10 * (i as u64 + 1)));
        }
        assert!(!meter.ended_properly());
        let record = meter.finish(End::Complete);
        assert_eq!(record.completion_tokens, 3);
        assert_eq!(record.finish, FinishReason::Aborted);

        let mut gone = TokenMeter::for_answer(&stream_headers(), t0);
        gone.feed(chunk("a").as_bytes(), t0);
        assert_eq!(gone.finish(End::ClientGone).finish, FinishReason::Cancelled);
    }

    #[test]
    fn a_whole_answer_gives_its_usage_and_finish_reason_and_no_stream_timings() {
        let t0 = Instant::now();
        let mut meter = TokenMeter::for_answer(&HeaderMap::new(), t0);
        let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":9}}"#;
        meter.feed(&body[..20], t0);
        meter.feed(&body[20..], t0);
        let record = meter.finish(End::Complete);
        assert_eq!((record.prompt_tokens, record.completion_tokens, record.finish), (3, 9, FinishReason::Stop));
        assert_eq!((record.time_to_first_token, record.tokens_per_second), (None, None));
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_kept_and_the_next_line_is_read() {
        let t0 = Instant::now();
        let mut meter = TokenMeter::for_answer(&stream_headers(), t0);
        let huge = vec![b'x'; MAX_LINE + 10];
        meter.feed(b"data: ", t0);
        meter.feed(&huge, t0);
        assert!(meter.pending.is_empty());
        meter.feed(b"\n\n", t0);
        meter.feed(chunk("ok").as_bytes(), t0);
        meter.feed(b"data: [DONE]\n\n", t0);
        let record = meter.finish(End::Complete);
        assert_eq!(record.completion_tokens, 1);
        assert_eq!(record.finish, FinishReason::Other);
    }
}
