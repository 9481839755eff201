//! A real wsd API on 127.0.0.1 for black-box tests, on a fresh SQLite database and a fresh
//! PostgreSQL database (on `WSD_TEST_DATABASE_URL`, or a throwaway cluster this process
//! starts: `wsd_testdb`; without a server the PostgreSQL tests are ignored, `build.rs`). Everything the server
//! logs is captured, so tests can check that no secret value reaches the log.
#![allow(dead_code, clippy::disallowed_methods)]

pub mod webdriver;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_core::{EnvKey, Registry, SecretValue};
use wsd_server::AppState;
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions, TokenKind};

pub const ADMIN: &str = "wsd_test-admin-token-0123456789";

/// Everything logged by servers in this test binary.
pub fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    /// Every response body and header seen, for leak checks.
    pub seen: Mutex<String>,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<&str>) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        self.seen.lock().unwrap().push_str(&format!("{headers}\n{text}\n"));
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Response { status, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(&body.to_string())).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PUT, path, Some(token), Some(&body.to_string())).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(&body.to_string())).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Creates an org and returns its id.
    pub async fn org(&self, name: &str) -> String {
        let r = self.post("/v1/orgs", ADMIN, serde_json::json!({"name": name})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Mints an API token of `org`.
    pub async fn org_token(&self, org: &str) -> String {
        let r = self.post(&format!("/v1/orgs/{org}/tokens"), ADMIN, serde_json::json!({"name": "org"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["secret"].as_str().unwrap().to_owned()
    }

    pub async fn secret(&self, org: &str, key: &str, value: &str) {
        let r = self.put(&format!("/v1/orgs/{org}/secrets/{key}"), ADMIN, serde_json::json!({"value": value})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    /// Creates a workspace, asserting 201; returns its id.
    pub async fn workspace(&self, org: &str, name: &str, runtime: &str, model: &str) -> String {
        let r = self
            .post(&format!("/v1/orgs/{org}/workspaces"), ADMIN, serde_json::json!({"name": name, "runtime": runtime, "model": model}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }
}

pub enum Backend {
    Sqlite,
    Postgres,
}

async fn database_url(backend: &Backend, label: &str) -> String {
    let unique = format!("{label}_{}_{}", std::process::id(), uuid::Uuid::now_v7().simple()).to_lowercase();
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("wsd-api-tests-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/{unique}.db?mode=rwc", dir.display())
        }
        Backend::Postgres => {
            let admin_url = wsd_testdb::admin_url();
            let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}"))).execute(&pool).await.unwrap();
            pool.close().await;
            format!("{}/{unique}", admin_url.rsplit_once('/').unwrap().0)
        }
    }
}

/// Starts an API server.
pub async fn start(backend: Backend, label: &str, platform: bool, registry: Option<Registry>) -> Api {
    start_with(backend, label, platform, registry, Options::default()).await
}

/// What some tests set beyond the defaults.
#[derive(Debug, Default)]
pub struct Options {
    /// The liveness preflight, on with this timeout.
    pub preflight: Option<std::time::Duration>,
    /// The proxy's limits.
    pub proxy: Option<wsd_server::proxy::ProxySettings>,
    /// Workspaces run (unsandboxed: these tests are about the API, not isolation) as
    /// `sleep`, under this directory.
    pub runner: Option<std::path::PathBuf>,
}

/// `start`, with `options`.
pub async fn start_with(backend: Backend, label: &str, platform: bool, registry: Option<Registry>, options: Options) -> Api {
    log();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = database_url(&backend, label).await;
    let store = Store::open(StoreOptions {
        url,
        create_sqlite: true,
        keyring: Keyring::generate(),
        key_source: KeySource::Inline,
        max_connections: 8,
    })
    .await
    .unwrap();
    store.insert_token(TokenKind::Admin, None, None, "admin", &SecretValue::new(ADMIN), "test").await.unwrap();
    let policy = Policy {
        forbidden_keys: [EnvKey::new("MY_DEPLOY_TOKEN").unwrap()].into(),
        forbidden_prefixes: vec!["OPS_".into()],
        ..Policy::default()
    };
    let platform = platform.then(|| PlatformSettings { proxy_base_url: "http://127.0.0.1:8080/llm".into() });
    let mut state = AppState::new(registry.unwrap_or_else(|| Registry::embedded().unwrap()), store, platform, policy);
    state.preflight = options.preflight.map(|timeout| wsd_server::preflight::Preflight::new(timeout).unwrap());
    if let Some(proxy) = options.proxy {
        state = state.with_proxy_settings(&proxy).unwrap();
    }
    if let Some(root) = options.runner {
        let mut process = wsd_backend::ProcessOptions::sandboxed(root);
        process.sandbox = wsd_backend::Sandbox::None;
        process.grace = std::time::Duration::from_millis(200);
        let commands = [("claude-code".to_owned(), vec!["sleep".to_owned(), "300".to_owned()])].into();
        state.runner = Some(wsd_server::Runner::new(Arc::new(wsd_backend::ProcessBackend::new(process)), commands));
    }
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wsd_server::listener::serve(listener, wsd_server::app(state.clone()), Default::default(), std::future::pending()));
    Api { base, client: reqwest::Client::new(), state, seen: Mutex::new(String::new()) }
}

/// Declares a black-box API test that runs on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! api_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let api = $crate::support::start($crate::support::Backend::Sqlite, stringify!($name), true, None).await;
                super::$name(&api).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(wsd_test_postgres), ignore = "no PostgreSQL server: install postgresql or set WSD_TEST_DATABASE_URL")]
            async fn postgres() {
                let api = $crate::support::start($crate::support::Backend::Postgres, stringify!($name), true, None).await;
                super::$name(&api).await;
            }
        }
    };
}
