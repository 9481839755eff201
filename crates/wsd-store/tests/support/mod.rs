//! The conformance harness: every test runs against a fresh SQLite database and a fresh
//! PostgreSQL database — on `WSD_TEST_DATABASE_URL`, or on a throwaway cluster the test
//! process starts itself (`wsd_testdb`). Where no server is given or installed, the
//! PostgreSQL tests are ignored, with the reason (`build.rs`).
#![allow(dead_code, clippy::disallowed_methods)]

use std::path::PathBuf;

use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Backend, Store, StoreOptions};

pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The SQLite file, for byte-level checks.
    pub file: Option<PathBuf>,
}

fn unique(label: &str) -> String {
    format!("{label}_{}_{}", std::process::id(), uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}", nanos, rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u32
}

pub fn sqlite_db(label: &str) -> TestDb {
    let dir = std::env::temp_dir().join(format!("wsd-store-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.db", unique(label)));
    TestDb { backend: Backend::Sqlite, url: format!("sqlite://{}?mode=rwc", file.display()), file: Some(file) }
}

/// A fresh PostgreSQL database (a test that asks for one fails without it).
pub async fn postgres_db(label: &str) -> TestDb {
    let admin_url = wsd_testdb::admin_url();
    let name = unique(label).to_lowercase();
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL with a path");
    TestDb { backend: Backend::Postgres, url: format!("{base}/{name}"), file: None }
}

pub async fn open(db: &TestDb, keyring: Keyring) -> Result<Store, wsd_store::StoreError> {
    open_with(db, keyring, 4).await
}

/// [`open`] with a pool of `max_connections`.
pub async fn open_with(db: &TestDb, keyring: Keyring, max_connections: u32) -> Result<Store, wsd_store::StoreError> {
    Store::open(StoreOptions { url: db.url.clone(), create_sqlite: false, keyring, key_source: KeySource::Inline, max_connections }).await
}

/// Runs raw SQL against a test database, as an attacker with database access would.
pub async fn raw_exec(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Flips one byte of the ciphertext of the org secret `key`.
pub async fn flip_ciphertext_byte(db: &TestDb, key: &str) {
    let select = format!("SELECT ciphertext FROM org_secrets WHERE key = '{key}'");
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let mut ct: Vec<u8> = sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_one(&pool).await.unwrap();
            ct[0] ^= 0x01;
            sqlx::query("UPDATE org_secrets SET ciphertext = $1 WHERE key = $2").bind(ct).bind(key).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let mut ct: Vec<u8> = sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_one(&pool).await.unwrap();
            ct[0] ^= 0x01;
            sqlx::query("UPDATE org_secrets SET ciphertext = $1 WHERE key = $2").bind(ct).bind(key).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Declares a conformance test that runs on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! conformance {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::support::sqlite_db(stringify!($name));
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(wsd_test_postgres), ignore = "no PostgreSQL server: install postgresql or set WSD_TEST_DATABASE_URL")]
            async fn postgres() {
                let db = $crate::support::postgres_db(stringify!($name)).await;
                super::$name(&db).await;
            }
        }
    };
}
