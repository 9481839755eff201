//! An org's audit log.

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
use crate::views::AuditPage;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "audit", params(("org" = String, Path), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "events, oldest first", body = AuditPage), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "not found (or another org's)", body = ErrorBody)))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    OrgScope { org, .. }: OrgScope,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    state.store.get_org(&org).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || query.after < 0 {
        return Err(ApiError::bad_request(code::INVALID_QUERY, "limit must be 1 to 1000 and after at least 0"));
    }
    Ok(Json(AuditPage { events: state.store.list_audit(Some(&org), query.after, limit).await? }))
}
