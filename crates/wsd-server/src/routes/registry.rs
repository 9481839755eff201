//! The registry's providers and runtimes, as any caller may list them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::auth::Caller;
use crate::error::ErrorBody;
use crate::registry_view;
use crate::state::AppState;
use crate::views::{ProviderList, RuntimeList};

#[utoipa::path(get, path = "/v1/registry/providers", tag = "registry", responses((status = 200, description = "the providers", body = ProviderList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn providers(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<ProviderList> {
    Json(ProviderList { providers: registry_view::providers(&state.registry) })
}

#[utoipa::path(get, path = "/v1/registry/runtimes", tag = "registry", responses((status = 200, description = "the runtimes", body = RuntimeList), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn runtimes(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<RuntimeList> {
    Json(RuntimeList { runtimes: registry_view::runtimes(&state.registry) })
}
