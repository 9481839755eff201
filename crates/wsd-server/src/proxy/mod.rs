//! The metering proxy: platform-routed workspaces reach LLMs only through here.
//! A request moves through named phases: admit (the workspace's usage token) → pick the
//! upstream (the model's namespace through the registry's `upstream_vendor`) → rewrite (the
//! vendor's model id; every client credential removed, the platform's own key added) →
//! forward and stream back unbuffered → finish (one usage-ledger row, whatever happened).
//!
//! Invariant: neither the usage token nor the platform key appears in any response, error
//! or log line.

mod endpoint;
pub mod gate;
mod meter;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use wsd_core::registry::{CredentialSource, Protocol, Provider};
use wsd_core::{EnvKey, Registry};

use crate::code;
use crate::error::ApiError;
use crate::proxy::endpoint::Endpoint;
use crate::proxy::gate::UsageGrant;
use crate::proxy::meter::{Dialect, Fault, Meter, Metered, PendingMeter};
use crate::proxy::request::RequestBody;
use crate::state::AppState;

/// The largest request body forwarded.
pub const MAX_PROXY_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The attribution header a platform workspace sends (its `ANTHROPIC_CUSTOM_HEADERS`).
const WORKSPACE_HEADER: &str = "x-wsd-workspace-id";

/// `[proxy]` in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySettings {
    /// The longest wait for a connection to a provider.
    pub connect_timeout: Duration,
    /// The longest upstream may stay silent: before its answer starts, and between two
    /// pieces of it. Past it the client gets 504 `UPSTREAM_TIMEOUT` (or, mid-stream, an
    /// error event).
    pub upstream_timeout: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), upstream_timeout: Duration::from_secs(300) }
    }
}

#[derive(Debug)]
pub struct UpstreamClient {
    client: reqwest::Client,
    upstream_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(settings: &ProxySettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.upstream_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the proxy's HTTP client: {e}"))?;
        Ok(Self { client, upstream_timeout: settings.upstream_timeout })
    }
}

/// The workspace behind the request's usage token.
async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Arc<UsageGrant>, ApiError> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("send the workspace's usage token as x-api-key or a bearer token"))?;
    let grant = state
        .gate
        .usage_grant(&state.store, presented)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token is not a live usage token"))?;
    // A workspace that says who it is must be the one its token was minted for: anything
    // else is a token used outside its workspace.
    if let Some(claimed) = headers.get(WORKSPACE_HEADER)
        && claimed.as_bytes() != grant.workspace.as_bytes()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            code::WORKSPACE_MISMATCH,
            format!("the usage token belongs to workspace {}, not to the workspace this request names", grant.workspace),
        ));
    }
    Ok(grant)
}

/// The provider a namespaced model (`minimax/MiniMax-M2.7`) maps to, and the vendor's id.
fn pick_upstream<'r>(state: &'r AppState, model: &str) -> Result<(&'r Provider, String), ApiError> {
    let (namespace, vendor_model) = model.split_once('/').filter(|(ns, m)| !ns.is_empty() && !m.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            code::UNKNOWN_MODEL_NAMESPACE,
            format!("model `{model}` has no namespace; use vendor/model, e.g. anthropic/claude-opus-4-7"),
        )
    })?;
    let provider = state.registry.providers().iter().find(|p| p.upstream_vendor.as_deref() == Some(namespace)).ok_or_else(|| {
        ApiError::bad_request(code::UNKNOWN_MODEL_NAMESPACE, format!("no provider serves the model namespace `{namespace}`"))
    })?;
    Ok((provider, vendor_model.to_owned()))
}

/// Whether `provider` takes its key as a bearer token on `surface` (else as `x-api-key`):
/// the header a runtime of that protocol sends the provider's `auth_token_env` as — the
/// registry's record of how the vendor is really called — or the protocol's usual one.
fn key_is_bearer(registry: &Registry, provider: &Provider, surface: Protocol) -> bool {
    let sent_as = provider.auth_token_env.as_ref().and_then(|env| {
        registry
            .runtimes()
            .filter(|runtime| runtime.protocol == surface)
            .flat_map(|runtime| runtime.credential_precedence.iter().flatten())
            .find(|read| matches!(&read.source, CredentialSource::Env(key) if key == env))
            .map(|read| read.sent_as.as_str())
    });
    match sent_as {
        Some(sent_as) => sent_as.starts_with("Authorization: Bearer"),
        None => surface == Protocol::Openai,
    }
}

fn upstream_url(provider: &Provider, surface: Protocol, rest: &str) -> Result<String, ApiError> {
    let base = provider.base_url(surface).ok_or_else(|| {
        ApiError::bad_request(code::UNSUPPORTED_SURFACE, format!("provider `{}` has no {} endpoint", provider.name, surface.as_str()))
    })?;
    let base = base.trim_end_matches('/');
    let rest = match surface {
        // OpenAI bases already end in their version (`…/v1`); clients call `{base}/v1/…`.
        Protocol::Openai => rest.strip_prefix("v1/").unwrap_or(rest),
        Protocol::Anthropic => rest,
    };
    Ok(format!("{base}/{rest}"))
}

pub async fn anthropic(State(state): State<Arc<AppState>>, request: Request) -> Response {
    forward(state, Protocol::Anthropic, request).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn openai(State(state): State<Arc<AppState>>, request: Request) -> Response {
    forward(state, Protocol::Openai, request).await.unwrap_or_else(IntoResponse::into_response)
}

/// The request body, read only once the caller is admitted: an unknown caller cannot make
/// the proxy hold 32 MiB.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_PROXY_BODY_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code::BODY_TOO_LARGE, "the request body is over 32 MiB")
        } else {
            ApiError::bad_request(code::BODY_UNREADABLE, "the request body could not be read")
        }
    })
}

/// The path after `/llm/<surface>/`, as sent (not percent-decoded).
fn raw_rest(surface: Protocol, path: &str) -> &str {
    let prefix = match surface {
        Protocol::Anthropic => "/llm/anthropic/",
        Protocol::Openai => "/llm/openai/",
    };
    path.strip_prefix(prefix).unwrap_or_default()
}

fn not_allowed(method: &axum::http::Method, rest: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::ENDPOINT_NOT_ALLOWED,
        format!("the proxy forwards model calls only, not {method} /{rest}; see the workspace's runtime for the endpoints it calls"),
    )
}

/// A request ready to go upstream.
struct Call {
    outgoing: reqwest::RequestBuilder,
    provider: String,
    vendor_model: String,
    /// The key wsd put on the request: scrubbed from anything that comes back.
    key: Arc<wsd_core::SecretValue>,
}

async fn forward(state: Arc<AppState>, surface: Protocol, request: Request) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let grant = admit(&state, &parts.headers).await?;
    // Admitted: from here on, every outcome gets exactly one ledger row.
    let rest = raw_rest(surface, parts.uri.path());
    let endpoint = endpoint::endpoint(surface, &parts.method, rest);
    let dialect = match endpoint {
        Some(Endpoint::Forward { dialect, .. }) => dialect,
        _ => Dialect::of(surface, rest),
    };
    let mut pending = PendingMeter::new(
        Meter::new(grant.org.clone(), grant.workspace.clone(), String::new(), grant.model.clone(), dialect),
        state.clone(),
    );
    pending.meter().started = started;
    let call = match endpoint {
        None => Err(not_allowed(&parts.method, rest)),
        Some(Endpoint::Models) => {
            pending.answered(200);
            return Ok(models_answer(surface, &grant.model));
        }
        Some(Endpoint::Forward { counts_tokens, .. }) => prepare(&state, surface, &grant, counts_tokens, rest, &parts, body).await,
    };
    let call = match call {
        Ok(call) => call,
        Err(refusal) => {
            pending.answered(refusal.status.as_u16());
            return Err(refusal);
        }
    };
    let upstream = state.upstream.as_ref().expect("prepare checked the upstream client");
    pending.meter().provider = call.provider.clone();
    pending.meter().model = call.vendor_model;
    let answer = tokio::time::timeout(upstream.upstream_timeout, call.outgoing.send()).await;
    let mut meter = pending.take();
    let response = match answer {
        Ok(Ok(response)) => response,
        failed => {
            let (fault, connect) = match failed {
                Ok(Err(e)) if !e.is_timeout() => (Fault::Broken, e.is_connect()),
                _ => (Fault::Timeout, false),
            };
            if let Some(record) = meter.finish(Some(fault)) {
                state.record_usage(record);
            }
            let provider = call.provider;
            return Err(match fault {
                Fault::Timeout => ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    code::UPSTREAM_TIMEOUT,
                    format!("provider `{provider}` did not answer within {} s", upstream.upstream_timeout.as_secs_f32()),
                ),
                _ if connect => {
                    ApiError::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_UNREACHABLE, format!("provider `{provider}` is unreachable"))
                }
                _ => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    code::UPSTREAM_FAILED,
                    format!("provider `{provider}` closed the connection without an answer"),
                ),
            });
        }
    };
    if response.status().is_success() {
        respond(state, response, meter)
    } else {
        Ok(respond_scrubbed(&state, response, meter, &call.key, upstream.upstream_timeout).await)
    }
}

/// Everything between admission and the upstream call; each refusal is the caller's answer
/// (and its ledger row's status).
async fn prepare(
    state: &AppState,
    surface: Protocol,
    grant: &UsageGrant,
    counts_tokens: bool,
    rest: &str,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Call, ApiError> {
    // Over budget: refused before any upstream call. Counting tokens spends none.
    if !counts_tokens && let Some((budget, used)) = state.gate.over_budget(&state.store, &grant.org, wsd_store::now_ms()).await? {
        return Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            code::BUDGET_EXCEEDED,
            format!("the org used {used} of its {} tokens this {}", budget.tokens, budget.period.as_str()),
        ));
    }
    let body = read_body(body).await?;
    let request = RequestBody::parse(&body)?;
    let model = request.model()?;
    // A workspace calls the model it was planned with, nothing else, on the platform's key.
    if model != grant.model {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            code::MODEL_NOT_ALLOWED,
            format!("this workspace runs model `{}`; it may not call `{model}`", grant.model),
        ));
    }
    let (provider, vendor_model) = pick_upstream(state, &model)?;
    let url = upstream_url(provider, surface, rest)?;
    let dialect = Dialect::of(surface, rest);
    // Chat completions report a stream's usage only when asked to.
    let payload = request.render(&vendor_model, request.streaming() && dialect == Dialect::OpenaiChat);

    // The vendor-specific name comes first in `auth_env`: MINIMAX_API_KEY, OPENAI_API_KEY …
    let key_name = provider.auth_env.first().cloned().unwrap_or_else(|| EnvKey::new("API_KEY").expect("valid"));
    let key = state.gate.platform_key(&state.store, &key_name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            code::PLATFORM_KEY_MISSING,
            format!("the platform has no key for provider `{}` (platform secret {key_name})", provider.name),
        )
    })?;
    let upstream = state
        .upstream
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::PROXY_DISABLED, "this server runs no metering proxy"))?;
    let mut outgoing = upstream.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if endpoint::forwards_header(surface, name) && name != "content-type" {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = if key_is_bearer(&state.registry, provider, surface) {
        outgoing.bearer_auth(key.expose())
    } else {
        outgoing.header("x-api-key", key.expose())
    };
    let outgoing = outgoing.header("content-type", "application/json").body(payload);
    Ok(Call { outgoing, provider: provider.name.clone(), vendor_model, key })
}

/// `GET /v1/models`, answered by wsd: the workspace's own model, the only one it may call.
fn models_answer(surface: Protocol, model: &str) -> Response {
    let body = match surface {
        Protocol::Anthropic => serde_json::json!({
            "data": [{"type": "model", "id": model, "display_name": model}],
            "has_more": false, "first_id": model, "last_id": model,
        }),
        Protocol::Openai => serde_json::json!({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "wsd"}]}),
    };
    axum::Json(body).into_response()
}

/// The most of an error answer passed back: enough for any provider's error document.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Upstream's error answer, read (up to a bound) and passed back with every occurrence of
/// the key wsd sent replaced: a provider that echoes the credential it was given must not
/// hand the platform's key to a workspace.
async fn respond_scrubbed(
    state: &Arc<AppState>,
    response: reqwest::Response,
    mut meter: Meter,
    key: &wsd_core::SecretValue,
    timeout: Duration,
) -> Response {
    use futures_util::StreamExt;
    let status = response.status().as_u16();
    meter.status = i64::from(status);
    let content_type = response.headers().get("content-type").cloned();
    let retry_after = response.headers().get("retry-after").cloned();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = tokio::time::timeout(timeout, async {
        while let Some(Ok(chunk)) = stream.next().await {
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
        state.record_usage(record);
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

/// Upstream's answer on its way back: its status and the headers a client needs, and its
/// body through the meter.
fn respond(state: Arc<AppState>, response: reqwest::Response, mut meter: Meter) -> Result<Response, ApiError> {
    meter.status = i64::from(response.status().as_u16());
    meter.request_id = ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| response.headers().get(*name))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned);
    meter.sse = response.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    let mut builder = Response::builder().status(response.status().as_u16());
    for name in ["content-type", "content-encoding", "request-id", "x-request-id", "anthropic-ratelimit-requests-remaining", "retry-after"]
    {
        if let Some(value) = response.headers().get(name)
            && let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            builder = builder.header(name, value);
        }
    }
    let length = if meter.sse { None } else { response.content_length() };
    let body = Metered { inner: Box::pin(response.bytes_stream()), meter, state, length, sent: 0, done: false };
    builder.body(Body::new(body)).map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_INVALID, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vendor_gets_its_key_the_way_its_runtimes_send_it() {
        let registry = Registry::embedded().unwrap();
        let provider = |name: &str| registry.provider(name).unwrap();
        // claude-code sends ANTHROPIC_AUTH_TOKEN as a bearer token, ANTHROPIC_API_KEY as x-api-key.
        assert!(key_is_bearer(&registry, provider("minimax"), Protocol::Anthropic));
        assert!(key_is_bearer(&registry, provider("moonshot"), Protocol::Anthropic));
        assert!(!key_is_bearer(&registry, provider("anthropic-api"), Protocol::Anthropic));
        assert!(key_is_bearer(&registry, provider("openai-api"), Protocol::Openai));
        assert!(key_is_bearer(&registry, provider("minimax"), Protocol::Openai));
    }

    #[test]
    fn openai_paths_join_the_versioned_base() {
        let registry = Registry::embedded().unwrap();
        let openai = registry.provider("openai-api").unwrap();
        assert_eq!(upstream_url(openai, Protocol::Openai, "v1/chat/completions").unwrap(), "https://api.openai.com/v1/chat/completions");
        let minimax = registry.provider("minimax").unwrap();
        assert!(upstream_url(minimax, Protocol::Anthropic, "v1/messages").unwrap().ends_with("/anthropic/v1/messages"));
    }
}
