//! Where workspaces run. A backend receives an already-planned environment and files and
//! starts, stops, inspects and reads the logs of one workspace instance. It knows nothing
//! about providers: Docker and Kubernetes backends can follow without touching the planner.

mod process;

use std::future::Future;
use std::pin::Pin;

use wsd_core::SecretValue;

pub use process::{ProcessBackend, ProcessOptions};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A file to write into the workspace's home before it starts.
#[derive(Debug)]
pub struct LaunchFile {
    /// Relative to the home; validated by the planner (no `..`, not absolute).
    pub path: String,
    pub content: SecretValue,
}

/// Everything needed to start one workspace: nothing more reaches it.
#[derive(Debug)]
pub struct Launch {
    pub workspace_id: String,
    pub argv: Vec<String>,
    /// The exact environment (values redacted in `Debug`).
    pub env: Vec<(String, SecretValue)>,
    pub files: Vec<LaunchFile>,
}

/// What a backend reports about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStatus {
    Running,
    /// Exited; the code when known (a process adopted after a restart of wsd has none).
    Exited {
        code: Option<i32>,
    },
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot prepare the workspace directory: {0}")]
    Prepare(String),
    #[error("cannot start `{command}`: {reason}")]
    Start { command: String, reason: String },
    #[error("unknown instance `{0}`")]
    UnknownInstance(String),
    #[error("{0}")]
    Io(String),
}

/// A place workspaces run.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Starts a workspace; returns its instance id.
    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<String, BackendError>>;
    /// Stops an instance: a polite signal, then a forced one after the grace period.
    fn stop<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    fn status<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, InstanceStatus>;
    /// The last `tail` lines of a workspace's output.
    fn logs<'a>(&'a self, workspace_id: &'a str, tail: usize) -> BoxFuture<'a, Result<String, BackendError>>;
    /// Takes over an instance a previous run of wsd started: whatever this backend does for
    /// the instances it starts itself while they run (the process backend: keeping the log
    /// under its cap). Reports whether the instance still runs.
    fn adopt<'a>(&'a self, workspace_id: &'a str, instance: &'a str) -> BoxFuture<'a, bool>;
}
