//! For operators and their tools: health, readiness, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::code;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::views::{BackendHealth, Health, Ready};

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// The process is up; says how workspaces are isolated, and whether they can run at all.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is up, with its backend's isolation", body = Health)))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Health> {
    let health = |placement: &crate::state::Placement| BackendHealth {
        name: placement.backend.name(),
        isolation: placement.backend.isolation(),
        available: placement.unavailable.is_none(),
        unavailable_reason: placement.unavailable.clone(),
    };
    let backends: Vec<BackendHealth> = state.runner.iter().flat_map(|runner| runner.placements.iter().map(health)).collect();
    let runtimes = state.runner.as_ref().map(|r| r.runtime_backends.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default();
    Json(Health { status: "ok", backend: state.runner.as_ref().map(|runner| health(&runner.placements[0])), backends, runtimes })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "the database answers", body = Ready), (status = 503, description = "it does not", body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Ready>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Ready { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::STORAGE_UNAVAILABLE, "the database is not reachable"))
        }
    }
}
