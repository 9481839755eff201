//! The metering proxy (DESIGN §7): platform-routed workspaces reach LLMs only through here.
//! A request moves through named phases: admit (the workspace's usage token) → pick the
//! upstream (the model's namespace through the registry's `upstream_vendor`) → rewrite (the
//! vendor's model id; every client credential removed, the platform's own key added) →
//! forward and stream back unbuffered → finish (one usage-ledger row, whatever happened).
//!
//! Invariant: neither the usage token nor the platform key appears in any response, error
//! or log line.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::Value;
use wsd_core::EnvKey;
use wsd_core::registry::{Protocol, Provider};
use wsd_store::{TokenKind, UsageRecord};

use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body forwarded.
pub const MAX_PROXY_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Headers never forwarded upstream: the client's credentials and the hop-by-hop ones.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "proxy-authorization",
    "te",
    "upgrade",
    "accept-encoding",
];

#[derive(Debug)]
pub struct UpstreamClient {
    client: reqwest::Client,
}

impl UpstreamClient {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the proxy's HTTP client: {e}"))?;
        Ok(Self { client })
    }
}

struct Admitted {
    org: String,
    workspace: String,
}

async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Admitted, ApiError> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("send the workspace's usage token as x-api-key or a bearer token"))?;
    match state.store.authenticate_token(presented).await? {
        Some(token) if token.kind == TokenKind::Usage => match (token.org_id, token.workspace_id) {
            (Some(org), Some(workspace)) => Ok(Admitted { org, workspace }),
            _ => Err(ApiError::unauthenticated("the token is not valid")),
        },
        _ => Err(ApiError::unauthenticated("the token is not a live usage token")),
    }
}

/// The provider a namespaced model (`minimax/MiniMax-M2.7`) maps to, and the vendor's id.
fn pick_upstream<'r>(state: &'r AppState, model: &str) -> Result<(&'r Provider, String), ApiError> {
    let (namespace, vendor_model) = model.split_once('/').filter(|(ns, m)| !ns.is_empty() && !m.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "UNKNOWN_MODEL_NAMESPACE",
            format!("model `{model}` has no namespace; use vendor/model, e.g. anthropic/claude-opus-4-7"),
        )
    })?;
    let provider =
        state.registry.providers().iter().find(|p| p.upstream_vendor.as_deref() == Some(namespace)).ok_or_else(|| {
            ApiError::bad_request("UNKNOWN_MODEL_NAMESPACE", format!("no provider serves the model namespace `{namespace}`"))
        })?;
    Ok((provider, vendor_model.to_owned()))
}

fn upstream_url(provider: &Provider, surface: Protocol, rest: &str) -> Result<String, ApiError> {
    let base = provider.base_url(surface).ok_or_else(|| {
        ApiError::bad_request("UNSUPPORTED_SURFACE", format!("provider `{}` has no {} endpoint", provider.name, surface.as_str()))
    })?;
    let base = base.trim_end_matches('/');
    let rest = match surface {
        // OpenAI bases already end in their version (`…/v1`); clients call `{base}/v1/…`.
        Protocol::Openai => rest.strip_prefix("v1/").unwrap_or(rest),
        Protocol::Anthropic => rest,
    };
    Ok(format!("{base}/{rest}"))
}

pub async fn anthropic(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(state, Protocol::Anthropic, rest, method, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn openai(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(state, Protocol::Openai, rest, method, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn forward(
    state: Arc<AppState>,
    surface: Protocol,
    rest: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let admitted = admit(&state, &headers).await?;
    // Over budget: refused before any upstream call.
    if let Some((budget, used)) = state.store.budget_usage(&admitted.org).await?
        && used >= budget.tokens
    {
        return Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "BUDGET_EXCEEDED",
            format!("the org used {used} of its {} tokens this {}", budget.tokens, budget.period.as_str()),
        ));
    }
    let mut request: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("INVALID_JSON", "the request body is not valid JSON"))?;
    let model = request["model"].as_str().ok_or_else(|| ApiError::bad_request("MODEL_REQUIRED", "the request names no model"))?.to_owned();
    let (provider, vendor_model) = pick_upstream(&state, &model)?;
    let url = upstream_url(provider, surface, &rest)?;
    request["model"] = Value::String(vendor_model.clone());
    let streaming = request["stream"] == Value::Bool(true);
    if streaming && surface == Protocol::Openai && rest.ends_with("chat/completions") {
        request["stream_options"]["include_usage"] = Value::Bool(true);
    }

    // The vendor-specific name comes first in `auth_env`: MINIMAX_API_KEY, OPENAI_API_KEY …
    let key_name = provider.auth_env.first().cloned().unwrap_or_else(|| EnvKey::new("API_KEY").expect("valid"));
    let key = state.store.get_platform_secret(&key_name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "PLATFORM_KEY_MISSING",
            format!("the platform has no key for provider `{}` (platform secret {key_name})", provider.name),
        )
    })?;
    let upstream = state
        .upstream
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "PROXY_DISABLED", "this server runs no metering proxy"))?;
    let mut outgoing = upstream.client.request(method, &url);
    for (name, value) in &headers {
        if !DROPPED_REQUEST_HEADERS.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = match surface {
        Protocol::Anthropic => outgoing.header("x-api-key", key.expose()),
        Protocol::Openai => outgoing.bearer_auth(key.expose()),
    };
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    let response = outgoing.header("content-type", "application/json").body(payload).send().await;
    let mut meter = Meter {
        state: state.clone(),
        org: admitted.org,
        workspace: admitted.workspace,
        provider: provider.name.clone(),
        model: vendor_model,
        surface,
        started,
        status: 0,
        usage: Usage::default(),
        buffer: Vec::new(),
        sse: false,
        finished: false,
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            let (status, code, what) = if e.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, "UPSTREAM_TIMEOUT", "timed out")
            } else {
                (StatusCode::BAD_GATEWAY, "UPSTREAM_UNREACHABLE", "is unreachable")
            };
            meter.status = i64::from(status.as_u16());
            meter.finish();
            return Err(ApiError::new(status, code, format!("provider `{}` {what}", provider.name)));
        }
    };
    meter.status = i64::from(response.status().as_u16());
    meter.sse = response.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    let mut builder = Response::builder().status(response.status().as_u16());
    for name in ["content-type", "request-id", "x-request-id", "anthropic-ratelimit-requests-remaining", "retry-after"] {
        if let Some(value) = response.headers().get(name)
            && let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            builder = builder.header(name, value);
        }
    }
    let stream = Metered { inner: Box::pin(response.bytes_stream()), meter: Some(meter) };
    builder.body(Body::from_stream(stream)).map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "UPSTREAM_INVALID", e.to_string()))
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
}

/// Reads token usage out of what flows back, and writes the ledger row once.
struct Meter {
    state: Arc<AppState>,
    org: String,
    workspace: String,
    provider: String,
    model: String,
    surface: Protocol,
    started: Instant,
    status: i64,
    usage: Usage,
    buffer: Vec<u8>,
    sse: bool,
    finished: bool,
}

fn number(value: &Value) -> Option<i64> {
    value.as_i64()
}

impl Meter {
    fn absorb(&mut self, event: &Value) {
        let u = &mut self.usage;
        match self.surface {
            Protocol::Anthropic => {
                let usage = if event["type"] == "message_start" { &event["message"]["usage"] } else { &event["usage"] };
                if let Some(n) = number(&usage["input_tokens"]) {
                    u.input = n;
                }
                if let Some(n) = number(&usage["output_tokens"]) {
                    u.output = n;
                }
                if let Some(n) = number(&usage["cache_read_input_tokens"]) {
                    u.cache_read = n;
                }
                if let Some(n) = number(&usage["cache_creation_input_tokens"]) {
                    u.cache_write = n;
                }
            }
            Protocol::Openai => {
                let usage = if event["response"]["usage"].is_object() { &event["response"]["usage"] } else { &event["usage"] };
                if let Some(n) = number(&usage["prompt_tokens"]).or_else(|| number(&usage["input_tokens"])) {
                    u.input = n;
                }
                if let Some(n) = number(&usage["completion_tokens"]).or_else(|| number(&usage["output_tokens"])) {
                    u.output = n;
                }
                if let Some(n) = number(&usage["prompt_tokens_details"]["cached_tokens"])
                    .or_else(|| number(&usage["input_tokens_details"]["cached_tokens"]))
                {
                    u.cache_read = n;
                }
            }
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        if !self.sse {
            return;
        }
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            if let Some(data) = line.strip_prefix(b"data:")
                && let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii())
            {
                self.absorb(&event);
            }
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !self.sse
            && let Ok(body) = serde_json::from_slice::<Value>(&self.buffer)
        {
            self.absorb(&body);
        }
        let record = UsageRecord {
            at: wsd_store::now_ms(),
            org_id: self.org.clone(),
            workspace_id: self.workspace.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            input_tokens: self.usage.input,
            output_tokens: self.usage.output,
            cache_read_tokens: self.usage.cache_read,
            cache_write_tokens: self.usage.cache_write,
            status: self.status,
            latency_ms: self.started.elapsed().as_millis() as i64,
            request_id: uuid::Uuid::now_v7().to_string(),
        };
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Err(e) = state.store.append_usage(&record).await {
                tracing::error!(error = %e, workspace = %record.workspace_id, "could not record usage");
            }
        });
    }
}

/// The upstream body on its way back, metered as it passes; the row is written at its end,
/// or when the client goes away early.
struct Metered {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    meter: Option<Meter>,
}

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(meter) = self.meter.as_mut() {
                    meter.feed(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(meter) = self.meter.as_mut() {
                    meter.status = 502;
                    meter.finish();
                }
                Poll::Ready(Some(Err(std::io::Error::other(format!(
                    "the upstream stream broke: {}",
                    if e.is_timeout() { "timed out" } else { "cut" }
                )))))
            }
            Poll::Ready(None) => {
                if let Some(meter) = self.meter.as_mut() {
                    meter.finish();
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.as_mut() {
            meter.finish();
        }
    }
}
