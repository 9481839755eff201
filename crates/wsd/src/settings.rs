//! Where wsd keeps its state: the data dir, the database and the master keyring. Parsed
//! once from flags and their `WSD_*` env equivalents, shared by `serve`, `keys` and
//! `audit`.

use std::path::PathBuf;

use clap::Args;
use wsd_store::keyfile::{self, KeySource};
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions};

use crate::Failure;

#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// The data directory: the embedded database, the generated key file, workspace homes.
    #[arg(long, env = "WSD_DATA_DIR", default_value = "./wsd-data")]
    pub data_dir: PathBuf,
    /// The database: sqlite://PATH or postgres://…; the embedded SQLite database in the
    /// data dir when unset.
    #[arg(long, env = "WSD_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The master keyring: one base64 key (32 bytes), or VERSION:BASE64 lines. When unset,
    /// the key file is used.
    #[arg(long, env = "WSD_MASTER_KEY", value_name = "KEYRING", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The master key file; `DATA_DIR/master.key` when unset. Generated (mode 0600) on the
    /// first run of the embedded database.
    #[arg(long, env = "WSD_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl StoreSettings {
    fn embedded_database(&self) -> PathBuf {
        self.data_dir.join("wsd.db")
    }

    /// The SQLite database file this process opens, if it opens one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            None => Some(self.embedded_database()),
            Some(url) => {
                let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
                Some(PathBuf::from(path.split('?').next().unwrap_or(path)))
            }
        }
    }

    /// Opens the store. A first run on the embedded defaults creates the data dir, the
    /// database and the key file; anything else must already exist.
    pub async fn open(&self, max_connections: u32) -> Result<(Store, bool), Failure> {
        let embedded = self.database_url.is_none();
        let first_run = embedded && !self.embedded_database().exists();
        if first_run {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| Failure::Usage(format!("cannot create the data directory {}: {e}", self.data_dir.display())))?;
            // The database holds secret names and token hashes: for wsd's user only.
            std::fs::set_permissions(&self.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| Failure::Usage(format!("cannot restrict the data directory {}: {e}", self.data_dir.display())))?;
        }
        let (keyring, key_source, generated) = self.keyring(first_run)?;
        let url = self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.embedded_database().display()));
        let store = Store::open(StoreOptions { url, create_sqlite: first_run, keyring, key_source, max_connections })
            .await
            .map_err(|e| Failure::Usage(format!("cannot open the database: {e}{}", cause(&e))))?;
        Ok((store, generated))
    }

    fn keyring(&self, first_run: bool) -> Result<(Keyring, KeySource, bool), Failure> {
        if let Some(text) = &self.master_key {
            let keyring = Keyring::parse(text).map_err(|e| Failure::Usage(format!("WSD_MASTER_KEY is invalid: {e}")))?;
            return Ok((keyring, KeySource::Inline, false));
        }
        let path = self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"));
        let (keyring, created) = keyfile::load_or_create(&path, first_run && self.master_key_file.is_none()).map_err(|e| {
            Failure::Usage(format!("{e}; set WSD_MASTER_KEY or WSD_MASTER_KEY_FILE to the keyring this database was written with"))
        })?;
        Ok((keyring, KeySource::File(path), created))
    }
}

/// The underlying cause of a storage error, for the operator's terminal.
fn cause(e: &wsd_store::StoreError) -> String {
    std::error::Error::source(e).map(|s| format!(" ({s})")).unwrap_or_default()
}
