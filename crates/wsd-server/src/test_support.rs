//! What unit tests of this crate share: a store in a fresh temporary directory, and the
//! requests and ledger rows budget tests admit and store.

use wsd_store::keyfile::KeySource;
use wsd_store::keyring::Keyring;
use wsd_store::{Admission, Estimate, Release, Store, StoreOptions, UsageRecord};

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

/// An estimate of `tokens` tokens costing as many micro-dollars.
pub fn estimate(tokens: i64) -> Estimate {
    Estimate { tokens, cost_micros: Some(tokens) }
}

/// The hold of an admitted request; panics on anything else.
pub fn admitted(admission: Admission) -> String {
    match admission {
        Admission::Admitted { reservation: Some(id), .. } => id,
        other => panic!("not admitted: {other:?}"),
    }
}

/// A ledger row of a MiniMax call at `at` that used `used` tokens in, cost `cost` and
/// releases `release`.
pub fn usage_row(org: &str, workspace: &str, at: i64, used: i64, cost: Option<i64>, release: Option<Release>) -> UsageRecord {
    UsageRecord {
        at,
        org_id: org.to_owned(),
        workspace_id: workspace.to_owned(),
        provider: "minimax".into(),
        model: "MiniMax-M2.7".into(),
        input_tokens: used,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 1,
        request_id: "r".into(),
        routing: "platform".into(),
        cost_micros: cost,
        reservation: release,
    }
}
