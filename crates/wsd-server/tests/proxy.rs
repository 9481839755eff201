//! The metering proxy against a fake upstream on 127.0.0.1 that speaks the Anthropic and
//! OpenAI protocols, streaming and not.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use support::{ADMIN, Api, Backend, start};
use wsd_core::Registry;
use wsd_core::registry::ProviderOverride;
use wsd_store::TokenKind;

const PLATFORM_KEY: &str = "canary-platform-minimax-key-5a1f";

/// What the fake upstream received: (path, credential header, body).
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn fake_upstream(seen: Seen) -> String {
    let record = move |path: &'static str, seen: Seen| {
        move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap();
                let credential = headers
                    .get("x-api-key")
                    .or(headers.get("authorization"))
                    .map(|v| v.to_str().unwrap().trim_start_matches("Bearer ").to_owned())
                    .unwrap_or_default();
                seen.lock().unwrap().push((path.to_owned(), credential, body.clone()));
                let streaming = body["stream"] == true;
                match (path, streaming) {
                    ("anthropic", false) => axum::Json(json!({"id": "msg_1", "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}})).into_response(),
                    ("anthropic", true) => (
                        [("content-type", "text/event-stream")],
                        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":4}}}\n\n\
                         event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n\
                         event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n\
                         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                    )
                        .into_response(),
                    ("openai", false) => axum::Json(json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9}})).into_response(),
                    _ => (
                        [("content-type", "text/event-stream")],
                        "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
                         data: {\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":6}}}\n\n\
                         data: [DONE]\n\n",
                    )
                        .into_response(),
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/anthropic/v1/messages", post(record("anthropic", seen.clone())))
        .route("/openai/chat/completions", post(record("openai", seen.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

struct Setup {
    api: Api,
    org: String,
    workspace: String,
    usage_token: String,
    seen: Seen,
}

async fn setup() -> Setup {
    let seen: Seen = Arc::default();
    let fake = fake_upstream(seen.clone()).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: Some(format!("{fake}/openai")) },
    )]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    let api = start(Backend::Sqlite, "proxy", true, Some(registry)).await.unwrap();
    let org = api.org("acme").await;
    let workspace = api.workspace(&org, "metered", "claude-code", "minimax/MiniMax-M2.7").await;
    api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": PLATFORM_KEY})).await;
    let (_, token) = api.state.store.create_token(TokenKind::Usage, Some(&org), Some(&workspace), "usage", "test").await.unwrap();
    Setup { api, org, workspace, usage_token: token.expose().to_owned(), seen }
}

async fn send(setup: &Setup, path: &str, body: Value, header: &str) -> (u16, String) {
    let request = setup.api.client.post(format!("{}{path}", setup.api.base)).json(&body);
    let request =
        if header == "x-api-key" { request.header("x-api-key", &setup.usage_token) } else { request.bearer_auth(&setup.usage_token) };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains(PLATFORM_KEY) && !text.contains(&setup.usage_token), "a key in a response: {text}");
    (status, text)
}

async fn usage_rows(setup: &Setup, expected: usize) -> Vec<Value> {
    for _ in 0..100 {
        let r = setup.api.get(&format!("/v1/orgs/{}/usage", setup.org), ADMIN).await;
        let rows = r.body["usage"].as_array().cloned().unwrap_or_default();
        if rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum::<i64>() as usize >= expected {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the usage rows never appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_swaps_keys_rewrites_models_and_meters_every_request() {
    let s = setup().await;
    let message = json!({"model": "minimax/MiniMax-M2.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message.clone(), "x-api-key").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"text\":\"hi\""));
    let mut streamed = message.clone();
    streamed["stream"] = json!(true);
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", streamed, "authorization").await;
    assert_eq!(status, 200);
    assert!(body.contains("event: message_stop"), "the stream passes through: {body}");
    let chat = json!({"model": "minimax/MiniMax-M2.7", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send(&s, "/llm/openai/v1/chat/completions", chat.clone(), "authorization").await.0, 200);
    let mut chat_stream = chat.clone();
    chat_stream["stream"] = json!(true);
    let (status, body) = send(&s, "/llm/openai/v1/chat/completions", chat_stream, "authorization").await;
    assert_eq!(status, 200);
    assert!(body.contains("[DONE]"));

    // Upstream saw the platform's key, never the usage token, and the vendor's model id.
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for (_, credential, body) in &seen {
        assert_eq!(credential, PLATFORM_KEY);
        assert_eq!(body["model"], "MiniMax-M2.7");
    }
    assert_eq!(seen[3].2["stream_options"]["include_usage"], true, "streamed chat asks upstream for usage");

    // One ledger row per request, with what upstream reported.
    let rows = usage_rows(&s, 4).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row["workspace_id"].as_str(), row["provider"].as_str(), row["model"].as_str()),
        (Some(s.workspace.as_str()), Some("minimax"), Some("MiniMax-M2.7"))
    );
    assert_eq!(row["requests"], 4);
    assert_eq!(row["input_tokens"], 10 + 12 + 20 + 21);
    assert_eq!(row["output_tokens"], 5 + 7 + 9 + 8);
    assert_eq!(row["cache_read_tokens"], 2 + 3 + 6);
    assert_eq!(row["cache_write_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_refuses_what_it_cannot_meter() {
    let s = setup().await;
    let unknown = json!({"model": "nowhere/some-model", "messages": []});
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", unknown, "x-api-key").await;
    assert_eq!(status, 400);
    assert!(body.contains("UNKNOWN_MODEL_NAMESPACE"));
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", json!({"model": "MiniMax-M2.7"}), "x-api-key").await;
    assert_eq!((status, body.contains("UNKNOWN_MODEL_NAMESPACE")), (400, true));

    // Not a usage token: the org's API token, a wrong token, none.
    for token in [ADMIN, "wsd_wrong"] {
        let r = s
            .api
            .client
            .post(format!("{}/llm/anthropic/v1/messages", s.api.base))
            .header("x-api-key", token)
            .json(&json!({"model": "minimax/MiniMax-M2.7"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = s.api.client.post(format!("{}/llm/openai/v1/chat/completions", s.api.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A revoked usage token (a stopped workspace) stops working.
    let tokens = s.api.state.store.list_tokens(Some(&s.org)).await.unwrap();
    let usage = tokens.iter().find(|t| t.kind == TokenKind::Usage).unwrap();
    s.api.state.store.revoke_token(Some(&s.org), &usage.id, "test").await.unwrap();
    let (status, _) = send(&s, "/llm/anthropic/v1/messages", json!({"model": "minimax/MiniMax-M2.7"}), "x-api-key").await;
    assert_eq!(status, 401);
    assert!(s.seen.lock().unwrap().is_empty(), "nothing reached upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_over_its_budget_gets_402_before_any_upstream_call() {
    let s = setup().await;
    let r = s.api.put(&format!("/v1/orgs/{}/budget", s.org), ADMIN, json!({"period": "day", "tokens": 20})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let message = json!({"model": "minimax/MiniMax-M2.7", "messages": []});
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message.clone(), "x-api-key").await.0, 200);
    usage_rows(&s, 1).await;
    let budget = s.api.get(&format!("/v1/orgs/{}/budget", s.org), ADMIN).await;
    assert_eq!((budget.body["tokens"].clone(), budget.body["used"].clone()), (json!(20), json!(15)));
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message.clone(), "x-api-key").await.0, 200);
    usage_rows(&s, 2).await;
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message, "x-api-key").await;
    assert_eq!(status, 402, "{body}");
    assert!(body.contains("BUDGET_EXCEEDED") && body.contains("30 of its 20 tokens"), "{body}");
    assert_eq!(s.seen.lock().unwrap().len(), 2, "the refused request never reached upstream");
    let bad = s.api.put(&format!("/v1/orgs/{}/budget", s.org), ADMIN, json!({"period": "week", "tokens": 5})).await;
    assert_eq!(bad.body["error"]["code"], "INVALID_BUDGET");
}
