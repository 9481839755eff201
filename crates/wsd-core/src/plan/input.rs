//! What the planner is given: the workspace, the names and origins of its secrets (never
//! their values), the server's platform settings and the operator's policy.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::env_key::EnvKey;

/// A workspace identifier as it may appear in a header: `[A-Za-z0-9_-]`, 1 to 64 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WorkspaceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workspace id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'")]
pub struct WorkspaceIdError;

impl WorkspaceId {
    pub fn new(id: &str) -> Result<Self, WorkspaceIdError> {
        let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(id.to_owned())) } else { Err(WorkspaceIdError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The workspace being planned, as stored (its model is a field of its own), with the
/// credential delivery its org chose.
#[derive(Debug, Clone)]
pub struct WorkspaceSpec {
    pub id: WorkspaceId,
    pub runtime: String,
    pub model: String,
    pub delivery: DeliveryChoice,
}

/// How a BYOK workspace's own key reaches its provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialDelivery {
    /// The key is in the workspace's env or files; the runtime sends it to the provider.
    #[default]
    Direct,
    /// The key stays in wsd: the workspace holds a usage token, worthless elsewhere, that
    /// wsd's proxy exchanges for the key on each call.
    Proxy,
}

impl CredentialDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialDelivery::Direct => "direct",
            CredentialDelivery::Proxy => "proxy",
        }
    }
}

/// Who chose a workspace's credential delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySetBy {
    /// The operator's default (`[policy] credential_delivery`).
    #[default]
    Platform,
    /// The workspace's org.
    Org,
}

/// The credential delivery that applies to a workspace, and who chose it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DeliveryChoice {
    pub delivery: CredentialDelivery,
    pub set_by: DeliverySetBy,
}

impl DeliveryChoice {
    /// "`proxy` (the org's setting)".
    pub fn describe(self) -> String {
        let by = match self.set_by {
            DeliverySetBy::Platform => "the platform's default",
            DeliverySetBy::Org => "the org's setting",
        };
        format!("`{}` ({by})", self.delivery.as_str())
    }
}

/// Where a secret was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretOrigin {
    /// Set org-wide by the org's admins; inherited by every workspace.
    Org,
    /// Set on this workspace by its user.
    Workspace,
}

impl SecretOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretOrigin::Org => "org",
            SecretOrigin::Workspace => "workspace",
        }
    }
}

/// The names of the secrets a workspace would inherit, by origin. The store holds only
/// non-empty values, so a name here means a value is present.
#[derive(Debug, Clone, Default)]
pub struct SecretNames {
    pub org: BTreeSet<EnvKey>,
    pub workspace: BTreeSet<EnvKey>,
}

/// The server's platform-routing settings. Absent: platform routing is unavailable.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// The metering proxy's root as the workspace reaches it, e.g. `http://127.0.0.1:8080/llm`.
    pub proxy_base_url: String,
}

impl PlatformSettings {
    fn root(&self) -> &str {
        self.proxy_base_url.trim_end_matches('/')
    }

    /// The proxy's Anthropic surface (an SDK appends `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        format!("{}/anthropic", self.root())
    }

    /// The proxy's OpenAI surface (an SDK appends `/chat/completions` or `/responses`).
    pub fn openai_base_url(&self) -> String {
        format!("{}/openai/v1", self.root())
    }

    pub fn base_url(&self, protocol: crate::registry::Protocol) -> String {
        match protocol {
            crate::registry::Protocol::Anthropic => self.anthropic_base_url(),
            crate::registry::Protocol::Openai => self.openai_base_url(),
        }
    }
}

/// Operator-scope env names that org secrets may never carry into a workspace: SCM write
/// tokens, static cloud keys, wsd's own credentials.
pub const BUILTIN_FORBIDDEN_KEYS: &[&str] = &[
    "ADMIN_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_CLIENT_SECRET",
    "BITBUCKET_TOKEN",
    "GH_TOKEN",
    "GITEA_PAT",
    "GITEA_TOKEN",
    "GITHUB_PAT",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "GL_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

fn builtin_forbidden() -> &'static rustc_hash::FxHashSet<&'static str> {
    static SET: std::sync::OnceLock<rustc_hash::FxHashSet<&'static str>> = std::sync::OnceLock::new();
    SET.get_or_init(|| BUILTIN_FORBIDDEN_KEYS.iter().copied().collect())
}

/// Prefixes that mark operator-scope names; `WSD_` covers wsd's admin, master and
/// encryption keys and the usage-token env.
pub const BUILTIN_FORBIDDEN_PREFIXES: &[&str] = &["WSD_"];

/// The operator's policy: forbidden keys and prefixes added to the built-in list, and
/// whether runtime–provider pairs that no real CLI was verified on may be planned.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub forbidden_keys: BTreeSet<EnvKey>,
    pub forbidden_prefixes: Vec<String>,
    /// Plan a runtime on a provider no verification covers (with a warning) instead of
    /// refusing it (`UNVERIFIED_RUNTIME_PROVIDER`).
    pub allow_unverified: bool,
}

impl Policy {
    /// Whether an org secret named `key` is operator-scope.
    pub fn is_forbidden_for_org(&self, key: &EnvKey) -> bool {
        let name = key.as_str();
        builtin_forbidden().contains(name)
            || self.forbidden_keys.contains(key)
            || BUILTIN_FORBIDDEN_PREFIXES.iter().any(|p| name.starts_with(p))
            || self.forbidden_prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EnvKey {
        EnvKey::new(name).unwrap()
    }

    #[test]
    fn workspace_ids_are_header_safe() {
        let id = WorkspaceId::new("0193b7c2-aa_B").unwrap();
        assert_eq!(
            (id.as_str(), format!("{id:?}"), id.to_string()),
            ("0193b7c2-aa_B", "\"0193b7c2-aa_B\"".to_owned(), "0193b7c2-aa_B".to_owned())
        );
        assert!(WorkspaceId::new(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a\nb", "a:b", &"a".repeat(65)] {
            assert_eq!(WorkspaceId::new(bad), Err(WorkspaceIdError), "{bad:?}");
        }
    }

    #[test]
    fn proxy_urls_are_joined_without_double_slashes() {
        let settings = PlatformSettings { proxy_base_url: "http://127.0.0.1:8080/llm/".into() };
        assert_eq!(settings.anthropic_base_url(), "http://127.0.0.1:8080/llm/anthropic");
        assert_eq!(settings.openai_base_url(), "http://127.0.0.1:8080/llm/openai/v1");
    }

    #[test]
    fn every_builtin_key_is_forbidden() {
        for name in BUILTIN_FORBIDDEN_KEYS {
            assert!(Policy::default().is_forbidden_for_org(&key(name)), "{name}");
        }
    }

    #[test]
    fn policy_adds_keys_and_prefixes_to_the_builtin_list() {
        let policy =
            Policy { forbidden_keys: [key("MY_DEPLOY_TOKEN")].into(), forbidden_prefixes: vec!["OPS_".into()], ..Policy::default() };
        for forbidden in ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "WSD_MASTER_KEY", "MY_DEPLOY_TOKEN", "OPS_X"] {
            assert!(policy.is_forbidden_for_org(&key(forbidden)), "{forbidden}");
        }
        for allowed in ["MINIMAX_API_KEY", "OPS", "MY_DEPLOY", "DATABASE_URL"] {
            assert!(!policy.is_forbidden_for_org(&key(allowed)), "{allowed}");
        }
        assert!(!Policy::default().is_forbidden_for_org(&key("MY_DEPLOY_TOKEN")));
    }
}
