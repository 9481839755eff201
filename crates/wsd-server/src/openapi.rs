//! `GET /openapi.json`: the API's OpenAPI document, generated from the handlers'
//! annotations, so it cannot drift from the routes.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{audit, operations, orgs, registry, secrets, usage, workspaces};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "wsd", description = "AI coding-agent workspaces with exactly the LLM credential each should have."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        orgs::create, orgs::list, orgs::get, orgs::put_credential_delivery, orgs::create_token, orgs::list_tokens, orgs::revoke_token, orgs::create_admin_token, orgs::list_admin_tokens, orgs::revoke_admin_token,
        secrets::put_org, secrets::delete_org, secrets::list_org, secrets::put_workspace, secrets::delete_workspace,
        secrets::list_workspace, secrets::put_platform, secrets::delete_platform, secrets::list_platform,
        workspaces::create, workspaces::list, workspaces::get, workspaces::delete, workspaces::patch, workspaces::plan,
        workspaces::billing, workspaces::admin_billing, workspaces::provision, workspaces::restart, workspaces::stop, workspaces::logs,
        registry::providers, registry::runtimes, audit::audit, usage::usage, usage::usage_requests, usage::put_budget, usage::list_budgets, usage::delete_budget, usage::put_rate_limits, usage::get_rate_limits, usage::delete_rate_limits, operations::healthz, operations::readyz, operations::metrics,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, orgs::CreateOrg, orgs::CreateToken, orgs::PutCredentialDelivery, orgs::DeliverySetting, secrets::PutSecret, workspaces::CreateWorkspace, workspaces::PatchWorkspace, usage::PutBudget, usage::PutRateLimits))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
