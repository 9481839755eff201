//! Who is calling: the bearer token, looked up by its hash. The admin token may do
//! everything; an org token only its own org, and any other org's path answers 404 so that
//! ids cannot be probed. Failed authentications are audited.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::json;
use wsd_store::{NewAuditEvent, TokenKind};

use crate::cache::TtlCache;
use crate::error::ApiError;
use crate::state::AppState;

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

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else {
            return Err(ApiError::unauthenticated("send `Authorization: Bearer <token>`"));
        };
        let hash = wsd_store::token_hash(presented);
        if let Some(caller) = state.tokens.get(&hash) {
            return Ok(caller);
        }
        let ticket = state.tokens.ticket();
        let token = state.store.authenticate_token(presented).await?;
        let caller = match &token {
            Some(token) if token.kind == TokenKind::Admin => Some(Caller::Admin { token_id: token.id.clone() }),
            Some(token) if token.kind == TokenKind::Org => {
                token.org_id.clone().map(|org_id| Caller::Org { token_id: token.id.clone(), org_id })
            }
            _ => None,
        };
        match (caller, token) {
            (Some(caller), _) => {
                state.tokens.put(ticket, hash, caller.clone());
                Ok(caller)
            }
            (None, other) => {
                let reason = if other.is_some() { "usage token used on the API" } else { "unknown or revoked token" };
                let event = NewAuditEvent {
                    org_id: None,
                    actor: "anonymous".into(),
                    action: "auth.failure".into(),
                    target: parts.uri.path().to_owned(),
                    details: json!({"method": parts.method.as_str(), "reason": reason}),
                };
                if let Err(e) = state.store.append_audit(&event).await {
                    tracing::warn!(error = %e, "could not audit a failed authentication");
                }
                Err(ApiError::unauthenticated("the token is not valid"))
            }
        }
    }
}
