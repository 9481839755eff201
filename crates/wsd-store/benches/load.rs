//! Loading one workspace's planner input (its org and workspace secrets, decrypted) from a
//! database of 100,000 workspaces × 10 secrets (plus 5 org secrets per org).
//!
//!   cargo bench -p wsd-store --bench load -- sqlite
//!   scripts/with-postgres.sh cargo bench -p wsd-store --bench load -- postgres
//!
//! Seeds once (the SQLite file under target/ is reused), then times 20,000 loads of random
//! workspaces one after another and reports p50/p90/p99, then throughput with 16 loads in
//! flight.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::QueryBuilder;
use wsd_core::{EnvKey, SecretValue};
use wsd_store::keyfile::KeySource;
use wsd_store::keyring::{Binding, Keyring, Scope};
use wsd_store::{Store, StoreOptions};

const ORGS: usize = 1_000;
const WORKSPACES_PER_ORG: usize = 100;
const SECRETS_PER_WORKSPACE: usize = 10;
const SECRETS_PER_ORG: usize = 5;
const SAMPLES: usize = 20_000;
/// A fixed key, so that a seeded database can be reused between runs.
const BENCH_KEY: &str = "YmVuY2htYXJrLWtleS1ub3QtYS1zZWNyZXQtMDAwMDA=";

fn org_id(o: usize) -> String {
    format!("org-{o:05}")
}

fn workspace_id(o: usize, w: usize) -> String {
    format!("ws-{o:05}-{w:03}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backend = std::env::args().skip(1).find(|a| a == "sqlite" || a == "postgres").unwrap_or_else(|| "sqlite".into());
    let url = match backend.as_str() {
        "postgres" => {
            let admin = std::env::var("WSD_TEST_DATABASE_URL").expect("set WSD_TEST_DATABASE_URL (scripts/with-postgres.sh does)");
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            let _ = sqlx::query("CREATE DATABASE wsd_bench").execute(&pool).await;
            pool.close().await;
            format!("{}/wsd_bench", admin.rsplit_once('/').unwrap().0)
        }
        _ => {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/load-bench.db?mode=rwc", dir.display())
        }
    };
    let keyring = || Keyring::parse(BENCH_KEY).unwrap();
    let store = Store::open(StoreOptions {
        url: url.clone(),
        create_sqlite: true,
        keyring: keyring(),
        key_source: KeySource::Inline,
        max_connections: 16,
    })
    .await
    .expect("open the store");
    seed(&backend, &url, &keyring()).await;

    let store = Arc::new(store);
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut pick = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let o = (rng % ORGS as u64) as usize;
        let w = ((rng >> 20) % WORKSPACES_PER_ORG as u64) as usize;
        (org_id(o), workspace_id(o, w))
    };
    for _ in 0..1_000 {
        let (o, w) = pick();
        store.load_workspace_secrets(&o, &w).await.unwrap();
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let (o, w) = pick();
        let start = Instant::now();
        let loaded = store.load_workspace_secrets(&o, &w).await.unwrap();
        samples.push(start.elapsed());
        assert_eq!(loaded.names.workspace.len() + loaded.names.org.len(), SECRETS_PER_WORKSPACE + SECRETS_PER_ORG);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{backend}: load one workspace's planner input ({} secrets) from {} workspaces x {SECRETS_PER_WORKSPACE} secrets: p50 {:.0} us, p90 {:.0} us, p99 {:.0} us ({SAMPLES} sequential loads)",
        SECRETS_PER_WORKSPACE + SECRETS_PER_ORG,
        ORGS * WORKSPACES_PER_ORG,
        micros(at(0.50)),
        micros(at(0.90)),
        micros(at(0.99)),
    );

    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut state = 0x9E3779B97F4A7C15u64 ^ t;
            for _ in 0..SAMPLES / 16 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let o = ((state >> 33) % ORGS as u64) as usize;
                let w = ((state >> 13) % WORKSPACES_PER_ORG as u64) as usize;
                store.load_workspace_secrets(&org_id(o), &workspace_id(o, w)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    println!("{backend}: {:.0} loads/s with 16 in flight", (SAMPLES / 16 * 16) as f64 / elapsed.as_secs_f64());
    store.close().await;
}

async fn seed(backend: &str, url: &str, keyring: &Keyring) {
    macro_rules! seed_with {
        ($pool:expr) => {{
            let pool = $pool;
            let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces").fetch_one(&pool).await.unwrap();
            if have as usize == ORGS * WORKSPACES_PER_ORG {
                eprintln!("reusing the seeded database ({have} workspaces)");
                return;
            }
            eprintln!("seeding {} workspaces x {SECRETS_PER_WORKSPACE} secrets ...", ORGS * WORKSPACES_PER_ORG);
            let started = Instant::now();
            let now = 1_700_000_000_000i64;
            for o in 0..ORGS {
                let org = org_id(o);
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)").bind(&org).bind(&org).bind(now).execute(&mut *tx).await.unwrap();
                let mut workspaces = QueryBuilder::new("INSERT INTO workspaces (id, org_id, name, runtime, model, status, created_at, updated_at) ");
                workspaces.push_values(0..WORKSPACES_PER_ORG, |mut b, w| {
                    b.push_bind(workspace_id(o, w)).push_bind(org.clone()).push_bind(format!("w{w}")).push_bind("claude-code").push_bind("MiniMax-M2.7").push_bind("created").push_bind(now).push_bind(now);
                });
                workspaces.build().execute(&mut *tx).await.unwrap();
                let mut org_secrets = QueryBuilder::new("INSERT INTO org_secrets (org_id, key, key_version, nonce, ciphertext, created_at, updated_at) ");
                org_secrets.push_values(0..SECRETS_PER_ORG, |mut b, i| {
                    let key = EnvKey::new(&format!("ORG_SECRET_{i}")).unwrap();
                    let sealed = keyring.seal(&Binding { scope: Scope::Org, org: &org, workspace: "", key: &key }, &SecretValue::new(format!("org-value-{o}-{i}")));
                    b.push_bind(org.clone()).push_bind(key.to_string()).push_bind(i64::from(sealed.key_version)).push_bind(sealed.nonce).push_bind(sealed.ciphertext).push_bind(now).push_bind(now);
                });
                org_secrets.build().execute(&mut *tx).await.unwrap();
                for chunk in (0..WORKSPACES_PER_ORG).collect::<Vec<_>>().chunks(50) {
                    let mut secrets = QueryBuilder::new("INSERT INTO workspace_secrets (org_id, workspace_id, key, key_version, nonce, ciphertext, created_at, updated_at) ");
                    secrets.push_values(chunk.iter().flat_map(|&w| (0..SECRETS_PER_WORKSPACE).map(move |i| (w, i))), |mut b, (w, i)| {
                        let ws = workspace_id(o, w);
                        let key = EnvKey::new(&format!("WORKSPACE_SECRET_{i}")).unwrap();
                        let sealed = keyring.seal(&Binding { scope: Scope::Workspace, org: &org, workspace: &ws, key: &key }, &SecretValue::new(format!("value-{o}-{w}-{i}")));
                        b.push_bind(org.clone()).push_bind(ws).push_bind(key.to_string()).push_bind(i64::from(sealed.key_version)).push_bind(sealed.nonce).push_bind(sealed.ciphertext).push_bind(now).push_bind(now);
                    });
                    secrets.build().execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
            pool.close().await;
        }};
    }
    match backend {
        "postgres" => seed_with!(sqlx::PgPool::connect(url).await.unwrap()),
        _ => seed_with!(sqlx::SqlitePool::connect(url).await.unwrap()),
    }
}
