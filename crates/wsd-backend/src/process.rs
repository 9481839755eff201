//! The process backend (the embedded default): each workspace is a child process with
//! `env_clear()` plus exactly the planned env, `HOME` set to its own directory (where the
//! plan's files are written with mode 0600), its output appended to a log kept under a size
//! cap (cut to its newest lines, after a marker line, when it grows over).
//!
//! Children run in their own process group, so they outlive a restart of wsd (an upgrade
//! does not kill the agents). An instance id records the pid and its start time; after a
//! restart wsd adopts a process whose pid still has that start time, and reports any other
//! as exited — statuses stay true.

use std::collections::HashMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::{Backend, BackendError, BoxFuture, InstanceStatus, Launch};

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// One directory per workspace under it.
    pub root: PathBuf,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// The most output kept per run.
    pub log_cap_bytes: u64,
}

#[derive(Debug)]
pub struct ProcessBackend {
    options: ProcessOptions,
    /// Exit codes of children this process started, by instance id.
    exits: Arc<Mutex<HashMap<String, Option<i32>>>>,
}

/// Whether the process an instance id names still runs: its pid exists with the recorded
/// start time (so a reused pid is not mistaken for it).
fn runs(instance: &str) -> bool {
    parse_instance(instance).is_some_and(|(pid, started)| start_time(pid) == Some(started))
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // State is field 3 of the whole line; start time field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn parse_instance(instance: &str) -> Option<(u32, u64)> {
    let mut parts = instance.strip_prefix("process:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn safe_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

impl ProcessBackend {
    pub fn new(options: ProcessOptions) -> Self {
        Self { options, exits: Arc::default() }
    }

    pub fn workspace_dir(&self, workspace_id: &str) -> PathBuf {
        self.options.root.join(workspace_id)
    }

    fn alive(&self, instance: &str) -> bool {
        runs(instance)
    }

    async fn prepare(&self, launch: &Launch) -> Result<(PathBuf, std::fs::File), BackendError> {
        let prepare = |e: std::io::Error| BackendError::Prepare(e.to_string());
        if !safe_relative(&launch.workspace_id) {
            return Err(BackendError::Prepare(format!("invalid workspace id `{}`", launch.workspace_id)));
        }
        let dir = self.workspace_dir(&launch.workspace_id);
        let home = dir.join("home");
        std::fs::create_dir_all(&home).map_err(prepare)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(prepare)?;
        for file in &launch.files {
            if !safe_relative(&file.path) {
                return Err(BackendError::Prepare(format!("file path `{}` leaves the workspace home", file.path)));
            }
            let target = home.join(&file.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(prepare)?;
            }
            let _ = std::fs::remove_file(&target);
            let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&target).map_err(prepare)?;
            std::io::Write::write_all(&mut out, file.content.expose().as_bytes()).map_err(prepare)?;
        }
        // Appended to by the child itself, so its output keeps flowing when wsd restarts.
        let path = dir.join("output.log");
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(prepare)?;
        let log = std::fs::OpenOptions::new().append(true).open(&path).map_err(prepare)?;
        Ok((home, log))
    }
}

/// How often a running child's log is checked against the cap.
const LOG_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Cuts a log that grew over `cap` down to its newest lines (at most half the cap), after a
/// line that says so. The child and this both append, so nothing the child writes meanwhile
/// is overwritten; at worst a line it writes during the cut lands before the kept tail.
fn cap_log(path: &Path, cap: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    if !std::fs::metadata(path).is_ok_and(|m| m.len() > cap) {
        return;
    }
    let Ok(mut file) = std::fs::OpenOptions::new().read(true).append(true).open(path) else { return };
    let keep = i64::try_from(cap / 2).unwrap_or(i64::MAX);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::End(-keep)).is_err() || file.read_to_end(&mut tail).is_err() {
        return;
    }
    // From the first whole line on.
    let start = tail.iter().position(|&b| b == b'\n').map_or(tail.len(), |i| i + 1);
    let mut kept = format!("[wsd: earlier output over {cap} bytes was dropped]\n").into_bytes();
    kept.extend_from_slice(&tail[start..]);
    if file.set_len(0).is_ok() {
        let _ = file.write_all(&kept);
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<String, BackendError>> {
        Box::pin(async move {
            let (home, log) = self.prepare(&launch).await?;
            let Some((program, args)) = launch.argv.split_first() else {
                return Err(BackendError::Start { command: String::new(), reason: "the command is empty".into() });
            };
            let mut command = Command::new(program);
            command
                .args(args)
                .env_clear()
                .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.expose())))
                .env("HOME", &home)
                .current_dir(&home)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().map_err(|e| BackendError::Prepare(e.to_string()))?))
                .stderr(Stdio::from(log))
                .process_group(0)
                .kill_on_drop(false);
            let mut child = command.spawn().map_err(|e| BackendError::Start { command: program.clone(), reason: e.to_string() })?;
            let pid = child.id().ok_or_else(|| BackendError::Start { command: program.clone(), reason: "exited at once".into() })?;
            let started = start_time(pid).unwrap_or(0);
            let instance = format!("process:{pid}:{started}");
            let exits = self.exits.clone();
            exits.lock().unwrap_or_else(|e| e.into_inner()).remove(&instance);
            let id = instance.clone();
            let (log_path, cap) = (self.workspace_dir(&launch.workspace_id).join("output.log"), self.options.log_cap_bytes);
            tokio::spawn(async move {
                // While the child runs, keep its log under the cap.
                let code = loop {
                    tokio::select! {
                        status = child.wait() => break status.ok().and_then(|s| s.code()),
                        () = tokio::time::sleep(LOG_CHECK_EVERY) => cap_log(&log_path, cap),
                    }
                };
                cap_log(&log_path, cap);
                exits.lock().unwrap_or_else(|e| e.into_inner()).insert(id, code);
            });
            tracing::info!(workspace = %launch.workspace_id, %instance, "workspace started");
            Ok(instance)
        })
    }

    fn stop<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let (pid, _) = parse_instance(instance).ok_or_else(|| BackendError::UnknownInstance(instance.to_owned()))?;
            if !self.alive(instance) {
                return Ok(());
            }
            let group = Pid::from_raw(pid as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = tokio::time::Instant::now() + self.options.grace;
            while tokio::time::Instant::now() < deadline {
                if !self.alive(instance) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = killpg(group, Signal::SIGKILL);
            for _ in 0..100 {
                if !self.alive(instance) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(BackendError::Io(format!("process {pid} did not stop")))
        })
    }

    fn status<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, InstanceStatus> {
        Box::pin(async move {
            if let Some(code) = self.exits.lock().unwrap_or_else(|e| e.into_inner()).get(instance) {
                return InstanceStatus::Exited { code: *code };
            }
            match parse_instance(instance) {
                None => InstanceStatus::Missing,
                Some(_) if self.alive(instance) => InstanceStatus::Running,
                Some(_) => InstanceStatus::Exited { code: None },
            }
        })
    }

    fn adopt<'a>(&'a self, workspace_id: &'a str, instance: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if !safe_relative(workspace_id) || !self.alive(instance) {
                return false;
            }
            // Not this process's child: no exit code to wait for, so its pid is watched.
            let (log_path, cap) = (self.workspace_dir(workspace_id).join("output.log"), self.options.log_cap_bytes);
            let watched = instance.to_owned();
            tokio::spawn(async move {
                while runs(&watched) {
                    cap_log(&log_path, cap);
                    tokio::time::sleep(LOG_CHECK_EVERY).await;
                }
                cap_log(&log_path, cap);
            });
            tracing::info!(workspace = %workspace_id, %instance, "workspace adopted");
            true
        })
    }

    fn logs<'a>(&'a self, workspace_id: &'a str, tail: usize) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            if !safe_relative(workspace_id) {
                return Err(BackendError::UnknownInstance(workspace_id.to_owned()));
            }
            let path = self.workspace_dir(workspace_id).join("output.log");
            let text = match tokio::fs::read(&path).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(BackendError::Io(e.to_string())),
            };
            let lines: Vec<&str> = text.lines().collect();
            Ok(lines[lines.len().saturating_sub(tail)..].join("\n"))
        })
    }
}
