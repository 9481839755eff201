//! `WSD_CONFIG`: the TOML file for what is not a single setting — platform routing,
//! registry overlays, backends, policy. Parsed once; unknown keys are refused, and every
//! problem names its table and key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use wsd_core::EnvKey;
use wsd_core::plan::{CredentialDelivery, PlatformSettings, Policy};
use wsd_core::registry::ProviderOverride;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Present: platform routing is available.
    pub platform: Option<PlatformSection>,
    #[serde(default)]
    pub registry: RegistrySection,
    #[serde(default)]
    pub backends: BackendsSection,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub proxy: ProxySection,
    #[serde(default)]
    pub server: ServerSection,
    /// Prices per model id laid over the registry's (`[prices."<model>"]`).
    #[serde(default)]
    pub prices: BTreeMap<String, wsd_core::prices::PriceEntry>,
}

/// The listener's limits: what unauthenticated traffic may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The longest a connection may take to send a request's headers, or idle between two.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Connections served at once; past it a connection gets 503 and is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_read_timeout() -> u64 {
    15
}

fn default_max_connections() -> usize {
    4096
}

impl Default for ServerSection {
    fn default() -> Self {
        Self { header_read_timeout_seconds: default_header_read_timeout(), max_connections: default_max_connections() }
    }
}

impl ServerSection {
    pub fn limits(&self) -> crate::listener::ListenerLimits {
        crate::listener::ListenerLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds),
            max_connections: self.max_connections,
            ..crate::listener::ListenerLimits::default()
        }
    }
}

/// The metering proxy's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// The longest wait for a connection to a provider.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// The longest a provider may stay silent, before its answer starts and between two
    /// pieces of a streamed one.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_seconds: u64,
    /// The output tokens a request that names no maximum is estimated at, for budgets.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u64,
}

fn default_output_tokens() -> u64 {
    4096
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_upstream_timeout() -> u64 {
    300
}

impl Default for ProxySection {
    fn default() -> Self {
        Self {
            connect_timeout_seconds: default_connect_timeout(),
            upstream_timeout_seconds: default_upstream_timeout(),
            default_output_tokens: default_output_tokens(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSection {
    /// What workspaces are told to call, e.g. `http://127.0.0.1:8080/llm`.
    pub proxy_base_url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    #[serde(default)]
    pub overrides: BTreeMap<String, ProviderOverride>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsSection {
    #[serde(default)]
    pub restart_on_change: bool,
    /// Where workspaces run unless their runtime says otherwise.
    #[serde(default)]
    pub default: BackendKind,
    /// Runtimes that run elsewhere than the default, e.g. `codex = "docker"`.
    #[serde(default)]
    pub runtimes: BTreeMap<String, BackendKind>,
    pub process: Option<ProcessSection>,
    pub docker: Option<DockerSection>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Process,
    Docker,
}

impl BackendsSection {
    /// Whether any runtime runs on `kind`.
    pub fn uses(&self, kind: BackendKind) -> bool {
        self.default == kind || self.runtimes.values().any(|k| *k == kind)
    }
}

/// `[backends.docker]`: containers on an engine that speaks the Docker Engine API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// The engine: `unix:///var/run/docker.sock`, `tcp://host:2375`. Default: `DOCKER_HOST`,
    /// then `unix:///var/run/docker.sock`.
    pub socket: Option<String>,
    /// This deployment's name in container names and labels (default `wsd`); two wsd
    /// deployments on one engine need two names.
    pub owner: Option<String>,
    /// The image per runtime; a runtime without one cannot run in a container.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// argv per runtime; without one, the image's own command runs.
    #[serde(default)]
    pub commands: BTreeMap<String, Vec<String>>,
    /// `uid:gid` the agent runs as (numeric; default `1000:1000`, never root unless said).
    pub user: Option<String>,
    /// The agent's home (default `/home/agent`).
    pub home: Option<String>,
    /// Where the workspace's persistent volume is mounted (default `<home>/work`).
    pub work_dir: Option<String>,
    /// Network mode of a workspace (`bridge`, the default; `host`; `none`; a network name).
    pub network: Option<String>,
    /// A read-only root filesystem, with a private `/tmp`.
    #[serde(default)]
    pub read_only_root: bool,
    /// Memory per container, MiB (0: no limit).
    pub memory_mib: Option<u64>,
    /// Processes and threads at once, per container (0: no limit).
    pub processes: Option<u64>,
    /// CPUs per container, e.g. 1.5.
    pub cpus: Option<f64>,
    /// How long a stop waits after SIGTERM before the engine kills (default 10).
    pub stop_grace_seconds: Option<u64>,
    /// What containers are told to call instead of `[platform] proxy_base_url`, when they
    /// reach wsd by another name (e.g. `http://host.docker.internal:8080/llm`).
    pub proxy_base_url: Option<String>,
}

impl DockerSection {
    /// The engine's address: configured, else `docker_host` (`DOCKER_HOST`), else the
    /// usual socket.
    pub fn socket(&self, docker_host: Option<&str>) -> String {
        self.socket
            .clone()
            .or_else(|| docker_host.filter(|h| !h.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }

    /// The agent's `(uid, gid)`.
    pub fn user(&self) -> Result<(u32, u32), ConfigError> {
        let Some(user) = &self.user else { return Ok((1000, 1000)) };
        let parsed = match user.split_once(':') {
            Some((uid, gid)) => uid.parse().ok().zip(gid.parse().ok()),
            None => user.parse().ok().map(|uid| (uid, uid)),
        };
        parsed.ok_or_else(|| ConfigError::DockerUser(user.clone()))
    }

    /// The backend's options (`log_dir`: where stopped containers' last output is kept).
    pub fn options(&self, log_dir: PathBuf, docker_host: Option<&str>) -> Result<wsd_backend::DockerOptions, ConfigError> {
        let mut options = wsd_backend::DockerOptions::new(self.socket(docker_host), log_dir);
        if let Some(owner) = &self.owner {
            options.owner.clone_from(owner);
        }
        options.images = self.images.clone();
        options.user = self.user()?;
        if let Some(home) = &self.home {
            options.home.clone_from(home);
            options.work_dir = format!("{}/work", home.trim_end_matches('/'));
        }
        if let Some(work_dir) = &self.work_dir {
            options.work_dir.clone_from(work_dir);
        }
        if let Some(network) = &self.network {
            options.network.clone_from(network);
        }
        options.read_only_root = self.read_only_root;
        options.cpus = self.cpus;
        if let Some(grace) = self.stop_grace_seconds {
            options.grace = std::time::Duration::from_secs(grace);
        }
        Ok(options)
    }

    /// Every runtime's confinement in a container: the network as configured (`none`
    /// when the mode is `none`) and the section's limits.
    pub fn confinement(&self) -> wsd_backend::Confinement {
        let limit = |value: Option<u64>, default: u64| match value.unwrap_or(default) {
            0 => None,
            n => Some(n),
        };
        wsd_backend::Confinement {
            network: if self.network.as_deref() == Some("none") { wsd_backend::Network::None } else { wsd_backend::Network::Host },
            limits: wsd_backend::Limits {
                memory_mib: limit(self.memory_mib, DEFAULT_MEMORY_MIB),
                processes: limit(self.processes, DEFAULT_PROCESSES),
                open_files: None,
            },
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSection {
    pub root: Option<PathBuf>,
    /// argv per runtime; a runtime without a command cannot be provisioned.
    #[serde(default)]
    pub commands: BTreeMap<String, Vec<String>>,
    /// `bwrap` (the default) or `none`.
    #[serde(default)]
    pub sandbox: SandboxKind,
    /// The bubblewrap binary.
    pub bwrap: Option<PathBuf>,
    /// Host directories a sandbox sees read-only (missing ones are skipped).
    pub read_only: Option<Vec<PathBuf>>,
    /// `PATH` in every workspace.
    pub path: Option<String>,
    /// `[first, last]`: the host uids workspaces run as, one each, when wsd runs as root.
    pub uid_range: Option<[u32; 2]>,
    /// Defaults for every runtime: `host` or `none`.
    pub network: Option<NetworkKind>,
    /// Writable memory per process, MiB (0: no limit).
    pub memory_mib: Option<u64>,
    /// Processes and threads at once, per workspace (0: no limit).
    pub processes: Option<u64>,
    /// Open files per process (0: no limit).
    pub open_files: Option<u64>,
    /// Per runtime: what differs from the defaults.
    #[serde(default)]
    pub runtimes: BTreeMap<String, ConfinementSection>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    #[default]
    Bwrap,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    #[default]
    Host,
    None,
}

/// A runtime's network and resource limits; unset fields fall back to the defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfinementSection {
    pub network: Option<NetworkKind>,
    /// Writable memory per process, MiB (0: no limit).
    pub memory_mib: Option<u64>,
    /// Processes and threads at once, per workspace (0: no limit).
    pub processes: Option<u64>,
    /// Open files per process (0: no limit).
    pub open_files: Option<u64>,
}

/// The first of the default host uid range; far from the ranges distributions and
/// rootless containers hand out.
pub const DEFAULT_UID_RANGE: [u32; 2] = [600_000, 699_999];

/// Limits every runtime gets unless configured otherwise: room for a Node.js agent CLI and
/// the tools it runs, not for a fork bomb.
pub const DEFAULT_MEMORY_MIB: u64 = 8192;
pub const DEFAULT_PROCESSES: u64 = 512;
pub const DEFAULT_OPEN_FILES: u64 = 4096;

impl ProcessSection {
    /// The confinement of `runtime`: its own settings over the section's over the defaults.
    pub fn confinement(&self, runtime: &str) -> wsd_backend::Confinement {
        let own = self.runtimes.get(runtime).copied().unwrap_or_default();
        let base = ConfinementSection {
            network: self.network,
            memory_mib: self.memory_mib,
            processes: self.processes,
            open_files: self.open_files,
        };
        let limit = |own: Option<u64>, base: Option<u64>, default: u64| match own.or(base).unwrap_or(default) {
            0 => None,
            n => Some(n),
        };
        wsd_backend::Confinement {
            network: match own.network.or(base.network).unwrap_or_default() {
                NetworkKind::Host => wsd_backend::Network::Host,
                NetworkKind::None => wsd_backend::Network::None,
            },
            limits: wsd_backend::Limits {
                memory_mib: limit(own.memory_mib, base.memory_mib, DEFAULT_MEMORY_MIB),
                processes: limit(own.processes, base.processes, DEFAULT_PROCESSES),
                open_files: limit(own.open_files, base.open_files, DEFAULT_OPEN_FILES),
            },
        }
    }

    /// The sandbox as configured.
    pub fn sandbox(&self) -> wsd_backend::Sandbox {
        match self.sandbox {
            SandboxKind::None => wsd_backend::Sandbox::None,
            SandboxKind::Bwrap => {
                let defaults = wsd_backend::BwrapOptions::default();
                wsd_backend::Sandbox::Bwrap(wsd_backend::BwrapOptions {
                    program: self.bwrap.clone().unwrap_or(defaults.program),
                    read_only: self.read_only.clone().unwrap_or(defaults.read_only),
                })
            }
        }
    }

    /// The host uids to run workspaces as, when wsd runs as `root`.
    pub fn host_uids(&self, root: bool) -> Option<std::ops::RangeInclusive<u32>> {
        let [first, last] = self.uid_range.unwrap_or(DEFAULT_UID_RANGE);
        root.then_some(first..=last)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default)]
    pub forbidden_keys: Vec<EnvKey>,
    #[serde(default)]
    pub forbidden_prefixes: Vec<String>,
    /// Liveness check of BYOK keys at create.
    #[serde(default)]
    pub preflight: bool,
    /// How long the liveness check waits for the provider.
    #[serde(default = "default_preflight_timeout")]
    pub preflight_timeout_seconds: u64,
    /// The most workspaces one org may run at once (0: no limit).
    #[serde(default = "default_max_running")]
    pub max_running_workspaces_per_org: u64,
    /// Plan a runtime on a provider that no real CLI was verified on (with a warning)
    /// instead of refusing it.
    #[serde(default)]
    pub allow_unverified_runtime_providers: bool,
    /// Requests per minute one workspace may send through the proxy (0: no limit); an org
    /// can be given its own (`PUT /v1/orgs/{org}/rate-limits`).
    #[serde(default)]
    pub requests_per_minute_per_workspace: u64,
    /// Tokens (input plus output) per minute one workspace may use (0: no limit).
    #[serde(default)]
    pub tokens_per_minute_per_workspace: u64,
    /// How BYOK workspaces get their keys unless their org chose: `direct` (the workspace
    /// holds the key) or `proxy` (wsd keeps it and its proxy sends it).
    #[serde(default)]
    pub credential_delivery: CredentialDelivery,
}

fn default_max_running() -> u64 {
    20
}

fn default_preflight_timeout() -> u64 {
    5
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            forbidden_keys: Vec::new(),
            forbidden_prefixes: Vec::new(),
            preflight: false,
            preflight_timeout_seconds: default_preflight_timeout(),
            max_running_workspaces_per_org: default_max_running(),
            allow_unverified_runtime_providers: false,
            requests_per_minute_per_workspace: 0,
            tokens_per_minute_per_workspace: 0,
            credential_delivery: CredentialDelivery::Direct,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Toml(String),
    #[error("platform.proxy_base_url: `{0}` is not an http(s) URL")]
    ProxyUrl(String),
    #[error("proxy.{0}: must be at least 1")]
    ZeroTimeout(&'static str),
    #[error("server.header_read_timeout_seconds and server.max_connections must be at least 1")]
    ZeroServerLimit,
    #[error("backends.process.uid_range: [{0}, {1}] must be a range of uids above 0, first <= last")]
    UidRange(u32, u32),
    #[error("backends.docker.user: `{0}` must be numeric `uid:gid` (e.g. `1000:1000`)")]
    DockerUser(String),
    #[error("backends.docker.owner: `{0}` must be 1 to 32 of a-z, 0-9 and `-`")]
    DockerOwner(String),
    #[error("backends.docker.proxy_base_url: `{0}` is not an http(s) URL")]
    DockerProxyUrl(String),
    #[error("backends: `{0}` runs on docker, which needs a [backends.docker] section")]
    DockerMissing(String),
}

impl ConfigFile {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        if let Some(platform) = &config.platform
            && !(platform.proxy_base_url.starts_with("http://") || platform.proxy_base_url.starts_with("https://"))
        {
            return Err(ConfigError::ProxyUrl(platform.proxy_base_url.clone()));
        }
        if config.proxy.connect_timeout_seconds == 0 {
            return Err(ConfigError::ZeroTimeout("connect_timeout_seconds"));
        }
        if config.proxy.upstream_timeout_seconds == 0 {
            return Err(ConfigError::ZeroTimeout("upstream_timeout_seconds"));
        }
        if config.server.header_read_timeout_seconds == 0 || config.server.max_connections == 0 {
            return Err(ConfigError::ZeroServerLimit);
        }
        if let Some([first, last]) = config.backends.process.as_ref().and_then(|p| p.uid_range)
            && (first == 0 || first > last)
        {
            return Err(ConfigError::UidRange(first, last));
        }
        config.check_docker()?;
        Ok(config)
    }

    fn check_docker(&self) -> Result<(), ConfigError> {
        let backends = &self.backends;
        let Some(docker) = &backends.docker else {
            return match backends.uses(BackendKind::Docker) {
                true => Err(ConfigError::DockerMissing(if backends.default == BackendKind::Docker {
                    "the default".to_owned()
                } else {
                    backends
                        .runtimes
                        .iter()
                        .find(|(_, k)| **k == BackendKind::Docker)
                        .map(|(r, _)| format!("runtime {r}"))
                        .unwrap_or_default()
                })),
                false => Ok(()),
            };
        };
        docker.user()?;
        if let Some(owner) = &docker.owner
            && (owner.is_empty() || owner.len() > 32 || !owner.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(ConfigError::DockerOwner(owner.clone()));
        }
        if let Some(url) = &docker.proxy_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::DockerProxyUrl(url.clone()));
        }
        Ok(())
    }

    /// The runtimes whose workspaces are told another proxy URL than the platform's: those
    /// that run in containers, when `[backends.docker] proxy_base_url` is set.
    pub fn runtime_platform_settings(&self, runtimes: impl Iterator<Item = String>) -> BTreeMap<String, PlatformSettings> {
        let (Some(_), Some(url)) = (&self.platform, self.backends.docker.as_ref().and_then(|d| d.proxy_base_url.as_ref())) else {
            return BTreeMap::new();
        };
        runtimes
            .filter(|runtime| self.backends.runtimes.get(runtime).copied().unwrap_or(self.backends.default) == BackendKind::Docker)
            .map(|runtime| (runtime, PlatformSettings { proxy_base_url: url.clone() }))
            .collect()
    }

    pub fn platform_settings(&self) -> Option<PlatformSettings> {
        self.platform.as_ref().map(|p| PlatformSettings { proxy_base_url: p.proxy_base_url.clone() })
    }

    pub fn proxy_settings(&self) -> crate::proxy::ProxySettings {
        crate::proxy::ProxySettings {
            connect_timeout: std::time::Duration::from_secs(self.proxy.connect_timeout_seconds),
            upstream_timeout: std::time::Duration::from_secs(self.proxy.upstream_timeout_seconds),
            default_output_tokens: self.proxy.default_output_tokens,
            rate_limits: crate::proxy::rate::RateLimits {
                requests_per_minute: self.policy.requests_per_minute_per_workspace,
                tokens_per_minute: self.policy.tokens_per_minute_per_workspace,
            },
        }
    }

    pub fn planner_policy(&self) -> Policy {
        Policy {
            forbidden_keys: self.policy.forbidden_keys.iter().cloned().collect(),
            forbidden_prefixes: self.policy.forbidden_prefixes.clone(),
            allow_unverified: self.policy.allow_unverified_runtime_providers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let config = ConfigFile::parse(
            r#"
[platform]
proxy_base_url = "http://127.0.0.1:8080/llm"

[registry.overrides.minimax]
base_url_anthropic = "http://127.0.0.1:9000/anthropic"

[backends.process]
root = "./wsd-data/workspaces"
[backends.process.commands]
claude-code = ["claude", "-p", "hello"]

[policy]
forbidden_keys = ["MY_DEPLOY_TOKEN"]
forbidden_prefixes = ["OPS_"]
preflight = false

[proxy]
upstream_timeout_seconds = 120
"#,
        )
        .unwrap();
        assert_eq!(config.platform_settings().unwrap().proxy_base_url, "http://127.0.0.1:8080/llm");
        assert_eq!(config.registry.overrides["minimax"].base_url_anthropic.as_deref(), Some("http://127.0.0.1:9000/anthropic"));
        assert_eq!(config.backends.process.as_ref().unwrap().commands["claude-code"], ["claude", "-p", "hello"]);
        assert_eq!(config.proxy_settings().upstream_timeout, std::time::Duration::from_secs(120));
        assert_eq!(config.proxy_settings().connect_timeout, std::time::Duration::from_secs(10));
        let policy = config.planner_policy();
        assert!(policy.is_forbidden_for_org(&EnvKey::new("MY_DEPLOY_TOKEN").unwrap()));
        assert!(policy.is_forbidden_for_org(&EnvKey::new("OPS_X").unwrap()));
    }

    #[test]
    fn the_documented_file_is_valid_and_its_defaults_are_the_defaults() {
        let doc = include_str!("../../../docs/config.md");
        let toml = doc.split("```toml\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
        let documented = ConfigFile::parse(toml).unwrap();
        let defaults = ConfigFile::parse("").unwrap();
        assert_eq!(documented.policy.max_running_workspaces_per_org, defaults.policy.max_running_workspaces_per_org);
        assert_eq!(documented.policy.preflight_timeout_seconds, defaults.policy.preflight_timeout_seconds);
        assert_eq!(documented.policy.credential_delivery, defaults.policy.credential_delivery);
        assert_eq!(documented.proxy_settings(), defaults.proxy_settings());
        assert_eq!(documented.server.limits(), defaults.server.limits());
        let process = documented.backends.process.clone().unwrap();
        let default_process = ProcessSection::default();
        assert_eq!(process.confinement("claude-code"), default_process.confinement("claude-code"));
        assert_eq!(process.host_uids(true), default_process.host_uids(true));
        assert_eq!(process.path.as_deref(), Some(wsd_backend::DEFAULT_PATH));
        let wsd_backend::Sandbox::Bwrap(bwrap) = process.sandbox() else { panic!("the documented sandbox is bwrap") };
        let wsd_backend::Sandbox::Bwrap(default_bwrap) = default_process.sandbox() else { panic!() };
        assert_eq!((bwrap.program, bwrap.read_only), (default_bwrap.program, default_bwrap.read_only));
        let docker = documented.backends.docker.clone().unwrap();
        let dir = std::path::PathBuf::from("/logs");
        let (options, default_options) = (docker.options(dir.clone(), None).unwrap(), DockerSection::default().options(dir, None).unwrap());
        assert_eq!(format!("{options:?}"), format!("{default_options:?}"));
        assert_eq!(docker.confinement(), DockerSection::default().confinement());
        assert_eq!(documented.backends.default, BackendKind::Process);
        let registry = wsd_core::Registry::embedded().unwrap().with_prices(&documented.prices).unwrap();
        let shipped = wsd_core::Registry::embedded().unwrap();
        assert_eq!(registry.prices().get("MiniMax-M2.7"), shipped.prices().get("MiniMax-M2.7"), "the example restates a shipped price");
        assert_eq!(registry.prices().get("in-house-model").unwrap().base.output, Some(400_000));
        assert!(shipped.prices().get("in-house-model").is_none());
        let bad = ConfigFile::parse("[prices.m]\ninput = -3\n").unwrap();
        let e = wsd_core::Registry::embedded().unwrap().with_prices(&bad.prices).unwrap_err().to_string();
        assert!(e.contains("prices.m.input: -3 is not a price"), "{e}");
        assert!(ConfigFile::parse("[prices.m]\nimput = 3\n").unwrap_err().to_string().contains("unknown field `imput`"));
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = ConfigFile::parse("").unwrap();
        assert!(config.platform_settings().is_none());
        assert!(!config.policy.preflight);
    }

    #[test]
    fn mistakes_are_refused_with_their_location() {
        let e = ConfigFile::parse("[platfrom]\nproxy_base_url = \"http://x\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `platfrom`"), "{e}");
        let e = ConfigFile::parse("[policy]\nforbidden_keys = [\"lower\"]\n").unwrap_err().to_string();
        assert!(e.contains("lower"), "{e}");
        let e = ConfigFile::parse("[platform]\nproxy_base_url = \"127.0.0.1:8080\"\n").unwrap_err().to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = ConfigFile::parse("[registry.overrides.minimax]\nbase_url = \"http://x\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `base_url`"), "{e}");
        let e = ConfigFile::parse("[proxy]\nupstream_timeout_seconds = 0\n").unwrap_err().to_string();
        assert_eq!(e, "proxy.upstream_timeout_seconds: must be at least 1");
        let e = ConfigFile::parse("[backends.process]\nuid_range = [10, 5]\n").unwrap_err().to_string();
        assert!(e.contains("uid_range: [10, 5]"), "{e}");
        let e = ConfigFile::parse("[backends.process]\nsandbox = \"off\"\n").unwrap_err().to_string();
        assert!(e.contains("off") && e.contains("bwrap"), "{e}");
    }

    #[test]
    fn sandbox_and_limits_default_safe_and_runtimes_override_them() {
        let config = ConfigFile::parse("").unwrap();
        assert_eq!(config.policy.max_running_workspaces_per_org, 20);
        let process = config.backends.process.clone().unwrap_or_default();
        assert!(matches!(process.sandbox(), wsd_backend::Sandbox::Bwrap(_)));
        assert_eq!(process.host_uids(true), Some(600_000..=699_999));
        assert_eq!(process.host_uids(false), None);
        let defaults = process.confinement("claude-code");
        assert_eq!(defaults.network, wsd_backend::Network::Host);
        assert_eq!(defaults.limits.memory_mib, Some(DEFAULT_MEMORY_MIB));

        let config = ConfigFile::parse(
            r#"
[policy]
max_running_workspaces_per_org = 0
[backends.process]
sandbox = "none"
uid_range = [700000, 700009]
path = "/opt/agents/bin:/usr/bin"
read_only = ["/usr"]
processes = 100
[backends.process.runtimes.codex]
network = "none"
memory_mib = 0
"#,
        )
        .unwrap();
        let process = config.backends.process.clone().unwrap();
        assert!(matches!(process.sandbox(), wsd_backend::Sandbox::None));
        assert_eq!(process.host_uids(true), Some(700_000..=700_009));
        assert_eq!(process.path.as_deref(), Some("/opt/agents/bin:/usr/bin"));
        let codex = process.confinement("codex");
        assert_eq!((codex.network, codex.limits.memory_mib, codex.limits.processes), (wsd_backend::Network::None, None, Some(100)));
        let claude = process.confinement("claude-code");
        assert_eq!((claude.network, claude.limits.memory_mib), (wsd_backend::Network::Host, Some(DEFAULT_MEMORY_MIB)));
        assert_eq!(config.policy.max_running_workspaces_per_org, 0);
    }

    #[test]
    fn runtimes_move_to_containers_with_safe_defaults() {
        let config = ConfigFile::parse(
            r#"
[platform]
proxy_base_url = "http://127.0.0.1:8080/llm"
[backends]
runtimes = { codex = "docker" }
[backends.docker]
socket = "unix:///run/podman/podman.sock"
proxy_base_url = "http://host.containers.internal:8080/llm"
memory_mib = 2048
[backends.docker.images]
codex = "registry.example/agents/codex:0.171"
"#,
        )
        .unwrap();
        let docker = config.backends.docker.clone().unwrap();
        assert!(config.backends.uses(BackendKind::Docker) && config.backends.uses(BackendKind::Process));
        let options = docker.options("/tmp/logs".into(), Some("unix:///elsewhere.sock")).unwrap();
        assert_eq!(options.host, "unix:///run/podman/podman.sock", "the section's socket wins over DOCKER_HOST");
        assert_eq!((options.user, options.home.as_str(), options.network.as_str()), ((1000, 1000), "/home/agent", "bridge"));
        assert_eq!(options.images["codex"], "registry.example/agents/codex:0.171");
        let confinement = docker.confinement();
        assert_eq!((confinement.limits.memory_mib, confinement.limits.processes), (Some(2048), Some(DEFAULT_PROCESSES)));
        let platforms = config.runtime_platform_settings(["codex".to_owned(), "claude-code".to_owned()].into_iter());
        assert_eq!(platforms.keys().collect::<Vec<_>>(), ["codex"], "only runtimes in containers reach the proxy by another URL");
        assert_eq!(platforms["codex"].proxy_base_url, "http://host.containers.internal:8080/llm");
        assert_eq!(DockerSection::default().socket(None), "unix:///var/run/docker.sock");
        assert_eq!(DockerSection::default().socket(Some("tcp://10.0.0.2:2375")), "tcp://10.0.0.2:2375");

        for (text, error) in [
            ("[backends]\ndefault = \"docker\"\n", "needs a [backends.docker] section"),
            ("[backends.runtimes]\ncodex = \"docker\"\n", "runtime codex"),
            ("[backends.docker]\nuser = \"agent\"\n", "must be numeric"),
            ("[backends.docker]\nowner = \"Team A\"\n", "backends.docker.owner"),
            ("[backends.docker]\nproxy_base_url = \"host:8080\"\n", "not an http(s) URL"),
            ("[backends.docker]\nimage = \"x\"\n", "unknown field"),
        ] {
            let e = ConfigFile::parse(text).unwrap_err().to_string();
            assert!(e.contains(error), "{text}: {e}");
        }
        assert_eq!(
            ConfigFile::parse("[backends.docker]\nuser = \"1001:1002\"\n").unwrap().backends.docker.unwrap().user().unwrap(),
            (1001, 1002)
        );
    }
}
