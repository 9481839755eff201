//! What the planner produces: a `Plan` whose env entries are references ("from org secret
//! K", "the usage token", "literal base URL"), resolved to values by the provisioner at the
//! last moment. A `Plan` holds no secret value, so it can be shown, logged and hashed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::input::SecretOrigin;
use crate::env_key::EnvKey;

/// Who pays for and meters the workspace's LLM traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Through wsd's metering proxy with a per-workspace usage token.
    Platform,
    /// Straight to the vendor with the org's or the user's own key.
    Byok,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Platform => "platform",
            Routing::Byok => "byok",
        }
    }
}

/// The env name the per-workspace usage token is injected as.
pub const USAGE_TOKEN_ENV: &str = "WSD_LLM_USAGE_TOKEN";
/// The env name the metering proxy's root URL is injected as.
pub const PROXY_BASE_URL_ENV: &str = "WSD_LLM_BASE_URL";
/// The env name the workspace's model is always written to.
pub const MODEL_ENV: &str = "WSD_MODEL";

/// Where an env entry's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnvValue {
    /// The value of a secret.
    Secret { key: EnvKey, origin: SecretOrigin },
    /// The per-workspace usage token, minted at provision.
    UsageToken,
    /// A non-secret setting: a base URL, the model, a hardening flag.
    Literal(String),
}

impl EnvValue {
    /// A phrase naming the source, for explanations; never a value.
    pub fn describe(&self) -> String {
        match self {
            EnvValue::Secret { key, origin } => format!("the {} secret {key}", origin.as_str()),
            EnvValue::UsageToken => "the usage token".to_owned(),
            EnvValue::Literal(_) => "a fixed setting".to_owned(),
        }
    }
}

/// How an entry came to be in the final env.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOrigin {
    Org,
    Workspace,
    Injected,
    Projected,
}

impl EntryOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryOrigin::Org => "org",
            EntryOrigin::Workspace => "workspace",
            EntryOrigin::Injected => "injected",
            EntryOrigin::Projected => "projected",
        }
    }
}

impl From<SecretOrigin> for EntryOrigin {
    fn from(origin: SecretOrigin) -> Self {
        match origin {
            SecretOrigin::Org => EntryOrigin::Org,
            SecretOrigin::Workspace => EntryOrigin::Workspace,
        }
    }
}

/// One entry of the final env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub origin: EntryOrigin,
    pub value: EnvValue,
}

/// The content of a file written into the workspace's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// Non-secret text rendered by the planner (e.g. a Codex `config.toml`).
    Text(String),
    /// The value of a secret, written with mode 0600 (e.g. a Codex login file).
    Secret { key: EnvKey, origin: SecretOrigin },
}

/// A file the provisioner writes into the workspace's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// Relative to the workspace's home.
    pub path: String,
    pub content: FileContent,
}

/// What the planner did with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Kept,
    Stripped,
    Injected,
    Projected,
    Overridden,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kept => "kept",
            Action::Stripped => "stripped",
            Action::Injected => "injected",
            Action::Projected => "projected",
            Action::Overridden => "overridden",
        }
    }
}

/// Why a decision was taken: one line of text, static or shared, since most keys of a
/// workspace share their reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(ReasonText);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReasonText {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Reason {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            ReasonText::Static(text) => text,
            ReasonText::Shared(text) => text,
        }
    }
}

impl From<&'static str> for Reason {
    fn from(text: &'static str) -> Self {
        Self(ReasonText::Static(text))
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Self {
        Self(ReasonText::Shared(Arc::from(text)))
    }
}

impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Reason::from)
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One decision: for an input key (by origin) or an injected key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub key: EnvKey,
    pub origin: EntryOrigin,
    pub action: Action,
    pub reason: Reason,
}

/// How the planned credential reaches its endpoint, as the parity check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    /// Where the runtime reads it.
    pub via: crate::registry::CredentialSource,
    /// How it travels (`x-api-key`, `Authorization: Bearer` …).
    pub sent_as: String,
    /// Where its value comes from.
    pub value: EnvValue,
}

/// How the workspace's credential reaches its provider, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedDelivery {
    /// `proxy`: the workspace holds only its usage token; `direct`: it holds the key.
    pub delivery: super::input::CredentialDelivery,
    pub reason: String,
    /// With a BYOK key delivered through the proxy: the secret the proxy sends upstream.
    pub proxied: Option<ProxiedCredential>,
}

/// The secret wsd's proxy sends upstream for a workspace, in the header its provider takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxiedCredential {
    pub key: EnvKey,
    pub origin: SecretOrigin,
    /// `x-api-key` or `Authorization: Bearer`.
    pub sent_as: String,
}

/// The credential plan of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub runtime: String,
    pub model: String,
    pub routing: Routing,
    pub provider: String,
    /// Why this provider, in one sentence.
    pub derivation: String,
    pub env: BTreeMap<EnvKey, EnvEntry>,
    pub files: Vec<PlanFile>,
    /// Sorted by key, then origin.
    pub decisions: Vec<Decision>,
    pub warnings: Vec<String>,
    /// The CLI versions the runtime was verified on with this provider (empty when the
    /// policy let an unverified pair through).
    pub verified_on: Vec<String>,
    /// The one credential the runtime sends; set by the parity check on every `Ok` plan.
    pub credential: Option<CredentialUse>,
    pub delivery: PlannedDelivery,
}
