//! Metering what flows back from a provider: token usage read out of the answer (one JSON
//! body, or server-sent events as they pass), whether a stream reached its end, and exactly
//! one ledger row per request however it ended.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use serde_json::value::RawValue;
use wsd_core::registry::Protocol;
use wsd_store::UsageRecord;

use crate::code;
use crate::state::AppState;

/// How a proxied request ended, when it did not simply complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Upstream sent nothing for longer than the proxy's upstream timeout.
    Timeout,
    /// The connection to upstream broke.
    Broken,
    /// The event stream ended cleanly but before its final event.
    Truncated,
    /// The client went away before the answer was complete.
    ClientGone,
    /// Upstream broke the protocol: an event line over `MAX_SSE_LINE_BYTES`.
    Protocol,
}

impl Fault {
    /// The status recorded in the ledger. 499 follows the common convention for a client
    /// that closed the request.
    pub fn ledger_status(self) -> i64 {
        match self {
            Fault::Timeout => 504,
            Fault::Broken | Fault::Truncated | Fault::Protocol => 502,
            Fault::ClientGone => 499,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Fault::Timeout => code::UPSTREAM_TIMEOUT,
            Fault::Broken | Fault::Truncated => code::UPSTREAM_STREAM_TRUNCATED,
            Fault::ClientGone => code::CLIENT_CLOSED,
            Fault::Protocol => code::UPSTREAM_PROTOCOL_ERROR,
        }
    }
}

/// Which answer format the stream speaks, for the error event that ends a broken stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    AnthropicMessages,
    OpenaiChat,
    OpenaiResponses,
}

impl Dialect {
    pub fn of(surface: Protocol, path: &str) -> Self {
        match surface {
            Protocol::Anthropic => Dialect::AnthropicMessages,
            Protocol::Openai if path.trim_end_matches('/').ends_with("responses") => Dialect::OpenaiResponses,
            Protocol::Openai => Dialect::OpenaiChat,
        }
    }

    /// The event a client of this protocol understands as "the stream failed".
    fn error_event(self, code: &str, message: &str) -> String {
        match self {
            Dialect::AnthropicMessages => {
                format!("event: error\ndata: {}\n\n", json!({"type": "error", "error": {"type": "api_error", "message": message}}))
            }
            Dialect::OpenaiResponses => {
                format!("event: error\ndata: {}\n\n", json!({"type": "error", "code": code, "message": message}))
            }
            Dialect::OpenaiChat => {
                format!("data: {}\n\n", json!({"error": {"type": "server_error", "code": code, "message": message}}))
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

/// The parts of an answer or an event that carry usage or end a stream. Everything else —
/// the generated content above all — is skipped by the parser, never built.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    usage: Option<TokenUsage>,
    /// Anthropic's `message_start` carries usage in `message`, OpenAI Responses events in
    /// `response`; elsewhere these may be anything (an error's `message` is text). Kept
    /// unparsed until asked.
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error: Option<IgnoredAny>,
}

/// An object's `usage`, if it is an object with one.
fn nested_usage(raw: Option<&RawValue>) -> Option<TokenUsage> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<TokenUsage>,
    }
    serde_json::from_str::<WithUsage>(raw?.get()).ok()?.usage
}

/// Usage as Anthropic (`input_tokens`, `cache_*`) and OpenAI (`prompt_tokens`, or
/// `input_tokens` on Responses) report it.
#[derive(Debug, Clone, Deserialize)]
struct TokenUsage {
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    cache_read_input_tokens: Option<i64>,
    cache_creation_input_tokens: Option<i64>,
    prompt_tokens_details: Option<CachedTokens>,
    input_tokens_details: Option<CachedTokens>,
}

#[derive(Debug, Clone, Deserialize)]
struct CachedTokens {
    cached_tokens: Option<i64>,
}

/// The longest line of an event stream: a provider that sends more without a newline ends
/// the stream (`UPSTREAM_PROTOCOL_ERROR`) rather than grow wsd's memory.
pub const MAX_SSE_LINE_BYTES: usize = 1024 * 1024;
/// How much of a plain answer is kept whole for its usage; past it only the newest
/// `PLAIN_TAIL_BYTES` are, and usage is read from the last `"usage":` object there.
const PLAIN_WHOLE_BYTES: usize = 256 * 1024;
const PLAIN_TAIL_BYTES: usize = 64 * 1024;
/// The most tokens one request may report of one kind; more (or fewer than 0) is a
/// provider's fault, never summed.
pub const MAX_TOKENS_PER_REQUEST: i64 = 100_000_000;

/// Event types after which a stream is complete.
const FINAL_EVENT_TYPES: &[&str] = &["message_stop", "response.completed", "response.incomplete", "response.failed", "error"];

/// Reads token usage out of what flows back, and writes the ledger row once.
pub struct Meter {
    pub org: String,
    pub workspace: String,
    pub provider: String,
    pub model: String,
    pub dialect: Dialect,
    pub started: Instant,
    /// Upstream's status; the ledger's unless a fault overrides it.
    pub status: i64,
    /// Upstream's own id of the request (`request-id`, `x-request-id`), so a row can be
    /// matched with the vendor's records; wsd makes one when upstream gives none.
    pub request_id: Option<String>,
    pub sse: bool,
    usage: Usage,
    /// A JSON answer, whole (or its tail, when `plain_cut`); or the unfinished last line of
    /// an event stream.
    buffer: Vec<u8>,
    /// How much of `buffer` (an unfinished event line) was searched for its end already.
    scanned: usize,
    /// The plain answer was longer than `PLAIN_WHOLE_BYTES`: `buffer` holds its tail.
    plain_cut: bool,
    /// An event line grew over `MAX_SSE_LINE_BYTES`.
    overlong: bool,
    /// Upstream reported a token count out of bounds (ignored).
    insane_usage: bool,
    /// Lines seen since the last blank line: an event is half-delivered.
    event_open: bool,
    /// The stream's final event (or `[DONE]`) went by.
    complete: bool,
    finished: bool,
}

impl Meter {
    pub fn new(org: String, workspace: String, provider: String, model: String, dialect: Dialect) -> Self {
        Meter {
            org,
            workspace,
            provider,
            model,
            dialect,
            started: Instant::now(),
            status: 0,
            request_id: None,
            sse: false,
            usage: Usage::default(),
            buffer: Vec::new(),
            scanned: 0,
            plain_cut: false,
            overlong: false,
            insane_usage: false,
            event_open: false,
            complete: false,
            finished: false,
        }
    }

    fn absorb(&mut self, event: &Envelope) {
        let usage = match self.dialect {
            // `message_start` carries the input side; each `message_delta` the output so far.
            Dialect::AnthropicMessages if event.kind.as_deref() == Some("message_start") => nested_usage(event.message),
            Dialect::AnthropicMessages => event.usage.clone(),
            Dialect::OpenaiChat | Dialect::OpenaiResponses => nested_usage(event.response).or_else(|| event.usage.clone()),
        };
        let Some(usage) = usage else { return };
        self.record(&usage);
    }

    fn record(&mut self, usage: &TokenUsage) {
        let (u, insane) = (&mut self.usage, &mut self.insane_usage);
        let mut set = |slot: &mut i64, value: Option<i64>| match value {
            Some(n) if (0..=MAX_TOKENS_PER_REQUEST).contains(&n) => *slot = n,
            Some(_) => *insane = true,
            None => {}
        };
        set(&mut u.input, usage.input_tokens.or(usage.prompt_tokens));
        set(&mut u.output, usage.output_tokens.or(usage.completion_tokens));
        set(&mut u.cache_read, usage.cache_read_input_tokens);
        let details = usage.prompt_tokens_details.as_ref().or(usage.input_tokens_details.as_ref());
        set(&mut u.cache_read, details.and_then(|d| d.cached_tokens));
        set(&mut u.cache_write, usage.cache_creation_input_tokens);
    }

    /// One `data:` payload of an event stream.
    fn event_data(&mut self, data: &[u8]) {
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.complete = true;
            return;
        }
        // Most events are content deltas: parse only those that can carry usage or end the
        // stream.
        let interesting = ["usage", "message_stop", "response.completed", "response.incomplete", "response.failed", "error"]
            .iter()
            .any(|needle| data.windows(needle.len()).any(|w| w == needle.as_bytes()));
        if !interesting {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Envelope>(data) else { return };
        self.absorb(&event);
        if event.kind.as_deref().is_some_and(|t| FINAL_EVENT_TYPES.contains(&t)) || event.error.is_some() {
            self.complete = true;
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            return self.feed_plain(chunk);
        }
        if self.overlong {
            return;
        }
        self.buffer.extend_from_slice(chunk);
        // Bytes before `scanned` hold no newline: each byte is searched once.
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(offset) = self.buffer[from..].iter().position(|&b| b == b'\n') {
            let end = from + offset;
            let line = std::mem::take(&mut self.buffer);
            let text = line[start..end].strip_suffix(b"\r").unwrap_or(&line[start..end]);
            if text.is_empty() {
                self.event_open = false;
            } else {
                self.event_open = true;
                if let Some(data) = text.strip_prefix(b"data:") {
                    self.event_data(data);
                }
            }
            self.buffer = line;
            start = end + 1;
            from = start;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_SSE_LINE_BYTES {
            self.overlong = true;
            self.buffer.clear();
            self.scanned = 0;
        }
    }

    /// A plain answer's bytes: kept whole while small; past that only the newest tail.
    fn feed_plain(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() > PLAIN_WHOLE_BYTES.max(PLAIN_TAIL_BYTES * 2) || (self.plain_cut && self.buffer.len() > PLAIN_TAIL_BYTES * 2) {
            let cut = self.buffer.len() - PLAIN_TAIL_BYTES;
            self.buffer.drain(..cut);
            self.plain_cut = true;
        }
    }

    /// An event line grew over the limit: the stream must end.
    pub fn overlong(&self) -> bool {
        self.overlong
    }

    /// The stream's final event went by (always true of an answer that is not a stream).
    pub fn complete(&self) -> bool {
        !self.sse || self.complete
    }

    /// The bytes that end a broken event stream for the client: whatever event was half
    /// sent is closed, then the protocol's error event.
    pub fn error_event(&self, fault: Fault) -> Bytes {
        let message = match fault {
            Fault::Timeout => format!("wsd: provider `{}` stopped sending (UPSTREAM_TIMEOUT)", self.provider),
            Fault::Protocol => {
                format!("wsd: provider `{}` sent an event line over {MAX_SSE_LINE_BYTES} bytes (UPSTREAM_PROTOCOL_ERROR)", self.provider)
            }
            _ => format!("wsd: the stream from provider `{}` was cut before it finished (UPSTREAM_STREAM_TRUNCATED)", self.provider),
        };
        let close = if !self.buffer.is_empty() || self.overlong {
            "\n\n"
        } else if self.event_open {
            "\n"
        } else {
            ""
        };
        Bytes::from(format!("{close}{}", self.dialect.error_event(fault.code(), &message)))
    }

    #[cfg(test)]
    fn usage(&self) -> Usage {
        self.usage
    }

    /// The ledger row, once (`None` after the first call); `fault` overrides upstream's
    /// status.
    pub fn finish(&mut self, fault: Option<Fault>) -> Option<UsageRecord> {
        if self.finished {
            return None;
        }
        self.finished = true;
        let answer = std::mem::take(&mut self.buffer);
        if !self.sse && fault.is_none() {
            if !self.plain_cut {
                if let Ok(body) = serde_json::from_slice::<Envelope>(&answer) {
                    self.absorb(&body);
                }
            } else if let Some(usage) = last_usage(&answer) {
                self.record(&usage);
            }
        }
        // Counts out of bounds are a provider's fault: the row says so, with what was sane.
        let fault = fault.or(self.insane_usage.then_some(Fault::Protocol));
        Some(UsageRecord {
            at: wsd_store::now_ms(),
            org_id: std::mem::take(&mut self.org),
            workspace_id: std::mem::take(&mut self.workspace),
            provider: std::mem::take(&mut self.provider),
            model: std::mem::take(&mut self.model),
            input_tokens: self.usage.input,
            output_tokens: self.usage.output,
            cache_read_tokens: self.usage.cache_read,
            cache_write_tokens: self.usage.cache_write,
            status: fault.map_or(self.status, Fault::ledger_status),
            latency_ms: self.started.elapsed().as_millis() as i64,
            request_id: self.request_id.take().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        })
    }
}

/// The last `"usage": {…}` object in the tail of a long JSON answer. Inside a JSON string a
/// quote is escaped, so `"usage":` can only be a key.
fn last_usage(tail: &[u8]) -> Option<TokenUsage> {
    const KEY: &[u8] = b"\"usage\":";
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)?;
    serde_json::Deserializer::from_slice(&tail[at + KEY.len()..]).into_iter::<TokenUsage>().next()?.ok()
}

/// A meter while the request waits for upstream's answer. If the wait is abandoned — the
/// client went away and the server dropped the request — the row is still written (499).
pub struct PendingMeter {
    meter: Option<Meter>,
    state: Arc<AppState>,
}

impl PendingMeter {
    pub fn new(meter: Meter, state: Arc<AppState>) -> Self {
        Self { meter: Some(meter), state }
    }

    /// The answer came (or failed): the meter goes on with it.
    pub fn take(mut self) -> Meter {
        self.meter.take().expect("a pending meter is taken once")
    }

    /// The meter, to name the provider and model once they are known.
    pub fn meter(&mut self) -> &mut Meter {
        self.meter.as_mut().expect("a pending meter is taken once")
    }

    /// Ends the request with an answer of wsd's own (a refusal, or one wsd gives itself):
    /// its row carries that status.
    pub fn answered(mut self, status: u16) {
        if let Some(mut meter) = self.meter.take() {
            meter.status = i64::from(status);
            if let Some(record) = meter.finish(None) {
                self.state.record_usage(record);
            }
        }
    }
}

impl Drop for PendingMeter {
    fn drop(&mut self) {
        if let Some(record) = self.meter.as_mut().and_then(|meter| meter.finish(Some(Fault::ClientGone))) {
            self.state.record_usage(record);
        }
    }
}

/// The upstream body on its way back, metered as it passes. The row is written at its end,
/// when it breaks, or when the client goes away early (the body is dropped, which also
/// drops, and so cancels, the upstream request).
pub struct Metered {
    pub inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pub meter: Meter,
    pub state: Arc<AppState>,
    /// Upstream's `content-length` of a plain answer, passed on so the client gets the same
    /// framing (and the answer goes out in as few writes as it came in).
    pub length: Option<u64>,
    /// Bytes passed on so far.
    pub sent: u64,
    /// Nothing more to send.
    pub done: bool,
}

impl Metered {
    fn finish(&mut self, fault: Option<Fault>) {
        if let Some(record) = self.meter.finish(fault) {
            self.state.record_usage(record);
        }
    }

    fn fail(&mut self, fault: Fault) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.done = true;
        let event = self.meter.sse.then(|| self.meter.error_event(fault));
        self.finish(Some(fault));
        if let Some(event) = event {
            Poll::Ready(Some(Ok(Frame::data(event))))
        } else {
            // A plain answer cannot carry an error after its status: abort the body, so the
            // client sees it incomplete rather than a valid-looking truncated document.
            Poll::Ready(Some(Err(std::io::Error::other(fault.code()))))
        }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.meter.feed(&bytes);
                if self.meter.overlong() {
                    return self.fail(Fault::Protocol);
                }
                self.sent += bytes.len() as u64;
                // With a known length the server stops asking once it has it all: that is
                // the end.
                if self.length == Some(self.sent) {
                    self.done = true;
                    self.finish(None);
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(e))) => self.fail(if e.is_timeout() { Fault::Timeout } else { Fault::Broken }),
            Poll::Ready(None) if !self.meter.complete() => self.fail(Fault::Truncated),
            Poll::Ready(None) => {
                self.done = true;
                self.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.length.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // An answer whose every byte went out is complete (an empty one is never polled).
        let fault = (self.length != Some(self.sent)).then_some(Fault::ClientGone);
        self.finish(fault);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(dialect: Dialect, sse: bool) -> Meter {
        let mut meter = Meter::new("o".into(), "w".into(), "minimax".into(), "MiniMax-M2.7".into(), dialect);
        meter.status = 200;
        meter.sse = sse;
        meter
    }

    /// Feeds `text` in chunks of `size` bytes, so events and lines straddle chunks.
    fn feed_in_chunks(meter: &mut Meter, text: &str, size: usize) {
        for chunk in text.as_bytes().chunks(size) {
            meter.feed(chunk);
        }
    }

    const ANTHROPIC_STREAM: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":4}}}\r\n\r\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn anthropic_stream_usage_is_read_across_any_chunking() {
        for size in [1, 2, 7, 64, 4096] {
            let mut m = meter(Dialect::AnthropicMessages, true);
            feed_in_chunks(&mut m, ANTHROPIC_STREAM, size);
            assert!(m.complete(), "chunks of {size}");
            assert_eq!(m.usage(), Usage { input: 12, output: 7, cache_read: 3, cache_write: 4 });
            let row = m.finish(None).unwrap();
            assert_eq!((row.status, row.input_tokens, row.output_tokens), (200, 12, 7));
            assert!(m.finish(None).is_none(), "one row per request");
        }
    }

    #[test]
    fn a_stream_without_its_final_event_is_not_complete() {
        let cut = &ANTHROPIC_STREAM[..ANTHROPIC_STREAM.find("event: message_stop").unwrap()];
        let mut m = meter(Dialect::AnthropicMessages, true);
        m.feed(cut.as_bytes());
        assert!(!m.complete());
        assert_eq!(m.usage().output, 7, "what was seen is kept");
        let row = m.finish(Some(Fault::Truncated)).unwrap();
        assert_eq!((row.status, row.output_tokens), (502, 7));

        let mut chat = meter(Dialect::OpenaiChat, true);
        chat.feed(b"data: {\"choices\":[]}\n\n");
        assert!(!chat.complete());
        chat.feed(b"data: [DONE]\n\n");
        assert!(chat.complete());
        let mut responses = meter(Dialect::OpenaiResponses, true);
        responses.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":6,\"input_tokens_details\":{\"cached_tokens\":2}}}}\n\n");
        assert!(responses.complete());
        assert_eq!(responses.usage(), Usage { input: 5, output: 6, cache_read: 2, cache_write: 0 });
        let mut failed = meter(Dialect::OpenaiChat, true);
        failed.feed(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n");
        assert!(failed.complete(), "an error event upstream sent ends the stream");
        // A Responses error event: `message` is text here, not an object with usage.
        let mut failed = meter(Dialect::OpenaiResponses, true);
        failed.feed(b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\"}\n\n");
        assert!(failed.complete());
        // Content that merely mentions usage is not usage.
        let mut chatty = meter(Dialect::AnthropicMessages, true);
        chatty.feed(b"data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"the usage is 5\"}}\n\n");
        assert_eq!(chatty.usage(), Usage::default());
        assert!(!chatty.complete());
    }

    #[test]
    fn plain_answers_are_read_whole_at_the_end() {
        let mut m = meter(Dialect::OpenaiChat, false);
        assert!(m.complete());
        feed_in_chunks(&mut m, r#"{"usage":{"prompt_tokens":20,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":4}}}"#, 5);
        let row = m.finish(None).unwrap();
        assert_eq!((row.input_tokens, row.output_tokens, row.cache_read_tokens), (20, 9, 4));
        let mut broken = meter(Dialect::AnthropicMessages, false);
        broken.feed(br#"{"usage":{"input_tokens":20,"output_tokens":9}}"#);
        assert_eq!(broken.finish(Some(Fault::ClientGone)).unwrap().status, 499);
    }

    #[test]
    fn an_endless_line_ends_the_stream_and_memory_stays_bounded() {
        let mut m = meter(Dialect::AnthropicMessages, true);
        m.feed(MESSAGE_START_LINE.as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut fed = 0;
        while !m.overlong() {
            m.feed(&chunk);
            fed += chunk.len();
            assert!(m.buffer.len() <= MAX_SSE_LINE_BYTES + chunk.len(), "the line is held up to its limit only");
            assert!(fed <= 2 * MAX_SSE_LINE_BYTES, "an over-long line is noticed");
        }
        assert!(m.buffer.is_empty());
        m.feed(&chunk);
        assert!(m.buffer.is_empty(), "nothing more is kept");
        let event = String::from_utf8(m.error_event(Fault::Protocol).to_vec()).unwrap();
        assert!(event.starts_with("\n\nevent: error") && event.contains("UPSTREAM_PROTOCOL_ERROR"), "{event}");
        let row = m.finish(Some(Fault::Protocol)).unwrap();
        assert_eq!((row.status, row.input_tokens), (502, 12), "what was seen is kept");
        // Each byte of a long line is searched once: a line fed a byte at a time is
        // linear (a quadratic search of 256 KiB would take minutes in a debug build).
        let mut m = meter(Dialect::AnthropicMessages, true);
        for _ in 0..256 * 1024 {
            m.feed(b"y");
        }
        assert_eq!((m.scanned, m.buffer.len()), (256 * 1024, 256 * 1024));
        m.feed(b"\n\n");
        assert!(m.buffer.is_empty());
    }

    #[test]
    fn a_long_plain_answer_is_kept_as_its_tail_and_its_usage_still_read() {
        let mut m = meter(Dialect::AnthropicMessages, false);
        m.feed(br#"{"id":"msg","content":[{"type":"text","text":""#);
        let text = vec![b'z'; 1024];
        for _ in 0..4096 {
            m.feed(&text);
            assert!(m.buffer.len() <= PLAIN_WHOLE_BYTES.max(2 * PLAIN_TAIL_BYTES), "memory independent of the answer's size");
        }
        m.feed(br#""usage": not this"}],"usage":{"input_tokens":70,"output_tokens":30}}"#);
        let row = m.finish(None).unwrap();
        assert_eq!((row.input_tokens, row.output_tokens, row.status), (70, 30, 200));
    }

    #[test]
    fn counts_out_of_bounds_are_a_providers_fault_never_summed() {
        let mut m = meter(Dialect::OpenaiChat, false);
        m.feed(br#"{"usage":{"prompt_tokens":-1000000000,"completion_tokens":9223372036854775807,"prompt_tokens_details":{"cached_tokens":3}}}"#);
        let row = m.finish(None).unwrap();
        assert_eq!((row.input_tokens, row.output_tokens, row.cache_read_tokens, row.status), (0, 0, 3, 502));
        let mut m = meter(Dialect::AnthropicMessages, true);
        m.feed(b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":100000001}}\n\n");
        m.feed(b"data: {\"type\":\"message_stop\"}\n\n");
        let row = m.finish(None).unwrap();
        assert_eq!((row.output_tokens, row.status), (0, 502));
        let mut m = meter(Dialect::OpenaiChat, false);
        m.feed(br#"{"usage":{"prompt_tokens":100000000,"completion_tokens":0}}"#);
        assert_eq!(m.finish(None).unwrap().status, 200, "the bound itself is sane");
    }

    const MESSAGE_START_LINE: &str = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12}}}\n\ndata: ";

    #[test]
    fn the_error_event_closes_a_half_sent_event_and_speaks_the_clients_protocol() {
        let mut m = meter(Dialect::AnthropicMessages, true);
        m.feed(b"event: content_block_delta\ndata: {\"type\":\"content_blo");
        let event = String::from_utf8(m.error_event(Fault::Broken).to_vec()).unwrap();
        assert!(event.starts_with("\n\nevent: error\ndata: {"), "{event}");
        assert!(event.contains("\"type\":\"api_error\"") && event.contains("UPSTREAM_STREAM_TRUNCATED") && event.ends_with("\n\n"));
        let mut m = meter(Dialect::AnthropicMessages, true);
        m.feed(b"event: ping\n");
        assert!(String::from_utf8(m.error_event(Fault::Timeout).to_vec()).unwrap().starts_with("\nevent: error"));
        let m = meter(Dialect::OpenaiChat, true);
        let event = String::from_utf8(m.error_event(Fault::Timeout).to_vec()).unwrap();
        assert!(event.starts_with("data: {\"error\":") && event.contains("UPSTREAM_TIMEOUT"), "{event}");
        let event = String::from_utf8(meter(Dialect::OpenaiResponses, true).error_event(Fault::Truncated).to_vec()).unwrap();
        assert!(event.starts_with("event: error\ndata: {") && event.contains("\"code\":\"UPSTREAM_STREAM_TRUNCATED\""), "{event}");
        assert_eq!(Dialect::of(Protocol::Openai, "v1/responses"), Dialect::OpenaiResponses);
        assert_eq!(Dialect::of(Protocol::Openai, "v1/chat/completions"), Dialect::OpenaiChat);
    }
}
