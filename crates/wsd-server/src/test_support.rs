//! What unit tests of this crate share: a store in a fresh temporary directory.

use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Store, StoreOptions};

pub async fn temp_store(label: &str) -> Store {
    let dir = std::env::temp_dir().join(format!("wsd-server-unit-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Store::open(StoreOptions {
        url: format!("sqlite://{}/wsd.db?mode=rwc", dir.display()),
        create_sqlite: true,
        keyring: Keyring::generate(),
        key_source: KeySource::Inline,
        max_connections: 2,
    })
    .await
    .unwrap()
}
