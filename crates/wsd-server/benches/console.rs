//! Console pages for an org of 1,000 workspaces with a month of metered usage (60,000 ledger
//! rows) on the embedded SQLite database: each page requested 30 times over loopback from a
//! signed-in session, one after another; reports p50 and p90 of the time to the full answer.
//!
//!   cargo bench -p wsd-server --bench console
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wsd_core::plan::Policy;
use wsd_core::{EnvKey, Registry, SecretValue};
use wsd_server::AppState;
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{NewWorkspace, SecretOwner, Store, StoreOptions, TokenKind, UsageRecord};

const WORKSPACES: usize = 1_000;
const DAYS: i64 = 30;
const REQUESTS_PER_DAY: i64 = 2_000;
const SAMPLES: usize = 30;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("wsd-bench-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(StoreOptions {
        url: format!("sqlite://{}/wsd.db?mode=rwc", dir.display()),
        create_sqlite: true,
        keyring: Keyring::generate(),
        key_source: KeySource::Inline,
        max_connections: 8,
    })
    .await
    .unwrap();
    let token = "wsd_bench-console-org-token-0123456789abcdef";
    let org = store.create_org("bench", "bench").await.unwrap();
    store.insert_token(TokenKind::Org, Some(&org.id), None, "bench", &SecretValue::new(token), "bench").await.unwrap();
    let key = EnvKey::new("MINIMAX_API_KEY").unwrap();
    store.put_secret(SecretOwner::Org { org: &org.id }, &key, &SecretValue::new("bench-key"), "bench").await.unwrap();
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..WORKSPACES {
        let new = NewWorkspace { name: &format!("agent-{i:04}"), runtime: "claude-code", model: "MiniMax-M2.7" };
        ids.push(store.create_workspace(&org.id, &new, "bench").await.unwrap().id);
    }
    let now = wsd_store::now_ms();
    for day in 0..DAYS {
        let rows: Vec<UsageRecord> = (0..REQUESTS_PER_DAY)
            .map(|r| UsageRecord {
                at: now - day * 86_400_000 - r * 1_000,
                org_id: org.id.clone(),
                workspace_id: ids[(r as usize * 7 + day as usize) % WORKSPACES].clone(),
                provider: "minimax".into(),
                model: "MiniMax-M2.7".into(),
                input_tokens: 1_000 + r % 700,
                output_tokens: 200 + r % 300,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                status: 200,
                latency_ms: 900,
                request_id: format!("req-{day}-{r}"),
                routing: "byok".into(),
                cost_micros: Some(1_500),
                reservation: None,
            })
            .collect();
        store.append_usage(&rows).await.unwrap();
    }
    println!("seeded {WORKSPACES} workspaces and {} ledger rows in {:.1} s", DAYS * REQUESTS_PER_DAY, started.elapsed().as_secs_f64());

    let state = Arc::new(AppState::new(Registry::embedded().unwrap(), store, None, Policy::default()));
    let (session, _) = state.console.open(&org.id, "org bench", wsd_store::token_hash(token), Instant::now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wsd_server::listener::serve(listener, wsd_server::app(state.clone()), Default::default(), std::future::pending()));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let pages = [
        ("workspaces (1,000)", "/console/workspaces".to_owned()),
        ("a workspace", format!("/console/orgs/{}/workspaces/{}", org.id, ids[500])),
        ("usage (30 days)", format!("/console/orgs/{}/usage", org.id)),
        ("secrets", format!("/console/orgs/{}/secrets", org.id)),
    ];
    // The first request of a page is the cold one: the usage page's first summary of a range
    // reads every (workspace, model, day) of its whole days, later ones (while those days
    // gain no request) only their count and today's rows.
    println!("{:<22} {:>10} {:>10} {:>10} {:>10}", "page", "first", "p50", "p90", "bytes");
    for (name, path) in pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let response = client.get(format!("{base}{path}")).header("cookie", format!("wsd_session={session}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            bytes = response.bytes().await.unwrap().len();
            times.push(started.elapsed());
        }
        let first = times[0];
        times.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        println!("{name:<22} {:>10} {:>10} {:>10} {bytes:>10}", ms(first), ms(times[SAMPLES / 2]), ms(times[SAMPLES * 9 / 10]));
    }
    // Where the usage page's time goes: each of its reads alone, median of 10.
    let store = &state.store;
    let from = (now / 86_400_000 - DAYS + 1) * 86_400_000;
    macro_rules! median {
        ($call:expr) => {{
            let mut times = Vec::new();
            for _ in 0..10 {
                let t = Instant::now();
                $call.await.unwrap();
                times.push(t.elapsed());
            }
            times.sort();
            times[5]
        }};
    }
    let summary = median!(store.usage_summary(&org.id, from, now + 1));
    let by_day = median!(store.usage_by_day(&org.id, from, now + 1));
    let standings = median!(store.budget_standings(&org.id, now));
    let latest = median!(store.usage_requests(&org.id, None, 25));
    let workspaces = median!(store.list_workspaces(&org.id));
    println!(
        "usage_summary {summary:?}, usage_by_day {by_day:?}, budget_standings {standings:?}, usage_requests {latest:?}, list_workspaces {workspaces:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
