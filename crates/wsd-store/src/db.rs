//! Opening the store: the backend is chosen by the URL scheme, migrations run, and the
//! keyring is checked against the database's canary before anything else happens.
//!
//! Every query is written once and runs on SQLite and PostgreSQL alike (`$N` parameters,
//! portable types: TEXT, BIGINT milliseconds, BLOB/BYTEA). `on_write!` and `on_read!`
//! expand a body once per backend; what differs between them is said once, in [`Dialect`].
//! The conformance suite runs every operation on both.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Result, StoreError};
use crate::keyfile::{self, KeySource};
use crate::keyring::{Binding, Keyring, OpenError, Sealed};

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) enum Db {
    /// SQLite allows one writer at a time: writes go through a single connection, so a
    /// transaction never waits on another connection's lock; reads use a pool.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

macro_rules! on_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { write, .. } => {
                let $pool = write;
                $body
            }
            $crate::db::Db::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}

macro_rules! on_read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { read, .. } => {
                let $pool = read;
                $body
            }
            $crate::db::Db::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}

pub(crate) use {on_read, on_write};

/// What differs between the two databases, said once per database on its pool type: how a
/// write transaction starts, how the audit chain's head is read inside one, and the one
/// query written in each database's own aggregate. Every other query is shared.
pub(crate) trait Dialect {
    type Db: sqlx::Database;

    /// Reads the audit chain's head inside a write transaction. PostgreSQL locks the row
    /// (`FOR UPDATE`): its writers run concurrently. SQLite's write transaction holds the
    /// database's one write lock already.
    const AUDIT_HEAD: &'static str;

    /// A workspace's runtime, model and the names of its org's and its own secrets, each
    /// list joined with commas (`$1` workspace, `$2` org).
    const PLAN_INPUT: &'static str;

    /// Starts a write transaction. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`), so that a transaction that reads before it writes (the audit head) waits
    /// for another process's writer (`wsd keys rotate`) instead of failing on a lock upgrade.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

/// The plan-input query around a string aggregate (`group_concat`, `string_agg`). KEYs are
/// env-var names, never commas.
macro_rules! plan_input_sql {
    ($aggregate:literal) => {
        concat!(
            "SELECT runtime, model, (SELECT ",
            $aggregate,
            "(key, ',') FROM org_secrets WHERE org_id = $2), (SELECT ",
            $aggregate,
            "(key, ',') FROM workspace_secrets WHERE workspace_id = $1 AND org_id = $2), (SELECT credential_delivery FROM orgs WHERE id = $2) FROM workspaces WHERE id = $1 AND org_id = $2"
        )
    };
}

const AUDIT_HEAD: &str = "SELECT last_seq, last_hash FROM audit_head WHERE id = 1";

impl Dialect for SqlitePool {
    type Db = sqlx::Sqlite;
    const AUDIT_HEAD: &'static str = AUDIT_HEAD;
    const PLAN_INPUT: &'static str = plan_input_sql!("group_concat");

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl Dialect for PgPool {
    type Db = sqlx::Postgres;
    const AUDIT_HEAD: &'static str = "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE";
    const PLAN_INPUT: &'static str = plan_input_sql!("string_agg");

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// `D`'s SQL for the audit head, named by a pool of it.
pub(crate) fn audit_head_sql<D: Dialect>(_pool: &D) -> &'static str {
    D::AUDIT_HEAD
}

/// `D`'s plan-input query, named by a pool of it.
pub(crate) fn plan_input_sql<D: Dialect>(_pool: &D) -> &'static str {
    D::PLAN_INPUT
}

/// How to open the store.
#[derive(Debug)]
pub struct StoreOptions {
    /// `sqlite://PATH` (or `sqlite:PATH`) or `postgres://…` (`postgresql://…`).
    pub url: String,
    /// Create the SQLite file when it does not exist (the embedded default database only;
    /// an explicit URL must name an existing database, or carry `mode=rwc`).
    pub create_sqlite: bool,
    pub keyring: Keyring,
    pub key_source: KeySource,
    /// Connections in the read pool (and the PostgreSQL pool).
    pub max_connections: u32,
}

/// wsd's state of record.
pub struct Store {
    pub(crate) db: Db,
    keyring: RwLock<Arc<Keyring>>,
    key_source: KeySource,
    pub(crate) summaries: crate::usage::SummaryCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).field("key_source", &self.key_source).finish()
    }
}

/// The current time in unix milliseconds, as every stored time is.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Which backend a URL names, or why it names none.
pub fn backend_of(url: &str) -> Result<Backend> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        "" => Err(StoreError::InvalidDatabaseUrl("the database URL has no scheme; use sqlite://PATH or postgres://…".into())),
        other => {
            Err(StoreError::InvalidDatabaseUrl(format!("unsupported database URL scheme `{other}`; use sqlite://PATH or postgres://…")))
        }
    }
}

impl Store {
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let db = match backend_of(&options.url)? {
            Backend::Sqlite => open_sqlite(&options).await?,
            Backend::Postgres => open_postgres(&options).await?,
        };
        let store =
            Store { db, keyring: RwLock::new(Arc::new(options.keyring)), key_source: options.key_source, summaries: Default::default() };
        store.migrate().await?;
        store.check_canary().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await.map_err(StoreError::Migration)?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await.map_err(StoreError::Migration)?,
        }
        on_write!(self, |pool| {
            sqlx::query("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING")
                .bind(vec![0u8; 32])
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_read!(self, |pool| sqlx::query("SELECT 1").execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the key file, so that a key version added by `wsd keys rotate` in another
    /// process can open the rows it re-encrypted. Returns whether anything changed.
    pub fn reload_keyring(&self) -> Result<bool, keyfile::KeyFileError> {
        let KeySource::File(path) = &self.key_source else {
            return Ok(false);
        };
        let fresh = keyfile::load(path)?;
        let mut current = self.keyring.write().unwrap_or_else(|e| e.into_inner());
        let changed = fresh.versions().ne(current.versions());
        if changed {
            *current = Arc::new(fresh);
        }
        Ok(changed)
    }

    /// Replaces the keyring in memory (after the key file was extended).
    pub fn set_keyring(&self, keyring: Keyring) {
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
    }

    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// Opens a sealed value; on a key version this process does not know yet, reloads the
    /// key file once and retries.
    pub(crate) fn open_sealed(&self, binding: &Binding<'_>, sealed: &Sealed) -> Result<wsd_core::SecretValue, OpenError> {
        match self.keyring().open(binding, sealed) {
            Err(OpenError::UnknownKeyVersion(v)) if matches!(self.reload_keyring(), Ok(true)) => {
                self.keyring().open(binding, sealed).map_err(|_| OpenError::UnknownKeyVersion(v))
            }
            other => other,
        }
    }

    async fn check_canary(&self) -> Result<()> {
        let canary_key = wsd_core::EnvKey::new("WSD_VAULT_CANARY").expect("valid env name");
        let binding = Binding { scope: crate::keyring::Scope::Platform, org: "", workspace: "", key: &canary_key };
        let row: Option<(i64, Vec<u8>, Vec<u8>)> = on_read!(self, |pool| {
            sqlx::query_as("SELECT key_version, nonce, ciphertext FROM vault_canary WHERE id = 1").fetch_optional(pool).await?
        });
        match row {
            Some((version, nonce, ciphertext)) => {
                let version = crate::error::key_version(version)?;
                let sealed = Sealed { key_version: version, nonce, ciphertext };
                match self.open_sealed(&binding, &sealed) {
                    Ok(value) if value.expose() == CANARY_PLAINTEXT => Ok(()),
                    Ok(_) => Err(StoreError::WrongMasterKey { version, reason: OpenError::Authentication }),
                    Err(reason) => Err(StoreError::WrongMasterKey { version, reason }),
                }
            }
            None => {
                let secrets: i64 = on_read!(self, |pool| {
                    sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM org_secrets) + (SELECT COUNT(*) FROM workspace_secrets) + (SELECT COUNT(*) FROM platform_secrets)",
                    )
                    .fetch_one(pool)
                    .await?
                });
                if secrets > 0 {
                    return Err(StoreError::MissingCanary);
                }
                let sealed = self.keyring().seal(&binding, &wsd_core::SecretValue::new(CANARY_PLAINTEXT));
                on_write!(self, |pool| {
                    sqlx::query(
                        "INSERT INTO vault_canary (id, key_version, nonce, ciphertext) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(i64::from(sealed.key_version))
                    .bind(sealed.nonce)
                    .bind(sealed.ciphertext)
                    .execute(pool)
                    .await?
                    .rows_affected()
                });
                Ok(())
            }
        }
    }
}

/// The known plaintext of the canary row.
pub(crate) const CANARY_PLAINTEXT: &str = "wsd vault canary v1";

/// Rows a reader's SQLite thread may step ahead of the task that takes them: a report of a
/// thousand rows then costs a few thread hand-offs rather than one per fifty rows.
const SQLITE_ROW_BUFFER: usize = 1024;

/// How much of the database file readers map (a bound, not an allocation).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

async fn open_sqlite(options: &StoreOptions) -> Result<Db> {
    let invalid = |e: sqlx::Error| StoreError::InvalidDatabaseUrl(format!("invalid SQLite URL: {e}"));
    let connect = SqliteConnectOptions::from_str(&options.url).map_err(invalid)?;
    let wants_create = options.url.contains("mode=rwc");
    let connect = connect
        .create_if_missing(options.create_sqlite || wants_create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let missing = |e: sqlx::Error| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("14") => StoreError::InvalidDatabaseUrl(format!(
            "cannot open the SQLite database at {}: it does not exist (wsd creates only its default database; add ?mode=rwc to create one here)",
            options.url
        )),
        _ => StoreError::Database(e),
    };
    let write = SqlitePoolOptions::new().max_connections(1).connect_with(connect.clone()).await.map_err(missing)?;
    // Readers map the file rather than copy each page into a private cache per connection:
    // reports that scan thousands of rows then cost no read call per page.
    let read = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .connect_with(connect.pragma("mmap_size", SQLITE_MMAP_BYTES.to_string()).row_buffer_size(SQLITE_ROW_BUFFER))
        .await?;
    Ok(Db::Sqlite { read, write })
}

async fn open_postgres(options: &StoreOptions) -> Result<Db> {
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect(&options.url)
        .await?;
    Ok(Db::Postgres(pool))
}
