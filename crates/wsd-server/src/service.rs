//! What handlers ask of wsd beyond one store call: planning a stored workspace, and the
//! create-time validation that refuses a workspace whose plan would be refused.

use wsd_core::plan::{CredentialDelivery, SecretNames, WorkspaceId, WorkspaceSpec};
use wsd_core::{Plan, PlanError};

use crate::code;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Plans `runtime`/`model` for workspace `id` with the given secret names and its org's
/// credential delivery, and counts the outcome.
pub fn plan_names(
    state: &AppState,
    id: &str,
    runtime: &str,
    model: &str,
    names: &SecretNames,
    delivery: Option<CredentialDelivery>,
) -> ApiResult<Result<Plan, PlanError>> {
    let id = WorkspaceId::new(id).map_err(|_| ApiError::bad_request(code::INVALID_ID, "invalid workspace id"))?;
    let spec = WorkspaceSpec { id, runtime: runtime.to_owned(), model: model.to_owned(), delivery: state.delivery(delivery) };
    let result = wsd_core::plan(&state.registry, &spec, names, state.platform_for(runtime), &state.policy);
    state.metrics.record_plan(result.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code().as_str()));
    Ok(result)
}

/// Refuses `model` on `runtime` for a workspace of `org` unless its plan would be made
/// and, with the preflight on, its provider accepts its credential.
pub async fn validate(state: &AppState, org: &str, workspace: Option<&str>, runtime: &str, model: &str) -> ApiResult<()> {
    let names = state.store.secret_names(org, workspace).await?;
    let delivery = state.store.get_org(org).await?.credential_delivery;
    // A workspace about to be created has no id yet; the plan does not depend on it.
    let plan = plan_names(state, workspace.unwrap_or("new"), runtime, model, &names, delivery)?.map_err(ApiError::from)?;
    if let Some(preflight) = &state.preflight {
        crate::preflight::check(&state.store, &state.registry, preflight, org, workspace, &plan).await?;
    }
    Ok(())
}
