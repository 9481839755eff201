//! One proxied request, phase by phase: admit (the workspace's usage token) → the endpoint
//! (model calls only) → prepare (budget, body, the workspace's own model, the vendor, the
//! key — the platform's, or for a proxy-delivered BYOK workspace the org's or its own —
//! headers by allowlist) → forward → the answer back through the meter.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use wsd_core::registry::Protocol;

use super::budget;
use super::dialect::Dialect;
use super::endpoint::{self, Endpoint};
use super::gate::UsageGrant;
use super::meter::{Fault, Meter};
use super::metered::{Metered, PendingMeter};
use super::request::RequestBody;
use super::silence::Silence;
use super::{MAX_PROXY_BODY_BYTES, Proxy, scrub};
use crate::code;
use crate::error::ApiError;

/// The attribution header a platform workspace sends (its `ANTHROPIC_CUSTOM_HEADERS`).
const WORKSPACE_HEADER: &str = "x-wsd-workspace-id";

/// The workspace behind the request's usage token.
async fn admit(proxy: &Proxy, headers: &HeaderMap) -> Result<Arc<UsageGrant>, ApiError> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("send the workspace's usage token as x-api-key or a bearer token"))?;
    let grant = proxy
        .gate
        .usage_grant(&proxy.store, presented)
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
    outgoing: hyper::Request<Full<Bytes>>,
    provider: String,
    vendor_model: String,
    /// The key wsd put on the request: scrubbed from anything that comes back.
    key: Arc<wsd_core::SecretValue>,
    /// What the request holds of its budgets.
    held: budget::Held,
}

pub(super) async fn forward(proxy: Arc<Proxy>, surface: Protocol, request: Request) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let grant = admit(&proxy, &parts.headers).await?;
    // Admitted: from here on, every outcome gets exactly one ledger row.
    let rest = raw_rest(surface, parts.uri.path());
    let endpoint = endpoint::endpoint(surface, &parts.method, rest);
    let dialect = match endpoint {
        Some(Endpoint::Forward { dialect, .. }) => dialect,
        _ => Dialect::of(surface, rest),
    };
    let mut pending = PendingMeter::new(
        Meter::new(grant.org.clone(), grant.workspace.clone(), String::new(), grant.model.clone(), dialect),
        proxy.clone(),
    );
    pending.meter().started = started;
    if let Some(proxied) = &grant.proxied {
        pending.meter().routing = wsd_core::plan::Routing::Byok;
        pending.meter().provider = proxied.provider.clone();
    }
    let call = match endpoint {
        None => Err(not_allowed(&parts.method, rest)),
        Some(Endpoint::Models) => {
            pending.answered(200);
            return Ok(models_answer(surface, &grant.model));
        }
        Some(Endpoint::Forward { dialect, counts_tokens }) => {
            prepare(&proxy, surface, dialect, &grant, counts_tokens, rest, &parts, body).await
        }
    };
    let mut call = match call {
        Ok(call) => call,
        Err(refusal) => {
            pending.answered(refusal.status.as_u16());
            return Err(refusal);
        }
    };
    let upstream = proxy.upstream.as_ref().expect("prepare checked the upstream client");
    pending.meter().provider = call.provider.clone();
    pending.meter().model = call.vendor_model;
    // The row releases what the request holds of its budgets.
    pending.meter().reservation = call.held.reservation.take();
    // One timer watches upstream's silence: until its answer starts, then (moved into the
    // answer's body) between two pieces of it.
    let mut silence = Silence::new(upstream.upstream_timeout);
    let answer = silence.watch(upstream.client.request(call.outgoing)).await;
    let mut meter = pending.take();
    let response = match answer {
        Some(Ok(response)) => response,
        failed => {
            let (fault, connect) = match failed {
                Some(Err(e)) if e.is_connect() && !timed_out(&e) => (Fault::Broken, true),
                Some(Err(e)) if !timed_out(&e) => (Fault::Broken, false),
                _ => (Fault::Timeout, false),
            };
            if let Some(record) = meter.finish(Some(fault)) {
                proxy.record(record);
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
    let mut answer = if response.status().is_success() {
        respond(proxy, response, meter, silence)?
    } else {
        scrub::respond_scrubbed(&proxy, response, meter, &call.key, upstream.upstream_timeout).await
    };
    budget::standing_headers(&call.held.standings, answer.headers_mut());
    Ok(answer)
}

/// Whether a failed upstream call failed because something took too long (a connection
/// past `connect_timeout`).
fn timed_out(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = e.source();
    }
    false
}

/// Everything between admission and the upstream call; each refusal is the caller's answer
/// (and its ledger row's status).
#[allow(clippy::too_many_arguments)]
async fn prepare(
    proxy: &Proxy,
    surface: Protocol,
    dialect: Dialect,
    grant: &UsageGrant,
    counts_tokens: bool,
    rest: &str,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Call, ApiError> {
    let body = read_body(body).await?;
    let request = RequestBody::parse(&body)?;
    let model = request.model()?;
    let (vendor, vendor_model, key, key_name) = match &grant.proxied {
        None => {
            // A platform workspace calls the model it was planned with, nothing else, on the
            // platform's key. A CLI that cannot send a namespaced id sends the vendor's own
            // (`MiniMax-M2.7`): the usage token names the model it stands for.
            let bare = grant.model.split_once('/').map(|(_, id)| id);
            if model != grant.model && bare != Some(model.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    code::MODEL_NOT_ALLOWED,
                    format!("this workspace runs model `{}`; it may not call `{model}`", grant.model),
                ));
            }
            let (vendor, vendor_model) = proxy.vendors.pick(&grant.model)?;
            let key = proxy.gate.platform_key(&proxy.store, &vendor.key_name).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    code::PLATFORM_KEY_MISSING,
                    format!("the platform has no key for provider `{}` (platform secret {})", vendor.provider, vendor.key_name),
                )
            })?;
            (vendor, vendor_model, key, vendor.key_name.as_str())
        }
        Some(proxied) => {
            // A BYOK workspace's own key, kept in wsd: the model id is the vendor's, sent as
            // the runtime names it (the org's key and bill, as with direct delivery).
            let vendor = proxy.vendors.provider(&proxied.provider)?;
            let key = proxy.gate.tenant_key(&proxy.store, grant, proxied).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    code::PROXIED_KEY_MISSING,
                    format!(
                        "the {} secret {} that this workspace's calls to provider `{}` are sent with is no longer set; set it again, or provision the workspace again to plan with the secrets it has",
                        proxied.origin.as_str(),
                        proxied.key,
                        proxied.provider
                    ),
                )
            })?;
            (vendor, model.as_str(), key, proxied.key.as_str())
        }
    };
    let route = vendor.route(surface)?;
    // Chat completions report a stream's usage only when asked to.
    let payload = request.render(vendor_model, request.streaming() && dialect == Dialect::OpenaiChat);

    let upstream = proxy
        .upstream
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::PROXY_DISABLED, "this server runs no metering proxy"))?;
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 2);
    for (name, value) in &parts.headers {
        if endpoint::forwards_header(surface, name) && name != CONTENT_TYPE {
            headers.append(name.clone(), value.clone());
        }
    }
    let credential =
        if route.bearer { HeaderValue::try_from(format!("Bearer {}", key.expose())) } else { HeaderValue::from_str(key.expose()) };
    let mut credential = credential.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            code::INVALID_VALUE,
            format!("the key in secret {key_name} cannot be sent in an HTTP header (it holds a control character); set it again"),
        )
    })?;
    credential.set_sensitive(true);
    headers.insert(if route.bearer { AUTHORIZATION } else { HeaderName::from_static("x-api-key") }, credential);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut outgoing = hyper::Request::new(Full::new(Bytes::from(payload)));
    *outgoing.method_mut() = parts.method.clone();
    *outgoing.uri_mut() = route.url(rest)?;
    *outgoing.headers_mut() = headers;
    // Rate limits: the org's own, else the platform's.
    let limits = match proxy.gate.org_rate_limits(&proxy.store, &grant.org).await? {
        Some(own) => super::rate::RateLimits {
            requests_per_minute: u64::try_from(own.requests_per_minute).unwrap_or(0),
            tokens_per_minute: u64::try_from(own.tokens_per_minute).unwrap_or(0),
        },
        None => upstream.rate_limits,
    };
    if let Err(seconds) = proxy.limiter.admit(&grant.workspace, limits) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RATE_LIMITED,
            format!(
                "workspace {} is over its rate limits ({} requests, {} tokens per minute; 0: none); retry in {seconds} s",
                grant.workspace, limits.requests_per_minute, limits.tokens_per_minute
            ),
        )
        .with(crate::error::RETRY_AFTER_SECONDS, seconds));
    }
    // Last, so that no refusal comes between a reservation and the row that releases it.
    // Counting tokens spends none: never refused for budget.
    let held = if counts_tokens {
        budget::Held::default()
    } else {
        let estimate = || budget::estimate(proxy, vendor_model, body.len(), request.max_output_tokens(), upstream.default_output_tokens);
        budget::admit(proxy, grant, estimate).await?
    };
    Ok(Call { outgoing, provider: vendor.provider.clone(), vendor_model: vendor_model.to_owned(), key, held })
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

/// Upstream's answer on its way back: its status and the headers a client needs, and its
/// body through the meter.
fn respond(proxy: Arc<Proxy>, response: hyper::Response<Incoming>, mut meter: Meter, silence: Silence) -> Result<Response, ApiError> {
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
    let length = if meter.sse { None } else { http_body::Body::size_hint(response.body()).exact() };
    let body = Metered { inner: response.into_body(), silence, meter, proxy, length, sent: 0, done: false };
    builder.body(Body::new(body)).map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, code::UPSTREAM_INVALID, e.to_string()))
}
