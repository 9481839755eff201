//! What the proxy forwards: model calls only. Each protocol has a short list of methods
//! and paths (matched exactly, on the path as sent: a percent-encoded dot or slash can
//! never name another path) and of the request headers its clients need; anything else is
//! refused before it reaches a provider, and every other header is dropped. Under a shared
//! platform key, a forwarded `DELETE /v1/files/…` would let one tenant touch another's
//! objects.

use axum::http::{HeaderName, Method};
use wsd_core::registry::Protocol;

use super::dialect::Dialect;

/// A model call the proxy forwards, or answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Forwarded to the provider, metered in `Dialect`.
    Forward { dialect: Dialect, counts_tokens: bool },
    /// `GET /v1/models`: answered by wsd from the workspace's own model.
    Models,
}

/// The paths forwarded on `surface` (each a `POST`).
pub fn forwarded_paths(surface: Protocol) -> &'static [&'static str] {
    match surface {
        Protocol::Anthropic => &["v1/messages", "v1/messages/count_tokens"],
        Protocol::Openai => &["v1/chat/completions", "v1/responses", "v1/responses/compact"],
    }
}

/// The endpoint `method path` names on `surface` (`path` as sent, after `/llm/<surface>/`).
pub fn endpoint(surface: Protocol, method: &Method, path: &str) -> Option<Endpoint> {
    let forward = |dialect, counts_tokens| Some(Endpoint::Forward { dialect, counts_tokens });
    match (surface, method.as_str(), path) {
        (Protocol::Anthropic, "POST", "v1/messages") => forward(Dialect::AnthropicMessages, false),
        (Protocol::Anthropic, "POST", "v1/messages/count_tokens") => forward(Dialect::AnthropicMessages, true),
        (Protocol::Openai, "POST", "v1/chat/completions") => forward(Dialect::OpenaiChat, false),
        (Protocol::Openai, "POST", "v1/responses" | "v1/responses/compact") => forward(Dialect::OpenaiResponses, false),
        (_, "GET", "v1/models") => Some(Endpoint::Models),
        _ => None,
    }
}

/// Request headers forwarded per protocol, besides the `x-stainless-*` metadata of the
/// vendors' SDKs. Credentials, cookies, forwarding headers and account selectors
/// (`OpenAI-Organization`, `OpenAI-Project`) are never among them.
const ANTHROPIC_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta", "content-type", "accept", "user-agent", "x-app"];
const OPENAI_HEADERS: &[&str] = &["content-type", "accept", "user-agent", "openai-beta", "originator", "session_id", "conversation_id"];

/// Whether a client's request header goes upstream.
pub fn forwards_header(surface: Protocol, name: &HeaderName) -> bool {
    let name = name.as_str();
    let listed = match surface {
        Protocol::Anthropic => ANTHROPIC_HEADERS,
        Protocol::Openai => OPENAI_HEADERS,
    };
    listed.contains(&name) || name.starts_with("x-stainless-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_paths_are_exactly_the_forwarded_endpoints() {
        for surface in [Protocol::Anthropic, Protocol::Openai] {
            for path in forwarded_paths(surface) {
                assert!(matches!(endpoint(surface, &Method::POST, path), Some(Endpoint::Forward { .. })), "{path}");
            }
            let other = match surface {
                Protocol::Anthropic => Protocol::Openai,
                Protocol::Openai => Protocol::Anthropic,
            };
            for path in forwarded_paths(other) {
                assert_eq!(endpoint(surface, &Method::POST, path), None, "{path} is not forwarded on the other surface");
            }
        }
    }

    #[test]
    fn only_model_calls_are_forwarded() {
        let post = Method::POST;
        assert_eq!(
            endpoint(Protocol::Anthropic, &post, "v1/messages"),
            Some(Endpoint::Forward { dialect: Dialect::AnthropicMessages, counts_tokens: false })
        );
        assert_eq!(
            endpoint(Protocol::Anthropic, &post, "v1/messages/count_tokens"),
            Some(Endpoint::Forward { dialect: Dialect::AnthropicMessages, counts_tokens: true })
        );
        assert_eq!(
            endpoint(Protocol::Openai, &post, "v1/chat/completions"),
            Some(Endpoint::Forward { dialect: Dialect::OpenaiChat, counts_tokens: false })
        );
        for path in ["v1/responses", "v1/responses/compact"] {
            assert_eq!(
                endpoint(Protocol::Openai, &post, path),
                Some(Endpoint::Forward { dialect: Dialect::OpenaiResponses, counts_tokens: false })
            );
        }
        assert_eq!(endpoint(Protocol::Openai, &Method::GET, "v1/models"), Some(Endpoint::Models));
        for (surface, method, path) in [
            (Protocol::Anthropic, Method::POST, "..%2F..%2Fx"),
            (Protocol::Anthropic, Method::POST, "v1/messages/"),
            (Protocol::Anthropic, Method::POST, "v1/%6Dessages"),
            (Protocol::Anthropic, Method::POST, "v1/messages/../batches"),
            (Protocol::Anthropic, Method::GET, "v1/messages"),
            (Protocol::Anthropic, Method::POST, "v1/messages/batches"),
            (Protocol::Openai, Method::DELETE, "v1/files/file-x"),
            (Protocol::Openai, Method::GET, "v1/responses/resp_1"),
            (Protocol::Openai, Method::POST, "v1/files"),
            (Protocol::Openai, Method::POST, "v1/messages"),
            (Protocol::Anthropic, Method::POST, "v1/chat/completions"),
            (Protocol::Openai, Method::POST, "v1/models"),
        ] {
            assert_eq!(endpoint(surface, &method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn headers_go_upstream_by_allowlist() {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        for kept in ["anthropic-version", "anthropic-beta", "content-type", "x-stainless-lang", "user-agent"] {
            assert!(forwards_header(Protocol::Anthropic, &name(kept)), "{kept}");
        }
        for kept in ["openai-beta", "originator", "session_id", "x-stainless-os"] {
            assert!(forwards_header(Protocol::Openai, &name(kept)), "{kept}");
        }
        for dropped in [
            "authorization",
            "x-api-key",
            "openai-organization",
            "openai-project",
            "cookie",
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
            "x-wsd-workspace-id",
            "host",
        ] {
            assert!(
                !forwards_header(Protocol::Anthropic, &name(dropped)) && !forwards_header(Protocol::Openai, &name(dropped)),
                "{dropped}"
            );
        }
        assert!(!forwards_header(Protocol::Openai, &name("anthropic-beta")));
    }
}
