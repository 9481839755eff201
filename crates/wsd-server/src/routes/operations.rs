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
    let backend = state.runner.as_ref().map(|runner| BackendHealth {
        name: runner.backend.name(),
        isolation: runner.backend.isolation(),
        available: runner.unavailable.is_none(),
        unavailable_reason: runner.unavailable.clone(),
    });
    Json(Health { status: "ok", backend })
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
