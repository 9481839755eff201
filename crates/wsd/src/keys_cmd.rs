//! `wsd keys rotate|status|generate`: the master keyring, operated on the database directly.

use clap::Subcommand;
use wsd_store::keyfile::{self, KeySource};
use wsd_store::keyring::Keyring;

use crate::Failure;
use crate::settings::StoreSettings;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new master key version and re-encrypt every stored value with it.
    ///
    /// Runs online: a serving wsd keeps working and picks up the new key version. It is
    /// idempotent and resumable: if it is interrupted, run it again and it finishes the job
    /// (it adds a new version only when every value is already on the newest one). With
    /// WSD_MASTER_KEY the keyring is not wsd's to extend: add the new version there first
    /// (`wsd keys generate`), restart the servers with it, then run this.
    Rotate {
        #[command(flatten)]
        store: StoreSettings,
        /// Values re-encrypted per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
    },
    /// Show the newest key version and how many values each version holds.
    Status {
        #[command(flatten)]
        store: StoreSettings,
    },
    /// Print a new random 256-bit key, base64, for WSD_MASTER_KEY.
    Generate,
}

pub fn run(command: KeysCommand) -> Result<(), Failure> {
    match command {
        KeysCommand::Generate => {
            let text = Keyring::generate().render();
            let key = text.lines().find(|l| !l.starts_with('#')).and_then(|l| l.split_once(':')).map(|(_, k)| k).unwrap_or_default();
            println!("{key}");
            Ok(())
        }
        KeysCommand::Status { store } => crate::block_on(status(store)),
        KeysCommand::Rotate { store, batch_size } => crate::block_on(rotate(store, batch_size.max(1))),
    }
}

async fn status(settings: StoreSettings) -> Result<(), Failure> {
    let (store, _) = settings.open(2).await?;
    let status = store.key_status().await.map_err(|e| Failure::Usage(e.to_string()))?;
    println!("newest key version: {}", status.current_version);
    for (version, rows) in &status.rows_by_version {
        println!("  version {version}: {rows} values");
    }
    store.close().await;
    Ok(())
}

async fn rotate(settings: StoreSettings, batch_size: i64) -> Result<(), Failure> {
    let (store, _) = settings.open(2).await?;
    let storage = |e: wsd_store::StoreError| Failure::Usage(e.to_string());
    let status = store.key_status().await.map_err(storage)?;
    let behind: u64 = status.rows_by_version.iter().filter(|(v, _)| **v != status.current_version).map(|(_, n)| n).sum();
    if behind == 0 {
        match store.key_source().clone() {
            KeySource::File(path) => {
                let current = keyfile::load(&path).map_err(|e| Failure::Usage(e.to_string()))?;
                let next = current.with_new_version();
                let version = next.current_version();
                keyfile::replace(&path, &next).map_err(|e| Failure::Usage(e.to_string()))?;
                store.set_keyring(next);
                println!("added key version {version} to {}", path.display());
            }
            KeySource::Inline => {
                println!(
                    "every value is already on key version {}; to rotate, add a new version to WSD_MASTER_KEY (`wsd keys generate`), restart wsd with it, and run this again",
                    status.current_version
                );
                store.close().await;
                return Ok(());
            }
        }
    } else {
        println!("resuming: {behind} values are not on key version {} yet", status.current_version);
    }
    let total: u64 = store.key_status().await.map_err(storage)?.rows_by_version.values().sum();
    let mut done = 0u64;
    loop {
        let n = store.rotate_batch(batch_size).await.map_err(storage)?;
        if n == 0 {
            break;
        }
        done += n;
        println!("re-encrypted {done} of at most {total} values");
    }
    let status = store.key_status().await.map_err(storage)?;
    println!("done: every value is on key version {} ({done} re-encrypted now)", status.current_version);
    store.close().await;
    Ok(())
}
