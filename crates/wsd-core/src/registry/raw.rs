//! The registry file as written: serde types that refuse unknown keys. They are only an
//! input to validation (`super::validate`); nothing else uses them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::env_key::EnvKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    /// Checked before this strict parse (`validate::peek_schema_version`).
    #[serde(rename = "schema_version")]
    pub _schema_version: serde::de::IgnoredAny,
    pub providers: Vec<RawProvider>,
    pub runtimes: BTreeMap<String, RawRuntime>,
    #[serde(default)]
    pub prices: BTreeMap<String, crate::prices::PriceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub name: String,
    pub display_name: String,
    pub protocol: super::Protocol,
    pub auth_mode: super::AuthMode,
    #[serde(default)]
    pub platform: bool,
    pub auth_env: Vec<EnvKey>,
    #[serde(default)]
    pub auth_token_env: Option<EnvKey>,
    #[serde(default)]
    pub base_url_openai: Option<String>,
    #[serde(default)]
    pub base_url_anthropic: Option<String>,
    pub model_match: String,
    #[serde(default)]
    pub model_aliases: Vec<String>,
    #[serde(default)]
    pub upstream_vendor: Option<String>,
    #[serde(default)]
    pub deprecated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub display_name: String,
    pub protocol: super::Protocol,
    pub model_ids: super::ModelIds,
    #[serde(default)]
    pub model_env: Vec<EnvKey>,
    #[serde(default)]
    pub hardening_env: BTreeMap<EnvKey, String>,
    #[serde(default)]
    pub side_model_env: Vec<EnvKey>,
    pub credential_precedence: Vec<Vec<RawCredentialRead>>,
    #[serde(default)]
    pub base_url_env: Option<EnvKey>,
    pub default_base_url: String,
    pub projection: RawProjection,
    pub providers: Vec<RawNativeProvider>,
    #[serde(default)]
    pub blank_files: Vec<String>,
    #[serde(default)]
    pub requires: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentialRead {
    #[serde(default)]
    pub env: Option<EnvKey>,
    #[serde(default)]
    pub file: Option<String>,
    pub sent_as: String,
    #[serde(default)]
    pub endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub(super) enum RawProjection {
    Env {
        key_env: EnvKey,
        base_url_env: EnvKey,
        #[serde(default)]
        workspace_header_env: Option<EnvKey>,
    },
    CodexConfig {
        path: String,
        login_file: String,
    },
    OpenclawConfig {
        path: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNativeProvider {
    pub name: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub verified_on: Vec<String>,
    #[serde(default)]
    pub route: Option<RawRoute>,
    #[serde(default)]
    pub own_side_models: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    #[serde(default)]
    pub protocol: Option<super::Protocol>,
    pub credential_precedence: Vec<Vec<RawCredentialRead>>,
    pub base_url_env: EnvKey,
    pub key_env: EnvKey,
    #[serde(default)]
    pub settings: BTreeMap<EnvKey, String>,
    #[serde(default)]
    pub bare_model_id: bool,
}
