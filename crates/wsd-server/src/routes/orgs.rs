//! Orgs and their API tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use wsd_core::plan::CredentialDelivery;
use wsd_store::TokenKind;

use crate::auth::{Caller, OrgScope};
use crate::code;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::routes::IdPath;
use crate::state::AppState;
use crate::views::{MintedToken, OrgList, TokenList};
use wsd_store::Org;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    pub name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
}

/// How the org's BYOK workspaces get their keys.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySetting {
    /// The workspace holds its key.
    Direct,
    /// The key stays in wsd; the workspace holds a usage token its proxy exchanges for it.
    Proxy,
    /// The platform's default (`[policy] credential_delivery`).
    Default,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredentialDelivery {
    pub credential_delivery: DeliverySetting,
}

/// Characters that reorder or hide text when displayed (bidirectional overrides and
/// isolates, zero-width marks): a name holding one can read as another name.
fn deceptive(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A display name: 1 to 128 characters, no control, bidirectional or invisible characters.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    let length = name.chars().count();
    if name.trim().is_empty() || length > 128 || name.chars().any(|c| c.is_control() || deceptive(c)) {
        return Err(ApiError::bad_request(
            code::INVALID_NAME,
            format!("{what} name must be 1 to 128 characters without control, bidirectional or invisible characters"),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg, responses((status = 201, description = "the org", body = Org), (status = 403, description = "admin token needed", body = ErrorBody), (status = 409, description = "name taken", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    caller.require_admin()?;
    check_name("org", &body.name)?;
    let org = state.store.create_org(&body.name, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(get, path = "/v1/orgs", tag = "orgs", responses((status = 200, description = "the orgs the token can see", body = OrgList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<OrgList>> {
    let orgs = state.store.list_orgs().await?;
    let visible: Vec<_> = orgs.into_iter().filter(|o| caller.require_org(&o.id).is_ok()).collect();
    Ok(Json(OrgList { orgs: visible }))
}

#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs", params(("org" = String, Path)), responses((status = 200, description = "the org", body = Org), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn get(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<Org>> {
    Ok(Json(state.store.get_org(&org).await?))
}

/// Sets how the org's BYOK workspaces get their keys. Running workspaces keep their plan
/// until provisioned again (at once with `[backends] restart_on_change`); `GET …/plan`
/// shows the new one.
#[utoipa::path(put, path = "/v1/orgs/{org}/credential-delivery", tag = "orgs", params(("org" = String, Path)), request_body = PutCredentialDelivery, responses((status = 200, description = "the org, with its credential delivery (`null`: the platform's default)", body = Org), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn put_credential_delivery(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    ApiJson(body): ApiJson<PutCredentialDelivery>,
) -> ApiResult<Json<Org>> {
    let delivery = match body.credential_delivery {
        DeliverySetting::Direct => Some(CredentialDelivery::Direct),
        DeliverySetting::Proxy => Some(CredentialDelivery::Proxy),
        DeliverySetting::Default => None,
    };
    let updated = state.store.set_credential_delivery(&org, delivery, &caller.actor()).await?;
    crate::lifecycle::restart_if_changed(&state, &org, None, &caller.actor());
    Ok(Json(updated))
}

#[utoipa::path(post, path = "/v1/orgs/{org}/tokens", tag = "tokens", params(("org" = String, Path)), request_body = CreateToken, responses((status = 201, description = "the token and, once, its secret", body = MintedToken), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<MintedToken>)> {
    caller.require_admin()?;
    check_name("token", &body.name)?;
    state.store.get_org(&org).await?;
    let (token, secret) = state.store.create_token(TokenKind::Org, Some(&org), None, &body.name, &caller.actor()).await?;
    // The only response that carries a token: it is shown once and stored as a hash.
    Ok((StatusCode::CREATED, Json(MintedToken { token, secret: secret.expose().to_owned() })))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/tokens", tag = "tokens", params(("org" = String, Path)), responses((status = 200, description = "tokens by prefix", body = TokenList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list_tokens(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<TokenList>> {
    state.store.get_org(&org).await?;
    let tokens: Vec<_> = state.store.list_tokens(Some(&org)).await?.into_iter().filter(|t| t.kind == TokenKind::Org).collect();
    Ok(Json(TokenList { tokens }))
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/tokens/{id}", tag = "tokens", params(("org" = String, Path), ("id" = String, Path)), responses((status = 204, description = "revoked"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<StatusCode> {
    state.store.revoke_token(Some(&org), &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/admin/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, description = "the admin token and, once, its secret", body = MintedToken), (status = 403, description = "admin token needed", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody)))]
pub async fn create_admin_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<MintedToken>)> {
    caller.require_admin()?;
    check_name("token", &body.name)?;
    let (token, secret) = state.store.create_token(TokenKind::Admin, None, None, &body.name, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(MintedToken { token, secret: secret.expose().to_owned() })))
}

#[utoipa::path(get, path = "/v1/admin/tokens", tag = "tokens", responses((status = 200, description = "the admin tokens, by prefix", body = TokenList), (status = 403, description = "admin token needed", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody)))]
pub async fn list_admin_tokens(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<TokenList>> {
    caller.require_admin()?;
    let tokens: Vec<_> = state.store.list_tokens(None).await?.into_iter().filter(|t| t.kind == TokenKind::Admin).collect();
    Ok(Json(TokenList { tokens }))
}

#[utoipa::path(delete, path = "/v1/admin/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "revoked"), (status = 409, description = "the last live admin token", body = ErrorBody), (status = 403, description = "admin token needed", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such admin token", body = ErrorBody)))]
pub async fn revoke_admin_token(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let admins: Vec<_> =
        state.store.list_tokens(None).await?.into_iter().filter(|t| t.kind == TokenKind::Admin && t.revoked_at.is_none()).collect();
    if !admins.iter().any(|t| t.id == id) {
        return Err(ApiError::not_found("admin token"));
    }
    if admins.len() == 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::LAST_ADMIN_TOKEN,
            "this is the last live admin token; mint another before revoking it",
        ));
    }
    state.store.revoke_token(None, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
