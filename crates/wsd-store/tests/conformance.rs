//! One conformance suite for both storage backends: every test runs on SQLite and on
//! PostgreSQL (see `support`).

mod support;

use support::{TestDb, flip_ciphertext_byte, open, raw_exec};
use wsd_core::plan::SecretOrigin;
use wsd_core::{EnvKey, SecretValue};
use wsd_store::keyring::{Keyring, OpenError, Scope};
use wsd_store::{NewWorkspace, SecretOwner, StoreError, TokenKind, WorkspaceState, WorkspaceStatus};

const CANARY_ORG: &str = "canary-org-value-6c1f0e";
const CANARY_WS: &str = "canary-workspace-value-9a2b7d";

fn key(name: &str) -> EnvKey {
    EnvKey::new(name).unwrap()
}

fn same(ring: &Keyring) -> Keyring {
    Keyring::parse(&ring.render()).unwrap()
}

/// A ledger row of a platform call to MiniMax: `input` tokens in, none out, costing `cost`.
fn usage(org: &str, workspace: &str, at: i64, input: i64, cost: Option<i64>) -> wsd_store::UsageRecord {
    wsd_store::UsageRecord {
        at,
        org_id: org.to_owned(),
        workspace_id: workspace.to_owned(),
        provider: "minimax".into(),
        model: "MiniMax-M2.7".into(),
        input_tokens: input,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 1,
        request_id: "r".into(),
        routing: "platform".into(),
        cost_micros: cost,
        reservation: None,
    }
}

/// Admits one request under the budgets that apply, as a reservation of exactly its
/// estimate: a lease that wants no more than the request needs.
async fn reserve(
    store: &wsd_store::Store,
    org: &str,
    workspace: &str,
    need: wsd_store::Estimate,
    now: i64,
    expires_at: i64,
) -> Result<wsd_store::Admission, StoreError> {
    use wsd_store::{Admission, Amounts, LeaseRequest, Leased};
    let lease = format!("res_{}", uuid::Uuid::now_v7().simple());
    let want = Amounts { tokens: need.tokens, cost_micros: need.cost_micros.unwrap_or(0) };
    let request = LeaseRequest { org, workspace, lease: &lease, returned: None, need, want, now, expires_at };
    Ok(match store.lease(&request).await? {
        Leased::Unbudgeted => Admission::Admitted { reservation: None, standings: Vec::new() },
        Leased::Granted { granted, mut standings } => {
            assert!(granted.tokens <= want.tokens && granted.cost_micros <= want.cost_micros, "no more than it wants");
            for standing in &mut standings {
                standing.hold(need.amount(standing.budget.unit).unwrap_or(0));
            }
            Admission::Admitted { reservation: Some(lease), standings }
        }
        Leased::Refused(refusal) => refusal,
    })
}

fn ws<'a>(name: &'a str, model: &'a str) -> NewWorkspace<'a> {
    NewWorkspace { name, runtime: "claude-code", model }
}

async fn orgs_and_workspaces(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let a = store.create_org("acme", "admin").await.unwrap();
    let b = store.create_org("globex", "admin").await.unwrap();
    assert!(matches!(store.create_org("acme", "admin").await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.get_org(&a.id).await.unwrap(), a);
    assert_eq!(store.list_orgs().await.unwrap(), [a.clone(), b.clone()]);
    assert!(matches!(store.get_org("nope").await, Err(StoreError::NotFound { what: "org" })));

    let w = store.create_workspace(&a.id, &ws("dev", "MiniMax-M2.7"), "admin").await.unwrap();
    assert_eq!((w.model.as_str(), w.status), ("MiniMax-M2.7", WorkspaceStatus::Created));
    assert!(matches!(store.create_workspace(&a.id, &ws("dev", "opus"), "admin").await, Err(StoreError::Conflict { .. })));
    assert!(matches!(store.create_workspace("nope", &ws("x", "opus"), "admin").await, Err(StoreError::NotFound { what: "org" })));
    assert_eq!(store.get_workspace(&a.id, &w.id).await.unwrap(), w);
    // Another org's workspace does not exist for this org.
    assert!(matches!(store.get_workspace(&b.id, &w.id).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.list_workspaces(&a.id).await.unwrap(), std::slice::from_ref(&w));
    assert!(store.list_workspaces(&b.id).await.unwrap().is_empty());

    let changed = store.set_workspace_model(&a.id, &w.id, "opus", "admin").await.unwrap();
    assert_eq!(changed.model, "opus");
    let error = wsd_store::LastError { code: "MISSING_BYOK_CREDENTIAL".into(), message: "m".into() };
    let failed_state = WorkspaceState {
        status: WorkspaceStatus::Failed,
        last_error: Some(&error),
        backend: Some("process"),
        instance_id: None,
        plan_hash: Some("h"),
    };
    store.set_workspace_state(&a.id, &w.id, &failed_state).await.unwrap();
    let failed = store.get_workspace(&a.id, &w.id).await.unwrap();
    assert_eq!((failed.status, failed.last_error, failed.plan_hash.as_deref()), (WorkspaceStatus::Failed, Some(error.clone()), Some("h")));
    assert!(matches!(
        store.set_workspace_state(&b.id, &w.id, &WorkspaceState { status: WorkspaceStatus::Running, ..failed_state }).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.running_workspaces().await.unwrap().is_empty(), "a failed workspace is not running");
    let running = WorkspaceState { status: WorkspaceStatus::Running, last_error: None, instance_id: Some("process:1:2"), ..failed_state };
    store.set_workspace_state(&a.id, &w.id, &running).await.unwrap();
    let all = store.running_workspaces().await.unwrap();
    assert_eq!(all.iter().map(|w| (w.id.as_str(), w.instance_id.as_deref())).collect::<Vec<_>>(), [(w.id.as_str(), Some("process:1:2"))]);

    store.put_secret(SecretOwner::Workspace { org: &a.id, workspace: &w.id }, &key("K"), &SecretValue::new("v"), "admin").await.unwrap();
    assert!(matches!(store.delete_workspace(&b.id, &w.id, "admin").await, Err(StoreError::NotFound { .. })));
    store.delete_workspace(&a.id, &w.id, "admin").await.unwrap();
    assert!(matches!(store.get_workspace(&a.id, &w.id).await, Err(StoreError::NotFound { .. })));
    assert!(store.load_workspace_secrets(&a.id, &w.id).await.unwrap().names.workspace.is_empty());
}
conformance!(orgs_and_workspaces);

async fn secrets_load_with_provenance(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let w = store.create_workspace(&org.id, &ws("dev", "MiniMax-M2.7"), "admin").await.unwrap();
    let other = store.create_workspace(&org.id, &ws("other", "opus"), "admin").await.unwrap();
    let org_owner = SecretOwner::Org { org: &org.id };
    let ws_owner = SecretOwner::Workspace { org: &org.id, workspace: &w.id };

    store.put_secret(org_owner, &key("CLAUDE_CODE_OAUTH_TOKEN"), &SecretValue::new(CANARY_ORG), "admin").await.unwrap();
    store.put_secret(org_owner, &key("MINIMAX_API_KEY"), &SecretValue::new("org-minimax"), "admin").await.unwrap();
    store.put_secret(ws_owner, &key("MINIMAX_API_KEY"), &SecretValue::new(CANARY_WS), "alice").await.unwrap();
    store
        .put_secret(SecretOwner::Workspace { org: &org.id, workspace: &other.id }, &key("OTHER"), &SecretValue::new("x"), "admin")
        .await
        .unwrap();
    // Replacing keeps created_at and moves updated_at.
    let first = store.put_secret(org_owner, &key("DATABASE_URL"), &SecretValue::new("one"), "admin").await.unwrap();
    let second = store.put_secret(org_owner, &key("DATABASE_URL"), &SecretValue::new("two"), "bob").await.unwrap();
    assert_eq!(first.created_at, second.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!((first.updated_by.as_deref(), second.updated_by.as_deref()), (Some("admin"), Some("bob")), "who set the value");

    let loaded = store.load_workspace_secrets(&org.id, &w.id).await.unwrap();
    let names = |set: &std::collections::BTreeSet<EnvKey>| set.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&loaded.names.org), ["CLAUDE_CODE_OAUTH_TOKEN", "DATABASE_URL", "MINIMAX_API_KEY"]);
    assert_eq!(names(&loaded.names.workspace), ["MINIMAX_API_KEY"]);
    assert_eq!(loaded.value(SecretOrigin::Workspace, &key("MINIMAX_API_KEY")).unwrap().expose(), CANARY_WS);
    assert_eq!(loaded.value(SecretOrigin::Org, &key("MINIMAX_API_KEY")).unwrap().expose(), "org-minimax");
    assert_eq!(loaded.value(SecretOrigin::Org, &key("DATABASE_URL")).unwrap().expose(), "two");
    assert!(!format!("{loaded:?}").contains(CANARY_WS), "Debug of loaded secrets shows a value");

    let listed: Vec<String> = store.list_secrets(org_owner).await.unwrap().iter().map(|m| m.key.to_string()).collect();
    assert_eq!(listed, ["CLAUDE_CODE_OAUTH_TOKEN", "DATABASE_URL", "MINIMAX_API_KEY"]);
    assert_eq!(store.list_secrets(ws_owner).await.unwrap()[0].updated_by.as_deref(), Some("alice"));
    let by: Vec<Option<String>> = store.list_secrets(org_owner).await.unwrap().into_iter().map(|m| m.updated_by).collect();
    assert_eq!(by, [Some("admin".to_owned()), Some("bob".to_owned()), Some("admin".to_owned())]);

    // Writes to another org's workspace, or to a missing org, are refused.
    let foreign = store.create_org("globex", "admin").await.unwrap();
    let refused =
        store.put_secret(SecretOwner::Workspace { org: &foreign.id, workspace: &w.id }, &key("K"), &SecretValue::new("v"), "x").await;
    assert!(matches!(refused, Err(StoreError::NotFound { what: "workspace" })));
    assert!(matches!(
        store.put_secret(SecretOwner::Org { org: "nope" }, &key("K"), &SecretValue::new("v"), "x").await,
        Err(StoreError::NotFound { .. })
    ));

    let input = store.plan_input(&org.id, &w.id).await.unwrap();
    assert_eq!((input.runtime.as_str(), input.model.as_str()), ("claude-code", "MiniMax-M2.7"));
    assert_eq!((input.names.org, input.names.workspace), (loaded.names.org.clone(), loaded.names.workspace.clone()));
    assert!(matches!(store.plan_input(&foreign.id, &w.id).await, Err(StoreError::NotFound { what: "workspace" })));
    // The org-wide read says for each workspace what the one-workspace read says.
    let bare = store.create_workspace(&org.id, &NewWorkspace { name: "bare", runtime: "codex", model: "gpt-5.5" }, "alice").await.unwrap();
    let all = store.plan_inputs(&org.id).await.unwrap();
    assert_eq!(all.len(), store.list_workspaces(&org.id).await.unwrap().len());
    for id in [&w.id, &bare.id] {
        let one = store.plan_input(&org.id, id).await.unwrap();
        let many = &all[id];
        assert_eq!(
            (&many.runtime, &many.model, &many.names.org, &many.names.workspace, many.delivery),
            (&one.runtime, &one.model, &one.names.org, &one.names.workspace, one.delivery)
        );
    }
    assert!(all[&bare.id].names.workspace.is_empty() && !all[&w.id].names.workspace.is_empty());
    assert!(store.plan_inputs(&foreign.id).await.unwrap().is_empty());
    store.delete_workspace(&org.id, &bare.id, "alice").await.unwrap();
    store.delete_secret(ws_owner, &key("MINIMAX_API_KEY"), "alice").await.unwrap();
    assert!(matches!(store.delete_secret(ws_owner, &key("MINIMAX_API_KEY"), "alice").await, Err(StoreError::NotFound { .. })));
    assert!(store.load_workspace_secrets(&org.id, &w.id).await.unwrap().names.workspace.is_empty());

    store.put_secret(SecretOwner::Platform, &key("ANTHROPIC_API_KEY"), &SecretValue::new("platform-key"), "operator").await.unwrap();
    assert_eq!(store.get_platform_secret(&key("ANTHROPIC_API_KEY")).await.unwrap().unwrap().expose(), "platform-key");
    assert!(store.get_platform_secret(&key("NONE")).await.unwrap().is_none());
    assert_eq!(store.list_secrets(SecretOwner::Platform).await.unwrap()[0].updated_by.as_deref(), Some("operator"));
}
conformance!(secrets_load_with_provenance);

async fn tampered_rows_fail_closed(db: &TestDb) {
    let ring = Keyring::generate();
    let store = open(db, same(&ring)).await.unwrap();
    let a = store.create_org("acme", "admin").await.unwrap();
    let b = store.create_org("globex", "admin").await.unwrap();
    let w = store.create_workspace(&a.id, &ws("dev", "opus"), "admin").await.unwrap();
    let put = |org: &str, k: &str| (org.to_owned(), k.to_owned());
    for (org, k) in [put(&a.id, "FLIPPED"), put(&a.id, "MOVED_ORG"), put(&a.id, "RENAMED"), put(&a.id, "UNKNOWN_VERSION")] {
        let store = &store;
        store.put_secret(SecretOwner::Org { org: &org }, &key(&k), &SecretValue::new(CANARY_ORG), "admin").await.unwrap();
    }
    let expect_failure = |result: Result<wsd_store::WorkspaceSecrets, StoreError>, k: &str, reason: OpenError| match result {
        Err(StoreError::SecretDecryptFailed { scope: Scope::Org, key: failed, reason: got }) => {
            assert_eq!((failed.as_str(), got), (k, reason));
        }
        other => panic!("expected SECRET_DECRYPT_FAILED for {k}, got {other:?}"),
    };

    flip_ciphertext_byte(db, "FLIPPED").await;
    let e = store.load_workspace_secrets(&a.id, &w.id).await;
    if let Err(e) = &e {
        assert_eq!(e.code(), "SECRET_DECRYPT_FAILED");
        assert!(!e.to_string().contains(CANARY_ORG));
    }
    expect_failure(e, "FLIPPED", OpenError::Authentication);
    raw_exec(db, "DELETE FROM org_secrets WHERE key = 'FLIPPED'").await;

    raw_exec(db, &format!("UPDATE org_secrets SET org_id = '{}' WHERE key = 'MOVED_ORG'", b.id)).await;
    let bw = store.create_workspace(&b.id, &ws("b", "opus"), "admin").await.unwrap();
    expect_failure(store.load_workspace_secrets(&b.id, &bw.id).await, "MOVED_ORG", OpenError::Authentication);

    raw_exec(db, "UPDATE org_secrets SET key = 'RENAMED_TOO' WHERE key = 'RENAMED'").await;
    expect_failure(store.load_workspace_secrets(&a.id, &w.id).await, "RENAMED_TOO", OpenError::Authentication);
    raw_exec(db, "DELETE FROM org_secrets WHERE key = 'RENAMED_TOO'").await;

    raw_exec(db, "UPDATE org_secrets SET key_version = 99 WHERE key = 'UNKNOWN_VERSION'").await;
    expect_failure(store.load_workspace_secrets(&a.id, &w.id).await, "UNKNOWN_VERSION", OpenError::UnknownKeyVersion(99));
    store.close().await;

    // A wrong master key is refused when the store opens.
    match open(db, Keyring::generate()).await {
        Err(StoreError::WrongMasterKey { version: 1, reason: OpenError::Authentication }) => {}
        other => panic!("expected WRONG_MASTER_KEY, got {other:?}"),
    }
    assert!(open(db, same(&ring)).await.is_ok());
}
conformance!(tampered_rows_fail_closed);

async fn secrets_without_a_canary_are_refused(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    store.put_secret(SecretOwner::Org { org: &org.id }, &key("K"), &SecretValue::new("v"), "admin").await.unwrap();
    store.close().await;
    raw_exec(db, "DELETE FROM vault_canary").await;
    assert!(matches!(open(db, Keyring::generate()).await, Err(StoreError::MissingCanary)));
}
conformance!(secrets_without_a_canary_are_refused);

async fn tokens_are_hashed_and_revocable(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let (token, plaintext) = store.create_token(TokenKind::Org, Some(&org.id), None, "ci", "admin").await.unwrap();
    assert!(plaintext.expose().starts_with(wsd_store::TOKEN_PREFIX));
    assert!(plaintext.expose().starts_with(&token.prefix) && token.prefix.len() == 12);
    assert_eq!(token.last_used_at, None);

    let found = store.authenticate_token(plaintext.expose()).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.kind, found.org_id.as_deref()), (token.id.as_str(), TokenKind::Org, Some(org.id.as_str())));
    assert!(found.last_used_at.is_some());
    assert!(store.authenticate_token("wsd_not-a-token").await.unwrap().is_none());

    let listed = store.list_tokens(Some(&org.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    assert!(!format!("{listed:?}").contains(plaintext.expose()));

    let other = store.create_org("globex", "admin").await.unwrap();
    assert!(matches!(store.revoke_token(Some(&other.id), &token.id, "x").await, Err(StoreError::NotFound { .. })));
    store.revoke_token(Some(&org.id), &token.id, "admin").await.unwrap();
    assert!(store.authenticate_token(plaintext.expose()).await.unwrap().is_none());
    assert!(matches!(store.revoke_token(None, &token.id, "admin").await, Err(StoreError::NotFound { .. })));

    let admin = SecretValue::new("wsd_operator-chosen-admin-token");
    store.insert_token(TokenKind::Admin, None, None, "admin", &admin, "bootstrap").await.unwrap();
    assert_eq!(store.authenticate_token(admin.expose()).await.unwrap().unwrap().kind, TokenKind::Admin);
}
conformance!(tokens_are_hashed_and_revocable);

async fn audit_chain_detects_edits_and_deletions(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let w = store.create_workspace(&org.id, &ws("dev", "opus"), "admin").await.unwrap();
    store.put_secret(SecretOwner::Org { org: &org.id }, &key("K"), &SecretValue::new(CANARY_ORG), "admin").await.unwrap();
    store.delete_secret(SecretOwner::Org { org: &org.id }, &key("K"), "admin").await.unwrap();
    store.create_token(TokenKind::Org, Some(&org.id), None, "ci", "admin").await.unwrap();
    store.delete_workspace(&org.id, &w.id, "admin").await.unwrap();

    let events = store.list_audit(Some(&org.id), 0, 100).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["org.create", "workspace.create", "secret.put", "secret.delete", "token.create", "workspace.delete"]);
    assert_eq!(events[2].details["key"], "K");
    assert!(!serde_json::to_string(&events).unwrap().contains(CANARY_ORG));
    assert_eq!(store.verify_audit().await.unwrap().events, 6);

    raw_exec(db, "UPDATE audit_events SET details = '{\"key\":\"OTHER\"}' WHERE seq = 3").await;
    assert!(matches!(store.verify_audit().await, Err(StoreError::AuditChainBroken { seq: 3, .. })));
    store.close().await;
}
conformance!(audit_chain_detects_edits_and_deletions);

async fn audit_chain_detects_deleted_events(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    for name in ["a", "b", "c", "d"] {
        store.create_org(name, "admin").await.unwrap();
    }
    raw_exec(db, "DELETE FROM audit_events WHERE seq = 4").await;
    assert!(matches!(store.verify_audit().await, Err(StoreError::AuditChainBroken { seq: 4, .. })));
    raw_exec(db, "DELETE FROM audit_events WHERE seq = 2").await;
    assert!(matches!(store.verify_audit().await, Err(StoreError::AuditChainBroken { seq: 2, .. })));
}
conformance!(audit_chain_detects_deleted_events);

async fn rotation_reseals_everything_and_keeps_values(db: &TestDb) {
    let ring = Keyring::generate();
    let store = open(db, same(&ring)).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let w = store.create_workspace(&org.id, &ws("dev", "opus"), "admin").await.unwrap();
    for i in 0..25 {
        store
            .put_secret(SecretOwner::Org { org: &org.id }, &key(&format!("ORG_{i}")), &SecretValue::new(format!("org-{i}")), "a")
            .await
            .unwrap();
        store
            .put_secret(
                SecretOwner::Workspace { org: &org.id, workspace: &w.id },
                &key(&format!("WS_{i}")),
                &SecretValue::new(format!("ws-{i}")),
                "a",
            )
            .await
            .unwrap();
    }
    store.put_secret(SecretOwner::Platform, &key("OPENAI_API_KEY"), &SecretValue::new("platform"), "op").await.unwrap();
    assert_eq!(store.key_status().await.unwrap().rows_by_version, [(1, 52)].into());

    let rotated = ring.with_new_version();
    store.set_keyring(same(&rotated));
    let mut total = 0;
    loop {
        let n = store.rotate_batch(7).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 51);
    let status = store.key_status().await.unwrap();
    assert_eq!((status.current_version, status.rows_by_version), (2, [(2, 52)].into()));
    let loaded = store.load_workspace_secrets(&org.id, &w.id).await.unwrap();
    assert_eq!(loaded.value(SecretOrigin::Org, &key("ORG_7")).unwrap().expose(), "org-7");
    assert_eq!(loaded.value(SecretOrigin::Workspace, &key("WS_24")).unwrap().expose(), "ws-24");
    assert_eq!(store.get_platform_secret(&key("OPENAI_API_KEY")).await.unwrap().unwrap().expose(), "platform");
    store.close().await;

    // The old keyring alone no longer opens the database.
    assert!(matches!(open(db, same(&ring)).await, Err(StoreError::WrongMasterKey { version: 2, reason: OpenError::UnknownKeyVersion(2) })));
    assert!(open(db, same(&rotated)).await.is_ok());
}
conformance!(rotation_reseals_everything_and_keeps_values);

async fn canary_values_never_reach_storage_in_clear(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let w = store.create_workspace(&org.id, &ws("dev", "opus"), "admin").await.unwrap();
    store
        .put_secret(SecretOwner::Org { org: &org.id }, &key("CLAUDE_CODE_OAUTH_TOKEN"), &SecretValue::new(CANARY_ORG), "admin")
        .await
        .unwrap();
    store
        .put_secret(
            SecretOwner::Workspace { org: &org.id, workspace: &w.id },
            &key("MINIMAX_API_KEY"),
            &SecretValue::new(CANARY_WS),
            "admin",
        )
        .await
        .unwrap();
    let audit = serde_json::to_string(&store.list_audit(None, 0, 1000).await.unwrap()).unwrap();
    for canary in [CANARY_ORG, CANARY_WS] {
        assert!(!audit.contains(canary));
    }
    let dump: Vec<u8> = match &db.file {
        Some(file) => {
            let mut bytes = std::fs::read(file).unwrap();
            let wal = file.with_extension("db-wal");
            bytes.extend(std::fs::read(&wal).unwrap_or_default());
            assert!(!bytes.is_empty());
            bytes
        }
        None => {
            let out = std::process::Command::new(pg_dump()).arg(&db.url).output().expect("run pg_dump");
            assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }
    };
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("CLAUDE_CODE_OAUTH_TOKEN"), "the dump holds the data (names in clear)");
    for canary in [CANARY_ORG, CANARY_WS] {
        assert!(!dump.contains(canary), "canary {canary} found in the database's bytes");
    }
    store.close().await;
}
conformance!(canary_values_never_reach_storage_in_clear);

fn pg_dump() -> std::path::PathBuf {
    let bins = std::fs::read_dir("/usr/lib/postgresql").ok().into_iter().flatten().flatten().map(|e| e.path().join("bin/pg_dump"));
    bins.filter(|p| p.exists()).max().unwrap_or_else(|| "pg_dump".into())
}

async fn storage_errors_are_errors_not_empty_results(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let w = store.create_workspace(&org.id, &ws("dev", "opus"), "admin").await.unwrap();
    store.close().await;
    let result = store.load_workspace_secrets(&org.id, &w.id).await;
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
    assert_eq!(result.unwrap_err().code(), "STORAGE_ERROR");
    assert!(store.ping().await.is_err());
}
conformance!(storage_errors_are_errors_not_empty_results);

async fn two_processes_writing_at_once_keep_the_audit_chain_whole(db: &TestDb) {
    let ring = Keyring::generate();
    let first = std::sync::Arc::new(open(db, same(&ring)).await.unwrap());
    let second = std::sync::Arc::new(open(db, same(&ring)).await.unwrap());
    let org = first.create_org("acme", "admin").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        let org = org.id.clone();
        tasks.push(tokio::spawn(async move {
            store.put_secret(SecretOwner::Org { org: &org }, &key(&format!("K_{i}")), &SecretValue::new("v"), "writer").await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(first.list_secrets(SecretOwner::Org { org: &org.id }).await.unwrap().len(), 40);
    assert_eq!(second.verify_audit().await.unwrap().events, 41);
}
conformance!(two_processes_writing_at_once_keep_the_audit_chain_whole);

async fn budgets_and_usage_sums(db: &TestDb) {
    use wsd_store::{BudgetPeriod, BudgetUnit, NewBudget, UsageRecord};
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    assert!(store.list_budgets(&org.id).await.unwrap().is_empty());
    let tokens = |period, limit| NewBudget { workspace_id: None, unit: BudgetUnit::Tokens, period, limit };
    let first = store.put_budget(&org.id, &tokens(BudgetPeriod::Day, 100), "admin").await.unwrap();
    store.put_budget(&org.id, &tokens(BudgetPeriod::Month, 5000), "admin").await.unwrap();
    // The same scope, unit and period: replaced, same id.
    let replaced = store.put_budget(&org.id, &tokens(BudgetPeriod::Day, 300), "admin").await.unwrap();
    assert_eq!(replaced.id, first.id);
    let listed: Vec<(BudgetPeriod, i64)> = store.list_budgets(&org.id).await.unwrap().iter().map(|b| (b.period, b.limit)).collect();
    assert_eq!(listed, [(BudgetPeriod::Day, 300), (BudgetPeriod::Month, 5000)]);
    assert!(matches!(store.put_budget("nope", &tokens(BudgetPeriod::Day, 1), "admin").await, Err(StoreError::NotFound { .. })));
    let elsewhere = NewBudget { workspace_id: Some("nope".into()), ..tokens(BudgetPeriod::Day, 1) };
    assert!(matches!(store.put_budget(&org.id, &elsewhere, "admin").await, Err(StoreError::NotFound { .. })));
    store.delete_budget(&org.id, &first.id, "admin").await.unwrap();
    assert!(matches!(store.delete_budget(&org.id, &first.id, "admin").await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.list_budgets(&org.id).await.unwrap().len(), 1);
    let audited = |action: &'static str| {
        let store = &store;
        let org = org.id.clone();
        async move { store.list_audit(Some(&org), 0, 100).await.unwrap().iter().filter(|e| e.action == action).count() }
    };
    assert_eq!((audited("budget.put").await, audited("budget.delete").await), (3, 1));
    let record = |at: i64, input: i64, output: i64| UsageRecord {
        at,
        org_id: org.id.clone(),
        workspace_id: "w".into(),
        provider: "minimax".into(),
        model: "MiniMax-M2.7".into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 5,
        request_id: "r".into(),
        routing: "platform".into(),
        cost_micros: None,
        reservation: None,
    };
    let tokens_used_from_day_of = |org: String, from: i64| {
        let store = &store;
        async move {
            let budget = NewBudget { workspace_id: None, unit: BudgetUnit::Tokens, period: BudgetPeriod::Day, limit: i64::MAX };
            store.put_budget(&org, &budget, "admin").await.unwrap();
            let standings = store.budget_standings(&org, from).await.unwrap();
            standings.iter().find(|s| s.budget.period == BudgetPeriod::Day && s.budget.workspace_id.is_none()).unwrap().spent
        }
    };
    const DAY: i64 = 86_400_000;
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 0).await, 0);
    store.append_usage(&[record(1_000, 10, 5)]).await.unwrap();
    store.append_usage(&[record(DAY + 2_000, 20, 7)]).await.unwrap();
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 0).await, 42);
    assert_eq!(tokens_used_from_day_of(org.id.clone(), DAY + 5_000).await, 27, "whole days from the one containing `from`");
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 2 * DAY).await, 0);
    let summary = store.usage_summary(&org.id, 0, 1_500).await.unwrap();
    assert_eq!((summary.len(), summary[0].totals.requests, summary[0].totals.input_tokens), (1, 1, 10));

    // A batch larger than one statement lands whole.
    // Half of it on one day, half on the next.
    let batch: Vec<UsageRecord> = (0..600).map(|i| record(3 * DAY - 300 + i, 1, 2)).collect();
    store.append_usage(&batch).await.unwrap();
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 2 * DAY).await, 1_800);
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 3 * DAY).await, 900);
    assert_eq!(store.usage_summary(&org.id, 2 * DAY, 4 * DAY).await.unwrap()[0].totals.requests, 600);
    // Another org's usage is its own.
    let other = store.create_org("other", "admin").await.unwrap();
    store.append_usage(&[UsageRecord { org_id: other.id.clone(), ..record(3 * DAY, 1_000, 0) }]).await.unwrap();
    assert_eq!(tokens_used_from_day_of(org.id.clone(), 3 * DAY).await, 900);
    assert_eq!(tokens_used_from_day_of(other.id.clone(), 0).await, 1_000);
    store.append_usage(&[]).await.unwrap();

    let latest = store.usage_requests(&org.id, None, 3).await.unwrap();
    assert_eq!(latest.iter().map(|r| r.at).collect::<Vec<_>>(), [3 * DAY + 299, 3 * DAY + 298, 3 * DAY + 297], "newest first");
    assert_eq!(latest[0], batch[599]);
    assert_eq!(store.usage_requests(&org.id, Some("w"), 1000).await.unwrap().len(), 602);
    assert!(store.usage_requests(&org.id, Some("other"), 10).await.unwrap().is_empty());

    // Costs: summed where known, the unknown ones counted, never taken as 0.
    let priced = store.create_org("priced", "admin").await.unwrap();
    let row = |at: i64, cost: Option<i64>| UsageRecord { org_id: priced.id.clone(), cost_micros: cost, ..record(at, 1, 1) };
    store.append_usage(&[row(10, Some(1_500)), row(20, None), row(DAY + 5, Some(2_500)), row(DAY + 6, Some(i64::MAX / 4))]).await.unwrap();
    let summary = store.usage_summary(&priced.id, 0, DAY).await.unwrap();
    assert_eq!((summary[0].totals.cost_micros, summary[0].totals.unpriced_requests), (Some(1_500), 1));
    let days = store.usage_by_day(&priced.id, 0, 2 * DAY).await.unwrap();
    let by_day: Vec<(&str, i64, Option<i64>, i64)> =
        days.iter().map(|d| (d.date.as_str(), d.totals.requests, d.totals.cost_micros, d.totals.unpriced_requests)).collect();
    assert_eq!(by_day, [("1970-01-01", 2, Some(1_500), 1), ("1970-01-02", 2, Some(2_500 + i64::MAX / 4), 0)]);
    let only_unknown = store.create_org("unpriced", "admin").await.unwrap();
    store.append_usage(&[UsageRecord { org_id: only_unknown.id.clone(), ..row(10, None) }]).await.unwrap();
    let summary = store.usage_summary(&only_unknown.id, 0, DAY).await.unwrap();
    assert_eq!((summary[0].totals.cost_micros, summary[0].totals.unpriced_requests), (None, 1));
    assert_eq!(
        store.usage_requests(&priced.id, None, 10).await.unwrap().iter().map(|r| r.cost_micros).collect::<Vec<_>>()[..2],
        [Some(i64::MAX / 4), Some(2_500)]
    );
}
conformance!(budgets_and_usage_sums);

/// Usage reports read whole days from the rollups and partial days from the ledger; over
/// any range they must equal the ledger's rows in that range, summed.
async fn usage_reports_equal_the_ledger_summed(db: &TestDb) {
    use std::collections::BTreeMap;
    const DAY: i64 = 86_400_000;
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let other = store.create_org("globex", "admin").await.unwrap();
    // A fixed pseudo-random walk over four days: three workspaces, two models, both
    // routings, a third of the costs unknown, several rows per millisecond at the edges.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as i64
    };
    let mut records = Vec::new();
    for i in 0..600 {
        let at = match i % 5 {
            0 => next(4) * DAY,
            1 => next(4) * DAY + DAY - 1,
            _ => next(4 * DAY as u64),
        };
        let mut r = usage(
            &org.id,
            ["w1", "w2", "w3"][next(3) as usize],
            at,
            next(5_000),
            [None, Some(next(9_000)), Some(next(100))][next(3) as usize],
        );
        r.output_tokens = next(700);
        r.cache_read_tokens = next(50);
        r.cache_write_tokens = next(20);
        r.model = ["MiniMax-M2.7", "MiniMax-M2.5"][next(2) as usize].into();
        r.routing = ["platform", "byok"][next(2) as usize].into();
        records.push(r);
    }
    for batch in records.chunks(97) {
        store.append_usage(batch).await.unwrap();
    }
    store.append_usage(&[usage(&other.id, "w1", DAY + 5, 1_000_000, Some(1))]).await.unwrap();

    type Totals = (i64, i64, i64, i64, i64, Option<i64>, i64);
    let add = |t: &mut Totals, r: &wsd_store::UsageRecord| {
        t.0 += 1;
        t.1 += r.input_tokens;
        t.2 += r.output_tokens;
        t.3 += r.cache_read_tokens;
        t.4 += r.cache_write_tokens;
        if let Some(cost) = r.cost_micros {
            t.5 = Some(t.5.unwrap_or(0) + cost);
        } else {
            t.6 += 1;
        }
    };
    let of = |t: &wsd_store::UsageTotals| -> Totals {
        (t.requests, t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_micros, t.unpriced_requests)
    };
    let ranges = [
        (0, 4 * DAY),
        (0, 10 * DAY),
        (DAY, 3 * DAY),
        (DAY - 1, 3 * DAY + 1),
        (DAY + 1, 3 * DAY - 1),
        (DAY + 1, DAY + 2),
        (DAY + 7_000, 2 * DAY + 9_000),
        (2 * DAY, 2 * DAY),
        (3 * DAY - 1, 3 * DAY),
        (3 * DAY, 3 * DAY + 1),
        (123_456, 3 * DAY + 654_321),
    ];
    for (from, to) in ranges {
        let within: Vec<_> = records.iter().filter(|r| r.at >= from && r.at < to).collect();
        let mut by_key = BTreeMap::<(String, String, String, String), Totals>::new();
        let mut by_day = BTreeMap::<i64, Totals>::new();
        for r in &within {
            add(by_key.entry((r.workspace_id.clone(), r.provider.clone(), r.model.clone(), r.routing.clone())).or_default(), r);
            add(by_day.entry(r.at / DAY).or_default(), r);
        }
        let summary: BTreeMap<_, _> = store
            .usage_summary(&org.id, from, to)
            .await
            .unwrap()
            .iter()
            .map(|s| ((s.workspace_id.clone(), s.provider.clone(), s.model.clone(), s.routing.clone()), of(&s.totals)))
            .collect();
        assert_eq!(summary, by_key, "summary of [{from}, {to})");
        let days: BTreeMap<_, _> = store.usage_by_day(&org.id, from, to).await.unwrap().iter().map(|d| (d.day, of(&d.totals))).collect();
        assert_eq!(days, by_day, "days of [{from}, {to})");
    }
    // A request stored late into a day already summed is in the next report.
    let whole = || async { store.usage_summary(&org.id, 0, 4 * DAY).await.unwrap().iter().map(|s| s.totals.requests).sum::<i64>() };
    assert_eq!(whole().await, 600);
    store.append_usage(&[usage(&org.id, "w2", DAY + 5, 1, None)]).await.unwrap();
    assert_eq!(whole().await, 601);
    assert_eq!(whole().await, 601);
}
conformance!(usage_reports_equal_the_ledger_summed);

async fn host_uids_are_assigned_once_and_never_shared(db: &TestDb) {
    let store = std::sync::Arc::new(open(db, Keyring::generate()).await.unwrap());
    let org = store.create_org("acme", "admin").await.unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(store.create_workspace(&org.id, &ws(name, "opus"), "admin").await.unwrap().id);
    }
    // Three at once over a range of three: each gets its own.
    let assigned = futures_join(&store, &org.id, &ids[..3]).await;
    let mut sorted = assigned.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [700, 701, 702], "{assigned:?}");
    // Kept for the workspace's life, and recorded with it.
    assert_eq!(store.assign_host_uid(&org.id, &ids[0], 700..=702).await.unwrap(), assigned[0]);
    assert_eq!(store.get_workspace(&org.id, &ids[0]).await.unwrap().host_uid, Some(assigned[0]));
    let e = store.assign_host_uid(&org.id, &ids[3], 700..=702).await.unwrap_err();
    assert_eq!((e.code(), e.to_string().contains("all 3 host uids")), ("HOST_UIDS_EXHAUSTED", true), "{e}");
    // A deleted workspace's uid is free again: the lowest free one is taken.
    let freed = assigned[1];
    store.delete_workspace(&org.id, &ids[1], "admin").await.unwrap();
    assert_eq!(store.assign_host_uid(&org.id, &ids[3], 700..=702).await.unwrap(), freed);
    assert!(matches!(store.assign_host_uid(&org.id, "nope", 700..=702).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.count_running_workspaces(&org.id).await.unwrap(), 0);
}
conformance!(host_uids_are_assigned_once_and_never_shared);

async fn futures_join(store: &std::sync::Arc<wsd_store::Store>, org: &str, ids: &[String]) -> Vec<u32> {
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, org, id) = (store.clone(), org.to_owned(), id.clone());
            tokio::spawn(async move { store.assign_host_uid(&org, &id, 700..=702).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn a_workspaces_usage_tokens_are_revoked_at_once(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let a = store.create_workspace(&org.id, &ws("a", "opus"), "admin").await.unwrap();
    let b = store.create_workspace(&org.id, &ws("b", "opus"), "admin").await.unwrap();
    let mut of_a = Vec::new();
    for _ in 0..3 {
        of_a.push(store.create_token(TokenKind::Usage, Some(&org.id), Some(&a.id), "usage", "admin").await.unwrap().1);
    }
    let (_, of_b) = store.create_token(TokenKind::Usage, Some(&org.id), Some(&b.id), "usage", "admin").await.unwrap();
    let (_, org_token) = store.create_token(TokenKind::Org, Some(&org.id), None, "ci", "admin").await.unwrap();
    let before = store.list_audit(Some(&org.id), 0, 1000).await.unwrap().len();
    assert_eq!(store.revoke_usage_tokens(&org.id, &a.id, "admin").await.unwrap(), 3);
    for token in &of_a {
        assert!(store.authenticate_token(token.expose()).await.unwrap().is_none());
    }
    assert!(store.authenticate_token(of_b.expose()).await.unwrap().is_some(), "another workspace's token stays");
    assert!(store.authenticate_token(org_token.expose()).await.unwrap().is_some(), "an org token stays");
    let events = store.list_audit(Some(&org.id), 0, 1000).await.unwrap();
    assert_eq!(events.len(), before + 1, "one audit event for all of them");
    assert_eq!(store.revoke_usage_tokens(&org.id, &a.id, "admin").await.unwrap(), 0);
    assert_eq!(store.list_audit(Some(&org.id), 0, 1000).await.unwrap().len(), before + 1, "nothing revoked, nothing audited");
    // Another org's workspace id revokes nothing.
    let other = store.create_org("other", "admin").await.unwrap();
    assert_eq!(store.revoke_usage_tokens(&other.id, &b.id, "admin").await.unwrap(), 0);
    assert!(store.authenticate_token(of_b.expose()).await.unwrap().is_some());
}
conformance!(a_workspaces_usage_tokens_are_revoked_at_once);

async fn corrupt_rows_are_errors_never_defaults(db: &TestDb) {
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    // (A budget's period cannot be corrupt: the schema checks it.)
    store.put_secret(SecretOwner::Org { org: &org.id }, &key("K"), &SecretValue::new("v"), "admin").await.unwrap();
    raw_exec(db, "UPDATE org_secrets SET key_version = -1").await;
    assert_eq!(store.load_workspace_secrets(&org.id, "none").await.unwrap_err().code(), "STORAGE_ERROR");
    assert_eq!(store.list_secrets(SecretOwner::Org { org: &org.id }).await.unwrap_err().code(), "STORAGE_ERROR");
}
conformance!(corrupt_rows_are_errors_never_defaults);

/// Many admissions at once through many connections, all against one budget: exactly as
/// many as fit are admitted, however their transactions interleave.
async fn admissions_through_many_connections_never_pass_the_limit(db: &TestDb) {
    use wsd_store::{Admission, BudgetPeriod, BudgetUnit, Estimate, NewBudget, Release, UsageRecord};
    let store = std::sync::Arc::new(support::open_with(db, Keyring::generate(), 32).await.unwrap());
    let mut held = Vec::new();
    let org = store.create_org("acme", "admin").await.unwrap();
    let a = store.create_workspace(&org.id, &ws("a", "opus"), "admin").await.unwrap().id;
    let budget = NewBudget { workspace_id: None, unit: BudgetUnit::Tokens, period: BudgetPeriod::Day, limit: 150 };
    store.put_budget(&org.id, &budget, "admin").await.unwrap();
    let now = wsd_store::now_ms();
    for round in 0..3 {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(300));
        let attempts: Vec<_> = (0..300)
            .map(|_| {
                let (store, org, a, start) = (store.clone(), org.id.clone(), a.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    reserve(&store, &org, &a, Estimate { tokens: 1, cost_micros: None }, now, now + 60_000).await.unwrap()
                })
            })
            .collect();
        let mut admitted = 0;
        for attempt in attempts {
            if let Admission::Admitted { reservation: Some(id), .. } = attempt.await.unwrap() {
                admitted += 1;
                held.push(id);
            }
        }
        assert_eq!(admitted, if round == 0 { 150 } else { 0 }, "round {round}");
    }
    let standing = &store.budget_standings(&org.id, now).await.unwrap()[0];
    assert_eq!((standing.reserved, standing.remaining), (150, 0));
    // Each request's ledger row releases exactly its reservation: used 0 tokens each, the
    // whole budget is free again; a row naming a released reservation releases nothing.
    let rows: Vec<_> = held
        .iter()
        .map(|id| UsageRecord { reservation: Some(Release::Reservation(id.clone())), ..usage(&org.id, &a, now, 0, None) })
        .collect();
    store.append_usage(&rows[..100]).await.unwrap();
    assert_eq!(store.budget_standings(&org.id, now).await.unwrap()[0].reserved, 50);
    store.append_usage(&rows).await.unwrap();
    let standing = &store.budget_standings(&org.id, now).await.unwrap()[0];
    assert_eq!((standing.spent, standing.reserved, standing.remaining), (0, 0, 150));
}
conformance!(admissions_through_many_connections_never_pass_the_limit);

/// Admission under budgets holds under concurrency: spent + reserved + estimate never
/// passes a limit, whatever the number of requests at once; a request's ledger row releases
/// its reservation with what it really used; an expired reservation no longer counts.
async fn budget_reservations_hold_under_concurrency(db: &TestDb) {
    use wsd_store::{Admission, BudgetPeriod, BudgetUnit, Estimate, NewBudget, Release, UsageRecord};
    let store = std::sync::Arc::new(open(db, Keyring::generate()).await.unwrap());
    let org = store.create_org("acme", "admin").await.unwrap();
    let a = store.create_workspace(&org.id, &ws("a", "opus"), "admin").await.unwrap().id;
    let b = store.create_workspace(&org.id, &ws("b", "opus"), "admin").await.unwrap().id;
    let now = wsd_store::now_ms();
    let estimate = |tokens: i64, cost: Option<i64>| Estimate { tokens, cost_micros: cost };
    // No budget: nothing held.
    let free = reserve(&store, &org.id, &a, estimate(20, None), now, now + 60_000).await.unwrap();
    assert_eq!(free, Admission::Admitted { reservation: None, standings: Vec::new() });

    let budget = |workspace: Option<&str>, unit, limit| NewBudget {
        workspace_id: workspace.map(str::to_owned),
        unit,
        period: BudgetPeriod::Day,
        limit,
    };
    store.put_budget(&org.id, &budget(None, BudgetUnit::Tokens, 100), "admin").await.unwrap();
    // 40 at once, 20 tokens each, against 100: exactly 5 admitted.
    let attempts = (0..40).map(|_| {
        let (store, org, a) = (store.clone(), org.id.clone(), a.clone());
        tokio::spawn(async move { reserve(&store, &org, &a, estimate(20, None), now, now + 60_000).await.unwrap() })
    });
    let mut admitted = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Admission::Admitted { reservation: Some(id), standings } => {
                assert!(standings[0].remaining >= 0 && standings[0].spent + standings[0].reserved <= 100, "{standings:?}");
                admitted.push(id);
            }
            Admission::Exceeded { standing, estimate } => assert!(standing.spent + standing.reserved + estimate > 100),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted.len(), 5);
    let standing = &store.budget_standings(&org.id, now).await.unwrap()[0];
    assert_eq!((standing.spent, standing.reserved, standing.remaining), (0, 100, 0));

    // Two requests end, having used 7 and 13 tokens: 80 reserved, 20 spent.
    let row = |reservation: &str, input: i64| UsageRecord {
        at: now,
        org_id: org.id.clone(),
        workspace_id: a.clone(),
        provider: "minimax".into(),
        model: "MiniMax-M2.7".into(),
        input_tokens: input,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 1,
        request_id: "r".into(),
        routing: "platform".into(),
        cost_micros: Some(input * 1_000),
        reservation: Some(Release::Reservation(reservation.to_owned())),
    };
    store.append_usage(&[row(&admitted[0], 7), row(&admitted[1], 13)]).await.unwrap();
    let standing = &store.budget_standings(&org.id, now).await.unwrap()[0];
    assert_eq!((standing.spent, standing.reserved, standing.remaining), (20, 60, 20));
    assert!(matches!(reserve(&store, &org.id, &b, estimate(20, None), now, now + 60_000).await.unwrap(), Admission::Admitted { .. }));
    assert!(matches!(reserve(&store, &org.id, &b, estimate(1, None), now, now + 60_000).await.unwrap(), Admission::Exceeded { .. }));
    // Reservations that outlive their request (wsd stopped) expire.
    let later = now + 60_001;
    let standing = &store.budget_standings(&org.id, later).await.unwrap()[0];
    assert_eq!((standing.spent, standing.reserved), (20, 0));
    assert!(matches!(reserve(&store, &org.id, &b, estimate(80, None), later, later + 60_000).await.unwrap(), Admission::Admitted { .. }));

    // Every budget that applies must hold: a workspace's own, in USD, beside the org's.
    let other = store.create_org("other", "admin").await.unwrap();
    let c = store.create_workspace(&other.id, &ws("c", "opus"), "admin").await.unwrap().id;
    store.put_budget(&other.id, &budget(None, BudgetUnit::Tokens, 1_000_000), "admin").await.unwrap();
    store.put_budget(&other.id, &budget(Some(&c), BudgetUnit::Usd, 50_000), "admin").await.unwrap();
    let foreign = store.put_budget(&org.id, &budget(Some(&c), BudgetUnit::Usd, 1), "admin").await;
    assert!(matches!(foreign, Err(StoreError::NotFound { .. })), "another org's workspace: {foreign:?}");
    let Admission::Admitted { standings, .. } =
        reserve(&store, &other.id, &c, estimate(100, Some(30_000)), now, now + 60_000).await.unwrap()
    else {
        panic!("within both budgets")
    };
    let usd = standings.iter().find(|s| s.budget.unit == BudgetUnit::Usd).unwrap();
    assert_eq!((usd.reserved, usd.remaining), (30_000, 20_000));
    let Admission::Exceeded { standing, estimate: over } =
        reserve(&store, &other.id, &c, estimate(100, Some(30_000)), now, now + 60_000).await.unwrap()
    else {
        panic!("over the USD budget")
    };
    assert_eq!((standing.budget.unit, over), (BudgetUnit::Usd, 30_000));
    // A model without a price cannot be admitted under a USD budget.
    assert!(matches!(reserve(&store, &other.id, &c, estimate(1, None), now, now + 60_000).await.unwrap(), Admission::Unpriced { .. }));
    // The other org's budgets are its own.
    assert_eq!(store.budget_standings(&org.id, later).await.unwrap().len(), 1);
}
conformance!(budget_reservations_hold_under_concurrency);

/// Budget slices leased to processes: a lease is a reservation like a request's, so the
/// budget holds in the database whatever each process admits in memory within its slices;
/// slices shrink to single requests near the limit; ledger rows draw from their lease, a
/// lease gives back what it holds beyond its requests, and is released or expires whole.
async fn budget_leases_hold_the_limit_and_release_exactly_once(db: &TestDb) {
    use wsd_store::{Admission, Amounts, BudgetPeriod, BudgetUnit, Estimate, LeaseRequest, Leased, NewBudget, Release, UsageRecord};
    let store = std::sync::Arc::new(support::open_with(db, Keyring::generate(), 16).await.unwrap());
    let org = store.create_org("acme", "admin").await.unwrap();
    let a = store.create_workspace(&org.id, &ws("a", "opus"), "admin").await.unwrap().id;
    let b = store.create_workspace(&org.id, &ws("b", "opus"), "admin").await.unwrap().id;
    let now = wsd_store::now_ms();
    let need = Estimate { tokens: 20, cost_micros: Some(2_000) };
    let want = Amounts { tokens: 20 * 64, cost_micros: 2_000 * 64 };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (org_id, a, b): (&'static str, &'static str, &'static str) = (leak(org.id.clone()), leak(a), leak(b));
    let request = move |workspace: &'static str, lease: &'static str, returned: Option<(&'static str, Amounts)>| LeaseRequest {
        org: org_id,
        workspace,
        lease,
        returned,
        need,
        want,
        now,
        expires_at: now + 60_000,
    };
    // No budget: nothing leased.
    assert_eq!(store.lease(&request(a, "lease_0", None)).await.unwrap(), Leased::Unbudgeted);

    let budget = |workspace: Option<&str>, unit, limit| NewBudget {
        workspace_id: workspace.map(str::to_owned),
        unit,
        period: BudgetPeriod::Day,
        limit,
    };
    store.put_budget(org_id, &budget(None, BudgetUnit::Tokens, 1_000), "admin").await.unwrap();
    store.put_budget(org_id, &budget(Some(b), BudgetUnit::Usd, 1_000_000), "admin").await.unwrap();
    // An eighth of the headroom: 125 tokens; no USD budget applies to `a`.
    let Leased::Granted { granted, standings } = store.lease(&request(a, "lease_a1", None)).await.unwrap() else { panic!() };
    assert_eq!(granted, Amounts { tokens: 125, cost_micros: 0 });
    assert_eq!((standings.len(), standings[0].reserved), (1, 0));
    // `b` leases in both units; the org's tokens are seen reserved by the first lease.
    let Leased::Granted { granted, standings } = store.lease(&request(b, "lease_b1", None)).await.unwrap() else { panic!() };
    assert_eq!(granted, Amounts { tokens: 109, cost_micros: 125_000 });
    let tokens = |standings: &[wsd_store::BudgetStanding]| {
        let s = standings.iter().find(|s| s.budget.unit == BudgetUnit::Tokens).unwrap();
        (s.spent, s.reserved)
    };
    assert_eq!(tokens(&standings), (0, 125));
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (0, 234));
    // A USD budget refuses a request without a price, as admission does.
    let unpriced = LeaseRequest { need: Estimate { tokens: 1, cost_micros: None }, ..request(b, "lease_b0", None) };
    assert!(matches!(store.lease(&unpriced).await.unwrap(), Leased::Refused(Admission::Unpriced { .. })));

    // Rows draw what they used from their lease: spent grows by as much as reserved shrinks.
    let row = |workspace: &str, lease: &str, used: i64| UsageRecord {
        reservation: Some(Release::Lease { id: lease.to_owned(), drawn: Amounts { tokens: used, cost_micros: 0 }, last: false }),
        ..usage(org_id, workspace, now, used, Some(0))
    };
    store.append_usage(&[row(a, "lease_a1", 30), row(a, "lease_a1", 15), row(b, "lease_b1", 9)]).await.unwrap();
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (54, 180));
    // `a` asks again, giving back what its first lease holds beyond 20 in flight: 80 − 20 = 60.
    let given_back = Amounts { tokens: 60, cost_micros: 0 };
    let Leased::Granted { granted, standings } = store.lease(&request(a, "lease_a2", Some(("lease_a1", given_back)))).await.unwrap() else {
        panic!()
    };
    assert_eq!((tokens(&standings), granted.tokens), ((54, 120), (1_000 - 54 - 120) / 8));
    // The last row of a replaced lease releases it whole: 20 − 12 drawn, then the 8 left.
    let last = UsageRecord {
        reservation: Some(Release::Lease { id: "lease_a1".into(), drawn: Amounts { tokens: 12, cost_micros: 0 }, last: true }),
        ..usage(org_id, a, now, 12, Some(0))
    };
    store.append_usage(&[last]).await.unwrap();
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (66, 100 + (1_000 - 54 - 120) / 8));
    // Released whole: what each lease still holds leaves the totals, once.
    store.release_reservations(&["lease_a1".to_owned(), "lease_a2".to_owned(), "lease_b1".to_owned()]).await.unwrap();
    store.release_reservations(&["lease_a1".to_owned()]).await.unwrap();
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (66, 0));
    // A row for a released lease draws nothing, and its usage counts.
    store.append_usage(&[row(a, "lease_a1", 6)]).await.unwrap();
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (72, 0));

    // Near the limit slices are single requests: leases from many connections at once never
    // hold more than the limit; each one holds exactly one request's need.
    store.put_budget(org_id, &budget(None, BudgetUnit::Tokens, 72 + 100), "admin").await.unwrap();
    let attempts: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let lease = leak(format!("lease_many_{i}"));
            tokio::spawn(async move { store.lease(&request(a, lease, None)).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Leased::Granted { granted: g, .. } => granted.push(g.tokens),
            Leased::Refused(Admission::Exceeded { standing, estimate }) => assert!(standing.spent + standing.reserved + estimate > 172),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted.iter().sum::<i64>(), 100, "{granted:?}");
    assert!(granted.iter().all(|&g| g >= 20), "{granted:?}");
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (72, 100));
    // Extended, a lease outlives its first expiry; one swept away after its expiry is gone.
    let ids: Vec<String> = (0..40).map(|i| format!("lease_many_{i}")).collect();
    let extended = store.extend_reservations(&ids, now + 120_000).await.unwrap();
    assert_eq!(extended.len(), 5);
    assert_eq!(tokens(&store.budget_standings(org_id, now + 60_001).await.unwrap()), (72, 100));
    assert_eq!(tokens(&store.budget_standings(org_id, now + 120_001).await.unwrap()), (72, 0), "expired, no longer counted");
    assert_eq!(store.extend_reservations(&extended, now - 1).await.unwrap(), extended);
    store.append_usage(&[usage(org_id, a, now, 0, Some(0))]).await.unwrap();
    assert!(store.extend_reservations(&extended, now + 60_000).await.unwrap().is_empty(), "swept with the next rows");
    assert_eq!(tokens(&store.budget_standings(org_id, now).await.unwrap()), (72, 0), "released once");
}
conformance!(budget_leases_hold_the_limit_and_release_exactly_once);

/// An org's credential delivery, and what a proxy-delivered workspace's usage token stands
/// for (a provider and a secret's name and origin, never a value), read back as written;
/// ledger rows keep whose key they ran on, and usage is summed per routing.
async fn credential_delivery_and_proxied_usage_tokens(db: &TestDb) {
    use wsd_core::plan::CredentialDelivery;
    use wsd_store::{ProxiedRoute, UsageRecord};
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    assert_eq!(org.credential_delivery, None, "the platform's default until the org chooses");
    let a = store.create_workspace(&org.id, &ws("a", "MiniMax-M2.7"), "admin").await.unwrap();
    for delivery in [Some(CredentialDelivery::Proxy), Some(CredentialDelivery::Direct), None, Some(CredentialDelivery::Proxy)] {
        assert_eq!(store.set_credential_delivery(&org.id, delivery, "admin").await.unwrap().credential_delivery, delivery);
        assert_eq!(store.get_org(&org.id).await.unwrap().credential_delivery, delivery);
        assert_eq!(store.plan_input(&org.id, &a.id).await.unwrap().delivery, delivery);
    }
    assert_eq!(store.list_orgs().await.unwrap()[0].credential_delivery, Some(CredentialDelivery::Proxy));
    assert!(matches!(store.set_credential_delivery("nobody", None, "admin").await, Err(StoreError::NotFound { .. })));
    let audited = store.list_audit(Some(&org.id), 0, 100).await.unwrap();
    assert_eq!(audited.iter().filter(|e| e.action == "org.credential_delivery").count(), 4);

    let route = ProxiedRoute { provider: "minimax".into(), key: key("MINIMAX_API_KEY"), origin: SecretOrigin::Workspace };
    let (minted, proxied) = store.create_usage_token(&org.id, &a.id, Some(&route), "admin").await.unwrap();
    assert_eq!(minted.proxied.as_ref(), Some(&route));
    let found = store.authenticate_token(proxied.expose()).await.unwrap().unwrap();
    assert_eq!((found.kind, found.workspace_id.as_deref(), found.proxied), (TokenKind::Usage, Some(a.id.as_str()), Some(route)));
    let (_, platform) = store.create_usage_token(&org.id, &a.id, None, "admin").await.unwrap();
    assert_eq!(store.authenticate_token(platform.expose()).await.unwrap().unwrap().proxied, None);

    let row = |routing: &str, input: i64| UsageRecord { routing: routing.into(), ..usage(&org.id, &a.id, 1_000, input, None) };
    store.append_usage(&[row("byok", 5), row("platform", 7), row("byok", 11)]).await.unwrap();
    let requests = store.usage_requests(&org.id, None, 10).await.unwrap();
    assert_eq!(requests.iter().map(|r| r.routing.as_str()).collect::<Vec<_>>(), ["byok", "platform", "byok"]);
    let summary = store.usage_summary(&org.id, 0, 2_000).await.unwrap();
    let sums: Vec<(&str, i64)> = summary.iter().map(|s| (s.routing.as_str(), s.totals.input_tokens)).collect();
    assert_eq!(sums, [("byok", 16), ("platform", 7)]);
    // The schema refuses any other routing.
    assert!(store.append_usage(&[row("someone-else", 1)]).await.is_err());
}
conformance!(credential_delivery_and_proxied_usage_tokens);

/// Each budget's standing counts its own window (UTC day, ISO week, month), scope (the org,
/// or one workspace) and unit (tokens, micro-dollars), from the daily totals and the live
/// reservations, and admission reads the budgets of the org and of the workspace only.
async fn standings_count_each_budgets_window_scope_and_unit(db: &TestDb) {
    use wsd_store::{Admission, BudgetPeriod, BudgetUnit, Estimate, NewBudget};
    const DAY: i64 = 86_400_000;
    let store = open(db, Keyring::generate()).await.unwrap();
    let org = store.create_org("acme", "admin").await.unwrap();
    let a = store.create_workspace(&org.id, &ws("a", "opus"), "admin").await.unwrap().id;
    let b = store.create_workspace(&org.id, &ws("b", "opus"), "admin").await.unwrap().id;
    // Wednesday 2026-11-18, noon UTC: the week began on Monday the 16th, the month on the 1st.
    let now = 1_795_003_200_000;
    let row = |workspace: &str, at: i64, tokens: i64, cost: i64| usage(&org.id, workspace, at, tokens, Some(cost));
    store
        .append_usage(&[
            row(&a, now, 1, 10),              // today
            row(&a, now - DAY, 2, 20),        // Tuesday: this week
            row(&b, now - 2 * DAY, 4, 40),    // Monday: this week
            row(&a, now - 3 * DAY, 8, 80),    // last Sunday: this month
            row(&b, now - 20 * DAY, 16, 160), // October
        ])
        .await
        .unwrap();
    let budget =
        |workspace: Option<&str>, unit, period| NewBudget { workspace_id: workspace.map(str::to_owned), unit, period, limit: 1_000_000 };
    for (workspace, unit, period) in [
        (None, BudgetUnit::Tokens, BudgetPeriod::Day),
        (None, BudgetUnit::Tokens, BudgetPeriod::Week),
        (None, BudgetUnit::Usd, BudgetPeriod::Month),
        (Some(a.as_str()), BudgetUnit::Tokens, BudgetPeriod::Week),
        (Some(a.as_str()), BudgetUnit::Usd, BudgetPeriod::Month),
        (Some(b.as_str()), BudgetUnit::Tokens, BudgetPeriod::Month),
    ] {
        store.put_budget(&org.id, &budget(workspace, unit, period), "admin").await.unwrap();
    }
    // A live reservation of each workspace, and an expired one that no longer counts.
    for (workspace, tokens, cost, expires) in [(&a, 100, 1_000, now + DAY), (&b, 200, 2_000, now + DAY), (&a, 400, 4_000, now - 1)] {
        let admitted = reserve(&store, &org.id, workspace, Estimate { tokens, cost_micros: Some(cost) }, now - 2, expires).await.unwrap();
        assert!(matches!(admitted, Admission::Admitted { .. }), "{admitted:?}");
    }
    let standings = store.budget_standings(&org.id, now).await.unwrap();
    let mut seen: Vec<(Option<String>, BudgetUnit, BudgetPeriod, i64, i64)> =
        standings.iter().map(|s| (s.budget.workspace_id.clone(), s.budget.unit, s.budget.period, s.spent, s.reserved)).collect();
    seen.sort_by_key(|(w, u, p, ..)| (w.clone(), u.as_str(), p.as_str()));
    let mut expected = vec![
        (None, BudgetUnit::Tokens, BudgetPeriod::Day, 1, 300),
        (None, BudgetUnit::Tokens, BudgetPeriod::Week, 1 + 2 + 4, 300),
        (None, BudgetUnit::Usd, BudgetPeriod::Month, 10 + 20 + 40 + 80, 3_000),
        (Some(a.clone()), BudgetUnit::Tokens, BudgetPeriod::Week, 1 + 2, 100),
        (Some(a.clone()), BudgetUnit::Usd, BudgetPeriod::Month, 10 + 20 + 80, 1_000),
        (Some(b.clone()), BudgetUnit::Tokens, BudgetPeriod::Month, 4, 200),
    ];
    expected.sort_by_key(|(w, u, p, ..)| (w.clone(), u.as_str(), p.as_str()));
    assert_eq!(seen, expected);
    // Admission of workspace b reads the org's budgets and b's, never a's.
    let Admission::Admitted { standings, .. } =
        reserve(&store, &org.id, &b, Estimate { tokens: 1, cost_micros: Some(1) }, now, now + DAY).await.unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(standings.len(), 4);
    assert!(standings.iter().all(|s| s.budget.workspace_id.as_deref() != Some(a.as_str())));
}
conformance!(standings_count_each_budgets_window_scope_and_unit);
