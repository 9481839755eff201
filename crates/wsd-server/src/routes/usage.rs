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
use crate::views::{BudgetList, RateLimitsView, UsageReport, UsageRequests};

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
    let to = query.to.unwrap_or_else(|| wsd_store::now_ms().saturating_add(1));
    let from = query.from.unwrap_or(to.saturating_sub(30 * 24 * 3600 * 1000));
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
    /// The workspace it limits; the whole org when absent.
    pub workspace: Option<String>,
    /// `tokens` (input plus output) or `usd`.
    pub unit: String,
    /// `day`, `week` (ISO, from Monday) or `month`, in UTC.
    pub period: String,
    /// Tokens, or micro-dollars (10⁻⁶ USD) for `usd`.
    pub limit: i64,
}

#[utoipa::path(put, path = "/v1/orgs/{org}/budgets", tag = "usage", params(("org" = String, Path)), request_body = PutBudget, responses((status = 200, description = "the budget, replacing the one of the same scope, unit and period", body = wsd_store::BudgetLimit), (status = 400, description = "invalid budget", body = ErrorBody), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn put_budget(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    crate::json::ApiJson(body): crate::json::ApiJson<PutBudget>,
) -> ApiResult<Json<wsd_store::BudgetLimit>> {
    caller.require_admin()?;
    let unit = match body.unit.as_str() {
        "tokens" => wsd_store::BudgetUnit::Tokens,
        "usd" => wsd_store::BudgetUnit::Usd,
        _ => return Err(ApiError::bad_request(code::INVALID_BUDGET, "unit must be `tokens` or `usd`")),
    };
    let period = match body.period.as_str() {
        "day" => wsd_store::BudgetPeriod::Day,
        "week" => wsd_store::BudgetPeriod::Week,
        "month" => wsd_store::BudgetPeriod::Month,
        _ => return Err(ApiError::bad_request(code::INVALID_BUDGET, "period must be `day`, `week` or `month`")),
    };
    if body.limit < 0 {
        return Err(ApiError::bad_request(code::INVALID_BUDGET, "limit must not be negative"));
    }
    let new = wsd_store::NewBudget { workspace_id: body.workspace, unit, period, limit: body.limit };
    Ok(Json(state.store.put_budget(&org, &new, &caller.actor()).await?))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/budgets", tag = "usage", params(("org" = String, Path)), responses((status = 200, description = "the org's budgets and its workspaces', each with what was spent and is reserved in its current window, what remains and when it renews", body = BudgetList), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn list_budgets(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<BudgetList>> {
    state.store.get_org(&org).await?;
    let mut budgets = state.store.budget_standings(&org, wsd_store::now_ms()).await?;
    state.proxy.overlay_budgets(&org, &mut budgets);
    Ok(Json(BudgetList { budgets }))
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/budgets/{id}", tag = "usage", params(("org" = String, Path), ("id" = String, Path)), responses((status = 204, description = "removed"), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn delete_budget(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    axum::extract::Path(crate::routes::IdPath { id }): axum::extract::Path<crate::routes::IdPath>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require_admin()?;
    state.store.delete_budget(&org, &id, &caller.actor()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRateLimits {
    /// Requests per minute per workspace; 0: no limit.
    pub requests_per_minute: u64,
    /// Tokens (input plus output) per minute per workspace; 0: no limit.
    pub tokens_per_minute: u64,
}

async fn rate_limits_view(state: &AppState, org: &str) -> ApiResult<RateLimitsView> {
    Ok(match state.store.get_rate_limits(org).await? {
        Some(own) => RateLimitsView {
            requests_per_minute: u64::try_from(own.requests_per_minute).unwrap_or(0),
            tokens_per_minute: u64::try_from(own.tokens_per_minute).unwrap_or(0),
            source: "org",
        },
        None => {
            let defaults = state.proxy.default_rate_limits();
            RateLimitsView {
                requests_per_minute: defaults.requests_per_minute,
                tokens_per_minute: defaults.tokens_per_minute,
                source: "default",
            }
        }
    })
}

#[utoipa::path(put, path = "/v1/orgs/{org}/rate-limits", tag = "usage", params(("org" = String, Path)), request_body = PutRateLimits, responses((status = 200, description = "the org's own rate limits per workspace, in place of the platform's", body = RateLimitsView), (status = 400, description = "invalid limits", body = ErrorBody), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn put_rate_limits(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
    crate::json::ApiJson(body): crate::json::ApiJson<PutRateLimits>,
) -> ApiResult<Json<RateLimitsView>> {
    caller.require_admin()?;
    let (Ok(requests_per_minute), Ok(tokens_per_minute)) = (i64::try_from(body.requests_per_minute), i64::try_from(body.tokens_per_minute))
    else {
        return Err(ApiError::bad_request(code::INVALID_REQUEST, "a rate limit is too large"));
    };
    state.store.put_rate_limits(&org, wsd_store::OrgRateLimits { requests_per_minute, tokens_per_minute }, &caller.actor()).await?;
    Ok(Json(rate_limits_view(&state, &org).await?))
}

#[utoipa::path(get, path = "/v1/orgs/{org}/rate-limits", tag = "usage", params(("org" = String, Path)), responses((status = 200, description = "the rate limits each workspace of the org runs under, and whether they are the org's own or the platform's", body = RateLimitsView), (status = 404, description = "not found", body = ErrorBody)))]
pub async fn get_rate_limits(State(state): State<Arc<AppState>>, OrgScope { org, .. }: OrgScope) -> ApiResult<Json<RateLimitsView>> {
    state.store.get_org(&org).await?;
    Ok(Json(rate_limits_view(&state, &org).await?))
}

#[utoipa::path(delete, path = "/v1/orgs/{org}/rate-limits", tag = "usage", params(("org" = String, Path)), responses((status = 204, description = "the org runs under the platform's rate limits again"), (status = 403, description = "admin token needed", body = ErrorBody), (status = 404, description = "not found, or the org had none of its own", body = ErrorBody)))]
pub async fn delete_rate_limits(
    State(state): State<Arc<AppState>>,
    OrgScope { caller, org }: OrgScope,
) -> ApiResult<axum::http::StatusCode> {
    caller.require_admin()?;
    state.store.delete_rate_limits(&org, &caller.actor()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
