//! What the API answers: one type per response body, each described in the OpenAPI
//! document. A value that must never be shown (a secret) has no field here; the one
//! response that carries a credential is [`MintedToken`], once, at minting.

use serde::Serialize;
use utoipa::ToSchema;
use wsd_store::{AuditEvent, BudgetStanding, Org, SecretMeta, Token, UsageRecord, UsageSummary, Workspace};

#[derive(Serialize, ToSchema)]
pub struct OrgList {
    /// The orgs the caller may see: all for the admin token, its own for an org token.
    pub orgs: Vec<Org>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    /// Tokens by id and prefix, never the token.
    pub tokens: Vec<Token>,
}

/// A token just minted. The secret is shown this once; wsd stores only its hash.
#[derive(Serialize, ToSchema)]
pub struct MintedToken {
    pub token: Token,
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// Names and metadata, never values.
    pub secrets: Vec<SecretMeta>,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceList {
    pub workspaces: Vec<Workspace>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Events oldest first; page on with `after` = the last `seq`.
    pub events: Vec<AuditEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    /// Unix milliseconds, inclusive.
    pub from: i64,
    /// Unix milliseconds, exclusive.
    pub to: i64,
    /// By workspace, provider and model.
    pub usage: Vec<UsageSummary>,
    /// By UTC day, over every workspace and model.
    pub days: Vec<wsd_store::DailyUsage>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageRequests {
    /// Newest first.
    pub requests: Vec<UsageRecord>,
}

/// The rate limits each workspace of an org runs under; 0: no limit.
#[derive(Serialize, ToSchema)]
pub struct RateLimitsView {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    /// `org`: the org's own; `default`: the platform's (`[policy]`).
    pub source: &'static str,
}

/// An org's budgets and where each stands.
#[derive(Serialize, ToSchema)]
pub struct BudgetList {
    pub budgets: Vec<BudgetStanding>,
}

/// Who pays for a workspace's LLM traffic.
#[derive(Serialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BillingModeKind {
    /// Through wsd's metering proxy, on the platform's keys.
    PlatformManaged,
    /// On the org's or the workspace's own key.
    Byok,
}

#[derive(Serialize, ToSchema)]
pub struct BillingMode {
    pub mode: BillingModeKind,
    /// The provider the workspace's model resolves to.
    pub provider: String,
    /// Why, in words.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogLines {
    /// The last lines of the workspace's output, oldest first.
    pub lines: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
    /// Where workspaces run by default; absent when this server runs none.
    pub backend: Option<BackendHealth>,
    /// Every backend this server runs, the default first.
    pub backends: Vec<BackendHealth>,
    /// Runtimes that run on another backend than the default (`[backends.runtimes]`).
    pub runtimes: std::collections::BTreeMap<String, &'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct BackendHealth {
    pub name: &'static str,
    /// How workspaces are isolated from each other and from wsd.
    pub isolation: String,
    /// Whether workspaces can start.
    pub available: bool,
    /// Why they cannot, when they cannot.
    pub unavailable_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`: the database answers.
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    /// Each provider as the registry declares it.
    #[schema(value_type = Vec<Object>)]
    pub providers: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct RuntimeList {
    /// Each runtime as the registry declares it, with its native providers and models.
    #[schema(value_type = Vec<Object>)]
    pub runtimes: serde_json::Value,
}
