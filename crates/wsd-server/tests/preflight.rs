//! The liveness preflight against a fake provider on 127.0.0.1: the registry overlay points
//! the provider there, and the fake checks the key and header it receives.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use reqwest::StatusCode as Status;
use serde_json::json;
use support::{ADMIN, Backend, Options, start_with};
use wsd_core::Registry;
use wsd_core::registry::ProviderOverride;

const GOOD_KEY: &str = "canary-good-minimax-key-19ab";
const BAD_KEY: &str = "canary-bad-minimax-key-77cd";

/// What the fake provider saw: (path, header name, value).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn fake_provider(seen: Seen) -> String {
    let handler = |path: &'static str, seen: Seen| {
        move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let (name, value) = match (headers.get("x-api-key"), headers.get("authorization")) {
                    (Some(key), _) => ("x-api-key", key.to_str().unwrap().to_owned()),
                    (None, Some(auth)) => ("authorization", auth.to_str().unwrap().trim_start_matches("Bearer ").to_owned()),
                    _ => ("none", String::new()),
                };
                seen.lock().unwrap().push((path.to_owned(), name.to_owned(), value.clone()));
                match value.as_str() {
                    GOOD_KEY => (StatusCode::OK, "{\"data\": []}"),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (StatusCode::OK, "{}")
                    }
                    "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "{}"),
                    _ => (StatusCode::UNAUTHORIZED, "{\"error\": \"invalid key\"}"),
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/anthropic/v1/models", get(handler("/anthropic/v1/models", seen.clone())))
        .route("/openai/models", get(handler("/openai/models", seen.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn registry_pointing_at(fake: &str) -> Registry {
    let overlay =
        |anthropic: String, openai: String| ProviderOverride { base_url_anthropic: Some(anthropic), base_url_openai: Some(openai) };
    let overrides = BTreeMap::from([
        ("minimax".to_owned(), overlay(format!("{fake}/anthropic"), format!("{fake}/openai"))),
        // A closed port: nothing listens there.
        ("kimi-coding".to_owned(), overlay("http://127.0.0.1:9/anthropic".into(), "http://127.0.0.1:9/v1".into())),
    ]);
    Registry::embedded().unwrap().with_overrides(&overrides).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_checks_the_planned_key_with_the_planned_header() {
    let seen: Seen = Arc::default();
    let fake = fake_provider(seen.clone()).await;
    let api = start_with(
        Backend::Sqlite,
        "preflight",
        false,
        Some(registry_pointing_at(&fake)),
        Options { preflight: Some(Duration::from_secs(1)), ..Options::default() },
    )
    .await;
    let create = |org: String, model: &'static str| {
        let api = &api;
        async move {
            api.post(&format!("/v1/orgs/{org}/workspaces"), ADMIN, json!({"name": model, "runtime": "claude-code", "model": model})).await
        }
    };

    let org = api.org("acme").await;
    api.secret(&org, "MINIMAX_API_KEY", GOOD_KEY).await;
    let r = create(org.clone(), "MiniMax-M2.7").await;
    assert_eq!(r.status, Status::CREATED, "{}", r.body);
    // Claude Code sends a MiniMax key as a bearer token in ANTHROPIC_AUTH_TOKEN: so did the check.
    assert_eq!(seen.lock().unwrap().last().unwrap(), &("/anthropic/v1/models".to_owned(), "authorization".to_owned(), GOOD_KEY.to_owned()));

    let bad = api.org("bad").await;
    api.secret(&bad, "MINIMAX_API_KEY", BAD_KEY).await;
    let r = create(bad.clone(), "MiniMax-M2.7").await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (Status::UNPROCESSABLE_ENTITY, Some("INVALID_BYOK_CREDENTIAL")));
    assert_eq!(r.body["error"]["provider"], "minimax");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("ANTHROPIC_AUTH_TOKEN"));
    assert!(!r.body.to_string().contains(BAD_KEY));
    assert_eq!(api.get(&format!("/v1/orgs/{bad}/workspaces"), ADMIN).await.body["workspaces"], json!([]));

    let slow = api.org("slow").await;
    api.secret(&slow, "MINIMAX_API_KEY", "slow").await;
    let r = create(slow, "MiniMax-M2.7").await;
    assert_eq!(r.body["error"]["code"], "PROVIDER_UNREACHABLE", "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("timed out"));

    let broken = api.org("broken").await;
    api.secret(&broken, "MINIMAX_API_KEY", "broken").await;
    let r = create(broken, "MiniMax-M2.7").await;
    assert_eq!(r.body["error"]["code"], "PREFLIGHT_FAILED", "{}", r.body);

    let closed = api.org("closed").await;
    api.secret(&closed, "KIMI_API_KEY", GOOD_KEY).await;
    let r = create(closed, "kimi-k2").await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (Status::UNPROCESSABLE_ENTITY, Some("PROVIDER_UNREACHABLE")));

    // Switching the model is checked the same way.
    let ws = api.get(&format!("/v1/orgs/{org}/workspaces"), ADMIN).await.body["workspaces"][0]["id"].as_str().unwrap().to_owned();
    api.put(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/MINIMAX_API_KEY"), ADMIN, json!({"value": BAD_KEY})).await;
    let r = api.patch(&format!("/v1/orgs/{org}/workspaces/{ws}"), ADMIN, json!({"model": "MiniMax-M3"})).await;
    assert_eq!(r.body["error"]["code"], "INVALID_BYOK_CREDENTIAL", "{}", r.body);
    assert_eq!(seen.lock().unwrap().last().unwrap().2, BAD_KEY, "the workspace's own key was the one checked");
}

/// A server with the preflight on, whose Anthropic API provider is the fake; what the fake saw.
async fn with_fake_anthropic(label: &str) -> (support::Api, Seen) {
    let seen: Seen = Arc::default();
    let fake = fake_provider(seen.clone()).await;
    let overrides = BTreeMap::from([(
        "anthropic-api".to_owned(),
        ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: None },
    )]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    let options = Options { preflight: Some(Duration::from_secs(1)), ..Options::default() };
    (start_with(Backend::Sqlite, label, true, Some(registry), options).await, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_api_key_is_checked_as_x_api_key_and_platform_models_are_not_checked() {
    let (api, seen) = with_fake_anthropic("preflight_x_api_key").await;
    let org = api.org("acme").await;
    api.secret(&org, "ANTHROPIC_API_KEY", GOOD_KEY).await;
    api.workspace(&org, "a", "claude-code", "claude-opus-4-7").await;
    assert_eq!(seen.lock().unwrap().last().unwrap(), &("/anthropic/v1/models".to_owned(), "x-api-key".to_owned(), GOOD_KEY.to_owned()));
    let calls = seen.lock().unwrap().len();
    api.workspace(&org, "p", "claude-code", "anthropic/claude-opus-4-7").await;
    assert_eq!(seen.lock().unwrap().len(), calls, "a platform-managed workspace has no key of its own to check");

    // With credential delivery `proxy` the workspace would send its usage token: the key
    // checked is the org's, in the header the proxy sends it in.
    let r = api.put(&format!("/v1/orgs/{org}/credential-delivery"), ADMIN, json!({"credential_delivery": "proxy"})).await;
    assert_eq!(r.status, Status::OK, "{}", r.body);
    api.workspace(&org, "proxied", "claude-code", "claude-opus-4-7").await;
    assert_eq!(seen.lock().unwrap().last().unwrap(), &("/anthropic/v1/models".to_owned(), "x-api-key".to_owned(), GOOD_KEY.to_owned()));
    api.secret(&org, "ANTHROPIC_API_KEY", BAD_KEY).await;
    let r = api
        .post(&format!("/v1/orgs/{org}/workspaces"), ADMIN, json!({"name": "bad", "runtime": "claude-code", "model": "claude-opus-4-7"}))
        .await;
    assert_eq!(r.body["error"]["code"], "INVALID_BYOK_CREDENTIAL", "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("kept in wsd"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_never_calls_a_url_a_tenant_chose_nor_echoes_it() {
    let (api, seen) = with_fake_anthropic("preflight_tenant_url").await;
    let org = api.org("acme").await;
    api.secret(&org, "ANTHROPIC_API_KEY", GOOD_KEY).await;
    let ws = api.workspace(&org, "a", "claude-code", "claude-opus-4-7").await;
    // The workspace's own base URL, with credentials in it, pointing into wsd's network.
    let tenant_url = "http://user:canary-url-password@10.0.0.7:9/internal?token=canary-url-query";
    api.put(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/ANTHROPIC_BASE_URL"), ADMIN, json!({"value": tenant_url})).await;
    let before = seen.lock().unwrap().len();
    let r = api.patch(&format!("/v1/orgs/{org}/workspaces/{ws}"), ADMIN, json!({"model": "claude-sonnet-4-6"})).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (Status::UNPROCESSABLE_ENTITY, Some("PREFLIGHT_UNSUPPORTED")), "{}", r.body);
    let text = r.body.to_string();
    for secret in ["canary-url-password", "canary-url-query", "10.0.0.7", GOOD_KEY] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("ANTHROPIC_BASE_URL"), "{text}");
    assert_eq!(seen.lock().unwrap().len(), before, "nothing was called");
}
