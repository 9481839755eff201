//! The process backend with real child processes, sandboxed (bubblewrap) as it runs by
//! default and unsandboxed (`sandbox = "none"`) where a test shows what the sandbox stops.
//!
//! The hostile-workspace tests run a workspace command that behaves like a prompt-injected
//! agent: it tries to read another workspace's files and env, wsd's key and env, to kill
//! another workspace and to outlive its own stop. Each attack is run twice: unsandboxed it
//! must succeed (so the test can fail), sandboxed it must not.
//!
//! These tests need bubblewrap (`/usr/bin/bwrap`); without it they fail, they never skip.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;

use wsd_backend::{
    Backend, BwrapOptions, Confinement, InstanceStatus, Launch, LaunchFile, Limits, Network, ProcessBackend, ProcessOptions, Reconciled,
    Sandbox,
};
use wsd_core::SecretValue;

const VICTIM_SECRET: &str = "canary-victim-env-5d1e";
const VICTIM_FILE: &str = "canary-victim-file-77a0";
const MASTER_KEY: &str = "canary-master-key-0b9c";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Sandboxed,
    Unsandboxed,
}

fn root_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wsd-backend-{name}-{}", std::process::id()))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn options(name: &str, mode: Mode) -> ProcessOptions {
    let mut options = ProcessOptions::sandboxed(root_of(name));
    options.grace = Duration::from_millis(500);
    // Small enough that the exit test sees its log cut.
    options.log_cap_bytes = if name.starts_with("exit") || name.starts_with("adopt") { 64 } else { 1 << 20 };
    if mode == Mode::Unsandboxed {
        options.sandbox = Sandbox::None;
    } else if is_root() {
        options.host_uids = Some(610_000..=610_999);
    }
    options
}

fn backend(name: &str, mode: Mode) -> ProcessBackend {
    let _ = std::fs::remove_dir_all(root_of(name));
    let backend = ProcessBackend::new(options(name, mode));
    if mode == Mode::Sandboxed {
        backend.probe().expect("the sandbox works here (install bubblewrap)");
    }
    backend
}

fn launch(id: &str, argv: &[&str]) -> Launch {
    Launch {
        workspace_id: id.into(),
        org_id: "org_test".into(),
        plan_hash: "0".into(),
        runtime: "test".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("GREETING".into(), SecretValue::new("hello"))],
        files: vec![],
        host_uid: None,
        confinement: Confinement::default(),
    }
}

/// A launch as the server makes it: its own uid when the backend gives one per workspace.
fn launch_as(backend: &ProcessBackend, uid_offset: u32, id: &str, argv: &[&str]) -> Launch {
    let mut launch = launch(id, argv);
    launch.host_uid = backend.host_uids().map(|uids| uids.start() + uid_offset);
    launch
}

fn pid_of(instance: &str) -> u32 {
    instance.split(':').nth(1).unwrap().parse().unwrap()
}

async fn wait_exit(backend: &ProcessBackend, instance: &str) -> InstanceStatus {
    for _ in 0..500 {
        let status = backend.status(instance).await.unwrap();
        if status != InstanceStatus::Running {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{instance} never exited");
}

/// A `sleep` duration of this test run's own (`TAG` then this process's id), so a test
/// that looks for its processes by command line never counts another run's.
fn seconds(tag: u32) -> String {
    format!("{tag}{:07}", std::process::id())
}

/// Pids of processes whose command line begins with `marker` (the process itself, not a
/// sandbox or shell that names it, nor a `setsid` that has not yet become it).
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").starts_with(marker))
        })
        .collect()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What a hostile workspace manages against a victim workspace and wsd.
async fn attack(mode: Mode) -> String {
    let name = format!("attack-{mode:?}");
    let backend = backend(&name, mode);
    // wsd's data: a master key only wsd may read.
    let data = root_of(&format!("{name}-data"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("master.key"), MASTER_KEY).unwrap();
    std::fs::write(data.join("wsd.db"), format!("sealed rows and {MASTER_KEY}")).unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();

    let victim_marker = format!("sleep {}", seconds(40));
    let victim_seconds = seconds(40);
    let mut victim = launch_as(&backend, 0, "victim", &["sleep", &victim_seconds]);
    victim.env.push(("VICTIM_KEY".into(), SecretValue::new(VICTIM_SECRET)));
    victim.files.push(LaunchFile { path: ".codex/auth.json".into(), content: SecretValue::new(VICTIM_FILE) });
    let victim = backend.start(victim).await.unwrap();
    let victim_home = backend.workspace_dir("victim").join("home");
    wait_for("the victim", || !processes_with(&victim_marker).is_empty()).await;
    let victim_pids: Vec<String> = processes_with(&victim_marker).iter().map(u32::to_string).collect();

    let script = r#"
        victim_home=$1; key=$2; wsd=$3; shift 3
        cat "$victim_home/.codex/auth.json" 2>/dev/null | grep -q canary && echo LEAK:victim-file
        ls "$victim_home" >/dev/null 2>&1 && echo LEAK:victim-home
        cat "$key" 2>/dev/null | grep -q canary && echo LEAK:master-key
        cat "$(dirname "$key")/wsd.db" 2>/dev/null | grep -q canary && echo LEAK:database
        tr '\0' '\n' < "/proc/$wsd/environ" 2>/dev/null | grep -q . && echo LEAK:wsd-environ
        for pid in "$@"; do
            tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -q canary-victim && echo LEAK:victim-environ
        done
        for pid in "$@"; do kill -9 "$pid" 2>/dev/null && echo LEAK:victim-killed; done
        echo done
    "#;
    let key = data.join("master.key").display().to_string();
    let (home, wsd) = (victim_home.display().to_string(), std::process::id().to_string());
    let mut argv = vec!["sh", "-c", script, "sh", home.as_str(), key.as_str(), wsd.as_str()];
    argv.extend(victim_pids.iter().map(String::as_str));
    let attacker = backend.start(launch_as(&backend, 1, "attacker", &argv)).await.unwrap();
    wait_exit(&backend, &attacker).await;
    let report = backend.logs("attacker", 100).await.unwrap();
    assert!(report.ends_with("done"), "{report}");
    if mode == Mode::Sandboxed {
        assert_eq!(backend.status(&victim).await.unwrap(), InstanceStatus::Running, "the victim still runs");
    }
    backend.stop("victim", &victim).await.unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_workspace_reaches_nothing_of_another_workspace_or_of_wsd() {
    let unsandboxed = attack(Mode::Unsandboxed).await;
    for leak in [
        "LEAK:victim-file",
        "LEAK:victim-home",
        "LEAK:master-key",
        "LEAK:database",
        "LEAK:wsd-environ",
        "LEAK:victim-environ",
        "LEAK:victim-killed",
    ] {
        assert!(unsandboxed.contains(leak), "without the sandbox the attack works ({leak}): {unsandboxed}");
    }
    let sandboxed = attack(Mode::Sandboxed).await;
    assert!(!sandboxed.contains("LEAK"), "{sandboxed}");
}

async fn escape(mode: Mode, tag: u32) -> Vec<u32> {
    let tag = seconds(tag);
    let name = format!("escape-{mode:?}");
    let backend = backend(&name, mode);
    // A setsid child and a double-forked one, each in the background, then the agent waits.
    let script = format!("setsid sleep {tag}1 & (sleep {tag}2 &) ; sh -c 'sleep {tag}3 &'; exec sleep {tag}4");
    let instance = backend.start(launch_as(&backend, 2, "escaper", &["sh", "-c", &script])).await.unwrap();
    wait_for("every child", || (1..=4).all(|n| !processes_with(&format!("sleep {tag}{n}")).is_empty())).await;
    backend.stop("escaper", &instance).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    (1..=4).flat_map(|n| processes_with(&format!("sleep {tag}{n}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_every_process_a_workspace_started() {
    let left = escape(Mode::Unsandboxed, 771).await;
    assert!(!left.is_empty(), "without the sandbox a setsid child outlives stop");
    for pid in left {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
    assert_eq!(escape(Mode::Sandboxed, 772).await, Vec::<u32>::new(), "sandboxed, nothing outlives stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_workspace_sees_its_own_home_and_env_only() {
    let backend = backend("view", Mode::Sandboxed);
    let mut launch = launch_as(
        &backend,
        3,
        "w-view",
        &[
            "sh",
            "-c",
            "id -u; echo home=$HOME; pwd; ls /proc | grep -c '^[0-9]'; ls -a /tmp | wc -l; cat .codex/auth.json; echo; env | sort | cut -d= -f1 | tr '\\n' ' '; echo; touch /usr/x 2>/dev/null || echo usr-read-only; grep NoNewPrivs /proc/self/status",
        ],
    );
    launch.files.push(LaunchFile { path: ".codex/auth.json".into(), content: SecretValue::new("token") });
    let instance = backend.start(launch).await.unwrap();
    assert_eq!(wait_exit(&backend, &instance).await, InstanceStatus::Exited { code: Some(0) });
    let logs = backend.logs("w-view", 20).await.unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    let uid = if is_root() { 610_003 } else { nix::unistd::getuid().as_raw() };
    assert_eq!(lines[0], uid.to_string(), "{logs}");
    assert_eq!(&lines[1..3], ["home=/home/agent", "/home/agent"], "{logs}");
    assert!(lines[3].parse::<u32>().unwrap() <= 4, "only its own processes in /proc: {logs}");
    assert_eq!(lines[4], "2", "an empty private /tmp: {logs}");
    assert_eq!(lines[5], "token");
    assert_eq!(lines[6].trim(), "GREETING HOME PATH PWD", "the plan's env and the backend's own names: {logs}");
    assert_eq!(lines[7], "usr-read-only");
    assert_eq!(lines[8].split_whitespace().collect::<Vec<_>>(), ["NoNewPrivs:", "1"], "no_new_privs: {logs}");
    // On the host, the home and the plan's files belong to the workspace's uid.
    let home = backend.workspace_dir("w-view").join("home");
    let meta = std::fs::metadata(home.join(".codex/auth.json")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&home).unwrap()), uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_the_operator_shares_from_under_tmp_is_seen_read_only() {
    // The agent's programs may live under /tmp (a build tree, say): the private /tmp does
    // not hide them.
    let tools = root_of("shared-tools");
    std::fs::create_dir_all(&tools).unwrap();
    let tool = tools.join("agent.sh");
    std::fs::write(&tool, "#!/bin/sh\necho agent ran\ntouch \"$0.written\" 2>/dev/null || echo read-only\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut options = options("shared", Mode::Sandboxed);
    options.sandbox = Sandbox::Bwrap(BwrapOptions {
        read_only: wsd_backend::DEFAULT_READ_ONLY.iter().map(PathBuf::from).chain([tools.clone()]).collect(),
        ..BwrapOptions::default()
    });
    let _ = std::fs::remove_dir_all(root_of("shared"));
    let backend = ProcessBackend::new(options);
    let instance = backend.start(launch_as(&backend, 8, "w-shared", &[tool.to_str().unwrap()])).await.unwrap();
    assert_eq!(wait_exit(&backend, &instance).await, InstanceStatus::Exited { code: Some(0) });
    assert_eq!(backend.logs("w-shared", 5).await.unwrap(), "agent ran\nread-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_network_are_applied_per_runtime() {
    let backend = backend("limits", Mode::Sandboxed);
    let mut launch = launch_as(&backend, 4, "w-limits", &["sh", "-c", "ulimit -n; ulimit -d; grep -c : /proc/net/dev"]);
    launch.confinement =
        Confinement { network: Network::None, limits: Limits { memory_mib: Some(512), processes: Some(64), open_files: Some(128) } };
    let instance = backend.start(launch).await.unwrap();
    wait_exit(&backend, &instance).await;
    let logs = backend.logs("w-limits", 10).await.unwrap();
    assert_eq!(logs, format!("128\n{}\n1", 512 * 1024), "open files, memory (KiB) and only loopback: {logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_removes_the_plans_files_and_remove_removes_everything() {
    let backend = backend("files", Mode::Sandboxed);
    let mut launch = launch_as(&backend, 5, "w-files", &["sh", "-c", "echo work > notes.txt; exec sleep 30"]);
    launch.files.push(LaunchFile { path: ".codex/auth.json".into(), content: SecretValue::new("token") });
    let instance = backend.start(launch).await.unwrap();
    let home = backend.workspace_dir("w-files").join("home");
    wait_for("the agent's work", || home.join("notes.txt").exists()).await;
    backend.stop("w-files", &instance).await.unwrap();
    assert!(!home.join(".codex/auth.json").exists(), "the credential file is gone after stop");
    assert!(home.join("notes.txt").exists(), "the agent's work survives stop");
    backend.remove("w-files").await.unwrap();
    assert!(!backend.workspace_dir("w-files").exists(), "delete leaves nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_wsd_adopts_what_it_records_and_ends_what_it_does_not() {
    let first = backend("reconcile", Mode::Sandboxed);
    let (a, b, c) = (seconds(881), seconds(882), seconds(883));
    let kept = first.start(launch_as(&first, 6, "w-kept", &["sleep", &a])).await.unwrap();
    let script = format!("setsid sleep {b} & exec sleep {c}");
    let stray = first.start(launch_as(&first, 7, "w-stray", &["sh", "-c", &script])).await.unwrap();
    let (a, b, c) = (format!("sleep {a}"), format!("sleep {b}"), format!("sleep {c}"));
    wait_for("both", || !processes_with(&a).is_empty() && !processes_with(&b).is_empty()).await;
    drop(first);
    // As after kill -9 of wsd mid-provision: the store records w-kept, not w-stray's instance.
    let second = ProcessBackend::new(options("reconcile", Mode::Sandboxed));
    let recorded = vec![("w-kept".to_owned(), kept.clone()), ("w-gone".to_owned(), "process:1:1".to_owned())];
    assert_eq!(second.reconcile(&recorded).await, Reconciled { adopted: 1, gone: 1, ended: 1 });
    wait_for("the stray sandbox to end", || processes_with(&b).is_empty() && processes_with(&c).is_empty()).await;
    assert_ne!(second.status(&stray).await.unwrap(), InstanceStatus::Running);
    assert_eq!(second.status(&kept).await.unwrap(), InstanceStatus::Running);
    second.stop("w-kept", &kept).await.unwrap();
    assert_eq!(second.status(&kept).await.unwrap(), InstanceStatus::Exited { code: None });
    // A pid reused by another process is not mistaken for the workspace.
    assert_eq!(second.status(&format!("process:{}:1", pid_of(&kept))).await.unwrap(), InstanceStatus::Exited { code: None });
    assert_eq!(second.status("garbage").await.unwrap(), InstanceStatus::Missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_are_reported_with_their_code_and_output_is_capped() {
    for mode in [Mode::Sandboxed, Mode::Unsandboxed] {
        let backend = backend(&format!("exit-{mode:?}"), mode);
        let instance = backend.start(launch("w2", &["sh", "-c", "printf '%s' \"$GREETING\"; seq 1 1000; exit 7"])).await.unwrap();
        assert_eq!(wait_exit(&backend, &instance).await, InstanceStatus::Exited { code: Some(7) });
        let logs = backend.logs("w2", 1000).await.unwrap();
        let mut lines = logs.lines();
        assert_eq!(lines.next(), Some("[wsd: earlier output over 64 bytes was dropped]"), "{logs}");
        let kept: Vec<u32> = lines.map(|l| l.parse().unwrap()).collect();
        assert!(!kept.is_empty() && kept.len() <= 32 / 4, "the newest lines, under half the cap: {kept:?}");
        assert_eq!(*kept.last().unwrap(), 1000, "{logs}");
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "whole lines, in order: {kept:?}");

        let small = backend.start(launch("w8", &["sh", "-c", "printf '%s\\n' \"$GREETING\""])).await.unwrap();
        wait_exit(&backend, &small).await;
        assert_eq!(backend.logs("w8", 10).await.unwrap(), "hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_sent_first_and_sigkill_after_the_grace_period() {
    for mode in [Mode::Sandboxed, Mode::Unsandboxed] {
        let backend = backend(&format!("stop-{mode:?}"), mode);
        // SIGTERM first: the agent's own handler runs.
        let script = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.05; done";
        let polite = backend.start(launch("w3", &["sh", "-c", script])).await.unwrap();
        for _ in 0..300 {
            if backend.logs("w3", 1).await.unwrap() == "ready" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        backend.stop("w3", &polite).await.unwrap();
        let logs = backend.logs("w3", 5).await.unwrap();
        assert!(logs.ends_with("got-term"), "SIGTERM first ({mode:?}): {logs:?}");
        // A shell that ignores SIGTERM (its short sleeps die, the loop goes on) needs SIGKILL.
        let stubborn = backend.start(launch("w4", &["sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        backend.stop("w4", &stubborn).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500), "SIGKILL waits for the grace period ({mode:?})");
        assert_ne!(backend.status(&stubborn).await.unwrap(), InstanceStatus::Running);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_launches_are_refused_before_anything_runs() {
    let backend = backend("bad", Mode::Unsandboxed);
    let mut escaping = launch("w5", &["true"]);
    escaping.files.push(LaunchFile { path: "../outside".into(), content: SecretValue::new("x") });
    assert!(backend.start(escaping).await.unwrap_err().to_string().contains("leaves the workspace home"));
    assert!(backend.start(launch("../w", &["true"])).await.is_err());
    assert!(backend.start(launch("w6", &[])).await.unwrap_err().to_string().contains("empty"));
    let e = backend.start(launch("w7", &["/nonexistent/agent"])).await.unwrap_err().to_string();
    assert!(e.contains("cannot start `/nonexistent/agent`"), "{e}");
    // A sandbox program that is not installed is reported by the probe, naming it.
    let mut missing = options("bad-probe", Mode::Sandboxed);
    missing.sandbox = Sandbox::Bwrap(BwrapOptions { program: "/nonexistent/bwrap".into(), ..BwrapOptions::default() });
    let e = ProcessBackend::new(missing).probe().unwrap_err();
    assert!(e.contains("/nonexistent/bwrap") && e.contains("bubblewrap"), "{e}");
}

/// The start time `/proc` records for a pid (field 22), as the instance id carries it.
fn start_time_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_workspace_keeps_its_log_under_the_cap() {
    // A process a previous run of wsd started: it writes into its log on its own.
    let backend = backend("adopt-log", Mode::Unsandboxed);
    let dir = root_of("adopt-log").join("w9");
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("output.log")).unwrap();
    let mut child = std::process::Command::new("sh").args(["-c", "sleep 0.3; seq 1 2000; exec sleep 30"]).stdout(log).spawn().unwrap();
    let instance = format!("process:{}:{}", child.id(), start_time_of(child.id()));
    let recorded = [("w9".to_owned(), instance.clone())];
    assert_eq!(backend.reconcile(&recorded).await.adopted, 1);
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
    assert_eq!(backend.reconcile(&recorded).await, Reconciled { adopted: 0, gone: 1, ended: 0 }, "a process that is gone is not adopted");
    assert_eq!(backend.reconcile(&[("../w9".to_owned(), instance)]).await.gone, 1);
}
