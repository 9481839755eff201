//! Several `wsd serve` processes on one PostgreSQL database, as an operator runs them behind
//! a balancer (here the test spreads the requests itself): one budget holds across all of
//! them under concurrent streamed calls, and a platform key removed or set, or a usage token
//! revoked, through one is seen by the others within a second.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, fresh_dir};

const ADMIN: &str = "replica-admin-token-0123456789abcdefghijklmnop";

/// A provider that answers every message with a stream after a pause, reporting 10 input and
/// 10 output tokens; it counts the calls it got.
fn fake_provider() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || answer(stream, &counted));
        }
    });
    (address, calls)
}

fn answer(stream: TcpStream, calls: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    calls.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let events = [
        r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"MiniMax-M2.7","content":[],"usage":{"input_tokens":10,"output_tokens":0}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":10}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let mut out = stream;
    let _ = write!(out, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    for event in events {
        let kind = serde_json::from_str::<Value>(event).unwrap()["type"].as_str().unwrap().to_owned();
        let _ = write!(out, "event: {kind}\ndata: {event}\n\n");
        let _ = out.flush();
    }
}

async fn api(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    support::admin_call(server, ADMIN, method, path, body).await
}

async fn call(server: &Server, token: &str, body: &Value) -> u16 {
    let request =
        support::http().post(format!("http://{}/llm/anthropic/v1/messages", server.address)).header("x-api-key", token).json(body);
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let _ = response.text().await;
    status
}

async fn database() -> String {
    let admin = wsd_testdb::admin_url();
    let name = format!("replicas_{}", std::process::id());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&pool).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(wsd_test_postgres), ignore = "no PostgreSQL server: install postgresql or set WSD_TEST_DATABASE_URL")]
async fn replicas_on_one_database_share_budgets_and_revocations() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (provider, calls) = fake_provider();
    let url = database().await;
    let key = wsd_store::keyring::Keyring::generate().render();
    let config = format!(
        r#"
[platform]
proxy_base_url = "http://127.0.0.1:9/llm"
[registry.overrides.minimax]
base_url_anthropic = "http://{provider}/anthropic"
[backends.process.commands]
claude-code = ["sh", "-c", "printf %s \"$WSD_LLM_USAGE_TOKEN\" > \"$HOME/usage-token.tmp\" && mv \"$HOME/usage-token.tmp\" \"$HOME/usage-token\" && exec sleep 60"]
"#
    );
    let env = [("WSD_DATABASE_URL", url.as_str()), ("WSD_MASTER_KEY", key.as_str()), ("WSD_ADMIN_TOKEN", ADMIN)];
    let data: Vec<_> = (1..=3).map(|i| fresh_dir(&format!("replica-{i}"))).collect();
    let replicas: Vec<Server> = data.iter().map(|dir| Server::start_with_env(dir, Some(&config), &env)).collect();

    let (status, org) = api(&replicas[0], reqwest::Method::POST, "/v1/orgs", Some(json!({"name": "acme"}))).await;
    assert_eq!(status, 201, "{org}");
    let org = org["id"].as_str().unwrap().to_owned();
    let (status, _) =
        api(&replicas[0], reqwest::Method::PUT, "/v1/platform/secrets/MINIMAX_API_KEY", Some(json!({"value": "canary-replica-key"}))).await;
    assert_eq!(status, 200);
    let new = json!({"name": "dev", "runtime": "claude-code", "model": "minimax/MiniMax-M2.7"});
    let (status, ws) = api(&replicas[0], reqwest::Method::POST, &format!("/v1/orgs/{org}/workspaces"), Some(new)).await;
    assert_eq!(status, 201, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_owned();
    let (status, provisioned) = api(&replicas[0], reqwest::Method::POST, &format!("/v1/orgs/{org}/workspaces/{ws}/provision"), None).await;
    assert_eq!(status, 200, "{provisioned}");
    let token = support::usage_token(&data[0], &ws).await;

    // One budget, set through the second replica: 64 streamed calls spread over all three.
    let body = json!({"model": "minimax/MiniMax-M2.7", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let estimate = (serde_json::to_vec(&body).unwrap().len() as u64).div_ceil(3) as i64 + 10;
    let limit = 12 * estimate;
    let budget = json!({"unit": "tokens", "period": "day", "limit": limit});
    assert_eq!(api(&replicas[1], reqwest::Method::PUT, &format!("/v1/orgs/{org}/budgets"), Some(budget)).await.0, 200);
    let replicas = Arc::new(replicas);
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (replicas, token, body) = (replicas.clone(), token.clone(), body.clone());
            tokio::spawn(async move { call(&replicas[i % 3], &token, &body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for thread in threads {
        statuses.push(thread.await.unwrap());
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(admitted + statuses.iter().filter(|&&s| s == 402).count(), 64, "{statuses:?}");
    assert!((12..64).contains(&admitted), "{admitted} admitted: {statuses:?}");
    assert_eq!(calls.load(Ordering::SeqCst), admitted, "the refused calls never reached the provider");
    // What was spent (20 tokens a call) never passed the limit by more than one estimate.
    let deadline = Instant::now() + Duration::from_secs(10);
    let standing = loop {
        let (_, listed) = api(&replicas[2], reqwest::Method::GET, &format!("/v1/orgs/{org}/budgets"), None).await;
        let standing = listed["budgets"][0].clone();
        if standing["reserved"] == 0 {
            break standing;
        }
        assert!(Instant::now() < deadline, "reservations never released: {standing}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let spent = standing["spent"].as_i64().unwrap();
    assert_eq!(spent, admitted as i64 * 20, "{standing}");
    assert!(spent <= limit + estimate, "spent {spent} of {limit} (estimate {estimate})");

    // A revocation through the first replica reaches the others within a second, though they
    // trusted the token a moment ago.
    let budget = json!({"unit": "tokens", "period": "day", "limit": 1_000_000});
    assert_eq!(api(&replicas[2], reqwest::Method::PUT, &format!("/v1/orgs/{org}/budgets"), Some(budget)).await.0, 200);
    for replica in &replicas[1..] {
        assert_eq!(call(replica, &token, &body).await, 200);
    }

    // So does a platform key's removal and its return, though each replica keeps a key it
    // read for 5 s.
    let secret = "/v1/platform/secrets/MINIMAX_API_KEY";
    for (method, value, expected) in
        [(reqwest::Method::DELETE, None, 502), (reqwest::Method::PUT, Some(json!({"value": "canary-replica-key-2"})), 200)]
    {
        let (status, _) = api(&replicas[0], method, secret, value).await;
        assert!(status == 200 || status == 204, "{status}");
        let changed = Instant::now();
        for replica in &replicas[1..] {
            while call(replica, &token, &body).await != expected {
                assert!(changed.elapsed() < Duration::from_secs(1), "replica {} missed the platform key's change", replica.address);
            }
        }
    }
    let (status, _) = api(&replicas[0], reqwest::Method::POST, &format!("/v1/orgs/{org}/workspaces/{ws}/stop"), None).await;
    assert_eq!(status, 200);
    let stopped = Instant::now();
    for replica in &replicas[1..] {
        loop {
            let status = call(replica, &token, &body).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(stopped.elapsed() < Duration::from_secs(1), "replica {} still admits the revoked token", replica.address);
        }
    }
    for replica in Arc::try_unwrap(replicas).ok().unwrap() {
        replica.stop();
    }
}
