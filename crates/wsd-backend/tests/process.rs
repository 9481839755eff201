//! The process backend with real child processes.

use std::time::Duration;

use wsd_backend::{Backend, InstanceStatus, Launch, LaunchFile, ProcessBackend, ProcessOptions};
use wsd_core::SecretValue;

fn backend(name: &str) -> ProcessBackend {
    let root = std::env::temp_dir().join(format!("wsd-backend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    ProcessBackend::new(ProcessOptions { root, grace: Duration::from_millis(500), log_cap_bytes: 64 })
}

fn launch(id: &str, argv: &[&str]) -> Launch {
    Launch {
        workspace_id: id.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("GREETING".into(), SecretValue::new("hello"))],
        files: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_outlive_a_restart_of_wsd_and_are_adopted() {
    let first = backend("adopt");
    let instance = first.start(launch("w1", &["sleep", "30"])).await.unwrap();
    assert_eq!(first.status(&instance).await, InstanceStatus::Running);
    drop(first);
    // A new backend, as after a restart of wsd: the process still runs and is adopted.
    let second = backend_same_root("adopt");
    assert_eq!(second.status(&instance).await, InstanceStatus::Running);
    second.stop(&instance).await.unwrap();
    assert_eq!(second.status(&instance).await, InstanceStatus::Exited { code: None });
    // A pid reused by another process is not mistaken for the workspace.
    let (pid, _) = instance.strip_prefix("process:").unwrap().split_once(':').unwrap();
    assert_eq!(second.status(&format!("process:{pid}:1")).await, InstanceStatus::Exited { code: None });
    assert_eq!(second.status("garbage").await, InstanceStatus::Missing);
}

fn backend_same_root(name: &str) -> ProcessBackend {
    let root = std::env::temp_dir().join(format!("wsd-backend-{name}-{}", std::process::id()));
    ProcessBackend::new(ProcessOptions { root, grace: Duration::from_millis(500), log_cap_bytes: 64 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_are_reported_with_their_code_and_output_is_capped() {
    let backend = backend("exit");
    let instance = backend.start(launch("w2", &["sh", "-c", "printf '%s' \"$GREETING\"; seq 1 1000; exit 7"])).await.unwrap();
    for _ in 0..200 {
        if backend.status(&instance).await != InstanceStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(backend.status(&instance).await, InstanceStatus::Exited { code: Some(7) });
    let logs = backend.logs("w2", 1000).await.unwrap();
    let mut lines = logs.lines();
    assert_eq!(lines.next(), Some("[wsd: earlier output over 64 bytes was dropped]"), "{logs}");
    let kept: Vec<u32> = lines.map(|l| l.parse().unwrap()).collect();
    assert!(!kept.is_empty() && kept.len() <= 32 / 4, "the newest lines, under half the cap: {kept:?}");
    assert_eq!(*kept.last().unwrap(), 1000, "{logs}");
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "whole lines, in order: {kept:?}");

    let small = backend.start(launch("w8", &["sh", "-c", "printf '%s\\n' \"$GREETING\""])).await.unwrap();
    for _ in 0..200 {
        if backend.status(&small).await != InstanceStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(backend.logs("w8", 10).await.unwrap(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_sent_first_and_sigkill_after_the_grace_period() {
    let backend = backend("stop");
    let polite = backend.start(launch("w3", &["sleep", "30"])).await.unwrap();
    let started = std::time::Instant::now();
    backend.stop(&polite).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(450), "sleep stops on SIGTERM");
    // A shell that ignores SIGTERM (its short sleeps die, the loop goes on) needs SIGKILL.
    let stubborn = backend.start(launch("w4", &["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    backend.stop(&stubborn).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500), "SIGKILL waits for the grace period");
    assert_ne!(backend.status(&stubborn).await, InstanceStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_launches_are_refused_before_anything_runs() {
    let backend = backend("bad");
    let mut escaping = launch("w5", &["true"]);
    escaping.files.push(LaunchFile { path: "../outside".into(), content: SecretValue::new("x") });
    assert!(backend.start(escaping).await.unwrap_err().to_string().contains("leaves the workspace home"));
    assert!(backend.start(launch("../w", &["true"])).await.is_err());
    assert!(backend.start(launch("w6", &[])).await.unwrap_err().to_string().contains("empty"));
    let e = backend.start(launch("w7", &["/nonexistent/agent"])).await.unwrap_err().to_string();
    assert!(e.contains("cannot start `/nonexistent/agent`"), "{e}");
}

/// The start time `/proc` records for a pid (field 22), as the instance id carries it.
fn start_time_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_workspace_keeps_its_log_under_the_cap() {
    // A process a previous run of wsd started: it writes into its log on its own.
    let backend = backend("adopt-log");
    let dir = std::env::temp_dir().join(format!("wsd-backend-adopt-log-{}", std::process::id())).join("w9");
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("output.log")).unwrap();
    let mut child = std::process::Command::new("sh").args(["-c", "sleep 0.3; seq 1 2000; exec sleep 30"]).stdout(log).spawn().unwrap();
    let instance = format!("process:{}:{}", child.id(), start_time_of(child.id()));
    assert!(backend.adopt("w9", &instance).await);
    let mut logs = String::new();
    for _ in 0..200 {
        logs = backend.logs("w9", 1000).await.unwrap();
        if logs.ends_with("\n2000") && logs.starts_with("[wsd: earlier output") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logs.starts_with("[wsd: earlier output over 64 bytes was dropped]\n") && logs.ends_with("\n2000"), "{logs}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!backend.adopt("w9", &instance).await, "a process that is gone is not adopted");
    assert!(!backend.adopt("../w9", &instance).await);
}
