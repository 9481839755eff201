//! The world a CLI under verification sees: one loopback listener that is every provider
//! (paths `/p/<provider>/…`, answered like the vendor would, briefly) and the CLI's egress
//! proxy (`HTTPS_PROXY`): a `CONNECT` to any other host is answered with a TLS endpoint
//! whose certificate a throwaway CA signs, so that what the CLI sends there is read and
//! recorded too, then refused with 503. Every request is recorded whole enough to judge:
//! where it went, its headers and the model it named.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The most of a request body kept for judging.
const MAX_BODY: usize = 1024 * 1024;

/// One request the CLI made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// `http://127.0.0.1:PORT/p/minimax/anthropic/v1/messages`, or for intercepted egress
    /// `https://api.anthropic.com/v1/messages`.
    pub url: String,
    pub method: String,
    /// Every header, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The `model` of a JSON body.
    pub model: Option<String>,
    /// The body as text (cut at 1 MiB), for finding credentials sent in it.
    pub body: String,
    /// Reached the loopback provider (else: egress the CLI sent to another host).
    pub direct: bool,
}

/// The fake providers and the egress proxy, recording.
pub struct World {
    pub addr: SocketAddr,
    /// The throwaway CA that signs the egress proxy's certificates, PEM.
    pub ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("addr", &self.addr).finish()
    }
}

struct Mint {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl Mint {
    fn new() -> Result<(Self, String), String> {
        let key = KeyPair::generate().map_err(|e| format!("cannot make the CA key: {e}"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "wsd runtime verify (throwaway)");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(|e| format!("cannot make the CA: {e}"))?;
        let pem = cert.pem();
        let mint = Mint { issuer: Issuer::new(params, key), ca_der: cert.der().clone(), configs: Mutex::default() };
        Ok((mint, pem))
    }

    /// A TLS server configuration presenting a certificate for `host`.
    fn config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        if let Some(config) = self.configs.lock().unwrap_or_else(|e| e.into_inner()).get(host) {
            return Ok(config.clone());
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        let config = Arc::new(config);
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).insert(host.to_owned(), config.clone());
        Ok(config)
    }
}

impl World {
    /// Starts the world on a free loopback port.
    pub async fn start() -> Result<World, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (mint, ca_pem) = Mint::new()?;
        let mint = Arc::new(mint);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let recorder = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, mint) = (recorder.clone(), mint.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| front(request, addr, seen.clone(), mint.clone()));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades().await;
                });
            }
        });
        Ok(World { addr, ca_pem, seen, task })
    }

    /// The base URL of provider `name`'s fake, with the vendor's own path after it.
    pub fn provider_url(&self, name: &str, vendor_url: &str) -> String {
        let path = vendor_url.split_once("://").and_then(|(_, rest)| rest.split_once('/')).map_or("", |(_, path)| path);
        let path = path.trim_end_matches('/');
        if path.is_empty() { format!("http://{}/p/{name}", self.addr) } else { format!("http://{}/p/{name}/{path}", self.addr) }
    }

    /// Everything recorded so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

async fn read(request: Request<Incoming>, url: String, direct: bool) -> Seen {
    let method = request.method().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let model = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v.get("model")?.as_str().map(str::to_owned));
    Seen { url, method, headers, model, body: String::from_utf8_lossy(&body).into_owned(), direct }
}

/// The listener's front door: a `CONNECT` becomes intercepted egress; a request in
/// absolute form (plain-HTTP egress through the proxy) is recorded and refused; anything
/// else is for the fake providers.
async fn front(
    request: Request<Incoming>,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    mint: Arc<Mint>,
) -> Result<Response<Body>, Infallible> {
    if request.method() == Method::CONNECT {
        let host = request.uri().authority().map(|a| a.host().to_owned()).unwrap_or_default();
        let port = request.uri().port_u16().unwrap_or(443);
        tokio::spawn(intercept(request, host, port, seen, mint));
        return Ok(Response::new(Body::default()));
    }
    if let Some(authority) = request.uri().authority().map(ToString::to_string)
        && authority != addr.to_string()
    {
        let url = request.uri().to_string();
        let record = read(request, url, false).await;
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        return Ok(refusal());
    }
    let url = format!("http://{addr}{}", request.uri().path_and_query().map_or("/", |p| p.as_str()));
    let record = read(request, url, true).await;
    let answer = provider_answer(&record);
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    Ok(answer)
}

async fn intercept(request: Request<Incoming>, host: String, port: u16, seen: Arc<Mutex<Vec<Seen>>>, mint: Arc<Mint>) {
    let Ok(upgraded) = hyper::upgrade::on(request).await else { return };
    let Ok(config) = mint.config(&host) else { return };
    let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(TokioIo::new(upgraded)).await else {
        // The CLI did not trust the CA, or spoke no TLS: the attempt itself is recorded.
        let url = format!("https://{host}:{port}/");
        let attempt = Seen { url, method: "CONNECT".into(), headers: Vec::new(), model: None, body: String::new(), direct: false };
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(attempt);
        return;
    };
    let origin = if port == 443 { format!("https://{host}") } else { format!("https://{host}:{port}") };
    let service = service_fn(move |request: Request<Incoming>| {
        let (seen, origin) = (seen.clone(), origin.clone());
        async move {
            let url = format!("{origin}{}", request.uri().path_and_query().map_or("/", |p| p.as_str()));
            let record = read(request, url, false).await;
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(record);
            Ok::<_, Infallible>(refusal())
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
}

fn refusal() -> Response<Body> {
    let mut response = Response::new(Body::from(r#"{"error":{"message":"wsd runtime verify: no network here"}}"#));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

fn sse(events: &[(&str, serde_json::Value)], done: bool) -> Response<Body> {
    let mut text = String::new();
    for (event, data) in events {
        if !event.is_empty() {
            text.push_str(&format!("event: {event}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    if done {
        text.push_str("data: [DONE]\n\n");
    }
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    response
}

/// A short, valid answer in the protocol the path speaks, so that the CLI finishes.
fn provider_answer(seen: &Seen) -> Response<Body> {
    use serde_json::json;
    let path = seen.url.split_once("/p/").map_or("", |(_, rest)| rest);
    let path = path.split('?').next().unwrap_or_default();
    let model = seen.model.clone().unwrap_or_else(|| "model".into());
    let stream = serde_json::from_str::<serde_json::Value>(&seen.body).ok().and_then(|v| v.get("stream")?.as_bool()).unwrap_or(false);
    if path.ends_with("/models") || path.contains("/models/") {
        return json(
            StatusCode::OK,
            json!({"object": "list", "data": [{"id": model, "object": "model", "type": "model", "owned_by": "verify"}]}),
        );
    }
    if path.ends_with("/messages") {
        let message = json!({"id": "msg_verify", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}});
        if !stream {
            return json(StatusCode::OK, message);
        }
        let mut start = message.clone();
        start["content"] = json!([]);
        return sse(
            &[
                ("message_start", json!({"type": "message_start", "message": start})),
                ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})),
                ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                (
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 1}}),
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ],
            false,
        );
    }
    if path.ends_with("/chat/completions") {
        if !stream {
            return json(
                StatusCode::OK,
                json!({"id": "chatcmpl-verify", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
            );
        }
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            json!({"id": "chatcmpl-verify", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        return sse(
            &[("", chunk(json!({"role": "assistant", "content": "hi"}), serde_json::Value::Null)), ("", chunk(json!({}), json!("stop")))],
            true,
        );
    }
    if path.ends_with("/responses") {
        let item = json!({"id": "msg_verify", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}]});
        let response = json!({"id": "resp_verify", "object": "response", "created_at": 0, "status": "completed", "model": model,
            "output": [item.clone()], "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}});
        if !stream {
            return json(StatusCode::OK, response);
        }
        let mut created = response.clone();
        created["status"] = json!("in_progress");
        created["output"] = json!([]);
        return sse(
            &[
                ("response.created", json!({"type": "response.created", "response": created})),
                (
                    "response.output_item.added",
                    json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "msg_verify", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}),
                ),
                (
                    "response.output_text.delta",
                    json!({"type": "response.output_text.delta", "item_id": "msg_verify", "output_index": 0, "content_index": 0, "delta": "hi"}),
                ),
                ("response.output_item.done", json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
                ("response.completed", json!({"type": "response.completed", "response": response})),
            ],
            false,
        );
    }
    json(StatusCode::NOT_FOUND, json!({"error": {"message": "wsd runtime verify: no such endpoint"}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn provider_urls_keep_the_vendors_path() {
        let world = World::start().await.unwrap();
        let base = format!("http://{}", world.addr);
        assert_eq!(world.provider_url("minimax", "https://api.minimax.io/anthropic"), format!("{base}/p/minimax/anthropic"));
        assert_eq!(world.provider_url("anthropic-api", "https://api.anthropic.com"), format!("{base}/p/anthropic-api"));
        assert_eq!(world.provider_url("openai-api", "https://api.openai.com/v1/"), format!("{base}/p/openai-api/v1"));
        assert!(world.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
