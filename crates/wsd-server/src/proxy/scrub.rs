//! Error answers from upstream, passed back without the key wsd put on the request.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wsd_core::SecretValue;

use super::Proxy;
use super::meter::Meter;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The most of an error answer passed back: enough for any provider's error document.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Upstream's error answer, read (up to a bound) and passed back with every occurrence of
/// the key wsd sent replaced: a provider that echoes the credential it was given must not
/// hand the platform's key to a workspace.
pub(super) async fn respond_scrubbed(
    proxy: &Proxy,
    response: hyper::Response<Incoming>,
    mut meter: Meter,
    key: &SecretValue,
    timeout: Duration,
) -> Response {
    let status = response.status().as_u16();
    meter.status = i64::from(status);
    let content_type = response.headers().get("content-type").cloned();
    let retry_after = response.headers().get("retry-after").cloned();
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    let read = tokio::time::timeout(timeout, async {
        while let Some(Ok(frame)) = incoming.frame().await {
            let Ok(chunk) = frame.into_data() else { continue };
            let room = MAX_ERROR_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_ERROR_BODY_BYTES {
                break;
            }
        }
    })
    .await;
    if read.is_err() {
        body.clear();
    }
    if let Some(record) = meter.finish(None) {
        proxy.record(record);
    }
    let body = scrub(&body, key.expose().as_bytes());
    let mut builder = Response::builder().status(status);
    for (name, value) in [("content-type", content_type), ("retry-after", retry_after)] {
        if let Some(value) = value.filter(|v| !contains(v.as_bytes(), key.expose().as_bytes())) {
            builder = builder.header(name, value);
        }
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `text` with every occurrence of `secret` replaced by `[redacted]`.
fn scrub(text: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        if text[at..].starts_with(secret) {
            out.extend_from_slice(b"[redacted]");
            at += secret.len();
        } else {
            out.push(text[at]);
            at += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_the_key_is_replaced() {
        assert_eq!(scrub(b"k=sk-1 and sk-1sk-1!", b"sk-1"), b"k=[redacted] and [redacted][redacted]!");
        assert_eq!(scrub(b"sk-", b"sk-1"), b"sk-", "a prefix of the key is not the key");
        assert_eq!(scrub(b"abc", b""), b"abc");
        assert!(contains(b"Bearer sk-1", b"sk-1"));
        assert!(!contains(b"Bearer sk-", b"sk-1"));
        assert!(!contains(b"anything", b""));
    }
}
