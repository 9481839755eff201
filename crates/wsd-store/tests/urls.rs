//! The backend is chosen by the URL scheme; a mistyped URL fails loudly and creates nothing.

use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Backend, Store, StoreError, StoreOptions, backend_of};

#[test]
fn schemes_pick_the_backend() {
    assert_eq!(backend_of("sqlite:///var/lib/wsd/wsd.db").unwrap(), Backend::Sqlite);
    assert_eq!(backend_of("sqlite:wsd.db").unwrap(), Backend::Sqlite);
    assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
    assert_eq!(backend_of("postgresql://u@h/db").unwrap(), Backend::Postgres);
    for bad in ["mysql://h/db", "sqllite:///x.db", "/var/lib/wsd.db", ""] {
        let e = backend_of(bad).unwrap_err();
        assert_eq!(e.code(), "INVALID_DATABASE_URL", "{bad}");
    }
    assert!(backend_of("mysql://h/db").unwrap_err().to_string().contains("unsupported database URL scheme `mysql`"));
}

#[tokio::test]
async fn a_missing_sqlite_file_is_not_created_unless_asked() {
    let dir = std::env::temp_dir().join(format!("wsd-url-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("typo.db");
    let options = |url: String, create| StoreOptions {
        url,
        create_sqlite: create,
        keyring: Keyring::generate(),
        key_source: KeySource::Inline,
        max_connections: 2,
    };
    let e = Store::open(options(format!("sqlite://{}", file.display()), false)).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidDatabaseUrl(_)), "{e:?}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!file.exists());
    let store = Store::open(options(format!("sqlite://{}", file.display()), true)).await.unwrap();
    store.close().await;
    assert!(file.exists());
    let e = Store::open(options("sqlite:///nonexistent-dir/wsd.db".into(), false)).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidDatabaseUrl(_)), "{e:?}");
}
