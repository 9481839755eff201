//! Provisioning with real child processes: `wsd-envdump` runs as the workspace and records
//! the names of its env vars, a hash of each value and the files in its HOME, so the tests
//! check that exactly the planned env reached it — without ever reading a value. Workspaces
//! run sandboxed, as by default: a test command writes into its own home, which the test
//! reads from the host.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wsd_backend::{BwrapOptions, ProcessBackend, ProcessOptions, Sandbox};
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_core::{Registry, SecretValue};
use wsd_server::{AppState, Runner};
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions, TokenKind};

mod support;
use support::{fake_minimax, fake_openai, sha};

const ADMIN: &str = "wsd_provision-test-admin";
const OAUTH: &str = "canary-provision-oauth-31f0";
const MINIMAX: &str = "canary-provision-minimax-8c2e";

struct World {
    base: String,
    client: reqwest::Client,
    root: PathBuf,
    state: Arc<AppState>,
}

impl World {
    async fn new(label: &str) -> World {
        World::build(label, Registry::embedded().unwrap(), None).await
    }

    /// A server with `registry`; each runtime runs `commands` (its argv), or by default
    /// `wsd-envdump`, writing into `.dumps/` in its home.
    async fn build(label: &str, registry: Registry, commands: Option<BTreeMap<String, Vec<String>>>) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("wsd-provision-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("workspaces");
        std::fs::create_dir_all(&root).unwrap();
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
        // The workspace command: dump into ~/.dumps/<runtime>.<pid>, then stay up.
        let command = |runtime: &str| vec![envdump.clone(), format!(".dumps/{runtime}"), "60".to_owned()];
        let commands = commands.unwrap_or_else(|| {
            BTreeMap::from([("claude-code".to_owned(), command("claude-code")), ("codex".to_owned(), command("codex"))])
        });
        let backend = ProcessBackend::new(sandboxed_options(root.clone()));
        backend.probe().expect("the sandbox works here (install bubblewrap)");
        // Workspaces call this very server's metering proxy.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut state = AppState::new(registry, store, Some(PlatformSettings { proxy_base_url: format!("{base}/llm") }), Policy::default());
        let mut runner = Runner::new(Arc::new(backend), commands);
        runner.restart_on_change = label == "restart";
        runner.max_running_per_org = if label == "quota" { 2 } else { 0 };
        state.runner = Some(runner);
        let state = Arc::new(state);
        tokio::spawn(wsd_server::listener::serve(listener, wsd_server::app(state.clone()), Default::default(), std::future::pending()));
        World { base, client: reqwest::Client::new(), root, state }
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

    /// Creates the org `acme` with `secrets` set org-wide; its id.
    async fn org(&self, secrets: &[(&str, &str)]) -> String {
        let (_, org) = self.call(Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
        let org = org["id"].as_str().unwrap().to_owned();
        for (key, value) in secrets {
            self.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/{key}"), Some(json!({"value": value}))).await;
        }
        org
    }

    /// Creates a workspace of `org`: the status and the workspace.
    async fn workspace(&self, org: &str, name: &str, runtime: &str, model: &str) -> (StatusCode, Value) {
        let body = json!({"name": name, "runtime": runtime, "model": model});
        self.call(Method::POST, &format!("/v1/orgs/{org}/workspaces"), Some(body)).await
    }

    /// Files named `NAME.*` that workspaces wrote into `~/.dumps/`.
    fn outputs(&self, name: &str) -> Vec<PathBuf> {
        let homes = std::fs::read_dir(&self.root)
            .map(|d| d.flatten().map(|e| e.path().join("home/.dumps")).collect::<Vec<_>>())
            .unwrap_or_default();
        homes
            .into_iter()
            .flat_map(|dir| std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default())
            .filter(|p| {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                file.starts_with(&format!("{name}.")) && !file.ends_with(".tmp")
            })
            .collect()
    }

    /// Waits for the dump of the workspace started last, parses it and removes it (so the
    /// next start's dump is told apart).
    async fn dump(&self, runtime: &str) -> (BTreeMap<String, String>, BTreeMap<String, (String, String)>) {
        for _ in 0..200 {
            if let Some(path) = self.outputs(runtime).into_iter().next() {
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::remove_file(&path).unwrap();
                let (mut env, mut files) = (BTreeMap::new(), BTreeMap::new());
                for line in text.lines() {
                    let parts: Vec<&str> = line.split(' ').collect();
                    match parts.as_slice() {
                        ["env", name, hash] => drop(env.insert(name.to_string(), hash.to_string())),
                        ["file", path, mode, hash] => drop(files.insert(path.to_string(), (mode.to_string(), hash.to_string()))),
                        _ => panic!("unexpected dump line {line}"),
                    }
                }
                return (env, files);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the workspace never wrote its dump");
    }
}

/// The process backend as `wsd serve` runs it as root (each workspace its own uid), with
/// the test commands' directory visible read-only in the sandbox.
fn sandboxed_options(root: PathBuf) -> ProcessOptions {
    let mut options = ProcessOptions::sandboxed(root);
    options.grace = Duration::from_secs(2);
    options.log_cap_bytes = 1 << 20;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wsd-envdump")).parent().unwrap().to_path_buf();
    options.sandbox = Sandbox::Bwrap(BwrapOptions {
        read_only: wsd_backend::DEFAULT_READ_ONLY.iter().map(PathBuf::from).chain([bin]).collect(),
        ..BwrapOptions::default()
    });
    if nix::unistd::geteuid().is_root() {
        options.host_uids = Some(620_000..=620_999);
    }
    options
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
    let org = world.org(&[("CLAUDE_CODE_OAUTH_TOKEN", OAUTH), ("MINIMAX_API_KEY", MINIMAX), ("DATABASE_URL", "postgres://db")]).await;
    let (status, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    assert_eq!(status, StatusCode::CREATED);
    let id = ws["id"].as_str().unwrap().to_owned();
    world.call(Method::PUT, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/SENTRY_DSN"), Some(json!({"value": "https://sentry"}))).await;

    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    assert_eq!((running["status"].clone(), running["backend"].clone()), (json!("running"), json!("process")));
    let (env, _) = world.dump("claude-code").await;

    let (_, plan) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/plan"), None).await;
    let mut expected: Vec<String> = plan["env"].as_object().unwrap().keys().cloned().collect();
    expected.extend(["HOME".into(), "PATH".into(), "PWD".into()]);
    expected.sort();
    assert_eq!(env.keys().cloned().collect::<Vec<_>>(), expected, "exactly the planned env, plus the backend's HOME, PATH and PWD");
    assert_eq!(env["HOME"], sha("/home/agent"));
    assert_eq!(env["PATH"], sha(wsd_backend::DEFAULT_PATH), "PATH is the operator's, never wsd's own or a tenant's");
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], sha(MINIMAX));
    assert_eq!(env["MINIMAX_API_KEY"], sha(MINIMAX));
    assert_eq!(env["ANTHROPIC_BASE_URL"], sha("https://api.minimax.io/anthropic"));
    assert_eq!(env["DATABASE_URL"], sha("postgres://db"));
    assert_eq!(env["SENTRY_DSN"], sha("https://sentry"));
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"));
    // wsd's own environment (the test process's) never reaches a workspace.
    for own in ["CARGO_MANIFEST_DIR", "RUST_TEST_THREADS", "USER"] {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_workspace_gets_a_fresh_usage_token_on_every_start() {
    let world = World::new("platform").await;
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let (_, ws) = world.workspace(&org, "m", "claude-code", "minimax/MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (env, _) = world.dump("claude-code").await;
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], env["WSD_LLM_USAGE_TOKEN"]);
    assert!(!env.contains_key("MINIMAX_API_KEY"), "a platform workspace carries no vendor key");
    assert!(!env.values().any(|h| *h == sha(MINIMAX)));
    assert_eq!(env["ANTHROPIC_BASE_URL"], sha(&format!("{}/llm/anthropic", world.base)));
    assert_eq!(env["ANTHROPIC_CUSTOM_HEADERS"], sha(&format!("X-Wsd-Workspace-Id: {id}")));

    // Restart: the stored model, a new usage token, the old one revoked, the old process gone.
    let (status, second) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/restart"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["model"], "minimax/MiniMax-M2.7");
    let (env2, _) = world.dump("claude-code").await;
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
    let org = world.org(&[("CODEX_AUTH_JSON", "{\"tokens\": \"x\"}")]).await;
    let (_, ws) = world.workspace(&org, "c", "codex", "gpt-5.5").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let (_, files) = world.dump("codex").await;
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
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let (_, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (_, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    world.dump("claude-code").await;

    // A value change leaves the plan (names and origins) as it was: no restart.
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/MINIMAX_API_KEY"), Some(json!({"value": "another-value"}))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, shown) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!((shown["instance_id"].clone(), shown["stale"].clone()), (first["instance_id"].clone(), json!(false)));

    // A new secret changes the plan: the workspace restarts by itself with it.
    world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/DATABASE_URL"), Some(json!({"value": "postgres://db"}))).await;
    let (env, _) = world.dump("claude-code").await;
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
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX), ("CLAUDE_CODE_OAUTH_TOKEN", OAUTH)]).await;
    let (_, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (_, first) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    let (env, _) = world.dump("claude-code").await;
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], sha(MINIMAX));

    // A refused switch changes nothing.
    let (status, refused) = world.call(Method::PATCH, &format!("/v1/orgs/{org}/workspaces/{id}"), Some(json!({"model": "gpt-5.5"}))).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("UNREGISTERED_MODEL_FOR_RUNTIME")));
    assert!(alive(pid_of(&first)));

    let (status, switched) = world.call(Method::PATCH, &format!("/v1/orgs/{org}/workspaces/{id}"), Some(json!({"model": "opus"}))).await;
    assert_eq!((status, switched["model"].clone(), switched["status"].clone()), (StatusCode::OK, json!("opus"), json!("running")));
    let (env, _) = world.dump("claude-code").await;
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], sha(OAUTH));
    assert_eq!(env["ANTHROPIC_MODEL"], sha("opus"));
    assert!(!env.contains_key("ANTHROPIC_AUTH_TOKEN") && !env.contains_key("MINIMAX_API_KEY"));
    assert!(!alive(pid_of(&first)));
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
}

const PLATFORM_MINIMAX: &str = "canary-provision-platform-minimax-77d4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_workspace_calls_the_proxy_with_its_env_and_is_metered() {
    let seen = Arc::default();
    let fake = fake_minimax(Arc::clone(&seen)).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        wsd_core::registry::ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: None },
    )]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    let call = vec![env!("CARGO_BIN_EXE_wsd-llm-call").to_owned(), ".dumps/call".to_owned()];
    let world = World::build("e2e", registry, Some(BTreeMap::from([("claude-code".to_owned(), call)]))).await;
    world.call(Method::PUT, "/v1/platform/secrets/MINIMAX_API_KEY", Some(json!({"value": PLATFORM_MINIMAX}))).await;
    let org = world.org(&[]).await;
    let (status, ws) = world.workspace(&org, "agent", "claude-code", "minimax/MiniMax-M2.7").await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, provisioned) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{provisioned}");

    // The workspace's own call, with nothing but the env it was given.
    let answer = (0..400)
        .find_map(|_| {
            let found = world.outputs("call").into_iter().next();
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(25));
            }
            found
        })
        .map(|path| std::fs::read_to_string(path).unwrap())
        .expect("the workspace never made its call");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("msg_e2e"), "{answer}");
    assert!(!answer.contains(PLATFORM_MINIMAX));

    // Upstream got the platform's key and the vendor's model id, and no wsd attribution.
    assert_eq!(*seen.lock().unwrap(), [(PLATFORM_MINIMAX.to_owned(), "MiniMax-M2.7".to_owned(), false)]);

    // Metered to this workspace.
    let mut rows = Vec::new();
    for _ in 0..200 {
        let (_, body) = world.call(Method::GET, &format!("/v1/orgs/{org}/usage/requests"), None).await;
        rows = body["requests"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row["workspace_id"].as_str(), row["provider"].as_str(), row["model"].as_str(), row["status"].as_i64()),
        (Some(id.as_str()), Some("minimax"), Some("MiniMax-M2.7"), Some(200))
    );
    assert_eq!((row["input_tokens"].as_i64(), row["output_tokens"].as_i64()), (Some(31), Some(17)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_server_takes_over_the_workspaces_left_running() {
    let world = World::new("adopt").await;
    let taken = |adopted, gone| wsd_backend::Reconciled { adopted, gone, ended: 0 };
    assert_eq!(wsd_server::adopt_running(&world.state).await.unwrap(), taken(0, 0));
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let mut instances = Vec::new();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (_, ws) = world.workspace(&org, name, "claude-code", "MiniMax-M2.7").await;
        ids.push(ws["id"].as_str().unwrap().to_owned());
        let (status, running) =
            world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{}/provision", ws["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::OK, "{running}");
        instances.push(running["instance_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(wsd_server::adopt_running(&world.state).await.unwrap(), taken(2, 0));
    // One of them ends while no wsd watches: it is not taken over.
    let backend = &world.state.runner.as_ref().unwrap().placements[0].backend;
    backend.stop(&ids[0], &instances[0]).await.unwrap();
    assert_eq!(wsd_server::adopt_running(&world.state).await.unwrap(), taken(1, 1));
    backend.stop(&ids[1], &instances[1]).await.unwrap();
}

/// Pids of the processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_provisions_of_one_workspace_leave_exactly_one_instance() {
    // A command line of this run's own.
    let seconds = format!("661{:07}", std::process::id());
    let marker = format!("sleep {seconds}");
    let sleeper = BTreeMap::from([("claude-code".to_owned(), vec!["sleep".to_owned(), seconds.clone()])]);
    let world = Arc::new(World::build("concurrent", Registry::embedded().unwrap(), Some(sleeper)).await);
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let (_, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (world, path) = (world.clone(), format!("/v1/orgs/{org}/workspaces/{id}/provision"));
            tokio::spawn(async move { world.call(Method::POST, &path, None).await })
        })
        .collect();
    let mut instances = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        instances.push(body["instance_id"].as_str().unwrap().to_owned());
    }
    // Each provision replaced the one before: one sandbox runs, the last one recorded.
    // A sandbox's outer process is the one in wsd's own pid namespace.
    // (While bubblewrap sets a sandbox up its process is briefly not dumpable, and its
    // namespace cannot be read: the count is taken once every sandbox can be seen.)
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let mut sandboxes = Vec::new();
    for _ in 0..100 {
        let found = processes_with(&marker);
        sandboxes = found.iter().copied().filter(|pid| ns(*pid) == ns(std::process::id())).collect();
        if found.iter().all(|pid| ns(*pid).is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, shown) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    let recorded = shown["instance_id"].as_str().unwrap();
    assert!(instances.contains(&recorded.to_owned()));
    let running: Vec<&String> = instances.iter().filter(|i| alive(pid_of(&json!({"instance_id": i})))).collect();
    assert_eq!(running, [recorded], "exactly one instance runs, the recorded one");
    assert_eq!(sandboxes.len(), 1, "one sandbox: {sandboxes:?}");
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    assert!(processes_with(&marker).is_empty(), "stop left a process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_runs_at_most_its_quota_of_workspaces() {
    let world = World::new("quota").await;
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let (_, ws) = world.workspace(&org, name, "claude-code", "MiniMax-M2.7").await;
        ids.push(ws["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..2] {
        let (status, body) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, refused) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{}/provision", ids[2]), None).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::TOO_MANY_REQUESTS, json!("QUOTA_EXCEEDED")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("max_running_workspaces_per_org = 2"), "{refused}");
    let (_, third) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{}", ids[2]), None).await;
    assert_eq!((third["status"].clone(), third["instance_id"].clone()), (json!("created"), Value::Null), "nothing started");
    // A running workspace restarts within its quota; a stopped one frees a place.
    let (status, _) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{}/restart", ids[0]), None).await;
    assert_eq!(status, StatusCode::OK);
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{}/stop", ids[0]), None).await;
    let (status, body) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{}/provision", ids[2]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for id in &ids[1..] {
        world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_removes_the_credential_files_and_delete_removes_the_home() {
    let world = World::new("cleanup").await;
    let org = world.org(&[("CODEX_AUTH_JSON", "{\"tokens\": \"x\"}")]).await;
    let (_, ws) = world.workspace(&org, "c", "codex", "gpt-5.5").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    world.dump("codex").await;
    let home = world.root.join(&id).join("home");
    assert!(home.join(".codex/auth.json").exists());
    if nix::unistd::geteuid().is_root() {
        let uid = running["host_uid"].as_u64().expect("a uid of its own, recorded with the workspace");
        assert!((620_000..=620_999).contains(&uid), "{running}");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&home).unwrap()), uid as u32);
    }
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    assert!(!home.join(".codex/auth.json").exists() && !home.join(".codex/config.toml").exists(), "stop removes the plan's files");
    assert!(home.exists(), "stop keeps the home");
    // Provision writes them again.
    let (status, _) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.join(".codex/auth.json").exists());
    let (status, _) = world.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!world.root.join(&id).exists(), "delete leaves nothing of the workspace on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_steer_how_programs_start_are_refused_when_written() {
    let world = World::new("protected").await;
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let (_, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    // One name per family: the loader, a shell, an interpreter, the backend's own.
    for key in ["LD_PRELOAD", "BASH_ENV", "NODE_OPTIONS", "PATH", "HOME"] {
        for path in [format!("/v1/orgs/{org}/secrets/{key}"), format!("/v1/orgs/{org}/workspaces/{id}/secrets/{key}")] {
            let (status, body) = world.call(Method::PUT, &path, Some(json!({"value": "/tmp/evil"}))).await;
            assert_eq!(
                (status, body["error"]["code"].clone(), body["error"]["key"].clone()),
                (StatusCode::BAD_REQUEST, json!("PROTECTED_ENV_KEY"), json!(key)),
                "{path}"
            );
        }
    }
    // A NUL byte can never reach an env: refused when written.
    let (status, body) = world.call(Method::PUT, &format!("/v1/orgs/{org}/secrets/OTHER"), Some(json!({"value": "a\u{0}b"}))).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("INVALID_VALUE")));
    // A protected name stored before the list grew never reaches a plan.
    let owner = wsd_store::SecretOwner::Workspace { org: &org, workspace: &id };
    let key = wsd_core::EnvKey::new("LD_PRELOAD").unwrap();
    world.state.store.put_secret(owner, &key, &SecretValue::new("/tmp/evil.so"), "test").await.unwrap();
    let (status, refused) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!((status, refused["error"]["code"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("PROTECTED_ENV_KEY")), "{refused}");
    assert_eq!(refused["error"]["keys"], json!(["LD_PRELOAD"]));
    // It can still be deleted.
    let (status, _) = world.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/LD_PRELOAD"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_whose_agent_exits_is_shown_stopped_with_its_code() {
    let exits = BTreeMap::from([("claude-code".to_owned(), vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()])]);
    let world = World::build("exits", Registry::embedded().unwrap(), Some(exits)).await;
    let org = world.org(&[("MINIMAX_API_KEY", MINIMAX)]).await;
    let (_, ws) = world.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/provision"), None).await;
    assert_eq!((status, running["stale"].clone()), (StatusCode::OK, Value::Null), "{running}");
    let mut shown = Value::Null;
    for _ in 0..200 {
        shown = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}"), None).await.1;
        if shown["exited"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (shown["status"].clone(), shown["exit_code"].clone(), shown["stale"].clone()),
        (json!("stopped"), json!(3), Value::Null),
        "{shown}"
    );
    assert_eq!(shown["id"], id.as_str(), "the stored fields are there too: {shown}");
}

const ORG_MINIMAX: &str = "canary-proxied-org-minimax-5a0c";
const WORKSPACE_MINIMAX: &str = "canary-proxied-workspace-minimax-19be";
const ORG_OPENAI: &str = "canary-proxied-org-openai-e7d3";
const ROTATED_MINIMAX: &str = "canary-proxied-rotated-minimax-4c81";

/// The workspace's own call: the answer `wsd-llm-call` wrote to `.dumps/NAME`, removed once
/// read.
async fn call_answer(world: &World, name: &str) -> String {
    for _ in 0..400 {
        if let Some(path) = world.outputs(name).into_iter().next() {
            let answer = std::fs::read_to_string(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the workspace never made its call");
}

/// No canary in any env value, home file or command line of the workspace.
fn holds_none(env: &BTreeMap<String, String>, files: &BTreeMap<String, (String, String)>, canaries: &[&str]) {
    for canary in canaries {
        let hash = sha(canary);
        assert!(!env.values().any(|h| *h == hash), "{canary} is in the workspace's env");
        assert!(!files.values().any(|(_, h)| *h == hash), "{canary} is a file of the workspace's home");
    }
}

/// With credential delivery `proxy`, a BYOK workspace holds no vendor key — not in its env,
/// its home's files or its command line — and its calls reach the provider with exactly
/// the org's key (the workspace's own, once it sets one), a replaced key from the next call
/// on, and nothing once the workspace is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_delivered_workspace_holds_no_vendor_key_and_its_calls_carry_the_orgs() {
    let seen = Arc::default();
    let fake = fake_minimax(Arc::clone(&seen)).await;
    let overrides = BTreeMap::from([(
        "minimax".to_owned(),
        wsd_core::registry::ProviderOverride { base_url_anthropic: Some(format!("{fake}/anthropic")), base_url_openai: None },
    )]);
    let openai_seen = Arc::default();
    let openai = fake_openai(Arc::clone(&openai_seen)).await;
    let overrides = BTreeMap::from([
        overrides.into_iter().next().unwrap(),
        (
            "openai-api".to_owned(),
            wsd_core::registry::ProviderOverride { base_url_anthropic: None, base_url_openai: Some(format!("{openai}/v1")) },
        ),
    ]);
    let registry = Registry::embedded().unwrap().with_overrides(&overrides).unwrap();
    // Claude Code: dump what the workspace holds, make its call, and once told (a file
    // `.go` in its home) a second one; Codex: dump, make its call from its config file, stay.
    let (envdump, call) = (env!("CARGO_BIN_EXE_wsd-envdump"), env!("CARGO_BIN_EXE_wsd-llm-call"));
    let script = r#""$0" .dumps/claude-code && "$1" .dumps/call && while [ ! -e .go ]; do sleep 0.05; done; exec "$1" .dumps/call"#;
    let claude = ["/bin/sh", "-c", script, envdump, call];
    let commands = BTreeMap::from([
        ("claude-code".to_owned(), claude.map(str::to_owned).to_vec()),
        (
            "codex".to_owned(),
            ["/bin/sh", "-c", r#""$0" .dumps/codex && "$1" .dumps/codex-call codex && exec sleep 60"#, envdump, call]
                .map(str::to_owned)
                .to_vec(),
        ),
    ]);
    let world = World::build("proxied", registry, Some(commands)).await;
    let org = world.org(&[("MINIMAX_API_KEY", ORG_MINIMAX), ("OPENAI_API_KEY", ORG_OPENAI), ("DATABASE_URL", "postgres://db")]).await;
    let (status, updated) =
        world.call(Method::PUT, &format!("/v1/orgs/{org}/credential-delivery"), Some(json!({"credential_delivery": "proxy"}))).await;
    assert_eq!((status, updated["credential_delivery"].as_str()), (StatusCode::OK, Some("proxy")), "{updated}");
    let all = [ORG_MINIMAX, WORKSPACE_MINIMAX, ORG_OPENAI, ROTATED_MINIMAX];

    // Claude Code on MiniMax: its plan says where the key stays.
    let (status, ws) = world.workspace(&org, "agent", "claude-code", "MiniMax-M2.7").await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let id = ws["id"].as_str().unwrap().to_owned();
    let (_, plan) = world.call(Method::GET, &format!("/v1/orgs/{org}/workspaces/{id}/plan"), None).await;
    assert_eq!(plan["delivery"]["delivery"], "proxy", "{plan}");
    assert_eq!(plan["delivery"]["proxied"], json!({"key": "MINIMAX_API_KEY", "origin": "org", "sent_as": "Authorization: Bearer"}));
    let provision = format!("/v1/orgs/{org}/workspaces/{id}/provision");
    let (status, running) = world.call(Method::POST, &provision, None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let (env, files) = world.dump("claude-code").await;
    holds_none(&env, &files, &all);
    assert!(env.contains_key("ANTHROPIC_AUTH_TOKEN") && env.contains_key("DATABASE_URL"), "{env:?}");
    assert!(!env.contains_key("MINIMAX_API_KEY"), "{env:?}");
    let answer = call_answer(&world, "call").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("msg_e2e"), "{answer}");
    assert!(!all.iter().any(|c| answer.contains(c)), "{answer}");
    assert_eq!(seen.lock().unwrap().drain(..).collect::<Vec<_>>(), [(ORG_MINIMAX.to_owned(), "MiniMax-M2.7".to_owned(), false)]);

    // A workspace secret overrides the org's key; a replaced key is used by the next call,
    // with no restart of anything.
    world
        .call(Method::PUT, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/MINIMAX_API_KEY"), Some(json!({"value": WORKSPACE_MINIMAX})))
        .await;
    world.call(Method::POST, &provision, None).await;
    world.dump("claude-code").await;
    assert!(call_answer(&world, "call").await.starts_with("HTTP/1.1 200"));
    world
        .call(Method::PUT, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/MINIMAX_API_KEY"), Some(json!({"value": ROTATED_MINIMAX})))
        .await;
    // The workspace's running instance calls again, with the same usage token.
    for home in std::fs::read_dir(&world.root).unwrap().flatten() {
        std::fs::write(home.path().join("home/.go"), "").unwrap();
    }
    assert!(call_answer(&world, "call").await.starts_with("HTTP/1.1 200"));
    let keys: Vec<String> = seen.lock().unwrap().drain(..).map(|(key, _, _)| key).collect();
    assert_eq!(keys, [WORKSPACE_MINIMAX.to_owned(), ROTATED_MINIMAX.to_owned()]);

    // A token standing for the workspace's key, as provisioning mints it.
    let route = wsd_store::ProxiedRoute {
        provider: "minimax".into(),
        key: wsd_core::EnvKey::new("MINIMAX_API_KEY").unwrap(),
        origin: wsd_core::plan::SecretOrigin::Workspace,
    };
    let (_, token) = world.state.store.create_usage_token(&org, &id, Some(&route), "test").await.unwrap();
    let token = token.expose().to_owned();
    let token_call = |token: String| {
        let client = world.client.clone();
        let url = format!("{}/llm/anthropic/v1/messages", world.base);
        async move {
            let body = json!({"model": "MiniMax-M2.7", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
            let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, text) = token_call(token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(seen.lock().unwrap().drain(..).map(|(key, _, _)| key).collect::<Vec<_>>(), [ROTATED_MINIMAX.to_owned()]);

    // A deleted key: refused with its code and a row, nothing sent upstream.
    world.call(Method::DELETE, &format!("/v1/orgs/{org}/workspaces/{id}/secrets/MINIMAX_API_KEY"), None).await;
    let (status, text) = token_call(token.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("PROXIED_KEY_MISSING") && text.contains("MINIMAX_API_KEY"), "{text}");
    assert!(seen.lock().unwrap().is_empty());

    // Stopped: its token is refused at once.
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{id}/stop"), None).await;
    let (status, _) = token_call(token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(seen.lock().unwrap().is_empty());

    // Every admitted call has its row, marked BYOK, on MiniMax.
    world.state.proxy.flush().await;
    let (_, body) = world.call(Method::GET, &format!("/v1/orgs/{org}/usage/requests"), None).await;
    let rows: Vec<(String, String, i64)> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["routing"].as_str().unwrap().to_owned(), r["provider"].as_str().unwrap().to_owned(), r["status"].as_i64().unwrap()))
        .collect();
    let byok = |status| ("byok".to_owned(), "minimax".to_owned(), status);
    assert_eq!(rows, [byok(502), byok(200), byok(200), byok(200), byok(200)]);

    // Codex on the OpenAI API: the org's key is in no env var, no file, no argument.
    let (status, ws) = world.workspace(&org, "coder", "codex", "gpt-5.5").await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let codex = ws["id"].as_str().unwrap().to_owned();
    let (status, running) = world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{codex}/provision"), None).await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let (env, files) = world.dump("codex").await;
    holds_none(&env, &files, &all);
    assert!(!env.contains_key("OPENAI_API_KEY") && !env.contains_key("CODEX_API_KEY"), "{env:?}");
    assert!(files.contains_key(".codex/config.toml") && !files.contains_key(".codex/auth.json"), "{files:?}");
    let answer = call_answer(&world, "codex-call").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("resp_e2e"), "{answer}");
    assert_eq!(*openai_seen.lock().unwrap(), [(ORG_OPENAI.to_owned(), "gpt-5.5".to_owned())]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid_of(&running))).unwrap();
    assert!(!all.iter().any(|c| String::from_utf8_lossy(&cmdline).contains(c)));
    world.call(Method::POST, &format!("/v1/orgs/{org}/workspaces/{codex}/stop"), None).await;
}
