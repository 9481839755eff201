//! The entities the store keeps. Secret values appear only as `SecretValue`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use wsd_core::plan::{SecretNames, SecretOrigin};
use wsd_core::{EnvKey, SecretValue};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// How its BYOK workspaces get their keys; `None`: the platform's default.
    #[schema(value_type = Option<String>, example = "proxy")]
    pub credential_delivery: Option<wsd_core::plan::CredentialDelivery>,
}

/// A workspace's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    Created,
    Provisioning,
    Running,
    Stopped,
    Failed,
}

impl WorkspaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Created => "created",
            WorkspaceStatus::Provisioning => "provisioning",
            WorkspaceStatus::Running => "running",
            WorkspaceStatus::Stopped => "stopped",
            WorkspaceStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Created, Self::Provisioning, Self::Running, Self::Stopped, Self::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or failure recorded on a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub runtime: String,
    pub model: String,
    pub status: WorkspaceStatus,
    pub last_error: Option<LastError>,
    pub backend: Option<String>,
    pub instance_id: Option<String>,
    pub plan_hash: Option<String>,
    /// The host uid it runs as, when the backend gives each workspace its own.
    pub host_uid: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A workspace's state after a lifecycle step.
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceState<'a> {
    pub status: WorkspaceStatus,
    pub last_error: Option<&'a LastError>,
    pub backend: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    pub plan_hash: Option<&'a str>,
}

/// A new workspace, before it has an id.
#[derive(Debug, Clone)]
pub struct NewWorkspace<'a> {
    pub name: &'a str,
    pub runtime: &'a str,
    pub model: &'a str,
}

/// What the store tells about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretMeta {
    #[schema(value_type = String)]
    pub key: EnvKey,
    pub key_version: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Who set the current value, as the audit log names the actor; `None` for a value set
    /// before wsd recorded it.
    pub updated_by: Option<String>,
}

/// Which secret a write or delete addresses.
#[derive(Debug, Clone, Copy)]
pub enum SecretOwner<'a> {
    Org { org: &'a str },
    Workspace { org: &'a str, workspace: &'a str },
    Platform,
}

/// A workspace's secrets with their provenance: the planner's input (names and origins)
/// and the values the provisioner resolves the plan with.
#[derive(Debug, Default)]
pub struct WorkspaceSecrets {
    pub names: SecretNames,
    values: BTreeMap<(SecretOrigin, EnvKey), SecretValue>,
}

impl WorkspaceSecrets {
    pub(crate) fn insert(&mut self, origin: SecretOrigin, key: EnvKey, value: SecretValue) {
        match origin {
            SecretOrigin::Org => self.names.org.insert(key.clone()),
            SecretOrigin::Workspace => self.names.workspace.insert(key.clone()),
        };
        self.values.insert((origin, key), value);
    }

    /// The value of the secret `key` set at `origin`.
    pub fn value(&self, origin: SecretOrigin, key: &EnvKey) -> Option<&SecretValue> {
        self.values.get(&(origin, key.clone()))
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Everything.
    Admin,
    /// Its own org only.
    Org,
    /// A workspace's metering-proxy usage token.
    Usage,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Org => "org",
            TokenKind::Usage => "usage",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Admin, Self::Org, Self::Usage].into_iter().find(|k| k.as_str() == text)
    }
}

/// An API token as stored: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: String,
    pub org_id: Option<String>,
    pub workspace_id: Option<String>,
    pub kind: TokenKind,
    pub name: String,
    /// The first characters of the token, for recognising it in listings.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// A proxy-delivered BYOK workspace's usage token: what its calls are sent with.
    #[serde(skip)]
    pub proxied: Option<ProxiedRoute>,
}

/// Where wsd's proxy sends the calls of a proxy-delivered BYOK workspace, and with which
/// secret (its name and origin; the value stays in the vault until the call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRoute {
    /// The registry's provider name.
    pub provider: String,
    pub key: EnvKey,
    pub origin: wsd_core::plan::SecretOrigin,
}

/// An audit event as read back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// An audit event to append. `details` holds names, decisions and codes, never values.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
}

/// One metered LLM request. `status` is upstream's, or for a request that did not finish:
/// 504 upstream went silent, 502 its connection or stream broke, 499 the client left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct UsageRecord {
    pub at: i64,
    pub org_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub status: i64,
    pub latency_ms: i64,
    pub request_id: String,
    /// Whose key the request ran on: `platform`, or `byok` (the org's own, through the proxy).
    pub routing: String,
    /// What the request cost in micro-dollars (10⁻⁶ USD); `None` when the price of a token
    /// class it used is unknown.
    pub cost_micros: Option<i64>,
    /// What the row releases of the budget reservation made at admission, when it is stored.
    #[sqlx(skip)]
    #[serde(skip)]
    pub reservation: Option<crate::leases::Release>,
}

/// How many sealed values each key version holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    pub current_version: u32,
    pub rows_by_version: BTreeMap<u32, u64>,
}
