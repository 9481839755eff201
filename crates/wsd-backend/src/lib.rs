//! Where workspaces run. A backend receives an already-planned environment and files and
//! starts, stops, inspects and reads the logs of one workspace instance. It knows nothing
//! about providers: Docker and Kubernetes backends can follow without touching the planner.
//!
//! Threat model, for every backend: the agent inside a workspace is hostile. It reaches
//! nothing of other workspaces and nothing of wsd, and everything it starts is the
//! backend's to end (`stop` leaves no process of the workspace behind).

mod docker;
mod process;

use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;

use wsd_core::SecretValue;

pub use docker::{DockerBackend, DockerOptions, LABEL_OWNER, LABEL_WORKSPACE};
pub use process::{BwrapOptions, DEFAULT_PATH, DEFAULT_READ_ONLY, ProcessBackend, ProcessOptions, Sandbox};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A file to write into the workspace's home before it starts.
#[derive(Debug)]
pub struct LaunchFile {
    /// Relative to the home; validated by the planner (no `..`, not absolute).
    pub path: String,
    pub content: SecretValue,
}

/// Whether a workspace may reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (the metering proxy and providers are reachable).
    #[default]
    Host,
    /// Loopback of its own only.
    None,
}

/// Resource limits of a workspace; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Writable memory of each process, in MiB.
    pub memory_mib: Option<u64>,
    /// Processes (and threads) the workspace may run at once.
    pub processes: Option<u64>,
    /// Open files per process.
    pub open_files: Option<u64>,
}

/// How a workspace is confined beyond what every workspace gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confinement {
    pub network: Network,
    pub limits: Limits,
}

/// Everything needed to start one workspace: nothing more reaches it.
#[derive(Debug)]
pub struct Launch {
    pub workspace_id: String,
    /// Its org and the hash of its plan: recorded where the backend can (container labels).
    pub org_id: String,
    pub plan_hash: String,
    /// The runtime: which image a container backend runs.
    pub runtime: String,
    /// The command; empty runs a container image's own.
    pub argv: Vec<String>,
    /// The exact environment (values redacted in `Debug`).
    pub env: Vec<(String, SecretValue)>,
    pub files: Vec<LaunchFile>,
    /// The host uid (and gid) the workspace runs as, from `Backend::host_uids`.
    pub host_uid: Option<u32>,
    pub confinement: Confinement,
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

/// What taking over after a restart found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconciled {
    /// Recorded instances that still run, now watched again.
    pub adopted: usize,
    /// Recorded instances that ended meanwhile.
    pub gone: usize,
    /// Instances the backend found running that nothing records: ended.
    pub ended: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot prepare the workspace directory: {0}")]
    Prepare(String),
    #[error("cannot start `{command}`: {reason}")]
    Start { command: String, reason: String },
    #[error("unknown instance `{0}`")]
    UnknownInstance(String),
    /// The backend cannot be reached (a container engine that does not answer).
    #[error("{0}")]
    Unavailable(String),
    /// The image a runtime is configured to run is not in the engine.
    #[error("the image `{0}` is not in the container engine: build or pull it there first")]
    ImageMissing(String),
    /// Nothing says what to run for this runtime on this backend.
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    Io(String),
}

/// A place workspaces run.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// How workspaces are isolated, in a few words (for `/healthz` and the start-up log).
    fn isolation(&self) -> String;
    /// The host uids this backend runs workspaces as, one per workspace; `None` when every
    /// workspace runs as the same user.
    fn host_uids(&self) -> Option<RangeInclusive<u32>>;
    /// Starts a workspace; returns its instance id.
    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<String, BackendError>>;
    /// Stops an instance and everything it started: a polite signal, then a forced one
    /// after the grace period. The credential files its plan wrote are removed; the rest
    /// of its home stays.
    fn stop<'a>(&'a self, workspace_id: &'a str, instance: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Removes everything a workspace left: its home, its files, its log. Call after `stop`.
    fn remove<'a>(&'a self, workspace_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    /// What became of an instance; an error when the backend cannot tell (its engine is
    /// unreachable), never a guess.
    fn status<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<InstanceStatus, BackendError>>;
    /// The last `tail` lines of a workspace's output.
    fn logs<'a>(&'a self, workspace_id: &'a str, tail: usize) -> BoxFuture<'a, Result<String, BackendError>>;
    /// At start: takes over the instances a previous run of wsd started and the store
    /// records as running (`(workspace id, instance id)`), and ends every other workspace
    /// instance this backend finds — one started by a run that was killed before it could
    /// record it.
    fn reconcile<'a>(&'a self, recorded: &'a [(String, String)]) -> BoxFuture<'a, Reconciled>;
}
