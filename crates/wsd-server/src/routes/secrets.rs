//! Org, workspace and platform secrets: written, listed by name, deleted. Values go in and
//! never come out.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use wsd_core::{EnvKey, PlanError, SecretValue};
use wsd_store::{SecretMeta, SecretOwner};

use crate::auth::{Caller, OrgScope};
use crate::code;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::lifecycle;
use crate::routes::{IdKeyPath, IdPath, KeyPath};
use crate::state::AppState;
use crate::views::SecretList;

/// The largest secret value accepted.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value: stored encrypted, never returned.
    #[schema(value_type = String)]
    value: SecretText,
}

/// A secret value as it arrives: held redacted from the moment it is parsed.
pub struct SecretText(SecretValue);

impl SecretText {
    pub fn value(&self) -> &SecretValue {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| SecretText(SecretValue::new(s)))
    }
}

fn parse_key(key: &str) -> ApiResult<EnvKey> {
    let key = EnvKey::new(key).map_err(|e| ApiError::bad_request(code::INVALID_KEY, format!("invalid secret KEY: {e}")))?;
    if key.as_str().starts_with("WSD_") {
        return Err(ApiError::bad_request(code::RESERVED_KEY, format!("{key}: names starting with WSD_ are reserved for wsd")));
    }
    Ok(key)
}

/// A KEY an org or a workspace may hold: not one that steers how programs start.
fn parse_tenant_key(key: &str) -> ApiResult<EnvKey> {
    let key = parse_key(key)?;
    if let Some(reason) = wsd_core::protected_env::protected_reason(&key) {
        return Err(ApiError::bad_request(code::PROTECTED_ENV_KEY, format!("{key} {reason}; a tenant secret may not set it"))
            .with("key", key.as_str()));
    }
    Ok(key)
}

fn check_value(value: &SecretValue) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::bad_request(code::INVALID_VALUE, "the secret value is empty"));
    }
    if value.expose().contains('\0') {
        // An env value cannot hold a NUL byte: the workspace could never be started with it.
        return Err(ApiError::bad_request(code::INVALID_VALUE, "the secret value holds a NUL byte"));
    }
    if value.expose().len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_request(code::VALUE_TOO_LARGE, format!("the secret value is over {} KiB", MAX_VALUE_BYTES / 1024)));
    }
    Ok(())
}

#[utoipa::path(put, path = "/v1/orgs/{org}/secrets/{key}", tag = "secrets", params(("org" = String, Path), ("key" = String, Path)), request_body = PutSecret, responses((status = 200, description = "the secret's metadata", body = SecretMeta), (status = 400, description = "invalid KEY or value", body = ErrorBody), (status = 422, description = "operator-scope KEY", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn put_org(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(KeyPath { key }): Path<KeyPath>,
    ApiJson(body): ApiJson<PutSecret>,
) -> ApiResult<Json<SecretMeta>> {
    Ok(Json(put_org_secret(&state, &org, &key, &body.value.0, &caller.actor()).await?))
}

/// Sets an org secret as the API does (the KEY and value checked, the org's running
/// workspaces restarted when configured): for the API and the console.
pub(crate) async fn put_org_secret(state: &Arc<AppState>, org: &str, key: &str, value: &SecretValue, actor: &str) -> ApiResult<SecretMeta> {
    let key = parse_tenant_key(key)?;
    check_value(value)?;
    if state.policy.is_forbidden_for_org(&key) {
        return Err(PlanError::ForbiddenTenantEnvKey { keys: vec![key] }.into());
    }
    let meta = state.store.put_secret(SecretOwner::Org { org }, &key, value, actor).await?;
    lifecycle::restart_if_changed(state, org, None, actor);
    Ok(meta)
}

/// Deletes an org secret as the API does: for the API and the console.
pub(crate) async fn delete_org_secret(state: &Arc<AppState>, org: &str, key: &str, actor: &str) -> ApiResult<()> {
    let key = parse_key(key)?;
    state.store.delete_secret(SecretOwner::Org { org }, &key, actor).await?;
    lifecycle::restart_if_changed(state, org, None, actor);
    Ok(())
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/secrets/{key}", tag = "secrets", params(("org" = String, Path), ("key" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn delete_org(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(KeyPath { key }): Path<KeyPath>,
) -> ApiResult<StatusCode> {
    delete_org_secret(&state, &org, &key, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/orgs/{org}/secrets", tag = "secrets", params(("org" = String, Path)), responses((status = 200, description = "names and metadata, never values", body = SecretList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list_org(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<SecretList>> {
    state.store.get_org(&org).await?;
    Ok(Json(SecretList { secrets: state.store.list_secrets(SecretOwner::Org { org: &org }).await? }))
}

#[utoipa::path(put, path = "/v1/orgs/{org}/workspaces/{id}/secrets/{key}", tag = "secrets", params(("org" = String, Path), ("id" = String, Path), ("key" = String, Path)), request_body = PutSecret, responses((status = 200, description = "the secret's metadata", body = SecretMeta), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn put_workspace(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdKeyPath { id: workspace, key }): Path<IdKeyPath>,
    ApiJson(body): ApiJson<PutSecret>,
) -> ApiResult<Json<SecretMeta>> {
    Ok(Json(put_workspace_secret(&state, &org, &workspace, &key, &body.value.0, &caller.actor()).await?))
}

/// Sets a workspace secret as the API does (the KEY and value checked, the workspace
/// restarted when configured): for the API and the console.
pub(crate) async fn put_workspace_secret(
    state: &Arc<AppState>,
    org: &str,
    workspace: &str,
    key: &str,
    value: &SecretValue,
    actor: &str,
) -> ApiResult<SecretMeta> {
    let key = parse_tenant_key(key)?;
    check_value(value)?;
    let meta = state.store.put_secret(SecretOwner::Workspace { org, workspace }, &key, value, actor).await?;
    lifecycle::restart_if_changed(state, org, Some(workspace), actor);
    Ok(meta)
}

/// Deletes a workspace secret as the API does: for the API and the console.
pub(crate) async fn delete_workspace_secret(state: &Arc<AppState>, org: &str, workspace: &str, key: &str, actor: &str) -> ApiResult<()> {
    let key = parse_key(key)?;
    state.store.delete_secret(SecretOwner::Workspace { org, workspace }, &key, actor).await?;
    lifecycle::restart_if_changed(state, org, Some(workspace), actor);
    Ok(())
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/workspaces/{id}/secrets/{key}", tag = "secrets", params(("org" = String, Path), ("id" = String, Path), ("key" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn delete_workspace(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdKeyPath { id: workspace, key }): Path<IdKeyPath>,
) -> ApiResult<StatusCode> {
    delete_workspace_secret(&state, &org, &workspace, &key, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces/{id}/secrets", tag = "secrets", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "names and metadata, never values", body = SecretList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list_workspace(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    Path(IdPath { id: workspace }): Path<IdPath>,
) -> ApiResult<Json<SecretList>> {
    state.store.get_workspace(&org, &workspace).await?;
    let secrets = state.store.list_secrets(SecretOwner::Workspace { org: &org, workspace: &workspace }).await?;
    Ok(Json(SecretList { secrets }))
}

#[utoipa::path(put, path = "/v1/platform/secrets/{key}", tag = "secrets", params(("key" = String, Path)), request_body = PutSecret, responses((status = 200, description = "the secret's metadata", body = SecretMeta), (status = 403, description = "admin token needed", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn put_platform(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<PutSecret>,
) -> ApiResult<Json<SecretMeta>> {
    caller.require_admin()?;
    let key = parse_key(&key)?;
    check_value(&body.value.0)?;
    let stored = state.store.put_secret(SecretOwner::Platform, &key, &body.value.0, &caller.actor()).await?;
    Ok(Json(stored))
}

#[utoipa::path(delete, path = "/v1/platform/secrets/{key}", tag = "secrets", params(("key" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn delete_platform(State(state): State<Arc<AppState>>, caller: Caller, Path(key): Path<String>) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let key = parse_key(&key)?;
    state.store.delete_secret(SecretOwner::Platform, &key, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/platform/secrets", tag = "secrets", responses((status = 200, description = "names and metadata, never values", body = SecretList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list_platform(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<SecretList>> {
    caller.require_admin()?;
    Ok(Json(SecretList { secrets: state.store.list_secrets(SecretOwner::Platform).await? }))
}
