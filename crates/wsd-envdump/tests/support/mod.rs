//! What the provisioning tests share: fake providers on loopback and value hashes.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{Value, json};

/// The hash `wsd-envdump` records of a value.
pub fn sha(value: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A provider on 127.0.0.1 that answers Anthropic Messages calls and records, for each, the
/// credential it was sent, the model, and whether wsd's own attribution header reached it.
pub async fn fake_minimax(seen: Arc<std::sync::Mutex<Vec<(String, String, bool)>>>) -> String {
    let app = axum::Router::new().route(
        "/anthropic/v1/messages",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap();
                // MiniMax takes its key as a bearer token.
                let key = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().unwrap().strip_prefix("Bearer "))
                    .map(str::to_owned)
                    .unwrap_or_default();
                let attributed = headers.contains_key("x-wsd-workspace-id");
                seen.lock().unwrap().push((key, body["model"].as_str().unwrap_or_default().to_owned(), attributed));
                axum::Json(json!({"id": "msg_e2e", "content": [{"type": "text", "text": "hello"}], "usage": {"input_tokens": 31, "output_tokens": 17}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// A provider on 127.0.0.1 that answers OpenAI Responses calls and records, for each, the
/// bearer key it was sent and the model.
pub async fn fake_openai(seen: Arc<std::sync::Mutex<Vec<(String, String)>>>) -> String {
    let app = axum::Router::new().route(
        "/v1/responses",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap();
                let key = headers.get("authorization").and_then(|v| v.to_str().unwrap().strip_prefix("Bearer ")).unwrap_or_default();
                seen.lock().unwrap().push((key.to_owned(), body["model"].as_str().unwrap_or_default().to_owned()));
                axum::Json(json!({"id": "resp_e2e", "object": "response", "status": "completed", "output": [],
                    "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}
