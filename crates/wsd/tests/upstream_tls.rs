//! The metering proxy reaches providers over TLS, as every real provider is reached: a
//! platform workspace's call goes to a provider on HTTPS whose certificate chains to a root
//! the host trusts (here added through `SSL_CERT_FILE`), with the platform key, and is
//! metered; a provider whose certificate chains to no trusted root gets nothing — not the
//! request, not the key — and the workspace gets 502 `UPSTREAM_UNREACHABLE`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use support::{Server, fresh_dir};

const ADMIN: &str = "upstream-tls-admin-token-0123456789abcdefghij";
const PLATFORM_KEY: &str = "canary-tls-platform-key";

/// A certificate for 127.0.0.1 and its key, issued by `issuer` (or by itself).
fn leaf(issuer: Option<&Issuer<'static, KeyPair>>) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

/// What a provider was sent: (request line, `authorization` header) per request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A provider on `https://127.0.0.1:PORT` presenting `chain`, and what it was sent.
fn tls_provider(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> (String, Seen) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, recorded) = (config.clone(), recorded.clone());
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut reader = BufReader::new(&mut tls);
                let (mut request_line, mut authorization, mut length) = (String::new(), String::new(), 0);
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return; // the handshake failed: nothing was sent
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        authorization = line["authorization:".len()..].trim().to_owned();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                recorded.lock().unwrap().push((request_line.trim().to_owned(), authorization));
                let answer = r#"{"id":"msg_tls","type":"message","role":"assistant","model":"MiniMax-M2.7","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":3}}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (address, seen)
}

async fn api(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    support::admin_call(server, ADMIN, method, path, body).await
}

/// Starts `wsd serve` trusting `ca` (a PEM file), its MiniMax upstream at `provider`; makes
/// a platform workspace and sends one message through the proxy as it would. The answer's
/// status and body, and the server's data directory.
async fn one_proxied_call(name: &str, ca: &std::path::Path, provider: &str) -> (u16, String, Server) {
    let data = fresh_dir(name);
    let config = format!(
        r#"
[platform]
proxy_base_url = "http://127.0.0.1:9/llm"
[registry.overrides.minimax]
base_url_anthropic = "https://{provider}/anthropic"
[backends.process.commands]
claude-code = ["sh", "-c", "printf %s \"$WSD_LLM_USAGE_TOKEN\" > \"$HOME/usage-token.tmp\" && mv \"$HOME/usage-token.tmp\" \"$HOME/usage-token\" && exec sleep 60"]
"#
    );
    let ca = ca.to_str().unwrap();
    let server = Server::start_with_env(&data, Some(&config), &[("WSD_ADMIN_TOKEN", ADMIN), ("SSL_CERT_FILE", ca)]);
    let (status, _) =
        api(&server, reqwest::Method::PUT, "/v1/platform/secrets/MINIMAX_API_KEY", Some(json!({"value": PLATFORM_KEY}))).await;
    assert_eq!(status, 200);
    let (status, org) = api(&server, reqwest::Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_owned();
    let new = json!({"name": "dev", "runtime": "claude-code", "model": "minimax/MiniMax-M2.7"});
    let (status, ws) = api(&server, reqwest::Method::POST, &format!("/v1/orgs/{org}/workspaces"), Some(new)).await;
    assert_eq!(status, 201, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_owned();
    let (status, provisioned) = api(&server, reqwest::Method::POST, &format!("/v1/orgs/{org}/workspaces/{ws}/provision"), None).await;
    assert_eq!(status, 200, "{provisioned}");
    let token = support::usage_token(&data, &ws).await;
    let body = json!({"model": "minimax/MiniMax-M2.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let response = support::http()
        .post(format!("http://{}/llm/anthropic/v1/messages", server.address))
        .header("x-api-key", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let (_, rows) = api(&server, reqwest::Method::GET, &format!("/v1/orgs/{org}/usage/requests"), None).await;
        if rows["requests"].as_array().is_some_and(|r| !r.is_empty()) {
            break rows;
        }
        assert!(Instant::now() < deadline, "the call got no ledger row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rows["requests"][0]["status"], status, "the row records the answer: {rows}");
    (status, text, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_calls_providers_over_verified_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = fresh_dir("upstream-tls-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let issuer = Issuer::new(params, ca_key);

    // A provider whose certificate the host trusts: the call goes through, with the key.
    let (chain, key) = leaf(Some(&issuer));
    let (trusted, seen) = tls_provider(chain, key);
    let (status, body, server) = one_proxied_call("upstream-tls-trusted", &ca_file, &trusted).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("msg_tls"), "{body}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![("POST /anthropic/v1/messages HTTP/1.1".to_owned(), format!("Bearer {PLATFORM_KEY}"))],
        "the provider got the call over TLS, with the platform key"
    );
    server.stop();

    // A provider with a certificate of its own making: no request, no key, a clear refusal.
    let (chain, key) = leaf(None);
    let (rogue, seen) = tls_provider(chain, key);
    let (status, body, server) = one_proxied_call("upstream-tls-rogue", &ca_file, &rogue).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "UPSTREAM_UNREACHABLE", "{body}");
    assert!(seen.lock().unwrap().is_empty(), "an unverified provider got a request");
    server.stop();
}
