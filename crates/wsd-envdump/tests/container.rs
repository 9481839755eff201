//! Provisioning into containers on a real engine (Podman's Docker-compatible service, which
//! the tests start themselves): a workspace's container gets exactly its plan, a platform
//! workspace calls wsd's metering proxy with nothing but its env and is metered, and the
//! engine's failures are answered with their codes, leaving nothing half-made. The image
//! is built from files: a static busybox and the test helpers `wsd-envdump` and
//! `wsd-llm-call` with the libraries they load.
//!
//! Without Podman these tests are ignored at build time, never passed; CI sets
//! `WSD_TEST_REQUIRE_ENGINE=1`, which makes a missing engine fail them.
#![allow(clippy::disallowed_methods)]
#![cfg_attr(not(wsd_test_engine), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_core::{Registry, SecretValue};
use wsd_server::{AppState, Confinements, Placement, Runner};
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions, TokenKind};

mod support;
use support::{fake_minimax, sha};

const ADMIN: &str = "wsd_container-test-admin";
const PLATFORM_MINIMAX: &str = "canary-container-platform-minimax-6e1d";

struct World {
    base: String,
    client: reqwest::Client,
    state: Arc<AppState>,
}

/// The image every test runs: busybox and the two helpers.
fn image() -> String {
    let helpers = [Path::new(env!("CARGO_BIN_EXE_wsd-envdump")), Path::new(env!("CARGO_BIN_EXE_wsd-llm-call"))];
    wsd_testengine::engine().image("wsd-helpers", &helpers)
}

/// A wsd whose `claude-code` workspaces run `script` in containers of `image` on `host`.
async fn world(owner: &str, registry: Registry, host: &str, image: &str, script: &str) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("wsd-container-{owner}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(StoreOptions {
        url: format!("sqlite://{}/wsd.db?mode=rwc", dir.display()),
        create_sqlite: true,
        keyring: Keyring::generate(),
        key_source: KeySource::Inline,
        max_connections: 4,
    })
    .await
    .unwrap();
    store.insert_token(TokenKind::Admin, None, None, "admin", &SecretValue::new(ADMIN), "test").await.unwrap();
    let mut options = wsd_backend::DockerOptions::new(host, dir.join("logs"));
    options.owner = owner.into();
    options.images.insert("claude-code".into(), image.into());
    // The host's network: the container reaches this wsd on 127.0.0.1.
    options.network = "host".into();
    options.grace = Duration::from_secs(1);
    let commands = BTreeMap::from([("claude-code".to_owned(), vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()])]);
    let mut placement = Placement::new(Arc::new(wsd_backend::DockerBackend::new(options)), commands);
    placement.command_optional = true;
    placement.confinement = Confinements::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut state = AppState::new(registry, store, Some(PlatformSettings { proxy_base_url: format!("{base}/llm") }), Policy::default());
    state.runner = Some(Runner::of(vec![placement]));
    let state = Arc::new(state);
    tokio::spawn(wsd_server::listener::serve(listener, wsd_server::app(state.clone()), Default::default(), std::future::pending()));
    World { base, client: reqwest::Client::new(), state }
}

impl World {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(!text.contains(PLATFORM_MINIMAX), "a value in a response: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An org with a `claude-code` workspace on `model`: (org, workspace id).
    async fn workspace(&self, model: &str) -> (String, String) {
        let (_, org) = self.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
        let org = org["id"].as_str().unwrap().to_owned();
        let body = json!({"name": "agent", "runtime": "claude-code", "model": model});
        let (status, ws) = self.call(Method::POST, &format!("/v1/orgs/{org}/workspaces"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");
        (org, ws["id"].as_str().unwrap().to_owned())
    }

    /// The workspace's output once it holds `marker` (at most 30 s).
    async fn output_until(&self, org: &str, id: &str, marker: &str) -> String {
        let mut text = String::new();
        for _ in 0..300 {
            let (_, logs) = self.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/logs?tail=1000"), None).await;
            text = logs["lines"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("\n");
            if text.contains(marker) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the workspace never printed {marker}: {text}");
    }
}

/// The env the engine adds besides the plan's, `HOME` (which the backend sets), and what
/// the shell running the test script exports to its children (`PWD`, `SHLVL`). The
/// backend's own tests read a container's first process's env, where the shell adds none.
const ENGINE_NAMES: [&str; 7] = ["PATH", "HOSTNAME", "TERM", "container", "HOME", "PWD", "SHLVL"];

/// A platform workspace in a container: its env is exactly the plan (names, and the
/// values by hash), its files are 0600, and its own call — from nothing but that env —
/// reaches the provider through wsd's proxy with the platform's key and is metered to it.
#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_workspace_in_a_container_runs_its_plan_and_is_metered() {
    let seen = Arc::default();
    let fake = fake_minimax(Arc::clone(&seen)).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        wsd_core::registry::ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: None },
    )]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    let script =
        "wsd-envdump .dumps/env && wsd-llm-call .dumps/call; cat .dumps/env.*; echo; cat .dumps/call.*; echo; echo finished; sleep 300";
    let world = world("e2e", registry, &wsd_testengine::engine().host, &image(), script).await;
    world.call(Method::PUT, "/v1/platform/secrets/MINIMAX_API_KEY", Some(json!({"value": PLATFORM_MINIMAX}))).await;
    let (org, id) = world.workspace("minimax/MiniMax-M2.7").await;
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!(running["backend"], "docker");
    let out = world.output_until(&org, &id, "finished").await;

    let (_, plan) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/plan"), None).await;
    let planned: Vec<String> = plan["env"].as_object().expect("the plan's env").keys().cloned().collect();
    let env: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.strip_prefix("env ")).filter_map(|l| l.split_once(' ')).collect();
    for name in &planned {
        assert!(env.contains_key(name.as_str()), "{name} is planned but not in the container: {out}");
    }
    for name in env.keys() {
        assert!(planned.iter().any(|p| p == name) || ENGINE_NAMES.contains(name), "`{name}` is not in the plan: {out}");
    }
    assert_ne!(env.get("ANTHROPIC_AUTH_TOKEN"), Some(&sha(PLATFORM_MINIMAX).as_str()), "the platform key never enters");
    for line in out.lines().filter(|l| l.starts_with("file ") && !l.contains(" .dumps/")) {
        assert_eq!(line.split(' ').nth(2), Some("600"), "{line}");
    }
    assert!(out.contains("HTTP/1.1 200") && out.contains("msg_e2e"), "{out}");
    // Upstream got the platform's key and the vendor's model id, and no wsd attribution.
    assert_eq!(*seen.lock().unwrap(), [(PLATFORM_MINIMAX.to_owned(), "MiniMax-M2.7".to_owned(), false)]);

    let mut rows = Vec::new();
    for _ in 0..100 {
        let (_, body) = world.call(Method::GET, &format!("/v1/orgs/{org}/usage/requests"), None).await;
        rows = body["requests"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["workspace_id"].as_str(), rows[0]["input_tokens"].as_i64()), (Some(id.as_str()), Some(31)));

    let (status, _) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = world.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let engine = wsd_testengine::engine();
    let leftovers = engine.podman().args(["ps", "-a", "-q", "--filter", "label=dev.wsd.owner=e2e"]).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "delete leaves no container");
    let volumes = engine.podman().args(["volume", "ls", "-q", "--filter", "label=dev.wsd.owner=e2e"]).output().unwrap();
    assert!(volumes.stdout.is_empty(), "delete leaves no volume");
}

/// An engine that does not answer is 503 `BACKEND_UNAVAILABLE`; an image that is not there
/// is 422 `BACKEND_IMAGE_MISSING` naming it. Either way the workspace is marked failed with
/// the code, and its usage token no longer works.
#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_failures_are_answered_with_their_codes_and_leave_nothing_usable() {
    let down = std::env::temp_dir().join("wsd-container-no-engine.sock");
    let cases = [
        ("down", format!("unix://{}", down.display()), image(), StatusCode::SERVICE_UNAVAILABLE, "BACKEND_UNAVAILABLE"),
        (
            "noimage",
            wsd_testengine::engine().host.clone(),
            "localhost/not-built:1".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "BACKEND_IMAGE_MISSING",
        ),
    ];
    for (owner, host, image, want_status, want_code) in cases {
        let world = world(owner, Registry::embedded().unwrap(), &host, &image, "sleep 300").await;
        world.call(Method::PUT, "/v1/platform/secrets/MINIMAX_API_KEY", Some(json!({"value": PLATFORM_MINIMAX}))).await;
        let (org, id) = world.workspace("minimax/MiniMax-M2.7").await;
        let (status, error) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (want_status, Some(want_code)), "{owner}: {error}");
        if owner == "noimage" {
            assert!(error["error"]["message"].as_str().unwrap().contains("localhost/not-built:1"), "{error}");
        }
        let (_, ws) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
        assert_eq!((ws["status"].as_str(), ws["last_error"]["code"].as_str()), (Some("failed"), Some(want_code)), "{ws}");
        let tokens = world.state.store.list_tokens(Some(&org)).await.unwrap();
        let usage: Vec<_> = tokens.iter().filter(|t| t.kind == TokenKind::Usage).collect();
        assert_eq!(usage.len(), 1, "{owner}: the provision minted its usage token");
        assert!(usage[0].revoked_at.is_some(), "{owner}: the usage token of a failed provision still works");
    }
}
