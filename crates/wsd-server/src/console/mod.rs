//! The web console, served by wsd itself at `/console` (and `/`): server-rendered pages, no
//! script, one stylesheet embedded in the binary, nothing fetched from elsewhere.
//!
//! Sign-in exchanges an API token for a session (`session.rs`); every page then acts as that
//! token would through the API — the same tenancy (another org's workspace is 404), the
//! same lifecycle functions. Every form carries the session's CSRF token, the sign-in form
//! a token bound to a cookie of its own. Every answer carries a strict Content-Security-
//! Policy (`default-src 'none'`, styles from this origin only, no frames, forms only to this
//! origin), `no-store` and `nosniff`.

mod pages;
mod secrets;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;

use session::{ConsoleSession, SESSION_COOKIE, SESSION_LIFETIME, SIGN_IN_COOKIE};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::lifecycle;
use crate::state::AppState;

const STYLE: &str = include_str!("style.css");

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/workspaces") }))
        .route("/console", get(|| async { Redirect::to("/console/workspaces") }))
        .route("/console/style.css", get(style))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/workspaces", get(workspaces).post(create_workspace))
        .route("/console/orgs", get(orgs))
        .route("/console/orgs/{org}/usage", get(usage))
        .route("/console/orgs/{org}/secrets", get(secrets::org_secrets).post(secrets::set_org_secret))
        .route("/console/orgs/{org}/secrets/{key}/delete", get(secrets::confirm_delete_org_secret).post(secrets::delete_org_secret))
        .route("/console/orgs/{org}/workspaces/{id}", get(workspace))
        .route("/console/orgs/{org}/workspaces/{id}/secrets", post(secrets::set_workspace_secret))
        .route(
            "/console/orgs/{org}/workspaces/{id}/secrets/{key}/delete",
            get(secrets::confirm_delete_workspace_secret).post(secrets::delete_workspace_secret),
        )
        .route("/console/orgs/{org}/workspaces/{id}/{action}", post(workspace_action))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE).into_response()
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page, or the error that kept it from being made.
fn shown_or_error(session: &ConsoleSession, shown: Result<Markup, ApiError>) -> Response {
    match shown {
        Ok(markup) => page(StatusCode::OK, markup),
        Err(e) => error_page(Some(session), &e),
    }
}

/// An API error as a page a person reads, with its code.
fn error_page(session: Option<&ConsoleSession>, error: &ApiError) -> Response {
    let signed_in = session.map(ConsoleSession::viewer);
    page(error.status, pages::error(signed_in, error.status.as_u16(), error.code, &error.message))
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    let token = session::random();
    let cookie = session::set_cookie(&headers, SIGN_IN_COOKIE, &token, Duration::from_secs(600));
    let mut response = page(StatusCode::OK, pages::sign_in(&token, None));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(serde::Deserialize)]
struct SignInForm {
    form: String,
    token: String,
}

async fn sign_in(State(state): State<Arc<AppState>>, headers: HeaderMap, axum::Form(form): axum::Form<SignInForm>) -> Response {
    let bound = session::cookie(&headers, SIGN_IN_COOKIE).is_some_and(|expected| session::same_token(expected, &form.form));
    if !bound {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(None, 403, "CSRF_REJECTED", "the sign-in form expired or came from elsewhere; load it again"),
        );
    }
    let hash = wsd_store::token_hash(form.token.trim());
    let Ok(caller) = state.auth.caller_by_hash(hash.clone()).await else {
        let token = session::random();
        let mut response = page(StatusCode::UNAUTHORIZED, pages::sign_in(&token, Some("That token is not a valid org or admin token.")));
        if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&headers, SIGN_IN_COOKIE, &token, Duration::from_secs(600))) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        return response;
    };
    let label = match caller.org_limit() {
        Some(org) => match state.store.get_org(org).await {
            Ok(org) => format!("org {}", org.name),
            Err(_) => format!("org {org}"),
        },
        None => "operator (admin token)".to_owned(),
    };
    let (id, _) = state.console.open(caller.org_limit().unwrap_or("admin"), &label, hash, Instant::now());
    let mut response = Redirect::to("/console/workspaces").into_response();
    for cookie in [
        session::set_cookie(&headers, SESSION_COOKIE, &id, SESSION_LIFETIME),
        session::set_cookie(&headers, SIGN_IN_COOKIE, "", Duration::ZERO),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The refusal of a form without the session's CSRF token; `None` when it has it.
fn refuse_forged(session: &ConsoleSession, form: &CsrfForm) -> Option<Response> {
    if session::same_token(&session.csrf, &form.csrf) {
        return None;
    }
    let error = ApiError::new(StatusCode::FORBIDDEN, crate::code::CSRF_REJECTED, "the form is not this session's; load the page again");
    Some(error_page(Some(session), &error))
}

async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    session: ConsoleSession,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&session, &form) {
        return refused;
    }
    state.console.close(&session.id);
    let mut response = Redirect::to("/console/sign-in").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&headers, SESSION_COOKIE, "", Duration::ZERO)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The orgs a caller sees: its own, or every org for the admin token.
async fn visible_orgs(state: &AppState, caller: &Caller) -> Result<Vec<wsd_store::Org>, ApiError> {
    Ok(match caller.org_limit() {
        Some(org) => vec![state.store.get_org(org).await?],
        None => state.store.list_orgs().await?,
    })
}

async fn workspaces(State(state): State<Arc<AppState>>, session: ConsoleSession, Query(filters): Query<pages::Filters>) -> Response {
    let rows = async {
        let mut rows = Vec::new();
        let mut total = 0;
        for org in visible_orgs(&state, &session.caller).await? {
            // Every workspace's plan input in three reads, not one per workspace.
            let inputs = state.store.plan_inputs(&org.id).await?;
            for workspace in state.store.list_workspaces(&org.id).await? {
                total += 1;
                let keep = filters.status.as_deref().filter(|s| !s.is_empty()).is_none_or(|s| s == workspace.status.as_str())
                    && filters.runtime.as_deref().filter(|r| !r.is_empty()).is_none_or(|r| r == workspace.runtime)
                    && filters.q.as_deref().filter(|q| !q.is_empty()).is_none_or(|q| workspace.name.contains(q));
                let Some(input) = inputs.get(&workspace.id).filter(|_| keep) else { continue };
                let plan = crate::service::plan_names(&state, &workspace.id, &input.runtime, &input.model, &input.names, input.delivery)?;
                let (provider, routing, refused) = match &plan {
                    Ok(plan) => (Some(plan.provider.clone()), Some(format!("{:?}", plan.routing).to_lowercase()), None),
                    Err(e) => (None, None, Some(e.code().as_str().to_owned())),
                };
                // As `GET …/workspaces/{id}` says it: whether a running one's plan would differ.
                let stale = match (&workspace.plan_hash, workspace.status) {
                    (Some(hash), wsd_store::WorkspaceStatus::Running) => {
                        Some(plan.as_ref().map(|p| lifecycle::plan_hash(p) != *hash).unwrap_or(true))
                    }
                    _ => None,
                };
                rows.push(pages::Row { workspace, org_name: org.name.clone(), provider, routing, refused, stale });
            }
        }
        Ok::<_, ApiError>((rows, total))
    }
    .await;
    let orgs = visible_orgs(&state, &session.caller).await;
    match (rows, orgs) {
        (Ok((rows, total)), Ok(orgs)) => {
            let create = pages::CreateForm { orgs: &orgs, runtimes: state.registry.runtimes().map(|r| r.name.clone()).collect() };
            page(StatusCode::OK, pages::workspaces(session.viewer(), &rows, &filters, total, &create))
        }
        (Err(e), _) | (_, Err(e)) => error_page(Some(&session), &e),
    }
}

async fn workspace(State(state): State<Arc<AppState>>, session: ConsoleSession, Path((org, id)): Path<(String, String)>) -> Response {
    let shown = async {
        session.caller.require_org(&org)?;
        let workspace = state.store.get_workspace(&org, &id).await?;
        let view = lifecycle::observe(&state, workspace).await?;
        let input = state.store.plan_input(&org, &id).await?;
        let plan = crate::service::plan_names(&state, &id, &input.runtime, &input.model, &input.names, input.delivery)?;
        let report = wsd_core::PlanReport::new(&plan);
        let logs = match &state.runner {
            Some(runner) => runner.placement_of(&view.workspace).backend.logs(&id, 40).await.unwrap_or_default(),
            None => String::new(),
        };
        let logs: Vec<String> = logs.lines().map(str::to_owned).collect();
        let secrets = state.store.list_secrets(wsd_store::SecretOwner::Workspace { org: &org, workspace: &id }).await?;
        let shown = pages::WorkspacePage { workspace: &view.workspace, stale: view.stale, plan: &report, secrets: &secrets, logs: &logs };
        Ok::<_, ApiError>(pages::workspace(session.viewer(), &shown))
    }
    .await;
    shown_or_error(&session, shown)
}

async fn workspace_action(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, id, action)): Path<(String, String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&session, &form) {
        return refused;
    }
    let actor = format!("{} (console)", session.caller.actor());
    let done = async {
        session.caller.require_org(&org)?;
        match action.as_str() {
            "provision" | "restart" => lifecycle::provision(&state, &org, &id, &actor).await.map(drop),
            "stop" => lifecycle::stop(&state, &org, &id, &actor).await.map(drop),
            _ => Err(ApiError::not_found("endpoint")),
        }
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("/console/orgs/{org}/workspaces/{id}")).into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}

async fn orgs(State(state): State<Arc<AppState>>, session: ConsoleSession) -> Response {
    let shown = async {
        session.caller.require_admin()?;
        let orgs = state.store.list_orgs().await?;
        let held: std::collections::BTreeSet<String> =
            state.store.list_secrets(wsd_store::SecretOwner::Platform).await?.into_iter().map(|m| m.key.to_string()).collect();
        let registry = &state.registry;
        let platform_keys = registry
            .providers()
            .iter()
            // Providers the proxy can send a key to (subscription logins are the user's own).
            .filter(|p| matches!(p.auth_mode, wsd_core::registry::AuthMode::ApiKey | wsd_core::registry::AuthMode::AnthropicCompatible))
            .filter(|p| p.base_url_anthropic.is_some() || p.base_url_openai.is_some())
            .filter_map(|p| p.auth_env.first().map(|key| (p.name.clone(), key.to_string(), held.contains(key.as_str()))))
            .collect();
        let runtimes = registry
            .runtimes()
            .map(|runtime| {
                let providers = runtime
                    .providers
                    .iter()
                    .map(|native| (registry.providers()[native.provider].name.clone(), native.verified_on.clone()))
                    .collect();
                (runtime.name.clone(), providers)
            })
            .collect();
        let backends = state
            .runner
            .iter()
            .flat_map(|runner| runner.placements.iter())
            .map(|p| (p.backend.name().to_owned(), p.backend.isolation(), p.unavailable.clone()))
            .collect();
        let ops = pages::Operations { platform_keys, runtimes, backends };
        Ok::<_, ApiError>(pages::orgs(session.viewer(), &orgs, &ops))
    }
    .await;
    shown_or_error(&session, shown)
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    days: Option<u32>,
}

const DAY_MS: i64 = 86_400_000;

async fn usage(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path(org): Path<String>,
    Query(query): Query<UsageQuery>,
) -> Response {
    let shown = async {
        session.caller.require_org(&org)?;
        let org = state.store.get_org(&org).await?;
        let days = query.days.unwrap_or(30).clamp(1, 366);
        let to = wsd_store::now_ms() + 1;
        let first_day = to.div_euclid(DAY_MS) - i64::from(days) + 1;
        let from = first_day * DAY_MS;
        let (summary, daily, latest, mut standings, workspaces) = tokio::try_join!(
            state.store.usage_summary(&org.id, from, to),
            state.store.usage_by_day(&org.id, from, to),
            state.store.usage_requests(&org.id, None, 25),
            state.store.budget_standings(&org.id, wsd_store::now_ms()),
            state.store.list_workspaces(&org.id),
        )?;
        state.proxy.overlay_budgets(&org.id, &mut standings);
        let names: std::collections::HashMap<&str, &str> = workspaces.iter().map(|w| (w.id.as_str(), w.name.as_str())).collect();
        let name = |id: &str| names.get(id).map_or_else(|| format!("{id} (deleted)"), |n| (*n).to_owned());
        let by_day = (0..i64::from(days))
            .map(|i| {
                let day = first_day + i;
                let found = daily.iter().find(|d| d.day == day);
                let date = pages::timestamp(day * DAY_MS)[..10].to_owned();
                (date, found.map_or(0, |d| d.totals.input_tokens + d.totals.output_tokens), found.and_then(|d| d.totals.cost_micros))
            })
            .collect();
        let group = |key: &dyn Fn(&wsd_store::UsageSummary) -> String| {
            let mut groups: std::collections::BTreeMap<String, (i64, i64, Option<i64>, i64)> = Default::default();
            for row in &summary {
                let entry = groups.entry(key(row)).or_insert((0, 0, None, 0));
                entry.0 += row.totals.requests;
                entry.1 += row.totals.input_tokens + row.totals.output_tokens;
                // Priced requests add up; a group with none priced has no cost (never 0).
                entry.2 = match (entry.2, row.totals.cost_micros) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                };
                entry.3 += row.totals.unpriced_requests;
            }
            let mut rows: Vec<_> = groups.into_iter().map(|(k, (r, t, c, u))| (k, r, t, c, u)).collect();
            rows.sort_by_key(|row| std::cmp::Reverse(row.2));
            rows
        };
        let usage = pages::Usage {
            days,
            by_day,
            by_workspace: group(&|row| name(&row.workspace_id)),
            by_model: group(&|row| format!("{} ({})", row.model, row.provider)),
            latest: latest
                .into_iter()
                .map(|r| {
                    let n = name(&r.workspace_id);
                    (r, n)
                })
                .collect(),
            budgets: standings
                .into_iter()
                .map(|s| {
                    let scope = s.budget.workspace_id.as_deref().map_or_else(|| "the org".to_owned(), |w| format!("workspace {}", name(w)));
                    (s, scope)
                })
                .collect(),
        };
        Ok::<_, ApiError>(pages::usage(session.viewer(), &org, &usage))
    }
    .await;
    shown_or_error(&session, shown)
}

#[derive(serde::Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    org: String,
    name: String,
    runtime: String,
    model: String,
}

async fn create_workspace(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    axum::Form(form): axum::Form<CreateForm>,
) -> Response {
    if let Some(refused) = refuse_forged(&session, &CsrfForm { csrf: form.csrf.clone() }) {
        return refused;
    }
    let done = async {
        session.caller.require_org(&form.org)?;
        let actor = format!("{} (console)", session.caller.actor());
        crate::routes::workspaces::create_workspace(&state, &form.org, form.name.trim(), &form.runtime, form.model.trim(), &actor).await
    }
    .await;
    match done {
        Ok(workspace) => Redirect::to(&format!("/console/orgs/{}/workspaces/{}", workspace.org_id, workspace.id)).into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}
