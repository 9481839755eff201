//! Metered usage and budgets.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::auth::OrgScope;
use crate::code;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;
use crate::state::AppState;
use crate::views::{BudgetStanding, UsageReport, UsageRequests};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Unix milliseconds, inclusive; the last 30 days when absent.
    from: Option<i64>,
    /// Unix milliseconds, exclusive; now when absent.
    to: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/usage", tag = "usage", params(("org" = String, Path), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query)), responses((status = 200, description = "metered usage by workspace and model", body = UsageReport), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageReport>> {
    state.store.get_org(&org).await?;
    let to = query.to.unwrap_or(wsd_store::now_ms() + 1);
    let from = query.from.unwrap_or(to - 30 * 24 * 3600 * 1000);
    if from > to {
        return Err(ApiError::bad_request(code::INVALID_QUERY, "from must not be after to"));
    }
    let (usage, days) = tokio::try_join!(state.store.usage_summary(&org, from, to), state.store.usage_by_day(&org, from, to))?;
    Ok(Json(UsageReport { from, to, usage, days }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// One workspace's requests only.
    workspace: Option<String>,
    /// How many, newest first: 100 when absent, at most 1000.
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/usage/requests", tag = "usage", params(("org" = String, Path), ("workspace" = Option<String>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "the latest metered requests, newest first, with status, tokens and latency", body = UsageRequests), (status = 400, description = "invalid query", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn usage_requests(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    ApiQuery(query): ApiQuery<RequestsQuery>,
) -> ApiResult<Json<UsageRequests>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(code::INVALID_QUERY, "limit must be between 1 and 1000"));
    }
    state.store.get_org(&org).await?;
    Ok(Json(UsageRequests { requests: state.store.usage_requests(&org, query.workspace.as_deref(), limit).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBudget {
    /// `day` or `month` (UTC).
    pub period: String,
    /// Input plus output tokens per period.
    pub tokens: i64,
}

#[utoipa::path(put, path = "/v1/orgs/{org}/budget", tag = "usage", params(("org" = String, Path)), request_body = PutBudget, responses((status = 200, description = "the budget", body = wsd_store::Budget), (status = 400, description = "invalid budget", body = ErrorBody), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn put_budget(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    crate::json::ApiJson(body): crate::json::ApiJson<PutBudget>,
) -> ApiResult<Json<wsd_store::Budget>> {
    caller.require_admin()?;
    let period = match body.period.as_str() {
        "day" => wsd_store::BudgetPeriod::Day,
        "month" => wsd_store::BudgetPeriod::Month,
        _ => return Err(ApiError::bad_request(code::INVALID_BUDGET, "period must be `day` or `month`")),
    };
    if body.tokens < 0 {
        return Err(ApiError::bad_request(code::INVALID_BUDGET, "tokens must not be negative"));
    }
    let budget = wsd_store::Budget { period, tokens: body.tokens };
    state.store.put_budget(&org, &budget, &caller.actor()).await?;
    Ok(Json(budget))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/budget", tag = "usage", params(("org" = String, Path)), responses((status = 200, description = "the budget and what was used of it", body = BudgetStanding), (status = 404, description = "no budget, or not found", body = ErrorBody)))]
pub async fn get_budget(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<BudgetStanding>> {
    let (budget, used) = state.store.budget_usage(&org).await?.ok_or_else(|| ApiError::not_found("budget"))?;
    Ok(Json(BudgetStanding { period: budget.period, tokens: budget.tokens, used }))
}
