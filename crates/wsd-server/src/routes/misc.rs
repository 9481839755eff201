//! The registry listings, the audit log, health and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::registry_view;
use crate::state::AppState;

pub async fn providers(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<Value> {
    Json(json!({ "providers": registry_view::providers(&state.registry) }))
}

pub async fn runtimes(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<Value> {
    Json(json!({ "runtimes": registry_view::runtimes(&state.registry) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require_org(&org)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))?;
    state.store.get_org(&org).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || query.after < 0 {
        return Err(ApiError::bad_request("INVALID_QUERY", "limit must be 1 to 1000 and after at least 0"));
    }
    Ok(Json(json!({ "events": state.store.list_audit(Some(&org), query.after, limit).await? })))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": "STORAGE_UNAVAILABLE", "message": "the database is not reachable"}})),
            )
        }
    }
}
