//! Who is calling: the bearer token, looked up by its hash. The admin token may do
//! everything; an org token only its own org, and any other org's path answers 404 so that
//! ids cannot be probed. Failed authentications are counted (`/metrics`) and audited in
//! aggregate: at most one audit event per `FAILURE_AUDIT_EVERY`, holding the counts since
//! the last, so unauthenticated traffic cannot grow the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::json;
use wsd_store::{NewAuditEvent, Store, TokenKind};

use crate::cache::TtlCache;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin { token_id: String },
    Org { token_id: String, org_id: String },
}

impl Caller {
    /// The actor recorded in audit events.
    pub fn actor(&self) -> String {
        match self {
            Caller::Admin { token_id } => format!("admin-token:{token_id}"),
            Caller::Org { token_id, .. } => format!("org-token:{token_id}"),
        }
    }

    /// Admin only; an org token gets 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Org { .. } => Err(ApiError::forbidden("this operation needs the admin token")),
        }
    }

    /// The caller may act on `org`; another org is reported as not found.
    pub fn require_org(&self, org: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Org { org_id, .. } if org_id == org => Ok(()),
            Caller::Org { .. } => Err(ApiError::not_found("org")),
        }
    }

    /// The org a token is limited to, if any.
    pub fn org_limit(&self) -> Option<&str> {
        match self {
            Caller::Admin { .. } => None,
            Caller::Org { org_id, .. } => Some(org_id),
        }
    }
}

/// How long a token checked against the database is trusted without asking again. A token
/// revoked through another wsd process stops working within this time; through this one,
/// at once.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Recently authenticated API tokens, keyed by the token's hash (never the token).
pub type TokenCache = TtlCache<Vec<u8>, Caller>;

/// How often failed authentications are written to the audit log, at most.
pub const FAILURE_AUDIT_EVERY: Duration = Duration::from_secs(60);

/// Who a bearer token is: API tokens read from the store and trusted for a while, and the
/// failed attempts counted.
#[derive(Debug)]
pub struct Authenticator {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    tokens: TokenCache,
    failed: FailedAuth,
}

/// Where the [`Caller`] extractor finds the [`Authenticator`] in a router's state.
pub trait Authenticates: Send + Sync {
    fn authenticator(&self) -> &Authenticator;
}

/// Failed authentications not yet audited.
#[derive(Debug, Default)]
struct FailedAuth {
    inner: std::sync::Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    last_audit: Option<std::time::Instant>,
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl FailedAuth {
    /// Counts a failure; the counts to audit now when the last audit is long enough ago.
    fn count(&self, reason: &'static str, now: std::time::Instant) -> Option<std::collections::BTreeMap<&'static str, u64>> {
        let mut pending = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *pending.counts.entry(reason).or_default() += 1;
        if pending.last_audit.is_some_and(|at| now.duration_since(at) < FAILURE_AUDIT_EVERY) {
            return None;
        }
        pending.last_audit = Some(now);
        Some(std::mem::take(&mut pending.counts))
    }
}

impl Authenticator {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics, tokens: TokenCache::new(TOKEN_CACHE_TTL, 100_000), failed: FailedAuth::default() }
    }

    /// Every token is checked against the store again on its next use.
    pub fn forget_tokens(&self) {
        self.tokens.clear();
    }

    /// The caller a request's `Authorization: Bearer` token names.
    pub async fn caller(&self, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else {
            return Err(ApiError::unauthenticated("send `Authorization: Bearer <token>`"));
        };
        self.caller_by_hash(wsd_store::token_hash(presented)).await
    }

    /// The caller an API token names, by the token's hash (what a console session keeps).
    pub async fn caller_by_hash(&self, hash: Vec<u8>) -> Result<Caller, ApiError> {
        // A live token of another kind (a workspace's usage token) is no API caller.
        let mut other_kind = false;
        let load = async {
            Ok::<_, wsd_store::StoreError>(match self.store.authenticate_token_hash(&hash).await? {
                Some(token) if token.kind == TokenKind::Admin => Some(Caller::Admin { token_id: token.id }),
                Some(token) if token.kind == TokenKind::Org => token.org_id.map(|org_id| Caller::Org { token_id: token.id, org_id }),
                Some(_) => {
                    other_kind = true;
                    None
                }
                None => None,
            })
        };
        match self.tokens.get_or_try_load(hash.clone(), load).await? {
            Some(caller) => Ok(caller),
            None => {
                self.failed(if other_kind { "usage_token_on_api" } else { "unknown_or_revoked" }).await;
                Err(ApiError::unauthenticated("the token is not valid"))
            }
        }
    }

    /// Counts a failed authentication, and audits the counts when it is time.
    async fn failed(&self, reason: &'static str) {
        self.metrics.record_auth_failure(reason);
        let Some(counts) = self.failed.count(reason, std::time::Instant::now()) else { return };
        let event = NewAuditEvent {
            org_id: None,
            actor: "anonymous".into(),
            action: "auth.failures".into(),
            target: "api".into(),
            details: json!({"failures": counts, "since_last_seconds": FAILURE_AUDIT_EVERY.as_secs()}),
        };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::warn!(error = %e, "could not audit failed authentications");
        }
    }
}

impl<S: Authenticates> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        state.authenticator().caller(&parts.headers).await
    }
}

/// A request on one org's resources (`/v1/orgs/{org}/…`): the caller, allowed to act on
/// that org. Another org's answers 404, as a missing one does, so ids cannot be probed.
#[derive(Debug)]
pub struct OrgScope {
    pub caller: Caller,
    pub org: String,
}

impl<S: Authenticates> FromRequestParts<S> for OrgScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = axum::extract::RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found("org"))?;
        let org = params.iter().find(|(name, _)| *name == "org").map(|(_, value)| value.to_owned());
        let org = org.ok_or_else(|| ApiError::not_found("org"))?;
        caller.require_org(&org)?;
        Ok(OrgScope { caller, org })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_audited_at_most_once_a_window_with_their_counts() {
        let failed = FailedAuth::default();
        let start = std::time::Instant::now();
        assert_eq!(failed.count("unknown_or_revoked", start), Some([("unknown_or_revoked", 1)].into()));
        for _ in 0..999 {
            assert_eq!(failed.count("unknown_or_revoked", start + Duration::from_secs(1)), None);
        }
        assert_eq!(failed.count("usage_token_on_api", start + Duration::from_secs(59)), None);
        let later = start + FAILURE_AUDIT_EVERY;
        assert_eq!(failed.count("unknown_or_revoked", later), Some([("unknown_or_revoked", 1000), ("usage_token_on_api", 1)].into()));
    }
}
