//! `WSD_CONFIG`: the TOML file for what is not a single setting — platform routing,
//! registry overlays, backends, policy. Parsed once; unknown keys are refused, and every
//! problem names its table and key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use wsd_core::EnvKey;
use wsd_core::plan::{PlatformSettings, Policy};
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
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_upstream_timeout() -> u64 {
    300
}

impl Default for ProxySection {
    fn default() -> Self {
        Self { connect_timeout_seconds: default_connect_timeout(), upstream_timeout_seconds: default_upstream_timeout() }
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
    pub process: Option<ProcessSection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSection {
    pub root: Option<PathBuf>,
    /// argv per runtime; a runtime without a command cannot be provisioned.
    #[serde(default)]
    pub commands: BTreeMap<String, Vec<String>>,
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
        Ok(config)
    }

    pub fn platform_settings(&self) -> Option<PlatformSettings> {
        self.platform.as_ref().map(|p| PlatformSettings { proxy_base_url: p.proxy_base_url.clone() })
    }

    pub fn proxy_settings(&self) -> crate::proxy::ProxySettings {
        crate::proxy::ProxySettings {
            connect_timeout: std::time::Duration::from_secs(self.proxy.connect_timeout_seconds),
            upstream_timeout: std::time::Duration::from_secs(self.proxy.upstream_timeout_seconds),
        }
    }

    pub fn planner_policy(&self) -> Policy {
        Policy {
            forbidden_keys: self.policy.forbidden_keys.iter().cloned().collect(),
            forbidden_prefixes: self.policy.forbidden_prefixes.clone(),
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
    }
}
