//! `wsd keys rotate|status` and `wsd audit verify` on a real database, including a rotation
//! killed with SIGKILL at random points and resumed: no value is ever lost.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wsd_core::plan::SecretOrigin;
use wsd_core::{EnvKey, SecretValue};
use wsd_store::keyfile::{self, KeySource};
use wsd_store::{NewWorkspace, SecretOwner, Store, StoreOptions};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsd-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wsd(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsd"));
    command.args(args).env("WSD_DATA_DIR", data).env_remove("WSD_DATABASE_URL").env_remove("WSD_MASTER_KEY");
    command
}

fn run(data: &Path, args: &[&str]) -> Output {
    wsd(data, args).output().unwrap()
}

async fn open(data: &Path, create: bool) -> Store {
    let key_file = data.join("master.key");
    let (keyring, _) = keyfile::load_or_create(&key_file, create).unwrap();
    Store::open(StoreOptions {
        url: format!("sqlite://{}", data.join("wsd.db").display()),
        create_sqlite: create,
        keyring,
        key_source: KeySource::File(key_file),
        max_connections: 2,
    })
    .await
    .unwrap()
}

fn value(workspace: usize, i: usize) -> String {
    format!("value-{workspace}-{i}-{}", "x".repeat(i % 7))
}

/// Seeds `workspaces` workspaces with `per_workspace` secrets each; returns (org, workspace ids).
async fn seed(data: &Path, workspaces: usize, per_workspace: usize) -> (String, Vec<String>) {
    let store = open(data, true).await;
    let org = store.create_org("acme", "test").await.unwrap();
    let mut ids = Vec::new();
    for w in 0..workspaces {
        let ws = store
            .create_workspace(&org.id, &NewWorkspace { name: &format!("w{w}"), runtime: "claude-code", model: "opus" }, "test")
            .await
            .unwrap();
        for i in 0..per_workspace {
            let owner = SecretOwner::Workspace { org: &org.id, workspace: &ws.id };
            store.put_secret(owner, &EnvKey::new(&format!("K_{i}")).unwrap(), &SecretValue::new(value(w, i)), "test").await.unwrap();
        }
        ids.push(ws.id);
    }
    store.close().await;
    (org.id, ids)
}

async fn assert_every_value_intact(data: &Path, org: &str, workspaces: &[String], per_workspace: usize) -> wsd_store::KeyStatus {
    let store = open(data, false).await;
    for (w, id) in workspaces.iter().enumerate() {
        let loaded = store.load_workspace_secrets(org, id).await.unwrap();
        assert_eq!(loaded.names.workspace.len(), per_workspace);
        for i in 0..per_workspace {
            let got = loaded.value(SecretOrigin::Workspace, &EnvKey::new(&format!("K_{i}")).unwrap()).unwrap();
            assert_eq!(got.expose(), value(w, i));
        }
    }
    let status = store.key_status().await.unwrap();
    store.close().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_status_report_progress() {
    let data = fresh_dir("rotate");
    let (org, ids) = seed(&data, 2, 30).await;
    let out = run(&data, &["keys", "status"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "newest key version: 1\n  version 1: 61 values\n");

    let out = run(&data, &["keys", "rotate", "--batch-size", "25"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("added key version 2 to "), "{stdout}");
    assert!(stdout.contains("re-encrypted 25 of at most 61 values"), "{stdout}");
    assert!(stdout.ends_with("done: every value is on key version 2 (60 re-encrypted now)\n"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&run(&data, &["keys", "status"]).stdout), "newest key version: 2\n  version 2: 61 values\n");

    let status = assert_every_value_intact(&data, &org, &ids, 30).await;
    assert_eq!(status.rows_by_version, [(2, 61)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_at_random_points_loses_nothing_and_a_rerun_finishes() {
    let data = fresh_dir("crash");
    let (org, ids) = seed(&data, 8, 250).await;
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    for _ in 0..6 {
        let mut child = wsd(&data, &["keys", "rotate", "--batch-size", "20"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(5 + next() % 120));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // Whatever state the kills left, every value still opens.
    let interrupted = assert_every_value_intact(&data, &org, &ids, 250).await;
    eprintln!("after the kills: {interrupted:?}");

    let out = run(&data, &["keys", "rotate", "--batch-size", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let status = assert_every_value_intact(&data, &org, &ids, 250).await;
    assert_eq!(status.rows_by_version.len(), 1, "{status:?}");
    assert_eq!(status.rows_by_version.get(&status.current_version), Some(&2001));
    assert_eq!(run(&data, &["audit", "verify"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_reports_a_broken_chain() {
    let data = fresh_dir("audit");
    seed(&data, 1, 3).await;
    let out = run(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "audit log intact: 5 events, newest 5\n");

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("wsd.db").display())).await.unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3").execute(&pool).await.unwrap();
    pool.close().await;
    let out = run(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("AUDIT LOG BROKEN: the audit log is broken at event 3"));
}

#[test]
fn commands_on_a_missing_database_fail_without_creating_one() {
    let data = fresh_dir("missing");
    let out = run(&data, &["keys", "status", "--database-url", &format!("sqlite://{}/typo.db", data.display())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!data.join("typo.db").exists());
}
