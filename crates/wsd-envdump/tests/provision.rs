//! Provisioning with real child processes: `wsd-envdump` runs as the workspace and records
//! the names of its env vars, a hash of each value and the files in its HOME, so the tests
//! check that exactly the planned env reached it — without ever reading a value.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wsd_backend::{ProcessBackend, ProcessOptions};
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_core::{Registry, SecretValue};
use wsd_server::{AppState, Runner};
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions, TokenKind};

const ADMIN: &str = "wsd_provision-test-admin";
const OAUTH: &str = "canary-provision-oauth-31f0";
const MINIMAX: &str = "canary-provision-minimax-8c2e";

struct World {
    base: String,
    client: reqwest::Client,
    dumps: PathBuf,
    root: PathBuf,
    state: Arc<AppState>,
}

fn sha(value: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl World {
    async fn new(label: &str) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("wsd-provision-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, dumps) = (dir.join("workspaces"), dir.join("dumps"));
        std::fs::create_dir_all(&dumps).unwrap();
        let url = format!("sqlite://{}/wsd.db?mode=rwc", dir.display());
        let store = Store::open(StoreOptions {
            url,
            create_sqlite: true,
            keyring: Keyring::generate(),
            key_source: KeySource::Inline,
            max_connections: 4,
        })
        .await
        .unwrap();
        store.insert_token(TokenKind::Admin, None, None, "admin", &SecretValue::new(ADMIN), "test").await.unwrap();
        let envdump = env!("CARGO_BIN_EXE_wsd-envdump").to_owned();
        // The workspace command: dump into DUMPS/<runtime>.<pid>, then stay up.
        let command = |runtime: &str| vec![envdump.clone(), format!("{}/{runtime}", dumps.display()), "60".to_owned()];
        let commands = BTreeMap::from([("claude-code".to_owned(), command("claude-code")), ("codex".to_owned(), command("codex"))]);
        let backend = ProcessBackend::new(ProcessOptions { root: root.clone(), grace: Duration::from_secs(2), log_cap_bytes: 1 << 20 });
        let mut state = AppState::new(
            Registry::embedded().unwrap(),
            store,
            Some(PlatformSettings { proxy_base_url: "http://127.0.0.1:8080/llm".into() }),
            Policy::default(),
        );
        state.runner = Some(Runner { backend: Arc::new(backend), commands, restart_on_change: label == "restart" });
        let state = Arc::new(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = wsd_server::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        World { base, client: reqwest::Client::new(), dumps, root, state }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(!text.contains(OAUTH) && !text.contains(MINIMAX), "a value in a response: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits for the dump of the workspace started last and returns it, parsed.
    async fn dump(&self, runtime: &str, not: &[PathBuf]) -> (PathBuf, BTreeMap<String, String>, BTreeMap<String, (String, String)>) {
        for _ in 0..200 {
            let found = std::fs::read_dir(&self.dumps).unwrap().flatten().map(|e| e.path()).find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.starts_with(&format!("{runtime}.")) && !name.ends_with(".tmp") && !not.contains(p)
            });
            if let Some(path) = found {
                let text = std::fs::read_to_string(&path).unwrap();
                let (mut env, mut files) = (BTreeMap::new(), BTreeMap::new());
                for line in text.lines() {
                    let parts: Vec<&str> = line.split(' ').collect();
                    match parts.as_slice() {
                        ["env", name, hash] => drop(env.insert(name.to_string(), hash.to_string())),
                        ["file", path, mode, hash] => drop(files.insert(path.to_string(), (mode.to_string(), hash.to_string()))),
                        _ => panic!("unexpected dump line {line}"),
                    }
                }
                return (path, env, files);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the workspace never wrote its dump");
    }
}

fn pid_of(workspace: &Value) -> u32 {
    workspace["instance_id"].as_str().unwrap().split(':').nth(1).unwrap().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byok_workspace_gets_exactly_its_planned_env_and_nothing_of_wsds_own() {
    let world = World::new("byok").await;
    let (_, org) = world.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    let org = org["id"].as_str().unwrap().to_owned();
    for (key, value) in [("CLAUDE_CODE_OAUTH_TOKEN", OAUTH), ("MINIMAX_API_KEY", MINIMAX), ("DATABASE_URL", "postgres://db")] {
        world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/{key}"), Some(json!({"value": value}))).await;
    }
    let (status, ws) = world
        .call(
            Method::POST,
            &format!("/v1/orgs/{org}/workspaces"),
            Some(json!({"name": "dev", "runtime": "claude-code", "model": "MiniMax-M2.7"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = ws["id"].as_str().unwrap().to_owned();
    world.call(Method::PUT, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/SENTRY_DSN"), Some(json!({"value": "https://sentry"}))).await;

    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!((running["status"].clone(), running["backend"].clone()), (json!("running"), json!("process")));
    let (_, env, _) = world.dump("claude-code", &[]).await;

    let (_, plan) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/plan"), None).await;
    let mut expected: Vec<String> = plan["env"].as_object().unwrap().keys().cloned().collect();
    expected.push("HOME".into());
    expected.sort();
    assert_eq!(env.keys().cloned().collect::<Vec<_>>(), expected, "exactly the planned env, plus HOME");
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], sha(MINIMAX));
    assert_eq!(env["MINIMAX_API_KEY"], sha(MINIMAX));
    assert_eq!(env["ANTHROPIC_BASE_URL"], sha("https://api.minimax.io/anthropic"));
    assert_eq!(env["DATABASE_URL"], sha("postgres://db"));
    assert_eq!(env["SENTRY_DSN"], sha("https://sentry"));
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"));
    // wsd's own environment (the test process's) never reaches a workspace.
    for own in ["PATH", "CARGO_MANIFEST_DIR", "RUST_TEST_THREADS", "USER"] {
        if std::env::var_os(own).is_some() {
            assert!(!env.contains_key(own), "{own} leaked from wsd's environment");
        }
    }
    assert!(!env.values().any(|h| *h == sha(OAUTH)), "the OAuth token reached the workspace under some name");

    // Logs, then stop: no process is left.
    let (status, logs) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/logs?tail=5"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(logs["lines"][0].as_str().unwrap().starts_with("envdump wrote"), "{logs}");
    let pid = pid_of(&running);
    assert!(alive(pid));
    let (status, stopped) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    assert_eq!((status, stopped["status"].clone()), (StatusCode::OK, json!("stopped")));
    assert!(!alive(pid), "the process survived stop");
    let _ = world.root;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_workspace_gets_a_fresh_usage_token_on_every_start() {
    let world = World::new("platform").await;
    let (_, org) = world.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    let org = org["id"].as_str().unwrap().to_owned();
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/MINIMAX_API_KEY"), Some(json!({"value": MINIMAX}))).await;
    let (_, ws) = world
        .call(
            Method::POST,
            &format!("/v1/orgs/{org}/workspaces"),
            Some(json!({"name": "m", "runtime": "claude-code", "model": "minimax/MiniMax-M2.7"})),
        )
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (first_dump, env, _) = world.dump("claude-code", &[]).await;
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], env["WSD_LLM_USAGE_TOKEN"]);
    assert!(!env.contains_key("MINIMAX_API_KEY"), "a platform workspace carries no vendor key");
    assert!(!env.values().any(|h| *h == sha(MINIMAX)));
    assert_eq!(env["ANTHROPIC_BASE_URL"], sha("http://127.0.0.1:8080/llm/anthropic"));
    assert_eq!(env["ANTHROPIC_CUSTOM_HEADERS"], sha(&format!("X-Wsd-Workspace-Id: {id}")));

    // Restart: the stored model, a new usage token, the old one revoked, the old process gone.
    let (status, second) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/restart"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["model"], "minimax/MiniMax-M2.7");
    let (_, env2, _) = world.dump("claude-code", &[first_dump]).await;
    assert_ne!(env2["WSD_LLM_USAGE_TOKEN"], env["WSD_LLM_USAGE_TOKEN"], "the usage token is rotated at restart");
    assert!(!alive(pid_of(&first)));
    let tokens = world.state.store.list_tokens(Some(&org)).await.unwrap();
    let usage: Vec<_> = tokens.iter().filter(|t| t.kind == TokenKind::Usage).collect();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage.iter().filter(|t| t.revoked_at.is_none()).count(), 1);

    // Delete: stopped, tokens gone.
    let pid = pid_of(&second);
    let (status, _) = world.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!alive(pid), "delete left the process running");
    assert!(world.state.store.list_tokens(Some(&org)).await.unwrap().iter().all(|t| t.kind != TokenKind::Usage));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_gets_its_config_file_and_a_refused_plan_fails_the_workspace() {
    let world = World::new("codex").await;
    let (_, org) = world.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    let org = org["id"].as_str().unwrap().to_owned();
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/CODEX_AUTH_JSON"), Some(json!({"value": "{\"tokens\": \"x\"}"}))).await;
    let (_, ws) = world
        .call(Method::POST, &format!("/v1/orgs/{org}/workspaces"), Some(json!({"name": "c", "runtime": "codex", "model": "gpt-5.5"})))
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let (_, _, files) = world.dump("codex", &[]).await;
    assert_eq!(files[".codex/auth.json"], ("600".to_owned(), sha("{\"tokens\": \"x\"}")));
    assert_eq!(files[".codex/config.toml"].0, "600");

    // The credential goes away: the next provision is refused and the workspace is failed.
    world.call(Method::DELETE, &format!("/v1/orgs/{org}/secrets/CODEX_AUTH_JSON"), None).await;
    let (status, _) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, shown) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!(shown["stale"], true, "a secret change that changes the plan makes the running workspace stale");
    let (status, refused) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/restart"), None).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("AMBIGUOUS_PROVIDER")));
    let (_, failed) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!((failed["status"].clone(), failed["last_error"]["code"].clone()), (json!("failed"), json!("AMBIGUOUS_PROVIDER")));
    assert!(!alive(pid_of(&running)), "a refused restart leaves no process behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_restart_on_change_a_secret_change_restarts_only_the_workspaces_it_changes() {
    let world = World::new("restart").await;
    let (_, org) = world.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    let org = org["id"].as_str().unwrap().to_owned();
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/MINIMAX_API_KEY"), Some(json!({"value": MINIMAX}))).await;
    let (_, ws) = world
        .call(
            Method::POST,
            &format!("/v1/orgs/{org}/workspaces"),
            Some(json!({"name": "dev", "runtime": "claude-code", "model": "MiniMax-M2.7"})),
        )
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (_, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    let (first_dump, _, _) = world.dump("claude-code", &[]).await;

    // A value change leaves the plan (names and origins) as it was: no restart.
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/MINIMAX_API_KEY"), Some(json!({"value": "another-value"}))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, shown) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!((shown["instance_id"].clone(), shown["stale"].clone()), (first["instance_id"].clone(), json!(false)));

    // A new secret changes the plan: the workspace restarts by itself with it.
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/DATABASE_URL"), Some(json!({"value": "postgres://db"}))).await;
    let (_, env, _) = world.dump("claude-code", &[first_dump]).await;
    assert_eq!(env["DATABASE_URL"], sha("postgres://db"));
    let (_, shown) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_ne!(shown["instance_id"], first["instance_id"]);
    assert_eq!(shown["stale"], false);
    assert!(!alive(pid_of(&first)));
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_model_of_a_running_workspace_restarts_it_with_the_new_plan() {
    let world = World::new("switch").await;
    let (_, org) = world.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    let org = org["id"].as_str().unwrap().to_owned();
    for (key, value) in [("MINIMAX_API_KEY", MINIMAX), ("CLAUDE_CODE_OAUTH_TOKEN", OAUTH)] {
        world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/{key}"), Some(json!({"value": value}))).await;
    }
    let (_, ws) = world
        .call(
            Method::POST,
            &format!("/v1/orgs/{org}/workspaces"),
            Some(json!({"name": "dev", "runtime": "claude-code", "model": "MiniMax-M2.7"})),
        )
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (_, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    let (first_dump, env, _) = world.dump("claude-code", &[]).await;
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], sha(MINIMAX));

    // A refused switch changes nothing.
    let (status, refused) = world.call(Method::PATCH, &format!("/v1/orgs/{org}/workspaces/{id}"), Some(json!({"model": "gpt-5.5"}))).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("UNREGISTERED_MODEL_FOR_RUNTIME")));
    assert!(alive(pid_of(&first)));

    let (status, switched) = world.call(Method::PATCH, &format!("/v1/orgs/{org}/workspaces/{id}"), Some(json!({"model": "opus"}))).await;
    assert_eq!((status, switched["model"].clone(), switched["status"].clone()), (StatusCode::OK, json!("opus"), json!("running")));
    let (_, env, _) = world.dump("claude-code", &[first_dump]).await;
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], sha(OAUTH));
    assert_eq!(env["ANTHROPIC_MODEL"], sha("opus"));
    assert!(!env.contains_key("ANTHROPIC_AUTH_TOKEN") && !env.contains_key("MINIMAX_API_KEY"));
    assert!(!alive(pid_of(&first)));
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
}
