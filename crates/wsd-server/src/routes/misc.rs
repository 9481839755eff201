//! The registry listings, the audit log, health and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::registry_view;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/registry/providers", tag = "registry", responses((status = 200, description = "the providers"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn providers(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<Value> {
    Json(json!({ "providers": registry_view::providers(&state.registry) }))
}

#[utoipa::path(get, path = "/v1/registry/runtimes", tag = "registry", responses((status = 200, description = "the runtimes"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "audit", params(("org" = String, Path), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "events, oldest first"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
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
                Json(json!({"error": {"code": "STORAGE_UNAVAILABLE", "message": "the database is not reachable"}})),
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Unix milliseconds, inclusive; the last 30 days when absent.
    from: Option<i64>,
    /// Unix milliseconds, exclusive; now when absent.
    to: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/usage", tag = "usage", params(("org" = String, Path), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query)), responses((status = 200, description = "metered usage by workspace and model"), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require_org(&org)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))?;
    state.store.get_org(&org).await?;
    let to = query.to.unwrap_or(wsd_store::now_ms() + 1);
    let from = query.from.unwrap_or(to - 30 * 24 * 3600 * 1000);
    if from > to {
        return Err(ApiError::bad_request("INVALID_QUERY", "from must not be after to"));
    }
    Ok(Json(json!({ "from": from, "to": to, "usage": state.store.usage_summary(&org, from, to).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// One workspace's requests only.
    workspace: Option<String>,
    /// How many, newest first: 100 when absent, at most 1000.
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/usage/requests", tag = "usage", params(("org" = String, Path), ("workspace" = Option<String>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "the latest metered requests, newest first, with status, tokens and latency"), (status = 400, description = "invalid query", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn usage_requests(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require_org(&org)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("INVALID_QUERY", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("INVALID_QUERY", "limit must be between 1 and 1000"));
    }
    state.store.get_org(&org).await?;
    Ok(Json(json!({ "requests": state.store.usage_requests(&org, query.workspace.as_deref(), limit).await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBudget {
    /// `day` or `month` (UTC).
    pub period: String,
    /// Input plus output tokens per period.
    pub tokens: i64,
}

#[utoipa::path(put, path = "/v1/orgs/{org}/budget", tag = "usage", params(("org" = String, Path)), request_body = PutBudget, responses((status = 200, description = "the budget"), (status = 400, description = "invalid budget", body = ErrorBody), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn put_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    crate::json::ApiJson(body): crate::json::ApiJson<PutBudget>,
) -> ApiResult<Json<Value>> {
    caller.require_org(&org)?;
    caller.require_admin()?;
    let period = match body.period.as_str() {
        "day" => wsd_store::BudgetPeriod::Day,
        "month" => wsd_store::BudgetPeriod::Month,
        _ => return Err(ApiError::bad_request("INVALID_BUDGET", "period must be `day` or `month`")),
    };
    if body.tokens < 0 {
        return Err(ApiError::bad_request("INVALID_BUDGET", "tokens must not be negative"));
    }
    let budget = wsd_store::Budget { period, tokens: body.tokens };
    state.store.put_budget(&org, &budget, &caller.actor()).await?;
    Ok(Json(json!(budget)))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/budget", tag = "usage", params(("org" = String, Path)), responses((status = 200, description = "the budget and what was used of it"), (status = 404, description = "no budget, or not found", body = ErrorBody)))]
pub async fn get_budget(State(state): State<Arc<AppState>>, caller: Caller, Path(org): Path<String>) -> ApiResult<Json<Value>> {
    caller.require_org(&org)?;
    let (budget, used) = state.store.budget_usage(&org).await?.ok_or_else(|| ApiError::not_found("budget"))?;
    Ok(Json(json!({ "period": budget.period, "tokens": budget.tokens, "used": used })))
}
