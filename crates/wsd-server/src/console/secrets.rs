//! Secrets in the console: an org's on its own page, a workspace's on the workspace's page.
//! Values go in through a password field and are never shown; every change goes through the
//! API's own functions (the same checks, audit and restarts on change).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use wsd_store::SecretOwner;

use super::session::ConsoleSession;
use super::{CsrfForm, error_page, pages, refuse_forged, shown_or_error};
use crate::error::ApiError;
use crate::routes::secrets as api;
use crate::state::AppState;

/// The secrets a page addresses: an org's, or one of its workspaces'.
enum Holder {
    Org { org: String },
    Workspace { org: String, workspace: String },
}

impl Holder {
    fn org(&self) -> &str {
        match self {
            Holder::Org { org } | Holder::Workspace { org, .. } => org,
        }
    }

    fn owner(&self) -> SecretOwner<'_> {
        match self {
            Holder::Org { org } => SecretOwner::Org { org },
            Holder::Workspace { org, workspace } => SecretOwner::Workspace { org, workspace },
        }
    }

    /// The page that lists these secrets: where a change returns to.
    fn page(&self) -> String {
        match self {
            Holder::Org { org } => format!("/console/orgs/{org}/secrets"),
            Holder::Workspace { org, workspace } => format!("/console/orgs/{org}/workspaces/{workspace}"),
        }
    }

    /// Where a secret's set and delete forms post.
    fn base(&self) -> String {
        match self {
            Holder::Org { org } => format!("/console/orgs/{org}/secrets"),
            Holder::Workspace { org, workspace } => format!("/console/orgs/{org}/workspaces/{workspace}/secrets"),
        }
    }

    /// How a person names the holder, checking that it exists and is the caller's.
    async fn name(&self, state: &AppState, session: &ConsoleSession) -> Result<String, ApiError> {
        session.caller.require_org(self.org())?;
        Ok(match self {
            Holder::Org { org } => format!("org {}", state.store.get_org(org).await?.name),
            Holder::Workspace { org, workspace } => format!("workspace {}", state.store.get_workspace(org, workspace).await?.name),
        })
    }
}

pub(super) async fn org_secrets(State(state): State<Arc<AppState>>, session: ConsoleSession, Path(org): Path<String>) -> Response {
    let shown = async {
        session.caller.require_org(&org)?;
        let org = state.store.get_org(&org).await?;
        let secrets = state.store.list_secrets(SecretOwner::Org { org: &org.id }).await?;
        Ok::<_, ApiError>(pages::secrets(session.viewer(), &org, &secrets))
    }
    .await;
    shown_or_error(&session, shown)
}

#[derive(serde::Deserialize)]
pub(super) struct SecretForm {
    #[serde(default)]
    csrf: String,
    key: String,
    /// Redacted from the moment it is parsed.
    value: api::SecretText,
}

pub(super) async fn set_org_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path(org): Path<String>,
    axum::Form(form): axum::Form<SecretForm>,
) -> Response {
    set(&state, &session, Holder::Org { org }, form).await
}

pub(super) async fn set_workspace_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, workspace)): Path<(String, String)>,
    axum::Form(form): axum::Form<SecretForm>,
) -> Response {
    set(&state, &session, Holder::Workspace { org, workspace }, form).await
}

async fn set(state: &Arc<AppState>, session: &ConsoleSession, holder: Holder, form: SecretForm) -> Response {
    if let Some(refused) = refuse_forged(session, &CsrfForm { csrf: form.csrf }) {
        return refused;
    }
    let done = async {
        holder.name(state, session).await?;
        let actor = format!("{} (console)", session.caller.actor());
        let (key, value) = (form.key.trim(), form.value.value());
        match &holder {
            Holder::Org { org } => api::put_org_secret(state, org, key, value, &actor).await,
            Holder::Workspace { org, workspace } => api::put_workspace_secret(state, org, workspace, key, value, &actor).await,
        }
    }
    .await;
    match done {
        Ok(_) => Redirect::to(&holder.page()).into_response(),
        Err(e) => error_page(Some(session), &e),
    }
}

pub(super) async fn confirm_delete_org_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, key)): Path<(String, String)>,
) -> Response {
    confirm_delete(&state, &session, Holder::Org { org }, &key).await
}

pub(super) async fn confirm_delete_workspace_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, workspace, key)): Path<(String, String, String)>,
) -> Response {
    confirm_delete(&state, &session, Holder::Workspace { org, workspace }, &key).await
}

async fn confirm_delete(state: &AppState, session: &ConsoleSession, holder: Holder, key: &str) -> Response {
    let shown = async {
        let name = holder.name(state, session).await?;
        let secrets = state.store.list_secrets(holder.owner()).await?;
        if !secrets.iter().any(|s| s.key.as_str() == key) {
            return Err(ApiError::not_found("secret"));
        }
        let action = format!("{}/{key}/delete", holder.base());
        Ok(pages::confirm_delete(session.viewer(), &name, key, &action, &holder.page()))
    }
    .await;
    shown_or_error(session, shown)
}

pub(super) async fn delete_org_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, key)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    delete(&state, &session, Holder::Org { org }, &key, &form).await
}

pub(super) async fn delete_workspace_secret(
    State(state): State<Arc<AppState>>,
    session: ConsoleSession,
    Path((org, workspace, key)): Path<(String, String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    delete(&state, &session, Holder::Workspace { org, workspace }, &key, &form).await
}

async fn delete(state: &Arc<AppState>, session: &ConsoleSession, holder: Holder, key: &str, form: &CsrfForm) -> Response {
    if let Some(refused) = refuse_forged(session, form) {
        return refused;
    }
    let done = async {
        session.caller.require_org(holder.org())?;
        let actor = format!("{} (console)", session.caller.actor());
        match &holder {
            Holder::Org { org } => api::delete_org_secret(state, org, key, &actor).await,
            Holder::Workspace { org, workspace } => api::delete_workspace_secret(state, org, workspace, key, &actor).await,
        }
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&holder.page()).into_response(),
        Err(e) => error_page(Some(session), &e),
    }
}
