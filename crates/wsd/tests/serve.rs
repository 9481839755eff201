//! `wsd serve` as a real process on loopback: the first run on defaults creates its state,
//! it answers, and it stops on SIGTERM.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::{Server, fresh_dir};

#[test]
fn first_run_on_defaults_creates_its_state_and_prints_the_admin_token_once() {
    let data = fresh_dir("first-run");
    let server = Server::start(&data);
    assert_eq!(server.preamble.len(), 1, "{:?}", server.preamble);
    assert!(server.preamble[0].starts_with("admin token (shown once, store it now): wsd_"), "{:?}", server.preamble);
    assert!(data.join("wsd.db").exists());
    let key_mode = std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    // Workspaces running as uids of their own (wsd as root) must reach their homes inside
    // it: then the data dir is traversable but not listable, and every file in it private.
    let dir_mode = if nix::unistd::geteuid().is_root() { 0o711 } else { 0o700 };
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, dir_mode, "the data dir is wsd's alone");
    for file in std::fs::read_dir(&data).unwrap().flatten().filter(|e| e.path().is_file()) {
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{}", file.path().display());
    }
    let (status, body) = server.get("/readyz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    server.stop();

    let again = Server::start(&data);
    assert!(again.preamble.is_empty(), "the admin token is printed only once: {:?}", again.preamble);
    again.stop();
}

#[test]
fn serves_health_and_the_registry_and_stops_on_sigterm() {
    let server = Server::start(&fresh_dir("registry"));
    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((health["status"].as_str(), health["backend"]["available"].as_bool()), (Some("ok"), Some(true)), "{body}");
    assert!(health["backend"]["isolation"].as_str().unwrap().starts_with("sandboxed (bwrap"), "{body}");

    let token = server.admin_token();
    assert_eq!(server.get("/v1/registry/providers").0, 401);
    let (status, body) = server.get_with("/v1/registry/providers", Some(&token));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["providers"].as_array().unwrap().len(), 14);

    let (status, body) = server.get_with("/v1/registry/runtimes", Some(&token));
    assert_eq!(status, 200);
    assert!(body.contains("claude-code"));

    let (status, body) = server.get("/nope");
    assert_eq!(status, 404);
    assert!(body.contains("NOT_FOUND"));
    server.stop();
}

#[test]
fn a_wrong_master_key_is_refused_at_start() {
    let data = fresh_dir("wrong-key");
    Server::start(&data).stop();
    let out = Command::new(env!("CARGO_BIN_EXE_wsd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WSD_DATA_DIR", &data)
        .env("WSD_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the master key cannot decrypt this database"), "{stderr}");
}

#[test]
fn without_a_sandbox_workspaces_cannot_run_unless_the_operator_says_so() {
    // A sandbox program that is not there: the server runs, the backend says why it cannot.
    let data = fresh_dir("no-sandbox");
    let server = Server::start_with_config(&data, Some("[backends.process]\nbwrap = \"/nonexistent/bwrap\"\n"));
    assert!(
        server.preamble.iter().any(|l| l.contains("workspaces cannot run") && l.contains("/nonexistent/bwrap")),
        "{:?}",
        server.preamble
    );
    let health: serde_json::Value = serde_json::from_str(&server.get("/healthz").1).unwrap();
    assert_eq!(health["backend"]["available"], false);
    assert!(health["backend"]["unavailable_reason"].as_str().unwrap().contains("bubblewrap"), "{health}");
    server.stop();

    // `sandbox = "none"`, explicitly: it runs, and says so at every start.
    let server = Server::start_with_config(&data, Some("[backends.process]\nsandbox = \"none\"\n"));
    assert!(server.preamble.iter().any(|l| l.contains("WARNING: workspaces run unsandboxed")), "{:?}", server.preamble);
    let health: serde_json::Value = serde_json::from_str(&server.get("/healthz").1).unwrap();
    assert!(health["backend"]["isolation"].as_str().unwrap().starts_with("none"), "{health}");
    server.stop();
}

#[test]
fn a_changed_admin_token_replaces_the_old_one_and_weak_ones_are_refused() {
    let data = fresh_dir("admin-token");
    let first = "wsd_first-admin-token-Zq8Lr2Vx9Kp4Tw7Nb3";
    let server = Server::start_with_env(&data, None, &[("WSD_ADMIN_TOKEN", first)]);
    assert_eq!(server.get_with("/v1/orgs", Some(first)).0, 200);
    server.stop();
    let second = "wsd_second-admin-token-Hy6Qm1Jc5Ud8Ge0Fa2";
    let server = Server::start_with_env(&data, None, &[("WSD_ADMIN_TOKEN", second)]);
    assert_eq!(server.get_with("/v1/orgs", Some(second)).0, 200);
    assert_eq!(server.get_with("/v1/orgs", Some(first)).0, 401, "the replaced token no longer works");
    server.stop();

    for weak in ["admin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsd"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("WSD_DATA_DIR", &data)
            .env("WSD_ADMIN_TOKEN", weak)
            .env_remove("WSD_CONFIG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{weak}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("WSD_ADMIN_TOKEN is too weak"), "{stderr}");
        if weak.len() > 8 {
            assert!(!stderr.contains(weak), "the token is never echoed: {stderr}");
        }
    }
}

#[test]
fn a_workspace_root_its_uids_cannot_reach_is_reported_not_half_run() {
    if !nix::unistd::geteuid().is_root() {
        return; // workspaces run as wsd's own uid: any directory wsd can reach will do
    }
    let data = fresh_dir("closed-root");
    // Outside wsd's data dir (inside it, wsd opens the way itself).
    let closed = fresh_dir("closed-root-elsewhere");
    std::fs::create_dir_all(closed.join("inner")).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = format!("[backends.process]\nroot = \"{}\"\n", closed.join("inner/workspaces").display());
    let server = Server::start_with_config(&data, Some(&config));
    let health: serde_json::Value = serde_json::from_str(&server.get("/healthz").1).unwrap();
    assert_eq!(health["backend"]["available"], false, "{health}");
    let reason = health["backend"]["unavailable_reason"].as_str().unwrap();
    assert!(reason.contains(&closed.display().to_string()) && reason.contains("0711"), "{reason}");
    server.stop();
}

/// SQLite is one process's database: a second server on it says so at start.
#[test]
fn a_second_server_on_one_sqlite_database_says_it_is_single_process() {
    let data = fresh_dir("sqlite-twice");
    let first = Server::start(&data);
    let log = data.join("second.log");
    let second = Server::start_logging_to(&data, None, &[], std::fs::File::create(&log).unwrap());
    let warned = std::fs::read_to_string(&log).unwrap();
    assert!(warned.contains("another wsd serve has this SQLite database open") && warned.contains("PostgreSQL"), "{warned}");
    second.stop();
    // The first one alone said nothing of the kind; once it stops, the next start is alone too.
    first.stop();
    let log = data.join("third.log");
    let third = Server::start_logging_to(&data, None, &[], std::fs::File::create(&log).unwrap());
    assert!(!std::fs::read_to_string(&log).unwrap().contains("another wsd serve"));
    third.stop();
}
