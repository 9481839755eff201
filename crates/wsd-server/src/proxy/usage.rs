//! Token usage as providers report it, parsed out of an answer or an event: pure functions
//! of bytes, no IO. Only the fields that carry usage or end a stream are parsed; the
//! generated content is skipped, never built.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::dialect::Dialect;

/// The most tokens one request may report of one kind; more (or fewer than 0) is a
/// provider's fault, never summed.
pub const MAX_TOKENS_PER_REQUEST: i64 = 100_000_000;

/// Event types after which a stream is complete.
const FINAL_EVENT_TYPES: &[&str] = &["message_stop", "response.completed", "response.incomplete", "response.failed", "error"];

/// What an event must mention to be worth parsing: most events are content deltas.
const MEANINGFUL: &[&str] = &["usage", "message_stop", "response.completed", "response.incomplete", "response.failed", "error"];

/// A request's token counts, as metered so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

impl Usage {
    /// Takes the counts a provider reported (each replaces the one before: providers report
    /// running totals). Returns false when a count was out of bounds; that count is ignored.
    pub(super) fn take(&mut self, reported: &Reported) -> bool {
        let mut sane = true;
        let mut set = |slot: &mut i64, value: Option<i64>| match value {
            Some(n) if (0..=MAX_TOKENS_PER_REQUEST).contains(&n) => *slot = n,
            Some(_) => sane = false,
            None => {}
        };
        set(&mut self.input, reported.input_tokens.or(reported.prompt_tokens));
        set(&mut self.output, reported.output_tokens.or(reported.completion_tokens));
        set(&mut self.cache_read, reported.cache_read_input_tokens);
        let details = reported.prompt_tokens_details.as_ref().or(reported.input_tokens_details.as_ref());
        set(&mut self.cache_read, details.and_then(|d| d.cached_tokens));
        set(&mut self.cache_write, reported.cache_creation_input_tokens);
        sane
    }
}

/// The parts of an answer or an event that carry usage or end a stream.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    usage: Option<Reported>,
    /// Anthropic's `message_start` carries usage in `message`, OpenAI Responses events in
    /// `response`; elsewhere these may be anything (an error's `message` is text). Kept
    /// unparsed until asked.
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error: Option<IgnoredAny>,
}

impl Envelope<'_> {
    /// The usage this answer or event reports in `dialect`, if any.
    pub(super) fn reported(&self, dialect: Dialect) -> Option<Reported> {
        match dialect {
            // `message_start` carries the input side; each `message_delta` the output so far.
            Dialect::AnthropicMessages if self.kind.as_deref() == Some("message_start") => nested_usage(self.message),
            Dialect::AnthropicMessages => self.usage.clone(),
            Dialect::OpenaiChat | Dialect::OpenaiResponses => nested_usage(self.response).or_else(|| self.usage.clone()),
        }
    }

    /// Whether the stream is complete after this event.
    pub(super) fn ends_stream(&self) -> bool {
        self.kind.as_deref().is_some_and(|t| FINAL_EVENT_TYPES.contains(&t)) || self.error.is_some()
    }
}

/// The event in `data`, when it can carry usage or end the stream.
pub(super) fn meaningful_event(data: &[u8]) -> Option<Envelope<'_>> {
    let meaningful = MEANINGFUL.iter().any(|needle| data.windows(needle.len()).any(|w| w == needle.as_bytes()));
    if !meaningful {
        return None;
    }
    serde_json::from_slice(data).ok()
}

/// The usage of a whole plain answer.
pub(super) fn answer_usage(answer: &[u8], dialect: Dialect) -> Option<Reported> {
    serde_json::from_slice::<Envelope>(answer).ok()?.reported(dialect)
}

/// An object's `usage`, if it is an object with one.
fn nested_usage(raw: Option<&RawValue>) -> Option<Reported> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<Reported>,
    }
    serde_json::from_str::<WithUsage>(raw?.get()).ok()?.usage
}

/// Usage as Anthropic (`input_tokens`, `cache_*`) and OpenAI (`prompt_tokens`, or
/// `input_tokens` on Responses) report it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Reported {
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

/// The last `"usage": {…}` object in the tail of a long JSON answer. Inside a JSON string a
/// quote is escaped, so `"usage":` can only be a key.
pub(super) fn last_usage(tail: &[u8]) -> Option<Reported> {
    const KEY: &[u8] = b"\"usage\":";
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)?;
    serde_json::Deserializer::from_slice(&tail[at + KEY.len()..]).into_iter::<Reported>().next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(reported: Option<Reported>) -> (Usage, bool) {
        let mut usage = Usage::default();
        let sane = usage.take(&reported.expect("usage reported"));
        (usage, sane)
    }

    #[test]
    fn each_dialect_reads_usage_where_its_provider_puts_it() {
        let start = br#"{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_read_input_tokens":3}}}"#;
        let event = meaningful_event(start).unwrap();
        assert_eq!(taken(event.reported(Dialect::AnthropicMessages)), (Usage { input: 12, cache_read: 3, ..Usage::default() }, true));
        assert!(!event.ends_stream());
        let done = br#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6}}}"#;
        let event = meaningful_event(done).unwrap();
        assert_eq!(taken(event.reported(Dialect::OpenaiResponses)).0, Usage { input: 5, output: 6, ..Usage::default() });
        assert!(event.ends_stream());
        let chat = br#"{"usage":{"prompt_tokens":20,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(taken(answer_usage(chat, Dialect::OpenaiChat)).0, Usage { input: 20, output: 9, cache_read: 4, cache_write: 0 });
        assert!(meaningful_event(br#"{"type":"content_block_delta","delta":{"text":"hi"}}"#).is_none(), "content is not parsed");
    }

    #[test]
    fn out_of_bound_counts_are_reported_and_ignored() {
        let mut usage = Usage { input: 7, ..Usage::default() };
        let reported = answer_usage(br#"{"usage":{"input_tokens":-1,"output_tokens":100000000}}"#, Dialect::AnthropicMessages).unwrap();
        assert!(!usage.take(&reported));
        assert_eq!(usage, Usage { input: 7, output: MAX_TOKENS_PER_REQUEST, ..Usage::default() });
    }

    #[test]
    fn the_last_usage_key_of_a_tail_wins() {
        let tail = br#"xx","usage":{"input_tokens":1}},"usage":{"input_tokens":70,"output_tokens":30}}"#;
        assert_eq!(taken(last_usage(tail)).0, Usage { input: 70, output: 30, ..Usage::default() });
        assert!(last_usage(b"no key here").is_none());
    }
}
