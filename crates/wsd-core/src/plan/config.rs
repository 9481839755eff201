//! The config files that define a runtime's provider for it (Codex, OpenClaw): with one, the
//! runtime reads its key from the env var the file names and sends it only to the file's base
//! URL, whatever else its env holds.

use super::codex::CodexConfig;
use super::openclaw::OpenclawConfig;
use crate::env_key::EnvKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RuntimeConfig {
    Codex(CodexConfig),
    Openclaw(OpenclawConfig),
}

/// The provider a config file defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfiguredProvider<'a> {
    pub key_env: &'a EnvKey,
    pub base_url: &'a str,
    pub sent_as: &'static str,
}

impl RuntimeConfig {
    pub(crate) fn render(&self) -> String {
        match self {
            RuntimeConfig::Codex(config) => config.render(),
            RuntimeConfig::Openclaw(config) => config.render(),
        }
    }

    /// `None`: the file leaves the runtime on its own login (a Codex subscription).
    pub(crate) fn provider(&self) -> Option<ConfiguredProvider<'_>> {
        match self {
            RuntimeConfig::Codex(config) => config.provider.as_ref().map(|p| ConfiguredProvider {
                key_env: &p.env_key,
                base_url: &p.base_url,
                sent_as: "Authorization: Bearer",
            }),
            RuntimeConfig::Openclaw(config) => {
                Some(ConfiguredProvider { key_env: &config.key_env, base_url: &config.base_url, sent_as: config.sent_as() })
            }
        }
    }
}
