//! The answer formats the proxy speaks, and how each says "the stream failed".

use serde_json::json;
use wsd_core::registry::Protocol;

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
    pub(super) fn error_event(self, code: &str, message: &str) -> String {
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
