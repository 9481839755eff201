//! The process backend (the embedded default): each workspace is a child process, by
//! default inside its own sandbox (`sandbox.rs`), with `env_clear()` plus exactly the
//! planned env, `HOME` (its own directory, where the plan's files are written with mode
//! 0600) and the operator's `PATH`. When wsd runs as root, each workspace also runs as a
//! host uid of its own, so that an escape still meets file permissions.
//!
//! Children run in their own process group, so they outlive a restart of wsd (an upgrade
//! does not kill the agents). An instance id records the pid and its start time; after a
//! restart wsd adopts a process whose pid still has that start time, reports any other as
//! exited, and ends every sandbox under its root that nothing records.

mod home;
mod log;
mod procfs;
mod sandbox;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

pub use sandbox::{BwrapOptions, DEFAULT_READ_ONLY, Sandbox};

use crate::{Backend, BackendError, BoxFuture, InstanceStatus, Launch, Reconciled};
use home::WorkspaceDir;

/// The `PATH` workspaces get unless the operator configures another.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// One directory per workspace under it.
    pub root: PathBuf,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// The most output kept per run.
    pub log_cap_bytes: u64,
    pub sandbox: Sandbox,
    /// `PATH` in every workspace: from the operator's configuration, never a tenant's.
    pub path: String,
    /// Host uids to give workspaces, one each (wsd running as root); `None` runs every
    /// workspace as wsd's own user.
    pub host_uids: Option<RangeInclusive<u32>>,
}

impl ProcessOptions {
    /// Sandboxed workspaces under `root`, as wsd's own user, with the default `PATH`.
    pub fn sandboxed(root: PathBuf) -> Self {
        Self {
            root,
            grace: Duration::from_secs(10),
            log_cap_bytes: 10 * 1024 * 1024,
            sandbox: Sandbox::Bwrap(BwrapOptions::default()),
            path: DEFAULT_PATH.to_owned(),
            host_uids: None,
        }
    }
}

#[derive(Debug)]
pub struct ProcessBackend {
    options: ProcessOptions,
    /// Children this process started, by instance id: `None` until reaped, then the exit
    /// (with its code when it has one). A child that exited but is not reaped yet still
    /// counts as running, so its code is never reported missing.
    exits: Arc<Mutex<HashMap<String, Option<Option<i32>>>>>,
}

/// Whether the process an instance id names still runs: its pid exists with the recorded
/// start time (so a reused pid is not mistaken for it).
fn runs(instance: &str) -> bool {
    parse_instance(instance).is_some_and(|(pid, started)| procfs::start_time(pid) == Some(started))
}

fn parse_instance(instance: &str) -> Option<(u32, u64)> {
    let mut parts = instance.strip_prefix("process:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// How long to wait for the kernel to reap an instance after SIGKILL.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// How often a running child's log is checked against the cap.
const LOG_CHECK_EVERY: Duration = Duration::from_millis(200);

impl ProcessBackend {
    pub fn new(options: ProcessOptions) -> Self {
        Self { options, exits: Arc::default() }
    }

    pub fn workspace_dir(&self, workspace_id: &str) -> PathBuf {
        self.options.root.join(workspace_id)
    }

    fn dir(&self, workspace_id: &str) -> Result<WorkspaceDir, BackendError> {
        WorkspaceDir::new(&self.options.root, workspace_id)
    }

    fn sandboxed(&self) -> bool {
        matches!(self.options.sandbox, Sandbox::Bwrap(_))
    }

    /// Checks that workspaces can be started confined as configured: a sandbox that ends
    /// at once, as a workspace's uid would run it. The error says what failed.
    pub fn probe(&self) -> Result<(), String> {
        let Sandbox::Bwrap(options) = &self.options.sandbox else { return Ok(()) };
        if !options.program.exists() {
            return Err(format!("the sandbox program {} is not installed (Debian: apt-get install bubblewrap)", options.program.display()));
        }
        // The sandbox binds a home: the workspaces' root stands in for one.
        let probe_home = &self.options.root;
        std::fs::create_dir_all(probe_home).map_err(|e| format!("cannot create {}: {e}", probe_home.display()))?;
        let uid = self.options.host_uids.as_ref().map(|uids| *uids.start());
        let argv = sandbox::argv(&self.options.sandbox, &crate::Confinement::default(), uid, probe_home, &["true".into()]);
        let mut command = std::process::Command::new(&argv[0]);
        command.args(&argv[1..]).env_clear().env("PATH", &self.options.path).stdin(Stdio::null()).stdout(Stdio::null());
        let output = command.stderr(Stdio::piped()).output().map_err(|e| format!("cannot run {}: {e}", options.program.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{} cannot create a sandbox here: {}", options.program.display(), String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    /// Ends an instance's processes: SIGTERM to each (all of the sandbox, or the process
    /// group), SIGKILL after the grace period — in a sandbox to its init, which makes the
    /// kernel end every process in its pid namespace. A sandbox still setting up has no
    /// processes inside yet: those that appear during the grace period get SIGTERM too.
    async fn end(&self, pid: u32, instance: &str, grace: Duration) -> Result<(), BackendError> {
        let group = Pid::from_raw(pid as i32);
        let mut init = None;
        let mut signalled = std::collections::HashSet::new();
        if !self.sandboxed() {
            let _ = killpg(group, Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if self.sandboxed() {
                init = init.or_else(|| procfs::children(pid).first().copied());
                for member in init.map(procfs::descendants).unwrap_or_default() {
                    if signalled.insert(member) {
                        signal(member, Signal::SIGTERM);
                    }
                }
            }
            if !runs(instance) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.sandboxed() {
            init = init.or_else(|| procfs::children(pid).first().copied());
            if let Some(init) = init {
                // The kernel then ends every process of the sandbox's pid namespace.
                signal(init, Signal::SIGKILL);
            }
        } else {
            let _ = killpg(group, Signal::SIGKILL);
        }
        signal(pid, Signal::SIGKILL);
        let deadline = tokio::time::Instant::now() + REAP_WAIT;
        while tokio::time::Instant::now() < deadline {
            let init_gone = init.is_none_or(|i| procfs::start_time(i).is_none());
            // A child of this process counts as ended once its exit is recorded, so that a
            // status asked right after the stop does not still say it runs.
            let unrecorded = matches!(self.exits.lock().unwrap_or_else(|e| e.into_inner()).get(instance), Some(None));
            if !runs(instance) && init_gone && !unrecorded {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(BackendError::Io(format!("process {pid} did not stop")))
    }

    /// Keeps the log of a running instance under the cap until it ends.
    fn watch_log(&self, dir: &WorkspaceDir, instance: &str) {
        let (log, cap) = (dir.log(), self.options.log_cap_bytes);
        let watched = instance.to_owned();
        tokio::spawn(async move {
            while runs(&watched) {
                log::cap_log(&log, cap);
                tokio::time::sleep(LOG_CHECK_EVERY).await;
            }
            log::cap_log(&log, cap);
        });
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn isolation(&self) -> String {
        match (&self.options.sandbox, &self.options.host_uids) {
            (Sandbox::Bwrap(_), Some(uids)) => {
                format!(
                    "sandboxed (bwrap: user, mount, pid, ipc, uts namespaces), each workspace as its own uid in {}-{}",
                    uids.start(),
                    uids.end()
                )
            }
            (Sandbox::Bwrap(_), None) => "sandboxed (bwrap: user, mount, pid, ipc, uts namespaces), as wsd's own uid".to_owned(),
            (Sandbox::None, _) => {
                "none: workspaces run unsandboxed and can reach wsd's files and each other (sandbox = \"none\")".to_owned()
            }
        }
    }

    fn host_uids(&self) -> Option<RangeInclusive<u32>> {
        self.options.host_uids.clone()
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<String, BackendError>> {
        Box::pin(async move {
            let dir = self.dir(&launch.workspace_id)?;
            if launch.argv.is_empty() {
                return Err(BackendError::Start { command: String::new(), reason: "the command is empty".into() });
            }
            let log = dir.prepare(&launch.files, launch.host_uid)?;
            let home = dir.home();
            let argv = sandbox::argv(&self.options.sandbox, &launch.confinement, launch.host_uid, &home, &launch.argv);
            let home_env = if self.sandboxed() { PathBuf::from(sandbox::SANDBOX_HOME) } else { home.clone() };
            let mut command = Command::new(&argv[0]);
            command
                .args(&argv[1..])
                .env_clear()
                .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.expose())))
                .env("HOME", &home_env)
                .env("PATH", &self.options.path)
                .current_dir(&home)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().map_err(|e| BackendError::Prepare(e.to_string()))?))
                .stderr(Stdio::from(log))
                .process_group(0)
                .kill_on_drop(false);
            let program = launch.argv[0].clone();
            let mut child = command.spawn().map_err(|e| BackendError::Start { command: program.clone(), reason: e.to_string() })?;
            let pid = child.id().ok_or_else(|| BackendError::Start { command: program, reason: "exited at once".into() })?;
            let started = procfs::start_time(pid).unwrap_or(0);
            let instance = format!("process:{pid}:{started}");
            let exits = self.exits.clone();
            exits.lock().unwrap_or_else(|e| e.into_inner()).insert(instance.clone(), None);
            let id = instance.clone();
            let (log_path, cap) = (dir.log(), self.options.log_cap_bytes);
            tokio::spawn(async move {
                // While the child runs, keep its log under the cap.
                let code = loop {
                    tokio::select! {
                        status = child.wait() => break status.ok().and_then(|s| s.code()),
                        () = tokio::time::sleep(LOG_CHECK_EVERY) => log::cap_log(&log_path, cap),
                    }
                };
                log::cap_log(&log_path, cap);
                exits.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Some(code));
            });
            tracing::info!(workspace = %launch.workspace_id, %instance, "workspace started");
            Ok(instance)
        })
    }

    fn stop<'a>(&'a self, workspace_id: &'a str, instance: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let dir = self.dir(workspace_id)?;
            let (pid, _) = parse_instance(instance).ok_or_else(|| BackendError::UnknownInstance(instance.to_owned()))?;
            if runs(instance) {
                self.end(pid, instance, self.options.grace).await?;
            }
            dir.remove_plan_files().map_err(|e| BackendError::Io(format!("cannot remove the plan's files: {e}")))
        })
    }

    fn remove<'a>(&'a self, workspace_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.dir(workspace_id)?.remove().map_err(|e| BackendError::Io(format!("cannot remove the workspace: {e}"))) })
    }

    fn status<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<InstanceStatus, BackendError>> {
        Box::pin(async move {
            match self.exits.lock().unwrap_or_else(|e| e.into_inner()).get(instance) {
                Some(Some(code)) => return Ok(InstanceStatus::Exited { code: *code }),
                Some(None) => return Ok(InstanceStatus::Running),
                None => {}
            }
            Ok(match parse_instance(instance) {
                None => InstanceStatus::Missing,
                Some(_) if runs(instance) => InstanceStatus::Running,
                Some(_) => InstanceStatus::Exited { code: None },
            })
        })
    }

    fn reconcile<'a>(&'a self, recorded: &'a [(String, String)]) -> BoxFuture<'a, Reconciled> {
        Box::pin(async move {
            let mut outcome = Reconciled::default();
            for (workspace, instance) in recorded {
                match self.dir(workspace) {
                    Ok(dir) if runs(instance) => {
                        // Not this process's child: no exit code to wait for, so its pid is watched.
                        self.watch_log(&dir, instance);
                        tracing::info!(%workspace, %instance, "workspace adopted");
                        outcome.adopted += 1;
                    }
                    _ => outcome.gone += 1,
                }
            }
            if !self.sandboxed() {
                return outcome;
            }
            // Sandboxes under this root that nothing records: started by a run killed before
            // it recorded them. Only processes in wsd's own pid namespace are a sandbox's
            // outer process (its init, a fork with the same argv, is in the sandbox's).
            let own = procfs::pid_namespace(std::process::id());
            let root = std::fs::canonicalize(&self.options.root).unwrap_or_else(|_| self.options.root.clone());
            for pid in procfs::pids() {
                let Some(workspace) = sandbox::workspace_of(&root, &procfs::cmdline(pid)) else { continue };
                if procfs::pid_namespace(pid) != own {
                    continue;
                }
                let Some(started) = procfs::start_time(pid) else { continue };
                let instance = format!("process:{pid}:{started}");
                if recorded.iter().any(|(w, i)| *w == workspace && *i == instance) {
                    continue;
                }
                tracing::warn!(%workspace, %instance, "ending a workspace process that nothing records");
                if self.end(pid, &instance, Duration::ZERO).await.is_ok() {
                    outcome.ended += 1;
                }
            }
            outcome
        })
    }

    fn logs<'a>(&'a self, workspace_id: &'a str, tail: usize) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            let dir = self.dir(workspace_id).map_err(|_| BackendError::UnknownInstance(workspace_id.to_owned()))?;
            log::tail_lines(&dir.log(), tail).map_err(|e| BackendError::Io(e.to_string()))
        })
    }
}
