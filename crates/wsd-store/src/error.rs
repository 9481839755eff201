//! `StoreError`: what can go wrong in the store, with a stable code for each kind. Database
//! causes are kept for the log; messages for users never carry values or SQL.

use wsd_core::EnvKey;

use crate::keyring::{OpenError, Scope};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("the {} secret {key} cannot be decrypted: {reason}", .scope.as_str())]
    SecretDecryptFailed { scope: Scope, key: EnvKey, reason: OpenError },
    #[error(
        "the master key cannot decrypt this database (its check value was sealed with key version {version}: {reason}); start wsd with the keyring this database was written with"
    )]
    WrongMasterKey { version: u32, reason: OpenError },
    #[error("the database holds secrets but no key check value: refusing to guess which key wrote them")]
    MissingCanary,
    #[error("{0}")]
    InvalidDatabaseUrl(String),
    #[error("the audit log is broken at event {seq}: {problem}")]
    AuditChainBroken { seq: i64, problem: String },
    #[error("all {size} host uids of the configured range are taken ([backends.process] uid_range)")]
    HostUidsExhausted { size: u64 },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The stable code of this error, as the API reports it.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "NOT_FOUND",
            StoreError::Conflict { .. } => "CONFLICT",
            StoreError::SecretDecryptFailed { .. } => "SECRET_DECRYPT_FAILED",
            StoreError::WrongMasterKey { .. } | StoreError::MissingCanary => "WRONG_MASTER_KEY",
            StoreError::InvalidDatabaseUrl(_) => "INVALID_DATABASE_URL",
            StoreError::AuditChainBroken { .. } => "AUDIT_CHAIN_BROKEN",
            StoreError::HostUidsExhausted { .. } => "HOST_UIDS_EXHAUSTED",
            StoreError::Database(_) | StoreError::Migration(_) => "STORAGE_ERROR",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// A stored value that cannot be what it claims: a storage error, never a default.
pub(crate) fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

/// A stored key version as the keyring numbers them; a value out of range is corrupt.
pub(crate) fn key_version(stored: i64) -> Result<u32> {
    u32::try_from(stored).map_err(|_| corrupt(format!("stored key version {stored} is out of range")))
}

/// Maps a unique-constraint violation to `Conflict`, anything else to `Database`.
pub(crate) fn conflict_or(e: sqlx::Error, what: impl Into<String>) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what: what.into() },
        _ => StoreError::Database(e),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
