//! For operators and their tools: health, readiness, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::code;
use crate::error::ErrorBody;
use crate::state::AppState;

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// The process is up; says how workspaces are isolated, and whether they can run at all.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is up, with its backend's isolation")))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    let backend = state.runner.as_ref().map(|runner| {
        json!({
            "name": runner.backend.name(),
            "isolation": runner.backend.isolation(),
            "available": runner.unavailable.is_none(),
            "unavailable_reason": runner.unavailable,
        })
    });
    Json(json!({"status": "ok", "backend": backend}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "the database answers"), (status = 503, description = "it does not", body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": code::STORAGE_UNAVAILABLE, "message": "the database is not reachable"}})),
            )
        }
    }
}
