//! The container backend: each workspace is one container on an engine that speaks the
//! Docker Engine API (Docker Engine, or Podman's compatible service), through `bollard`.
//!
//! A container gets exactly the planned env plus `HOME`, runs as a non-root user with
//! every capability dropped, `no-new-privileges` and the configured limits, on the
//! configured network. The plan's files are copied into the container's own layer by an
//! archive upload before it starts (0600, owned by the agent user), so they go with the
//! container: `stop` removes it, and no credential stays on the engine's disk. What the
//! agent works on persists across restarts in a volume of its own, mounted at its working
//! directory, which `remove` deletes with the container. Nothing of the host is mounted.
//!
//! Every container and volume is labelled with the workspace, its org, its plan's hash and
//! the deployment that owns it (`owner`), so that after a restart wsd adopts its own
//! containers and removes those it does not record, and leaves other deployments' alone.

mod archive;
mod raw;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::{Backend, BackendError, BoxFuture, InstanceStatus, Launch, Network, Reconciled};

/// The label naming the deployment of wsd that made a container or volume.
pub const LABEL_OWNER: &str = "dev.wsd.owner";
/// The label naming the workspace a container or volume belongs to.
pub const LABEL_WORKSPACE: &str = "dev.wsd.workspace";
const LABEL_ORG: &str = "dev.wsd.org";
const LABEL_PLAN: &str = "dev.wsd.plan-hash";

#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The engine: `unix:///path/to.sock`, or `tcp://host:port` / `http://host:port`.
    pub host: String,
    /// This deployment's name, in every label and container name: wsd manages only what
    /// carries it.
    pub owner: String,
    /// The image each runtime runs.
    pub images: BTreeMap<String, String>,
    /// The user the agent runs as, numeric (`uid`, `gid`): never root by default.
    pub user: (u32, u32),
    /// The agent's home (`HOME`), where the plan's files are written.
    pub home: String,
    /// Where the workspace's volume is mounted, and the working directory.
    pub work_dir: String,
    /// The network mode of a workspace that may reach the network (`bridge`, `host`, or a
    /// network's name); one that may not gets `none`.
    pub network: String,
    /// Mount the root filesystem read-only (with a private `/tmp`).
    pub read_only_root: bool,
    /// CPUs a workspace may use (e.g. 1.5); `None` is no limit.
    pub cpus: Option<f64>,
    /// How long `stop` waits after SIGTERM before the engine kills.
    pub grace: Duration,
    /// The most output kept per workspace.
    pub log_cap_bytes: u64,
    /// Where the last output of stopped workspaces is kept (their containers are removed).
    pub log_dir: PathBuf,
}

impl DockerOptions {
    /// The defaults for an engine at `host`: user 1000, home `/home/agent`, the bridge
    /// network, owner `wsd`.
    pub fn new(host: impl Into<String>, log_dir: PathBuf) -> Self {
        Self {
            host: host.into(),
            owner: "wsd".into(),
            images: BTreeMap::new(),
            user: (1000, 1000),
            home: "/home/agent".into(),
            work_dir: "/home/agent/work".into(),
            network: "bridge".into(),
            read_only_root: false,
            cpus: None,
            grace: Duration::from_secs(10),
            log_cap_bytes: 10 * 1024 * 1024,
            log_dir,
        }
    }
}

#[derive(Debug)]
pub struct DockerBackend {
    options: DockerOptions,
    engine: Result<Docker, String>,
}

/// How often a removal the engine refuses while it tears a container down is retried.
const REMOVE_ATTEMPTS: u64 = 5;

/// How long one call to the engine may take (a stop waits the grace period besides).
const ENGINE_TIMEOUT_SECONDS: u64 = 60;

fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::DockerResponseServerError { status_code: 404, .. })
}

fn is_conflict(e: &EngineError) -> bool {
    matches!(e, EngineError::DockerResponseServerError { status_code: 409, .. })
}

impl DockerBackend {
    /// A backend on the engine at `options.host`. Connecting is lazy: an engine that does
    /// not answer makes each call fail with [`BackendError::Unavailable`].
    pub fn new(options: DockerOptions) -> Self {
        let engine = connect(&options.host);
        Self { options, engine }
    }

    fn engine(&self) -> Result<&Docker, BackendError> {
        self.engine.as_ref().map_err(|reason| BackendError::Unavailable(reason.clone()))
    }

    /// An engine error as a backend error: one that did not come from the engine's answer
    /// (refused connection, timeout) says the engine is unavailable.
    fn error(&self, doing: &str, e: EngineError) -> BackendError {
        match e {
            EngineError::DockerResponseServerError { status_code, message } => {
                BackendError::Io(format!("{doing}: the container engine answered {status_code}: {message}"))
            }
            other => BackendError::Unavailable(format!("the container engine at {} does not answer ({doing}: {other})", self.options.host)),
        }
    }

    fn unavailable(&self, doing: &str, reason: &str) -> BackendError {
        BackendError::Unavailable(format!("the container engine at {} does not answer ({doing}: {reason})", self.options.host))
    }

    /// Whether the engine answers; the error says why not.
    pub async fn probe(&self) -> Result<(), String> {
        let engine = self.engine().map_err(|e| e.to_string())?;
        engine.ping().await.map(|_| ()).map_err(|e| self.error("ping", e).to_string())
    }

    /// The container of a workspace (one at a time).
    pub fn container_name(&self, workspace_id: &str) -> String {
        format!("{}-{workspace_id}", self.options.owner)
    }

    /// The volume a workspace's work persists in.
    pub fn volume_name(&self, workspace_id: &str) -> String {
        format!("{}-{workspace_id}-work", self.options.owner)
    }

    fn log_file(&self, workspace_id: &str) -> PathBuf {
        self.options.log_dir.join(format!("{workspace_id}.log"))
    }

    fn labels(&self, launch: &Launch) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_OWNER.to_owned(), self.options.owner.clone()),
            (LABEL_WORKSPACE.to_owned(), launch.workspace_id.clone()),
            (LABEL_ORG.to_owned(), launch.org_id.clone()),
            (LABEL_PLAN.to_owned(), launch.plan_hash.clone()),
        ])
    }

    fn create_body(&self, launch: &Launch, image: &str) -> ContainerCreateBody {
        let mut env: Vec<String> = launch.env.iter().map(|(k, v)| format!("{k}={}", v.expose())).collect();
        if !launch.env.iter().any(|(k, _)| k == "HOME") {
            env.push(format!("HOME={}", self.options.home));
        }
        // Open files are left to the engine's default ulimits: a container's `Ulimits`
        // replace the engine's whole list (Podman then fails to start it), and `nproc` would
        // count every container of the same uid on the host. `PidsLimit` bounds processes.
        let limits = launch.confinement.limits;
        let mib = |m: u64| i64::try_from(m.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            readonly_rootfs: Some(self.options.read_only_root),
            tmpfs: self.options.read_only_root.then(|| HashMap::from([("/tmp".to_owned(), "rw,nosuid,nodev,size=256m".to_owned())])),
            memory: limits.memory_mib.map(mib),
            pids_limit: limits.processes.and_then(|n| i64::try_from(n).ok()),
            nano_cpus: self.options.cpus.map(|c| (c * 1e9) as i64),
            network_mode: Some(match launch.confinement.network {
                Network::Host => self.options.network.clone(),
                Network::None => "none".into(),
            }),
            mounts: Some(vec![Mount {
                typ: Some(MountType::VOLUME),
                source: Some(self.volume_name(&launch.workspace_id)),
                target: Some(self.options.work_dir.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(image.to_owned()),
            // What the engine's own stop waits too (a forced removal, the engine's shutdown).
            stop_timeout: i64::try_from(self.options.grace.as_secs()).ok(),
            cmd: (!launch.argv.is_empty()).then(|| launch.argv.clone()),
            env: Some(env),
            user: Some(format!("{}:{}", self.options.user.0, self.options.user.1)),
            working_dir: Some(self.options.work_dir.clone()),
            labels: Some(self.labels(launch)),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// Ends a container at once (SIGKILL) and removes it: for what nothing records, where a
    /// grace period would only hold up wsd's start or a provision.
    async fn end_container(&self, engine: &Docker, container: &str) -> Result<(), BackendError> {
        // Not running, or not there: the removal says which.
        let _ = engine.kill_container(container, None::<bollard::query_parameters::KillContainerOptions>).await;
        self.remove_container(engine, container).await
    }

    /// Removes a container, whatever its state; one that is not there is fine. An engine
    /// still tearing the container down answers 500 (Podman: "device or resource busy"):
    /// asked again a few times before that counts as a failure.
    async fn remove_container(&self, engine: &Docker, container: &str) -> Result<(), BackendError> {
        let mut attempt = 0;
        loop {
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            match engine.remove_container(container, Some(options)).await {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(EngineError::DockerResponseServerError { status_code: 500, .. }) if attempt < REMOVE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(self.error("remove the container", e)),
            }
        }
    }

    /// The workspace's volume, made when it is not there yet: whether this call made it.
    async fn ensure_volume(&self, engine: &Docker, launch: &Launch) -> Result<bool, BackendError> {
        let name = self.volume_name(&launch.workspace_id);
        match engine.inspect_volume(&name).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.error("inspect the workspace's volume", e)),
        }
        let request = VolumeCreateRequest { name: Some(name), labels: Some(self.labels(launch)), ..Default::default() };
        match engine.create_volume(request).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(self.error("create the workspace's volume", e)),
        }
    }

    async fn remove_volume(&self, engine: &Docker, workspace_id: &str) -> Result<(), BackendError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match engine.remove_volume(&self.volume_name(workspace_id), Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.error("remove the workspace's volume", e)),
        }
    }

    async fn start_container(&self, engine: &Docker, launch: Launch) -> Result<String, BackendError> {
        let image = self.options.images.get(&launch.runtime).ok_or_else(|| {
            BackendError::NotConfigured(format!("no image is configured for runtime `{}` ([backends.docker.images])", launch.runtime))
        })?;
        match engine.inspect_image(image).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Err(BackendError::ImageMissing(image.clone())),
            Err(e) => return Err(self.error("inspect the image", e)),
        }
        let name = self.container_name(&launch.workspace_id);
        // One container per workspace: whatever a failed earlier attempt left goes first.
        self.end_container(engine, &name).await?;
        let new_volume = self.ensure_volume(engine, &launch).await?;
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = engine
            .create_container(Some(options), self.create_body(&launch, image))
            .await
            .map_err(|e| self.error("create the container", e))?;
        let started = async {
            let tar = archive::home(&self.options.home, self.options.user, &launch.files)
                .map_err(|e| BackendError::Prepare(format!("cannot pack the plan's files: {e}")))?;
            let upload = UploadToContainerOptionsBuilder::new().path("/").build();
            engine
                .upload_to_container(&created.id, Some(upload), bollard::body_full(tar.into()))
                .await
                .map_err(|e| self.error("copy the plan's files into the container", e))?;
            engine
                .start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| BackendError::Start { command: image.clone(), reason: self.error("start", e).to_string() })
        }
        .await;
        match started {
            Ok(()) => Ok(created.id),
            Err(e) => {
                // Nothing half-made stays: the container goes, and the volume when this
                // start made it (one from before holds the workspace's work).
                let mut cleanup = self.remove_container(engine, &created.id).await;
                if new_volume && cleanup.is_ok() {
                    cleanup = self.remove_volume(engine, &launch.workspace_id).await;
                }
                if let Err(cleanup) = cleanup {
                    tracing::warn!(container = %created.id, error = %cleanup, "could not remove what a failed start made");
                }
                Err(e)
            }
        }
    }

    /// The last output of a container, at most `log_cap_bytes` (and `tail` lines, or all).
    async fn engine_logs(&self, engine: &Docker, container: &str, tail: Option<usize>) -> Result<Option<String>, BackendError> {
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail(&tail).build();
        let mut stream = engine.logs(container, Some(options));
        let mut out: Vec<u8> = Vec::new();
        let cap = usize::try_from(self.options.log_cap_bytes).unwrap_or(usize::MAX);
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(frame) => {
                    out.extend_from_slice(&frame.into_bytes());
                    if out.len() > cap.saturating_mul(2) {
                        out.drain(..out.len() - cap);
                    }
                }
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(self.error("read the container's output", e)),
            }
        }
        if out.len() > cap {
            out.drain(..out.len() - cap);
        }
        Ok(Some(String::from_utf8_lossy(&out).into_owned()))
    }
}

fn connect(host: &str) -> Result<Docker, String> {
    let connected = if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, ENGINE_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
    } else {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        Docker::connect_with_unix(path, ENGINE_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION)
    };
    connected.map_err(|e| format!("cannot connect to the container engine at {host}: {e}"))
}

/// Percent-encodes a query value (the engine's filters are JSON).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn last_lines(text: &str, tail: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(tail)..].join("\n")
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn isolation(&self) -> String {
        format!(
            "containers on the engine at {}: user {}:{}, every capability dropped, no-new-privileges, network `{}`{}",
            self.options.host,
            self.options.user.0,
            self.options.user.1,
            self.options.network,
            if self.options.read_only_root { ", read-only root filesystem" } else { "" }
        )
    }

    fn host_uids(&self) -> Option<std::ops::RangeInclusive<u32>> {
        None
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<String, BackendError>> {
        Box::pin(async move {
            let engine = self.engine()?;
            self.start_container(engine, launch).await
        })
    }

    fn stop<'a>(&'a self, workspace_id: &'a str, instance: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let engine = self.engine()?;
            let grace = i32::try_from(self.options.grace.as_secs()).unwrap_or(i32::MAX);
            match engine.stop_container(instance, Some(StopContainerOptionsBuilder::new().t(grace).build())).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                // Already stopped.
                Err(EngineError::DockerResponseServerError { status_code: 304, .. }) => {}
                Err(e) => return Err(self.error("stop the container", e)),
            }
            // Its output outlives it, capped; the container (and the plan's files in it) goes.
            if let Some(text) = self.engine_logs(engine, instance, None).await?
                && let Err(e) =
                    std::fs::create_dir_all(&self.options.log_dir).and_then(|()| std::fs::write(self.log_file(workspace_id), text))
            {
                tracing::warn!(workspace = workspace_id, error = %e, "could not keep a stopped container's output");
            }
            self.remove_container(engine, instance).await
        })
    }

    fn remove<'a>(&'a self, workspace_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let engine = self.engine()?;
            self.remove_container(engine, &self.container_name(workspace_id)).await?;
            self.remove_volume(engine, workspace_id).await?;
            match std::fs::remove_file(self.log_file(workspace_id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackendError::Io(e.to_string())),
                _ => Ok(()),
            }
        })
    }

    fn status<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<InstanceStatus, BackendError>> {
        Box::pin(async move {
            self.engine()?;
            if instance.is_empty() || !instance.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                return Ok(InstanceStatus::Missing);
            }
            let (status, inspected) = raw::get(&self.options.host, &format!("/containers/{instance}/json"))
                .await
                .map_err(|e| self.unavailable("inspect the container", &e))?;
            Ok(match (status, raw::running_or_exit(&inspected)) {
                (404, _) => InstanceStatus::Missing,
                (200, Ok(())) => InstanceStatus::Running,
                (200, Err(code)) => InstanceStatus::Exited { code },
                (status, _) => return Err(BackendError::Io(format!("inspect the container: the container engine answered {status}"))),
            })
        })
    }

    fn logs<'a>(&'a self, workspace_id: &'a str, tail: usize) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            let engine = self.engine()?;
            if let Some(text) = self.engine_logs(engine, &self.container_name(workspace_id), Some(tail)).await? {
                return Ok(text.trim_end().to_owned());
            }
            match std::fs::read_to_string(self.log_file(workspace_id)) {
                Ok(text) => Ok(last_lines(&text, tail)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(BackendError::Io(e.to_string())),
            }
        })
    }

    fn reconcile<'a>(&'a self, recorded: &'a [(String, String)]) -> BoxFuture<'a, Reconciled> {
        Box::pin(async move {
            let mut outcome = Reconciled::default();
            let Ok(engine) = self.engine() else {
                tracing::error!(host = %self.options.host, "cannot take over containers: the engine cannot be reached");
                return outcome;
            };
            let filters = serde_json::json!({"label": [format!("{LABEL_OWNER}={}", self.options.owner)]}).to_string();
            let path = format!("/containers/json?all=1&filters={}", percent_encode(&filters));
            let containers = match raw::get(&self.options.host, &path).await {
                Ok((200, serde_json::Value::Array(list))) => list,
                Ok((status, _)) => {
                    tracing::error!(status, "cannot take over containers: the engine refused to list them");
                    return outcome;
                }
                Err(e) => {
                    tracing::error!(error = %self.unavailable("list containers", &e), "cannot take over containers");
                    return outcome;
                }
            };
            let mut found = std::collections::HashSet::new();
            for container in containers {
                let Some(id) = container["Id"].as_str().map(str::to_owned) else { continue };
                let workspace = container["Labels"][LABEL_WORKSPACE].as_str().unwrap_or_default().to_owned();
                if recorded.iter().any(|(w, i)| *w == workspace && *i == id) {
                    found.insert(id);
                    outcome.adopted += 1;
                } else {
                    match self.end_container(engine, &id).await {
                        Ok(()) => outcome.ended += 1,
                        Err(e) => tracing::error!(container = %id, error = %e, "cannot remove a container nothing records"),
                    }
                }
            }
            outcome.gone = recorded.iter().filter(|(_, i)| !found.contains(i)).count();
            outcome
        })
    }
}
