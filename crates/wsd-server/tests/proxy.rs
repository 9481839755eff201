//! The metering proxy against a fake upstream on 127.0.0.1 that speaks the Anthropic and
//! OpenAI protocols, streaming and not, and misbehaves on request.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use futures_util::{Stream, StreamExt, stream};
use serde_json::{Value, json};
use support::{ADMIN, Api, Backend, Options, start_with};
use wsd_core::Registry;
use wsd_core::registry::ProviderOverride;
use wsd_server::proxy::ProxySettings;
use wsd_store::TokenKind;

const PLATFORM_KEY: &str = "canary-platform-minimax-key-5a1f";

/// What the fake upstream received: (path, `bearer:KEY` or `x-api-key:KEY`, body).
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

#[derive(Clone, Default)]
struct Fake {
    seen: Seen,
    /// The request headers of every call, in order.
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    /// Streams of the fake that ended because their client went away.
    abandoned: Arc<AtomicUsize>,
}

/// Counts a stream dropped before it ended.
struct Abandoned(Arc<AtomicUsize>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const MESSAGE_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":4}}}\n\n";
const MESSAGE_REST: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n\
                            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n";
const MESSAGE_STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn event_stream(chunks: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> axum::response::Response {
    ([("content-type", "text/event-stream")], Body::from_stream(chunks)).into_response()
}

/// The fake provider. It answers by the request's `behave` field (copied through by the
/// proxy like any other field), else behaves: `slow` answers after 3 s; `fail-503` and `fail-400` fail; streamed, `cut` breaks
/// the connection after the first event, `short` ends cleanly without its final event,
/// `hang` goes silent, and `drip` sends a ping every 20 ms until its client leaves.
async fn answer(path: &'static str, fake: Fake, headers: HeaderMap, body: String) -> axum::response::Response {
    let body: Value = serde_json::from_str(&body).unwrap();
    let credential = match (headers.get("x-api-key"), headers.get("authorization")) {
        (Some(key), None) => format!("x-api-key:{}", key.to_str().unwrap()),
        (None, Some(bearer)) => format!("bearer:{}", bearer.to_str().unwrap().strip_prefix("Bearer ").unwrap()),
        (None, None) => String::new(),
        (Some(_), Some(_)) => "both".to_owned(),
    };
    fake.seen.lock().unwrap().push((path.to_owned(), credential.clone(), body.clone()));
    fake.headers.lock().unwrap().push(headers.clone());
    let streaming = body["stream"] == true;
    let behaviour = body["behave"].as_str().unwrap_or_default().to_owned();
    match (behaviour.as_str(), path, streaming) {
        ("slow", _, _) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            axum::Json(json!({"usage": {"input_tokens": 1, "output_tokens": 1}})).into_response()
        }
        ("pause", _, _) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            axum::Json(json!({"usage": {"input_tokens": 1, "output_tokens": 1}})).into_response()
        }
        ("fail-503", ..) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})))
                .into_response()
        }
        ("echo-key", ..) => {
            // A provider that quotes the credential it was given back in its error.
            let key = credential.split_once(':').map(|(_, k)| k.to_owned()).unwrap_or_default();
            let text = format!("invalid key {key}; the key {key} was rejected");
            (StatusCode::UNAUTHORIZED, [("x-echo", key.clone())], axum::Json(json!({"type": "error", "error": {"type": "authentication_error", "message": text}})))
                .into_response()
        }
        ("endless-line", _, true) => {
            // One line that never ends (4 MiB of it, then the stream hangs).
            let line = stream::iter((0..64).map(|_| Ok(Bytes::from(vec![b'x'; 64 * 1024]))));
            event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START)), Ok(Bytes::from("data: "))]).chain(line).chain(stream::pending()))
        }
        ("absurd", ..) => axum::Json(json!({"usage": {"input_tokens": -1_000_000_000i64, "output_tokens": i64::MAX}})).into_response(),
        ("fail-400", ..) => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}})))
                .into_response()
        }
        ("cut", _, true) => {
            let cut = stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("cut"))
            });
            event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START))]).chain(cut))
        }
        ("short", _, true) => event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START)), Ok(Bytes::from(MESSAGE_REST))])),
        ("hang", _, true) => event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START))]).chain(stream::pending())),
        ("trickle", _, true) => {
            // Never silent for the limit, though longer than it in all.
            let pings = stream::unfold(0, |n| async move {
                (n < 4).then_some(())?;
                tokio::time::sleep(UPSTREAM_TIMEOUT * 2 / 5).await;
                Some((Ok(Bytes::from("event: ping\ndata: {\"type\":\"ping\"}\n\n")), n + 1))
            });
            let end = stream::iter([MESSAGE_REST, MESSAGE_STOP].map(|s| Ok(Bytes::from(s))));
            event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START))]).chain(pings).chain(end))
        }
        ("drip", _, true) => {
            let guard = Abandoned(fake.abandoned.clone());
            let pings = stream::unfold(guard, |guard| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok(Bytes::from("event: ping\ndata: {\"type\":\"ping\"}\n\n")), guard))
            });
            event_stream(stream::iter([Ok(Bytes::from(MESSAGE_START))]).chain(pings))
        }
        (_, "anthropic", false) => (
            [("request-id", "req_vendor_1")],
            axum::Json(json!({"id": "msg_1", "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}})),
        )
            .into_response(),
        (_, "responses", false) => axum::Json(json!({"id": "resp_1", "output": [], "usage": {"input_tokens": 30, "output_tokens": 11, "input_tokens_details": {"cached_tokens": 4}}})).into_response(),
        (_, "responses", true) => event_stream(stream::iter(
            [
                "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_2\",\"usage\":null}}\n\n",
                "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
                "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_2\",\"usage\":{\"input_tokens\":31,\"output_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":5}}}}\n\n",
            ]
            .map(|s| Ok(Bytes::from(s))),
        )),
        (_, "anthropic", true) => event_stream(stream::iter([MESSAGE_START, MESSAGE_REST, MESSAGE_STOP].map(|s| Ok(Bytes::from(s))))),
        (_, _, false) => axum::Json(json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9}})).into_response(),
        (_, _, true) => event_stream(stream::iter(
            [
                "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":6}}}\n\n",
                "data: [DONE]\n\n",
            ]
            .map(|s| Ok(Bytes::from(s))),
        )),
    }
}

async fn fake_upstream(fake: Fake) -> String {
    let app = axum::Router::new()
        .route("/anthropic/v1/messages", post(|State(f): State<Fake>, h: HeaderMap, b: String| answer("anthropic", f, h, b)))
        .route("/anthropic/v1/messages/count_tokens", post(|| async { axum::Json(json!({"input_tokens": 5})) }))
        .route("/openai/chat/completions", post(|State(f): State<Fake>, h: HeaderMap, b: String| answer("openai", f, h, b)))
        .route("/openai/responses", post(|State(f): State<Fake>, h: HeaderMap, b: String| answer("responses", f, h, b)))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

struct Setup {
    api: Api,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    org: String,
    workspace: String,
    usage_token: String,
    seen: Seen,
    abandoned: Arc<AtomicUsize>,
}

/// The proxy gives up on a silent upstream after this long.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(1);

async fn setup() -> Setup {
    setup_with(Backend::Sqlite, Registry::embedded().unwrap()).await
}

/// The proxy over `registry` on `backend`, with MiniMax at the fake provider.
async fn setup_with(backend: Backend, registry: Registry) -> Setup {
    let fake_state = Fake::default();
    let (seen, abandoned, headers) = (fake_state.seen.clone(), fake_state.abandoned.clone(), fake_state.headers.clone());
    let fake = fake_upstream(fake_state).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: Some(format!("{fake}/openai")) },
    )]);
    let registry = registry.with_overrides(&overrides).unwrap();
    let proxy = ProxySettings { connect_timeout: Duration::from_secs(1), upstream_timeout: UPSTREAM_TIMEOUT, ..ProxySettings::default() };
    let api = start_with(backend, "proxy", true, Some(registry), Options { proxy: Some(proxy), ..Options::default() }).await;
    let org = api.org("acme").await;
    let workspace = api.workspace(&org, "metered", "claude-code", "minimax/MiniMax-M2.7").await;
    api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": PLATFORM_KEY})).await;
    let (_, token) = api.state.store.create_token(TokenKind::Usage, Some(&org), Some(&workspace), "usage", "test").await.unwrap();
    Setup { api, headers, org, workspace, usage_token: token.expose().to_owned(), seen, abandoned }
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
    // A plain answer keeps upstream's framing.
    let plain = s
        .api
        .client
        .post(format!("{}/llm/anthropic/v1/messages", s.api.base))
        .header("x-api-key", &s.usage_token)
        .json(&message)
        .send()
        .await
        .unwrap();
    let length = plain.content_length();
    assert_eq!(plain.headers()["request-id"], "req_vendor_1", "upstream's request id reaches the client");
    assert_eq!(length, Some(plain.bytes().await.unwrap().len() as u64));
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
    assert_eq!(seen.len(), 5);
    for (_, credential, body) in &seen {
        // MiniMax takes its key as a bearer token on both surfaces, as Claude Code sends it.
        assert_eq!(*credential, format!("bearer:{PLATFORM_KEY}"));
        assert_eq!(body["model"], "MiniMax-M2.7");
    }
    assert_eq!(seen[4].2["stream_options"]["include_usage"], true, "streamed chat asks upstream for usage");

    // One ledger row per request, with what upstream reported.
    let rows = usage_rows(&s, 5).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row["workspace_id"].as_str(), row["provider"].as_str(), row["model"].as_str()),
        (Some(s.workspace.as_str()), Some("minimax"), Some("MiniMax-M2.7"))
    );
    assert_eq!(row["requests"], 5);
    assert_eq!(row["input_tokens"], 10 + 10 + 12 + 20 + 21);
    assert_eq!(row["output_tokens"], 5 + 5 + 7 + 9 + 8);
    assert_eq!(row["cache_read_tokens"], 2 + 2 + 3 + 6);
    assert_eq!(row["cache_write_tokens"], 4);

    let latest = s.api.get(&format!("/v1/orgs/{}/usage/requests?limit=5", s.org), ADMIN).await.body;
    // Each request priced at MiniMax-M2.7's list prices (USD per Mtok: 0.30 in, 1.20 out,
    // 0.06 cache read, 0.375 cache write), rounded to the micro-dollar; the summary sums them.
    let mut total = 0;
    for request in latest["requests"].as_array().unwrap() {
        let tokens = |field: &str| request[field].as_f64().unwrap();
        let expected = (tokens("input_tokens") * 0.30
            + tokens("output_tokens") * 1.20
            + tokens("cache_read_tokens") * 0.06
            + tokens("cache_write_tokens") * 0.375)
            .round() as i64;
        assert_eq!(request["cost_micros"], expected, "{request}");
        total += expected;
    }
    assert_eq!((row["cost_micros"].as_i64(), row["unpriced_requests"].as_i64()), (Some(total), Some(0)));
    let days = s.api.get(&format!("/v1/orgs/{}/usage", s.org), ADMIN).await.body["days"].clone();
    assert_eq!(days.as_array().unwrap().len(), 1, "{days}");
    assert_eq!((days[0]["requests"].as_i64(), days[0]["cost_micros"].as_i64()), (Some(5), Some(total)));
    assert_eq!(days[0]["date"].as_str().unwrap().len(), 10, "{days}");

    let ids: Vec<_> = latest["requests"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.iter().filter(|id| *id == "req_vendor_1").count(), 2, "upstream's request id is the row's: {ids:?}");
    assert!(ids.iter().all(|id| !id.is_empty()));

    // The same, as metrics.
    let metrics = s.api.client.get(format!("{}/metrics", s.api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "wsd_proxy_requests_total{provider=\"minimax\",status=\"200\"} 5"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "wsd_proxy_tokens_total{provider=\"minimax\",kind=\"input\"} 73"), "{metrics}");
    for (surface, calls) in [("anthropic", 3), ("openai", 2)] {
        let line = format!("wsd_http_requests_total{{method=\"POST\",route=\"/llm/{surface}/{{*rest}}\",status=\"200\"}} {calls}");
        assert!(metrics.lines().any(|l| l == line), "proxied calls are counted under their route's pattern: {metrics}");
    }
    // A proxied path that is not UTF-8 once decoded is refused in the error envelope, before
    // anything else (no ledger row: nothing was admitted).
    let (status, body) = send(&s, "/llm/anthropic/v1/%FF", message.clone(), "x-api-key").await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"], "INVALID_PATH", "{body}");

    // The operator replaces the platform key: the next request carries the new one.
    s.api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": "canary-platform-minimax-key-2"})).await;
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message.clone(), "x-api-key").await.0, 200);
    assert_eq!(s.seen.lock().unwrap().last().unwrap().1, "bearer:canary-platform-minimax-key-2");
    // A key that no HTTP header can carry is refused by name, and nothing goes upstream.
    s.api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": "canary-broken\nkey"})).await;
    let calls = s.seen.lock().unwrap().len();
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message.clone(), "x-api-key").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("INVALID_VALUE") && body.contains("MINIMAX_API_KEY") && !body.contains("canary-broken"), "{body}");
    assert_eq!(s.seen.lock().unwrap().len(), calls, "nothing reached the provider");
    s.api.delete("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN).await;
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message, "x-api-key").await;
    assert_eq!(status, 502);
    assert!(body.contains("PLATFORM_KEY_MISSING") && body.contains("MINIMAX_API_KEY"), "{body}");
}

/// Where the price book lacks a price a request needed, its cost is unknown — never 0 — and
/// the summary says how many requests that was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_without_a_price_is_unknown_not_zero() {
    let yaml = wsd_core::registry::EMBEDDED_REGISTRY_YAML.replace(
        "  MiniMax-M2.7: { input: 0.30, output: 1.20, cache_read: 0.06, cache_write: 0.375 }",
        "  MiniMax-M2.7: { input: 0.30, output: 1.20 }",
    );
    let s = setup_with(Backend::Sqlite, Registry::from_yaml(&yaml).unwrap()).await;
    let message = json!({"model": "minimax/MiniMax-M2.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // The fake's plain Anthropic answer reports cached tokens; its plain chat answer none.
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message, "x-api-key").await.0, 200);
    let chat = json!({"model": "minimax/MiniMax-M2.7", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send(&s, "/llm/openai/v1/chat/completions", chat, "authorization").await.0, 200);
    let rows = usage_rows(&s, 2).await;
    let latest = requests(&s, 2).await;
    let costs: Vec<Option<i64>> = latest.iter().map(|r| r["cost_micros"].as_i64()).collect();
    let priced: Vec<&Value> = latest.iter().filter(|r| r["cost_micros"].is_i64()).collect();
    assert_eq!(priced.len(), 1, "one request used cached tokens, which have no price here: {costs:?}");
    assert!(priced[0]["cache_read_tokens"] == 0 && priced[0]["cache_write_tokens"] == 0, "{latest:?}");
    assert_eq!(rows[0]["unpriced_requests"], 1);
    assert_eq!(rows[0]["cost_micros"], priced[0]["cost_micros"]);
}

/// A CLI that cannot send namespaced ids (Hermes) sends its model's own id: the usage token
/// says which platform model that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_model_id_is_the_tokens_own_model() {
    let s = setup().await;
    let (status, body) =
        send(&s, "/llm/anthropic/v1/messages", json!({"model": "MiniMax-M2.7", "max_tokens": 1, "messages": []}), "x-api-key").await;
    assert_eq!(status, 200, "{body}");
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].2["model"], "MiniMax-M2.7", "upstream gets the vendor's id");
    let rows = usage_rows(&s, 1).await;
    assert_eq!(rows[0]["model"], "MiniMax-M2.7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_refuses_what_it_cannot_meter() {
    let s = setup().await;
    // A workspace calls its own model only: another platform model, a made-up one, another
    // vendor's id without its namespace are all refused, and nothing reaches upstream.
    for model in ["anthropic/claude-opus-4-8", "nowhere/some-model", "claude-opus-4-8", "MiniMax-M2.7 ", "minimax/MiniMax-M2.7 "] {
        let (status, body) = send(&s, "/llm/anthropic/v1/messages", json!({"model": model, "messages": []}), "x-api-key").await;
        assert_eq!((status, body.contains("MODEL_NOT_ALLOWED")), (403, true), "{model}: {body}");
    }
    assert!(s.seen.lock().unwrap().is_empty());

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
    // A body over 32 MiB: refused with a code, but only once the caller is admitted.
    // The server answers before it has read such a body, so a raw client sends it from one
    // thread and reads the answer on another, whenever it comes.
    let address = s.api.base.strip_prefix("http://").unwrap().to_owned();
    let huge = 33 << 20;
    let (status, _) = tokio::task::spawn_blocking({
        let address = address.clone();
        move || raw_post(&address, "/llm/anthropic/v1/messages", "wsd_wrong", huge)
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    let token = s.usage_token.clone();
    let (status, answer) =
        tokio::task::spawn_blocking(move || raw_post(&address, "/llm/anthropic/v1/messages", &token, huge)).await.unwrap();
    assert_eq!(status, 413);
    assert!(answer.contains("BODY_TOO_LARGE"), "{answer}");
    let url = format!("{}/llm/anthropic/v1/messages", s.api.base);
    let r = s.api.client.post(&url).header("x-api-key", &s.usage_token).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_JSON"));

    // The token names one workspace, the request another.
    let r = s
        .api
        .client
        .post(format!("{}/llm/anthropic/v1/messages", s.api.base))
        .header("x-api-key", &s.usage_token)
        .header("x-wsd-workspace-id", "some-other-workspace")
        .json(&json!({"model": "minimax/MiniMax-M2.7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("WORKSPACE_MISMATCH"));

    // A revoked usage token (a stopped workspace) stops working.
    let tokens = s.api.state.store.list_tokens(Some(&s.org)).await.unwrap();
    let usage = tokens.iter().find(|t| t.kind == TokenKind::Usage).unwrap();
    let r = s.api.delete(&format!("/v1/orgs/{}/tokens/{}", s.org, usage.id), ADMIN).await;
    assert_eq!(r.status.as_u16(), 204);
    let (status, _) = send(&s, "/llm/anthropic/v1/messages", json!({"model": "minimax/MiniMax-M2.7"}), "x-api-key").await;
    assert_eq!(status, 401);
    assert!(s.seen.lock().unwrap().is_empty(), "nothing reached upstream");
}

/// What the proxy reserves for `body` at admission: a token per 3 bytes of it, and its
/// `max_tokens`.
fn estimate_tokens(body: &Value) -> i64 {
    let bytes = serde_json::to_vec(body).unwrap().len() as i64;
    (bytes + 2) / 3 + body["max_tokens"].as_i64().unwrap()
}

async fn put_budget(s: &Setup, budget: Value) -> Value {
    let r = s.api.put(&format!("/v1/orgs/{}/budgets", s.org), ADMIN, budget).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    r.body
}

async fn standings(s: &Setup) -> Vec<Value> {
    s.api.get(&format!("/v1/orgs/{}/budgets", s.org), ADMIN).await.body["budgets"].as_array().cloned().unwrap()
}

/// Declares `$name(backend)` as a test on SQLite and one on PostgreSQL.
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(wsd_test_postgres), ignore = "no PostgreSQL server: install postgresql or set WSD_TEST_DATABASE_URL")]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    };
}

/// Waits until no reservation is held: every admitted request's row is stored.
async fn settled(s: &Setup) -> Vec<Value> {
    for _ in 0..200 {
        let now = standings(s).await;
        if now.iter().all(|b| b["reserved"] == 0) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("reservations were never released: {:?}", standings(s).await);
}

/// Forty requests at once against a budget that holds five of them: exactly five go
/// upstream, the rest are refused before it, and the budget then holds what they used.
async fn a_budget_holds_under_concurrent_requests(backend: Backend) {
    let s = std::sync::Arc::new(setup_with(backend, Registry::embedded().unwrap()).await);
    // Each answer takes 0.5 s (and uses 1 in, 1 out): all forty are in flight at once.
    let body = message("pause", false);
    let estimate = estimate_tokens(&body);
    put_budget(&s, json!({"unit": "tokens", "period": "day", "limit": 5 * estimate})).await;
    let sends: Vec<_> = (0..40)
        .map(|_| {
            let (s, body) = (s.clone(), body.clone());
            tokio::spawn(async move { send(&s, "/llm/anthropic/v1/messages", body, "x-api-key").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for sent in sends {
        let (status, body) = sent.await.unwrap();
        if status == 402 {
            assert!(body.contains("BUDGET_EXCEEDED") && body.contains("the org") && body.contains("renews at"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|&&st| st == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&st| st == 402).count(), 35, "{statuses:?}");
    assert_eq!(s.seen.lock().unwrap().len(), 5, "the refused requests never reached upstream");
    // Settled with what each used: the estimate no longer counts.
    let standing = &settled(&s).await[0];
    assert_eq!((standing["spent"].as_i64(), standing["remaining"].as_i64()), (Some(5 * 2), Some(5 * estimate - 10)));
    assert_eq!(
        (standing["unit"].as_str(), standing["period"].as_str(), standing["workspace_id"].as_str()),
        (Some("tokens"), Some("day"), None)
    );
    assert!(standing["resets_at"].as_i64().unwrap() > wsd_store::now_ms());
    assert_eq!(requests(&s, 40).await.iter().filter(|r| r["status"] == 402).count(), 35, "each refusal has its row");

    // The answer says where the client stands; a raised budget applies at once.
    put_budget(&s, json!({"unit": "tokens", "period": "day", "limit": 1_000_000})).await;
    let body = message("", false);
    let answer = s.api.client.post(format!("{}/llm/anthropic/v1/messages", s.api.base)).header("x-api-key", &s.usage_token).json(&body);
    let answer = answer.send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let remaining: i64 = answer.headers()["x-wsd-budget-remaining-tokens"].to_str().unwrap().parse().unwrap();
    assert_eq!(remaining, 1_000_000 - 10 - estimate_tokens(&body));
    assert!(answer.headers()["x-wsd-budget-reset-tokens"].to_str().unwrap().ends_with("T00:00:00.000Z"));
    // count_tokens is never refused for budget.
    put_budget(&s, json!({"unit": "tokens", "period": "day", "limit": 0})).await;
    assert_eq!(send(&s, "/llm/anthropic/v1/messages/count_tokens", body.clone(), "x-api-key").await.0, 200);
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body, "x-api-key").await.0, 402);

    // Only an admin sets budgets; every field is checked.
    let org_token = s.api.org_token(&s.org).await;
    let r = s.api.put(&format!("/v1/orgs/{}/budgets", s.org), &org_token, json!({"unit": "tokens", "period": "day", "limit": 9})).await;
    assert_eq!(r.status.as_u16(), 403);
    for bad in [
        json!({"unit": "eur", "period": "day", "limit": 1}),
        json!({"unit": "usd", "period": "year", "limit": 1}),
        json!({"unit": "usd", "period": "day", "limit": -1}),
    ] {
        let r = s.api.put(&format!("/v1/orgs/{}/budgets", s.org), ADMIN, bad).await;
        assert_eq!(r.body["error"]["code"], "INVALID_BUDGET", "{}", r.body);
    }
    let listed = s.api.get(&format!("/v1/orgs/{}/budgets", s.org), &org_token).await;
    let id = listed.body["budgets"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(s.api.delete(&format!("/v1/orgs/{}/budgets/{id}", s.org), ADMIN).await.status.as_u16(), 204);
    assert!(standings(&s).await.is_empty());
}

/// A USD budget stops spending within one request's estimate of its limit; a workspace's
/// own budget applies beside the org's.
async fn a_usd_budget_stops_within_one_estimate_of_its_limit(backend: Backend) {
    let s = setup_with(backend, Registry::embedded().unwrap()).await;
    // MiniMax-M2.7: $0.30 in, $1.20 out per Mtok. Each answer uses 10 in, 5 out, 2 cache reads:
    // 3 + 6 + 0.12 → 9 µ$. The estimate: the body's tokens in, 10 out.
    let body = message("", false);
    let input = (serde_json::to_vec(&body).unwrap().len() as f64 / 3.0).ceil();
    let estimate = (input * 0.30 + 10.0 * 1.20).round() as i64;
    let limit = 100;
    put_budget(&s, json!({"workspace": s.workspace, "unit": "usd", "period": "week", "limit": limit})).await;
    put_budget(&s, json!({"unit": "tokens", "period": "month", "limit": 1_000_000})).await;
    let mut admitted = 0;
    loop {
        let (status, answer) = send(&s, "/llm/anthropic/v1/messages", body.clone(), "x-api-key").await;
        if status == 402 {
            assert!(
                answer.contains("BUDGET_EXCEEDED")
                    && answer.contains(&format!("workspace {}", s.workspace))
                    && answer.contains("$0.000100"),
                "{answer}"
            );
            break;
        }
        assert_eq!(status, 200);
        admitted += 1;
        assert!(admitted < 50, "the budget never stopped");
        settled(&s).await;
    }
    let standing = settled(&s).await.into_iter().find(|b| b["unit"] == "usd").unwrap();
    let spent = standing["spent"].as_i64().unwrap();
    assert_eq!(spent, admitted * 9);
    assert!(spent <= limit && spent + estimate > limit, "spent {spent}, estimate {estimate}, limit {limit}");
}

/// Past its rate limits a workspace gets 429 with `Retry-After`, before any upstream call;
/// an org's own limits replace the platform's and can be removed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let s = setup().await;
    let path = format!("/v1/orgs/{}/rate-limits", s.org);
    let org_token = s.api.org_token(&s.org).await;
    let view = s.api.get(&path, &org_token).await.body;
    assert_eq!((view["requests_per_minute"].as_u64(), view["source"].as_str()), (Some(0), Some("default")));
    assert_eq!(s.api.put(&path, &org_token, json!({"requests_per_minute": 1, "tokens_per_minute": 0})).await.status.as_u16(), 403);
    let set = s.api.put(&path, ADMIN, json!({"requests_per_minute": 2, "tokens_per_minute": 0})).await;
    assert_eq!((set.body["requests_per_minute"].as_u64(), set.body["source"].as_str()), (Some(2), Some("org")), "{}", set.body);
    let body = message("", false);
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body.clone(), "x-api-key").await.0, 200);
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body.clone(), "x-api-key").await.0, 200);
    let refused = s.api.client.post(format!("{}/llm/anthropic/v1/messages", s.api.base)).header("x-api-key", &s.usage_token).json(&body);
    let refused = refused.send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let text = refused.text().await.unwrap();
    assert!(text.contains("RATE_LIMITED") && text.contains(&format!("\"retry_after_seconds\":{wait}")), "{text}");
    assert_eq!(s.seen.lock().unwrap().len(), 2, "the refused request never reached upstream");

    // Tokens per minute count what requests used: each answer here uses 15, 30 so far.
    s.api.put(&path, ADMIN, json!({"requests_per_minute": 0, "tokens_per_minute": 40})).await;
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body.clone(), "x-api-key").await.0, 200);
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body.clone(), "x-api-key").await.0, 429, "45 of 40 tokens");

    // Back to the platform's limits: none here.
    assert_eq!(s.api.delete(&path, ADMIN).await.status.as_u16(), 204);
    assert_eq!(s.api.delete(&path, ADMIN).await.status.as_u16(), 404);
    assert_eq!(s.api.get(&path, ADMIN).await.body["source"], "default");
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", body, "x-api-key").await.0, 200);
}

/// A stream that breaks mid-way settles its reservation with the tokens it saw.
async fn a_cut_stream_settles_its_reservation_with_the_tokens_seen(backend: Backend) {
    let s = setup_with(backend, Registry::embedded().unwrap()).await;
    put_budget(&s, json!({"unit": "tokens", "period": "day", "limit": 1_000_000})).await;
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("cut", true), "x-api-key").await;
    assert_eq!(status, 200);
    assert!(body.contains("UPSTREAM_STREAM_TRUNCATED"), "{body}");
    // The stream's message_start said 12 in, 1 out.
    let standing = &settled(&s).await[0];
    assert_eq!((standing["spent"].as_i64(), standing["reserved"].as_i64()), (Some(13), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_api_calls_are_metered_streamed_or_not() {
    let s = setup().await;
    let request = json!({"model": "minimax/MiniMax-M2.7", "input": "hi"});
    let (status, body) = send(&s, "/llm/openai/v1/responses", request.clone(), "authorization").await;
    assert_eq!((status, body.contains("resp_1")), (200, true), "{body}");
    let mut streamed = request;
    streamed["stream"] = json!(true);
    let (status, body) = send(&s, "/llm/openai/v1/responses", streamed, "authorization").await;
    assert_eq!(status, 200);
    assert!(body.contains("response.completed") && !body.contains("event: error"), "a complete stream is left alone: {body}");
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(path, _, body)| (path.as_str(), body["model"].as_str().unwrap())).collect::<Vec<_>>(),
        [("responses", "MiniMax-M2.7"); 2]
    );
    assert!(seen[1].2.get("stream_options").is_none(), "only chat completions are asked for stream usage");
    let rows = requests(&s, 2).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_i64().unwrap(),
                r["input_tokens"].as_i64().unwrap(),
                r["output_tokens"].as_i64().unwrap(),
                r["cache_read_tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(200, 31, 12, 5), (200, 30, 11, 4)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_the_answer_starts_is_recorded() {
    let s = setup().await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let r = impatient
        .post(format!("{}/llm/anthropic/v1/messages", s.api.base))
        .header("x-api-key", &s.usage_token)
        .json(&message("slow", false))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    let rows = requests(&s, 1).await;
    assert_eq!((rows[0]["model"].as_str(), rows[0]["status"].as_i64()), (Some("MiniMax-M2.7"), Some(499)));
}

/// The ledger rows of the org's latest requests, newest first, once `expected` exist.
async fn requests(setup: &Setup, expected: usize) -> Vec<Value> {
    for _ in 0..200 {
        let r = setup.api.get(&format!("/v1/orgs/{}/usage/requests", setup.org), ADMIN).await;
        let rows = r.body["requests"].as_array().cloned().unwrap_or_default();
        if rows.len() >= expected {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the ledger rows never appeared");
}

/// Neither the platform key nor a usage token is in anything the servers of this binary logged.
fn assert_no_key_in_log(setup: &Setup) {
    let log = String::from_utf8_lossy(&support::log().lock().unwrap()).into_owned();
    assert!(!log.is_empty(), "the log is captured");
    assert!(!log.contains(PLATFORM_KEY) && !log.contains(&setup.usage_token), "a key in the log");
}

fn message(model: &str, stream: bool) -> Value {
    json!({"model": "minimax/MiniMax-M2.7", "behave": model, "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_pass_through_and_are_recorded() {
    let s = setup().await;
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("fail-503", false), "x-api-key").await;
    assert_eq!(status, 503);
    assert!(body.contains("overloaded_error"), "upstream's own error reaches the client: {body}");
    let (status, body) = send(&s, "/llm/openai/v1/chat/completions", message("fail-400", false), "authorization").await;
    assert_eq!((status, body.contains("invalid_request_error")), (400, true), "{body}");
    let rows = requests(&s, 2).await;
    assert_eq!((rows[0]["status"].as_i64(), rows[0]["model"].as_str()), (Some(400), Some("MiniMax-M2.7")));
    assert_eq!((rows[1]["status"].as_i64(), rows[1]["model"].as_str()), (Some(503), Some("MiniMax-M2.7")));
    assert_eq!(rows[1]["workspace_id"], s.workspace.as_str());
    assert_eq!(rows[1]["input_tokens"], 0);
    assert_no_key_in_log(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_times_out_with_504_or_an_error_event() {
    let s = setup().await;
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("slow", false), "x-api-key").await;
    assert_eq!(status, 504, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "UPSTREAM_TIMEOUT");
    assert!(error["error"]["message"].as_str().unwrap().contains("minimax"), "{body}");

    // Mid-stream: what was sent stays, then the protocol's error event.
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("hang", true), "x-api-key").await;
    assert_eq!(status, 200);
    assert!(body.starts_with(MESSAGE_START), "{body}");
    let tail = &body[MESSAGE_START.len()..];
    assert!(tail.starts_with("event: error\ndata: ") && tail.contains("UPSTREAM_TIMEOUT") && tail.ends_with("\n\n"), "{tail}");

    // The limit is on silence, not on the whole answer: a stream whose pieces keep coming
    // runs past it.
    let started = std::time::Instant::now();
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("trickle", true), "x-api-key").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() > UPSTREAM_TIMEOUT, "the stream took longer than the limit");
    assert!(!body.contains("UPSTREAM_TIMEOUT") && body.ends_with(MESSAGE_STOP), "{body}");

    let rows = requests(&s, 3).await;
    assert_eq!((rows[0]["status"].as_i64(), rows[0]["output_tokens"].as_i64()), (Some(200), Some(7)), "{rows:?}");
    let rows = &rows[1..];
    assert_eq!(
        (rows[0]["model"].as_str(), rows[0]["status"].as_i64(), rows[0]["input_tokens"].as_i64()),
        (Some("MiniMax-M2.7"), Some(504), Some(12))
    );
    assert_eq!((rows[1]["model"].as_str(), rows[1]["status"].as_i64()), (Some("MiniMax-M2.7"), Some(504)));
    assert!(rows[1]["latency_ms"].as_i64().unwrap() >= UPSTREAM_TIMEOUT.as_millis() as i64);
    assert_no_key_in_log(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_stream_ends_with_an_error_event_and_is_recorded() {
    let s = setup().await;
    // The connection breaks after the first event.
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("cut", true), "x-api-key").await;
    assert_eq!(status, 200);
    let tail = body.strip_prefix(MESSAGE_START).unwrap_or_else(|| panic!("{body}"));
    let event: Value = serde_json::from_str(tail.strip_prefix("event: error\ndata: ").unwrap().trim_end()).unwrap();
    assert_eq!((event["type"].as_str(), event["error"]["type"].as_str()), (Some("error"), Some("api_error")), "{tail}");
    let text = event["error"]["message"].as_str().unwrap();
    assert!(text.contains("UPSTREAM_STREAM_TRUNCATED") && text.contains("`minimax`"), "{text}");
    // The stream ends cleanly, but before `message_stop`.
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("short", true), "x-api-key").await;
    assert_eq!(status, 200);
    assert!(body.starts_with(&format!("{MESSAGE_START}{MESSAGE_REST}event: error\n")), "{body}");
    // The OpenAI dialect gets its own error shape.
    let (_, body) = send(&s, "/llm/openai/v1/chat/completions", message("short", true), "authorization").await;
    assert!(body.contains("data: {\"error\":{") && body.contains("UPSTREAM_STREAM_TRUNCATED"), "{body}");

    let rows = requests(&s, 3).await;
    let seen: Vec<_> = rows
        .iter()
        .map(|r| (r["status"].as_i64().unwrap(), r["input_tokens"].as_i64().unwrap(), r["output_tokens"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen[1..], [(502, 12, 7), (502, 12, 1)], "the tokens seen before the cut are recorded");
    assert_eq!(seen[0].0, 502);
    assert_no_key_in_log(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_cancels_upstream_and_is_recorded() {
    let s = setup().await;
    let mut response = s
        .api
        .client
        .post(format!("{}/llm/anthropic/v1/messages", s.api.base))
        .header("x-api-key", &s.usage_token)
        .json(&message("drip", true))
        .send()
        .await
        .unwrap();
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("event: ping") {
        received.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    assert_eq!(s.abandoned.load(Ordering::SeqCst), 0, "upstream is still streaming");
    drop(response);

    let rows = requests(&s, 1).await;
    assert_eq!((rows[0]["status"].as_i64(), rows[0]["input_tokens"].as_i64()), (Some(499), Some(12)));
    for _ in 0..200 {
        if s.abandoned.load(Ordering::SeqCst) == 1 {
            assert_no_key_in_log(&s);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("upstream kept streaming after the client left");
}

/// A POST of a `len`-byte JSON body by a raw HTTP/1.1 client: the body is written by one
/// thread (its write may fail once the server has answered and closed), the answer read by
/// this one. The answer's status and text.
fn raw_post(address: &str, path: &str, token: &str, len: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nx-api-key: {token}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).unwrap();
    let mut writer = socket.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // Up to the end of the answer's body (the error envelope is small), or the close.
    while let Ok(n) = socket.read(&mut buffer) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
            break;
        }
    }
    let _ = socket.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_model_calls_with_allowed_headers_go_upstream_and_no_key_comes_back() {
    let s = setup().await;
    let call = |method: reqwest::Method, path: &str| {
        s.api.client.request(method, format!("{}{path}", s.api.base)).header("x-api-key", &s.usage_token).json(&message("", false))
    };
    // Anything but a model call: 404, nothing upstream, a ledger row each.
    for (method, path) in [
        (reqwest::Method::POST, "/llm/anthropic/..%2F..%2Fx"),
        (reqwest::Method::POST, "/llm/anthropic/v1/%2E%2E/messages"),
        (reqwest::Method::POST, "/llm/anthropic/v1/messages/batches"),
        (reqwest::Method::DELETE, "/llm/openai/v1/files/file-x"),
        (reqwest::Method::GET, "/llm/openai/v1/responses/resp_1"),
        (reqwest::Method::POST, "/llm/openai/v1/files"),
    ] {
        let r = call(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{method} {path}");
        assert!(r.text().await.unwrap().contains("ENDPOINT_NOT_ALLOWED"), "{method} {path}");
    }
    assert!(s.seen.lock().unwrap().is_empty(), "nothing reached upstream");
    // The workspace's models, answered by wsd.
    let models: Value = call(reqwest::Method::GET, "/llm/openai/v1/models").send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "minimax/MiniMax-M2.7");
    let rows = requests(&s, 7).await;
    assert_eq!(rows.iter().filter(|r| r["status"] == 404).count(), 6, "{rows:?}");

    // Headers by allowlist: the SDK's own go through, account selectors, cookies and
    // forwarding headers do not.
    let r = call(reqwest::Method::POST, "/llm/anthropic/v1/messages")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-1")
        .header("x-stainless-lang", "js")
        .header("openai-organization", "org-other-tenant")
        .header("openai-project", "proj-other")
        .header("cookie", "session=1")
        .header("x-forwarded-for", "10.0.0.1")
        .header("forwarded", "for=10.0.0.1")
        .header("x-real-ip", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let sent = s.headers.lock().unwrap().last().unwrap().clone();
    for kept in ["anthropic-version", "anthropic-beta", "x-stainless-lang", "authorization", "content-type"] {
        assert!(sent.contains_key(kept), "{kept} was dropped: {sent:?}");
    }
    for dropped in ["openai-organization", "openai-project", "cookie", "x-forwarded-for", "forwarded", "x-real-ip", "x-api-key"] {
        assert!(!sent.contains_key(dropped), "{dropped} reached upstream");
    }

    // A provider that echoes the key: the workspace never sees it.
    let r = call(reqwest::Method::POST, "/llm/anthropic/v1/messages").json(&message("echo-key", false)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("x-echo").is_none());
    let text = r.text().await.unwrap();
    assert!(!text.contains(PLATFORM_KEY), "{text}");
    assert!(text.contains("invalid key [redacted]; the key [redacted] was rejected"), "{text}");
    assert_no_key_in_log(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_after_admission_gets_its_ledger_row() {
    let s = setup().await;
    // 403: another model. 400: not JSON. 413 is covered with the raw client above.
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", json!({"model": "anthropic/claude-opus-4-8"}), "x-api-key").await.0, 403);
    let r =
        s.api.client.post(format!("{}/llm/anthropic/v1/messages", s.api.base)).header("x-api-key", &s.usage_token).body("{not json").send();
    assert_eq!(r.await.unwrap().status().as_u16(), 400);
    // 402: over budget.
    s.api.put(&format!("/v1/orgs/{}/budgets", s.org), ADMIN, json!({"unit": "tokens", "period": "day", "limit": 1})).await;
    s.api.state.store.append_usage(&[usage_row(&s, 5)]).await.unwrap();
    s.api.state.proxy.gate.forget_budgets();
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message("", false), "x-api-key").await.0, 402);
    // count_tokens spends nothing: it passes over budget.
    assert_eq!(send(&s, "/llm/anthropic/v1/messages/count_tokens", message("", false), "x-api-key").await.0, 200);
    s.api.put(&format!("/v1/orgs/{}/budgets", s.org), ADMIN, json!({"unit": "tokens", "period": "day", "limit": 1_000_000})).await;
    // 502: no platform key.
    s.api.delete("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN).await;
    assert_eq!(send(&s, "/llm/anthropic/v1/messages", message("", false), "x-api-key").await.0, 502);
    let rows = requests(&s, 6).await;
    let mut statuses: Vec<i64> =
        rows.iter().filter(|r| r["workspace_id"] == s.workspace.as_str()).map(|r| r["status"].as_i64().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 400, 402, 403, 502], "{rows:?}");
}

/// A ledger row of `tokens` for the setup's workspace, as if metered just now.
fn usage_row(s: &Setup, tokens: i64) -> wsd_store::UsageRecord {
    wsd_store::UsageRecord {
        at: wsd_store::now_ms(),
        org_id: s.org.clone(),
        workspace_id: s.workspace.clone(),
        provider: "minimax".into(),
        model: "MiniMax-M2.7".into(),
        input_tokens: tokens,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 1,
        request_id: "seeded".into(),
        routing: "platform".into(),
        cost_micros: None,
        reservation: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refused_at_once_on_every_path_that_ends_it() {
    let fake = fake_upstream(Fake::default()).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: Some(format!("{fake}/openai")) },
    )]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    let root = std::env::temp_dir().join(format!("wsd-proxy-ends-{}", std::process::id()));
    let options = Options { proxy: Some(ProxySettings::default()), runner: Some(root), ..Options::default() };
    let api = start_with(Backend::Sqlite, "proxy_ends", true, Some(registry), options).await;
    let org = api.org("acme").await;
    api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": PLATFORM_KEY})).await;
    let call = |token: String| {
        let request =
            api.client.post(format!("{}/llm/anthropic/v1/messages", api.base)).header("x-api-key", token).json(&message("", false));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let workspace = api.workspace(&org, "w", "claude-code", "minimax/MiniMax-M2.7").await;
    let mint = || async {
        let (id, token) = api.state.store.create_token(TokenKind::Usage, Some(&org), Some(&workspace), "usage", "test").await.unwrap();
        (id, token.expose().to_owned())
    };
    let ws = format!("/v1/orgs/{org}/workspaces/{workspace}");
    // Each path: the token works (and is now cached), the path runs, the token is refused.
    let (id, token) = mint().await;
    assert_eq!(call(token.clone()).await, 200);
    api.delete(&format!("/v1/orgs/{org}/tokens/{}", id.id), ADMIN).await;
    assert_eq!(call(token).await, 401, "revoked");
    for step in ["provision", "restart", "stop"] {
        let (_, token) = mint().await;
        assert_eq!(call(token.clone()).await, 200);
        let r = api.post(&format!("{ws}/{step}"), ADMIN, json!({})).await;
        assert_eq!(r.status.as_u16(), 200, "{step}: {}", r.body);
        assert_eq!(call(token).await, 401, "{step}");
    }
    let (_, token) = mint().await;
    assert_eq!(call(token.clone()).await, 200);
    api.delete(&ws, ADMIN).await;
    assert_eq!(call(token).await, 401, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_provider_cannot_grow_wsd_or_its_ledger() {
    let s = setup().await;
    // An event line without end: the stream ends with the protocol's error event.
    let (status, body) = send(&s, "/llm/anthropic/v1/messages", message("endless-line", true), "x-api-key").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("\n\n") && body.contains("UPSTREAM_PROTOCOL_ERROR"), "{}", &body[body.len().saturating_sub(300)..]);
    // Absurd counts, twice: recorded as the provider's fault, never summed into overflow.
    for _ in 0..2 {
        assert_eq!(send(&s, "/llm/anthropic/v1/messages", message("absurd", false), "x-api-key").await.0, 200);
    }
    let rows = requests(&s, 3).await;
    assert_eq!(rows.iter().map(|r| r["status"].as_i64().unwrap()).collect::<Vec<_>>(), [502, 502, 502], "{rows:?}");
    assert!(rows[..2].iter().all(|r| r["output_tokens"] == 0 && r["input_tokens"] == 0), "{rows:?}");
    assert_eq!(
        (rows[2]["input_tokens"].as_i64(), rows[2]["output_tokens"].as_i64()),
        (Some(12), Some(1)),
        "what was seen before the endless line"
    );
    let usage = s.api.get(&format!("/v1/orgs/{}/usage", s.org), ADMIN).await;
    assert_eq!(usage.status.as_u16(), 200, "{}", usage.body);
}

const ORG_KEY: &str = "canary-proxy-org-minimax-key-3e9a";

/// A BYOK workspace whose org chose credential delivery `proxy`: its calls go out on the
/// org's key (never the platform's, whatever model they name), an echoing provider hands
/// that key to no one, the org's budgets hold, and every row says `byok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_delivered_byok_workspace_calls_on_its_orgs_key_under_its_budgets() {
    let s = setup().await;
    s.api.put(&format!("/v1/orgs/{}/secrets/MINIMAX_API_KEY", s.org), ADMIN, json!({"value": ORG_KEY})).await;
    let byok = s.api.workspace(&s.org, "own-key", "claude-code", "MiniMax-M2.7").await;
    let route = wsd_store::ProxiedRoute {
        provider: "minimax".into(),
        key: wsd_core::EnvKey::new("MINIMAX_API_KEY").unwrap(),
        origin: wsd_core::plan::SecretOrigin::Org,
    };
    let (_, token) = s.api.state.store.create_usage_token(&s.org, &byok, Some(&route), "test").await.unwrap();
    let token = token.expose().to_owned();
    let call = |body: Value| {
        let request = s.api.client.post(format!("{}/llm/anthropic/v1/messages", s.api.base)).bearer_auth(&token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let (status, echoed) = (response.status().as_u16(), response.headers().get("x-echo").is_some());
            let text = response.text().await.unwrap();
            assert!(!text.contains(ORG_KEY) && !text.contains(PLATFORM_KEY), "a key in a response: {text}");
            (status, text, echoed)
        }
    };
    let ask = |model: &str, behave: &str| json!({"model": model, "behave": behave, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});

    let (status, text, _) = call(ask("MiniMax-M2.7", "")).await;
    assert_eq!(status, 200, "{text}");
    // A platform model's name changes nothing: the org's key, the model as sent.
    let (status, _, _) = call(ask("minimax/MiniMax-M2.7", "")).await;
    assert_eq!(status, 200);
    let sent: Vec<(String, String)> = s
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, credential, body)| (credential.clone(), body["model"].as_str().unwrap().to_owned()))
        .collect();
    let org_key = format!("bearer:{ORG_KEY}");
    assert_eq!(sent, [(org_key.clone(), "MiniMax-M2.7".to_owned()), (org_key, "minimax/MiniMax-M2.7".to_owned())]);

    // A provider that echoes the key it was sent: scrubbed from the body, its header dropped.
    let (status, text, echoed) = call(ask("MiniMax-M2.7", "echo-key")).await;
    assert_eq!((status, echoed), (401, false), "{text}");
    assert!(text.contains("[redacted]"), "{text}");

    // The org's budgets apply to its own key's traffic.
    let r = s
        .api
        .put(&format!("/v1/orgs/{}/budgets", s.org), ADMIN, json!({"workspace": byok, "unit": "tokens", "period": "day", "limit": 5}))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let (status, text, _) = call(ask("MiniMax-M2.7", "")).await;
    assert_eq!(status, 402, "{text}");
    assert!(text.contains("BUDGET_EXCEEDED"), "{text}");
    assert_eq!(s.seen.lock().unwrap().len(), 3, "the refused call never went upstream");

    let rows = requests(&s, 4).await;
    let marks: Vec<(&str, &str, i64)> =
        rows.iter().map(|r| (r["routing"].as_str().unwrap(), r["workspace_id"].as_str().unwrap(), r["status"].as_i64().unwrap())).collect();
    assert_eq!(
        marks,
        [("byok", byok.as_str(), 402), ("byok", byok.as_str(), 401), ("byok", byok.as_str(), 200), ("byok", byok.as_str(), 200)]
    );
    assert_no_key_in_log(&s);
    assert!(!String::from_utf8_lossy(&support::log().lock().unwrap()).contains(ORG_KEY), "the org's key in the log");
}
on_both_databases!(a_budget_holds_under_concurrent_requests);
on_both_databases!(a_usd_budget_stops_within_one_estimate_of_its_limit);
on_both_databases!(a_cut_stream_settles_its_reservation_with_the_tokens_seen);
