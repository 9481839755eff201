//! Metering what flows back from a provider: the answer's bytes in (one JSON body, or
//! server-sent events as they pass, in bounded memory and linear time), whether a stream
//! reached its end, and the request's one ledger row out.

use std::time::Instant;

use axum::body::Bytes;
use wsd_store::UsageRecord;

use super::dialect::Dialect;
use super::usage::{self, Envelope, Reported, Usage};
use crate::code;

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

/// The longest line of an event stream: a provider that sends more without a newline ends
/// the stream (`UPSTREAM_PROTOCOL_ERROR`) rather than grow wsd's memory.
pub const MAX_SSE_LINE_BYTES: usize = 1024 * 1024;
/// How much of a plain answer is kept whole for its usage; past it only the newest
/// `PLAIN_TAIL_BYTES` are, and usage is read from the last `"usage":` object there.
const PLAIN_WHOLE_BYTES: usize = 256 * 1024;
const PLAIN_TAIL_BYTES: usize = 64 * 1024;

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
    /// The budget reservation made at admission: the row releases it.
    pub reservation: Option<String>,
    /// Whose key the request runs on.
    pub routing: wsd_core::plan::Routing,
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
            reservation: None,
            routing: wsd_core::plan::Routing::Platform,
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
        if let Some(reported) = event.reported(self.dialect) {
            self.take(&reported);
        }
    }

    fn take(&mut self, reported: &Reported) {
        if !self.usage.take(reported) {
            self.insane_usage = true;
        }
    }

    /// One `data:` payload of an event stream.
    fn event_data(&mut self, data: &[u8]) {
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.complete = true;
            return;
        }
        let Some(event) = usage::meaningful_event(data) else { return };
        self.absorb(&event);
        if event.ends_stream() {
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
            let reported = if self.plain_cut { usage::last_usage(&answer) } else { usage::answer_usage(&answer, self.dialect) };
            if let Some(reported) = reported {
                self.take(&reported);
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
            routing: self.routing.as_str().to_owned(),
            // Priced by the proxy as it records the row.
            cost_micros: None,
            reservation: self.reservation.take().map(wsd_store::Release::Reservation),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsd_core::registry::Protocol;

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
