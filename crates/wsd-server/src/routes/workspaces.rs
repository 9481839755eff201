//! Workspaces: create (validated by planning it first), read, list, delete, switch model,
//! and their plan and billing mode.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use wsd_core::{PlanReport, derive_with};
use wsd_store::{NewWorkspace, Workspace};

use crate::auth::{Caller, OrgScope};
use crate::code;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::routes::IdPath;
use crate::routes::orgs::check_name;
use crate::state::AppState;
use crate::views::{BillingMode, BillingModeKind, LogLines, WorkspaceList};
use crate::{lifecycle, service};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    pub name: String,
    pub runtime: String,
    pub model: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWorkspace {
    pub model: String,
}

fn check_model(model: &str) -> ApiResult<()> {
    if model.len() > 256 || model.chars().any(char::is_control) {
        return Err(ApiError::bad_request(code::INVALID_MODEL, "the model id must be at most 256 characters without control characters"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/orgs/{org}/workspaces", tag = "workspaces", params(("org" = String, Path)), request_body = CreateWorkspace, responses((status = 201, description = "the workspace", body = Workspace), (status = 422, description = "its plan would be refused: the planner's code", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<Workspace>)> {
    let workspace = create_workspace(&state, &org, &body.name, &body.runtime, &body.model, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(workspace)))
}

/// Creates a workspace as the API does: its name and model checked, and never one whose
/// plan would be refused. For the API and the console.
pub(crate) async fn create_workspace(
    state: &AppState,
    org: &str,
    name: &str,
    runtime: &str,
    model: &str,
    actor: &str,
) -> ApiResult<Workspace> {
    check_name("workspace", name)?;
    check_model(model)?;
    state.store.get_org(org).await?;
    service::validate(state, org, None, runtime, model).await?;
    let new = NewWorkspace { name, runtime, model };
    Ok(state.store.create_workspace(org, &new, actor).await?)
}

#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces", tag = "workspaces", params(("org" = String, Path)), responses((status = 200, description = "the workspaces", body = WorkspaceList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<WorkspaceList>> {
    state.store.get_org(&org).await?;
    Ok(Json(WorkspaceList { workspaces: state.store.list_workspaces(&org).await? }))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces/{id}", tag = "workspaces", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "the workspace, with its status made true", body = lifecycle::WorkspaceView), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<lifecycle::WorkspaceView>> {
    let workspace = state.store.get_workspace(&org, &id).await?;
    Ok(Json(lifecycle::observe(&state, workspace).await?))
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/workspaces/{id}", tag = "workspaces", params(("org" = String, Path), ("id" = String, Path)), responses((status = 204, description = "deleted with its secrets and tokens"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<StatusCode> {
    lifecycle::delete(&state, &org, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switches the model, validated like create.
#[utoipa::path(patch, path = "/v1/orgs/{org}/workspaces/{id}", tag = "workspaces", params(("org" = String, Path), ("id" = String, Path)), request_body = PatchWorkspace, responses((status = 200, description = "the workspace", body = Workspace), (status = 422, description = "its plan would be refused", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
    ApiJson(body): ApiJson<PatchWorkspace>,
) -> ApiResult<Json<Workspace>> {
    check_model(&body.model)?;
    let workspace = state.store.get_workspace(&org, &id).await?;
    service::validate(&state, &org, Some(&id), &workspace.runtime, &body.model).await?;
    let updated = state.store.set_workspace_model(&org, &id, &body.model, &caller.actor()).await?;
    // A running workspace switches now, with a plan for its new model.
    if workspace.status == wsd_store::WorkspaceStatus::Running && state.runner.is_some() {
        return Ok(Json(lifecycle::provision(&state, &org, &id, &caller.actor()).await?));
    }
    Ok(Json(updated))
}

/// The plan from stored secrets, as `wsd plan --json` prints it.
#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces/{id}/plan", tag = "workspaces", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "the plan, as `wsd plan --json` prints it", body = Object), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn plan(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<PlanReport>> {
    let key = (org.clone(), id.clone());
    let load = async { Ok::<_, wsd_store::StoreError>(Some(Arc::new(state.store.plan_input(&org, &id).await?))) };
    let input = state.plan_inputs.get_or_try_load(key, load).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
    let result = service::plan_names(&state, &id, &input.runtime, &input.model, &input.names, input.delivery)?;
    Ok(Json(PlanReport::new(&result)))
}

async fn billing_mode(state: &AppState, workspace: &Workspace) -> ApiResult<Json<BillingMode>> {
    let names = state.store.secret_names(&workspace.org_id, Some(&workspace.id)).await?;
    let derivation =
        derive_with(&state.registry, &workspace.runtime, &workspace.model, |k| names.org.contains(k) || names.workspace.contains(k))
            .map_err(|e| ApiError::from(wsd_core::PlanError::from(e)))?;
    let mode = if derivation.provider.platform { BillingModeKind::PlatformManaged } else { BillingModeKind::Byok };
    Ok(Json(BillingMode { mode, provider: derivation.provider.name.clone(), reason: derivation.explain(&workspace.model) }))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces/{id}/llm-billing-mode", tag = "workspaces", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "platform_managed or byok, provider, reason", body = BillingMode), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn billing(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<BillingMode>> {
    let workspace = state.store.get_workspace(&org, &id).await?;
    billing_mode(&state, &workspace).await
}

#[utoipa::path(get, path = "/admin/workspaces/{id}/llm-billing-mode", tag = "workspaces", params(("id" = String, Path)), responses((status = 200, description = "platform_managed or byok, provider, reason", body = BillingMode), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn admin_billing(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<BillingMode>> {
    caller.require_admin()?;
    let workspace = state.store.find_workspace(&id).await?;
    billing_mode(&state, &workspace).await
}

#[utoipa::path(post, path = "/v1/orgs/{org}/workspaces/{id}/provision", tag = "lifecycle", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "running with a fresh plan", body = Workspace), (status = 422, description = "its plan was refused: the workspace is failed with the code", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn provision(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<Workspace>> {
    Ok(Json(lifecycle::provision(&state, &org, &id, &caller.actor()).await?))
}

#[utoipa::path(post, path = "/v1/orgs/{org}/workspaces/{id}/restart", tag = "lifecycle", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "restarted from the stored model with a new usage token", body = Workspace), (status = 422, description = "its plan was refused", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn restart(state: State<Arc<AppState>>, scope: OrgScope, path: Path<IdPath>) -> ApiResult<Json<Workspace>> {
    provision(state, scope, path).await
}

#[utoipa::path(post, path = "/v1/orgs/{org}/workspaces/{id}/stop", tag = "lifecycle", params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, description = "stopped; its usage tokens revoked", body = Workspace), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult<Json<Workspace>> {
    Ok(Json(lifecycle::stop(&state, &org, &id, &caller.actor()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    tail: Option<usize>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/workspaces/{id}/logs", tag = "lifecycle", params(("org" = String, Path), ("id" = String, Path), ("tail" = Option<usize>, Query)), responses((status = 200, description = "the last lines of the workspace's output", body = LogLines), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn logs(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    Path(IdPath { id }): Path<IdPath>,
    crate::json::ApiQuery(query): crate::json::ApiQuery<LogsQuery>,
) -> ApiResult<Json<LogLines>> {
    let tail = query.tail.unwrap_or(100);
    if !(1..=10_000).contains(&tail) {
        return Err(ApiError::bad_request(code::INVALID_QUERY, "tail must be 1 to 10000"));
    }
    let workspace = state.store.get_workspace(&org, &id).await?;
    let Some(runner) = &state.runner else { return Err(ApiError::not_found("backend")) };
    let text = runner
        .placement_of(&workspace)
        .backend
        .logs(&id, tail)
        .await
        .map_err(|e| crate::lifecycle::backend_error(e, code::BACKEND_LOGS_FAILED))?;
    Ok(Json(LogLines { lines: text.lines().map(str::to_owned).collect() }))
}
