//! wsd's HTTP API (described at `/openapi.json`): orgs, tokens, org, workspace and platform secrets,
//! workspaces with create-time validation, plans and billing modes, the registry and the
//! audit log, behind bearer-token auth.
//!
//! Architecture invariants: handlers parse and authorize, then call the store or the pure
//! planner; every error is `{"error": {"code", "message"}}` with a stable code, client
//! mistakes are 4xx; another org's resources answer 404; no response carries a secret
//! value except the one that mints a token.

mod app;
pub mod auth;
mod cache;
pub mod changes;
pub mod code;
pub mod config;
pub mod console;
pub mod error;
mod json;
mod lifecycle;
pub mod listener;
mod locks;
pub mod metrics;
pub mod openapi;
pub mod preflight;
pub mod proxy;
pub mod registry_view;
mod routes;
mod service;
pub mod sessions;
pub mod state;
#[cfg(test)]
mod test_support;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};

pub use crate::app::App;
use crate::error::ApiError;
pub use crate::lifecycle::adopt_running;
use crate::routes::{audit, operations, orgs, registry, secrets, usage, workspaces};
pub use crate::state::{AppState, Confinements, Placement, Runner};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one invalidation point: any API request that may change something (every method but
/// GET) clears every cache once it is done — plan inputs, API tokens, usage grants, platform
/// keys, budget scopes, rate limits — so the next request sees the change, whichever route
/// made it; and announces the change to the other processes on the same database
/// (`changes.rs`).
async fn forget_cached_after_changes(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    if changes {
        state.forget_cached();
        let announcing = state.clone();
        tokio::spawn(async move {
            if let Err(e) = announcing.store.announce_change().await {
                tracing::warn!(error = %e, "could not announce a change to the other wsd processes");
            }
        });
    }
    response
}

/// Whether a path, percent-decoded, is UTF-8: routes decode their parameters, and one that
/// is not would otherwise be refused in plain text, outside the error envelope.
fn decodes_to_utf8(path: &str) -> bool {
    // A path is a `&str`: without escapes it is UTF-8 already (every proxied call).
    if !path.contains('%') {
        return true;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
        match (bytes[at], hex(at + 1), hex(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                at += 3;
            }
            (byte, ..) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

async fn refuse_undecodable_paths(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if !decodes_to_utf8(request.uri().path()) {
        return axum::response::IntoResponse::into_response(ApiError::bad_request(
            code::INVALID_PATH,
            "the path is not UTF-8 once decoded",
        ));
    }
    next.run(request).await
}

/// The server: the metering proxy's calls beside the API's routes.
pub fn app(state: Arc<AppState>) -> App {
    App::new(router(state.clone()), state.proxy.clone(), state.metrics.clone())
}

/// The API's routes (everything but the proxy's calls, which [`app`] routes first).
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(operations::healthz))
        .route("/metrics", get(operations::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/readyz", get(operations::readyz))
        .route("/v1/registry/providers", get(registry::providers))
        .route("/v1/registry/runtimes", get(registry::runtimes))
        .route("/v1/orgs", post(orgs::create).get(orgs::list))
        .route("/v1/orgs/{org}", get(orgs::get))
        .route("/v1/orgs/{org}/credential-delivery", axum::routing::put(orgs::put_credential_delivery))
        .route("/v1/orgs/{org}/tokens", post(orgs::create_token).get(orgs::list_tokens))
        .route("/v1/orgs/{org}/tokens/{id}", axum::routing::delete(orgs::revoke_token))
        .route("/v1/orgs/{org}/secrets", get(secrets::list_org))
        .route("/v1/orgs/{org}/secrets/{key}", put(secrets::put_org).delete(secrets::delete_org))
        .route("/v1/orgs/{org}/workspaces", post(workspaces::create).get(workspaces::list))
        .route("/v1/orgs/{org}/workspaces/{id}", get(workspaces::get).delete(workspaces::delete).patch(workspaces::patch))
        .route("/v1/orgs/{org}/workspaces/{id}/secrets", get(secrets::list_workspace))
        .route("/v1/orgs/{org}/workspaces/{id}/secrets/{key}", put(secrets::put_workspace).delete(secrets::delete_workspace))
        .route("/v1/orgs/{org}/workspaces/{id}/plan", get(workspaces::plan))
        .route("/v1/orgs/{org}/workspaces/{id}/provision", post(workspaces::provision))
        .route("/v1/orgs/{org}/workspaces/{id}/restart", post(workspaces::restart))
        .route("/v1/orgs/{org}/workspaces/{id}/stop", post(workspaces::stop))
        .route("/v1/orgs/{org}/workspaces/{id}/logs", get(workspaces::logs))
        .route("/v1/orgs/{org}/workspaces/{id}/llm-billing-mode", get(workspaces::billing))
        .route("/v1/orgs/{org}/audit", get(audit::audit))
        .route("/v1/orgs/{org}/usage", get(usage::usage))
        .route("/v1/orgs/{org}/usage/requests", get(usage::usage_requests))
        .route("/v1/orgs/{org}/budgets", put(usage::put_budget).get(usage::list_budgets))
        .route("/v1/orgs/{org}/budgets/{id}", delete(usage::delete_budget))
        .route("/v1/orgs/{org}/rate-limits", put(usage::put_rate_limits).get(usage::get_rate_limits).delete(usage::delete_rate_limits))
        .route("/v1/admin/tokens", post(orgs::create_admin_token).get(orgs::list_admin_tokens))
        .route("/v1/admin/tokens/{id}", axum::routing::delete(orgs::revoke_admin_token))
        .route("/v1/platform/secrets", get(secrets::list_platform))
        .route("/v1/platform/secrets/{key}", put(secrets::put_platform).delete(secrets::delete_platform))
        .route("/admin/workspaces/{id}/llm-billing-mode", get(workspaces::admin_billing))
        .merge(console::routes())
        .fallback(|| async { ApiError::not_found("endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, code::METHOD_NOT_ALLOWED, "this endpoint does not take that method")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), forget_cached_after_changes))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(refuse_undecodable_paths))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_checked_as_decoded() {
        for ok in ["/v1/orgs/acme", "/v1/orgs/%41%62", "/v1/%E2%9C%93", "/a%2", "/a%zz", "/%"] {
            assert!(super::decodes_to_utf8(ok), "{ok}");
        }
        for bad in ["/v1/orgs/%FF", "/%C3", "/x/%e2%9c"] {
            assert!(!super::decodes_to_utf8(bad), "{bad}");
        }
    }
}
