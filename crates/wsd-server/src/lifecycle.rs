//! Provisioning: load the secrets with provenance, plan again from the stored model
//! (never an empty one), resolve the plan's references to values at the last moment, and
//! start the workspace on its backend with exactly that env. A refused plan marks the
//! workspace `failed` with the code and message; a start that fails half-way leaves no
//! process behind.
//!
//! Provision, restart, stop and delete of one workspace run one at a time (a second waits
//! for the first), so a workspace never has two instances; an org's quota of running
//! workspaces is checked under the org's lock.

use serde_json::json;
use sha2::{Digest, Sha256};
use wsd_backend::{Launch, LaunchFile};
use wsd_core::plan::{EnvValue, FileContent, SecretOrigin};
use wsd_core::{Plan, PlanReport, SecretValue};
use wsd_store::{LastError, NewAuditEvent, ProxiedRoute, Workspace, WorkspaceSecrets, WorkspaceState, WorkspaceStatus};

use crate::code;
use crate::error::{ApiError, ApiResult};
use crate::service;
use crate::state::{AppState, Placement, Runner};

/// The hash of the plan a workspace runs with: it changes when its plan would.
pub fn plan_hash(plan: &Plan) -> String {
    let json = serde_json::to_vec(&PlanReport::from_plan(plan)).unwrap_or_default();
    Sha256::digest(&json).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn runner(state: &AppState) -> ApiResult<&Runner> {
    state.runner.as_ref().ok_or_else(|| {
        ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code::NO_BACKEND, "this server has no backend to run workspaces")
    })
}

fn available(placement: &Placement) -> ApiResult<&Placement> {
    match &placement.unavailable {
        Some(reason) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code::BACKEND_UNAVAILABLE,
            format!("the {} backend cannot run workspaces: {reason}", placement.backend.name()),
        )),
        None => Ok(placement),
    }
}

/// A backend's failure as the API answers it: an engine that does not answer is 503, a
/// missing image or runtime configuration 422, anything else `otherwise` (502).
pub fn backend_error(e: wsd_backend::BackendError, otherwise: &'static str) -> ApiError {
    use axum::http::StatusCode;
    use wsd_backend::BackendError;
    match e {
        BackendError::Unavailable(reason) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::BACKEND_UNAVAILABLE, reason),
        e @ BackendError::ImageMissing(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code::BACKEND_IMAGE_MISSING, e.to_string()),
        BackendError::NotConfigured(reason) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code::NO_RUNTIME_IMAGE, reason),
        e => ApiError::new(StatusCode::BAD_GATEWAY, otherwise, e.to_string()),
    }
}

fn workspace_key(id: &str) -> String {
    format!("workspace/{id}")
}

/// Refuses a workspace that would take `org` over its quota of running workspaces
/// (a workspace that runs already, being restarted, does not count twice).
async fn check_quota(state: &AppState, runner: &Runner, workspace: &Workspace) -> ApiResult<()> {
    let max = runner.max_running_per_org;
    if max == 0 {
        return Ok(());
    }
    let running = state.store.count_running_workspaces(&workspace.org_id).await?;
    let others = running.saturating_sub(u64::from(workspace.status == WorkspaceStatus::Running));
    if others >= max {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            code::QUOTA_EXCEEDED,
            format!("the org runs {others} workspaces, its most ([policy] max_running_workspaces_per_org = {max}); stop one first"),
        ));
    }
    Ok(())
}

async fn fail(state: &AppState, workspace: &Workspace, error: ApiError) -> ApiError {
    let last = LastError { code: error.code.to_owned(), message: error.message.clone() };
    let failed =
        WorkspaceState { status: WorkspaceStatus::Failed, last_error: Some(&last), backend: None, instance_id: None, plan_hash: None };
    if let Err(e) = state.store.set_workspace_state(&workspace.org_id, &workspace.id, &failed).await {
        tracing::error!(error = %e, workspace = %workspace.id, "could not record a failed provision");
    }
    error
}

fn value(secrets: &WorkspaceSecrets, key: &wsd_core::EnvKey, origin: SecretOrigin) -> ApiResult<SecretValue> {
    secrets.value(origin, key).cloned().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            code::SECRET_CHANGED,
            format!("the secret {key} changed while the workspace was provisioned; try again"),
        )
    })
}

/// Stops what runs, plans again and starts the workspace. Answers the updated workspace.
pub async fn provision(state: &AppState, org: &str, id: &str, actor: &str) -> ApiResult<Workspace> {
    let runner = runner(state)?;
    let _workspace_lock = runner.locks.lock(&workspace_key(id)).await;
    // The count and the start it allows are one step per org.
    let _org_lock = match runner.max_running_per_org {
        0 => None,
        _ => Some(runner.locks.lock(&format!("org/{org}")).await),
    };
    let workspace = state.store.get_workspace(org, id).await?;
    let placement = available(runner.placement_for(&workspace.runtime))?;
    check_quota(state, runner, &workspace).await?;
    stop_instance(runner, &workspace).await?;
    let secrets = match state.store.load_workspace_secrets(org, id).await {
        Ok(secrets) => secrets,
        Err(e) => return Err(fail(state, &workspace, e.into()).await),
    };
    let delivery = state.store.get_org(org).await?.credential_delivery;
    let plan = match service::plan_names(state, id, &workspace.runtime, &workspace.model, &secrets.names, delivery)? {
        Ok(plan) => plan,
        Err(refusal) => return Err(fail(state, &workspace, refusal.into()).await),
    };
    let argv = placement.commands.get(&workspace.runtime).filter(|a| !a.is_empty()).cloned().unwrap_or_default();
    if argv.is_empty() && !placement.command_optional {
        let error = ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code::NO_RUNTIME_COMMAND,
            format!("no command is configured for runtime `{}` ([backends.{}.commands])", workspace.runtime, placement.backend.name()),
        );
        return Err(fail(state, &workspace, error).await);
    }

    // A fresh usage token per provision; the previous ones stop working. With proxy
    // delivery it stands for the planned secret, which the proxy sends to the provider.
    let usage = if plan.env.values().any(|e| e.value == EnvValue::UsageToken) {
        revoke_usage_tokens(state, &workspace, actor).await?;
        let proxied =
            plan.delivery.proxied.as_ref().map(|p| ProxiedRoute { provider: plan.provider.clone(), key: p.key.clone(), origin: p.origin });
        Some(state.store.create_usage_token(org, id, proxied.as_ref(), actor).await?.1)
    } else {
        None
    };
    let resolve = |value: &EnvValue| -> ApiResult<SecretValue> {
        match value {
            EnvValue::Secret { key, origin } => self::value(&secrets, key, *origin),
            EnvValue::UsageToken => usage.clone().ok_or_else(|| {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, code::NO_USAGE_TOKEN, "no usage token was minted")
            }),
            EnvValue::Literal(text) => Ok(SecretValue::new(text.clone())),
        }
    };
    let env = plan.env.iter().map(|(k, e)| Ok((k.to_string(), resolve(&e.value)?))).collect::<ApiResult<Vec<_>>>()?;
    let files = plan
        .files
        .iter()
        .map(|f| {
            let content = match &f.content {
                FileContent::Text(text) => SecretValue::new(text.clone()),
                FileContent::Secret { key, origin } => value(&secrets, key, *origin)?,
            };
            Ok(LaunchFile { path: f.path.clone(), content })
        })
        .collect::<ApiResult<Vec<_>>>()?;

    let host_uid = match placement.backend.host_uids() {
        Some(range) => Some(state.store.assign_host_uid(org, id, range).await?),
        None => None,
    };
    let hash = plan_hash(&plan);
    let launch = Launch {
        workspace_id: id.to_owned(),
        org_id: org.to_owned(),
        plan_hash: hash.clone(),
        runtime: workspace.runtime.clone(),
        argv,
        env,
        files,
        host_uid,
        confinement: placement.confinement.of(&workspace.runtime),
    };
    let instance = match placement.backend.start(launch).await {
        Ok(instance) => instance,
        Err(e) => {
            // Nothing of a failed start stays usable: its usage token goes too.
            if usage.is_some() {
                revoke_usage_tokens(state, &workspace, actor).await?;
            }
            return Err(fail(state, &workspace, backend_error(e, code::BACKEND_START_FAILED)).await);
        }
    };
    let running = WorkspaceState {
        status: WorkspaceStatus::Running,
        last_error: None,
        backend: Some(placement.backend.name()),
        instance_id: Some(&instance),
        plan_hash: Some(&hash),
    };
    let recorded = state.store.set_workspace_state(org, id, &running).await;
    let decisions: Vec<_> = plan.decisions.iter().map(|d| json!({"key": d.key, "origin": d.origin, "action": d.action})).collect();
    let event = NewAuditEvent {
        org_id: Some(org.to_owned()),
        actor: actor.to_owned(),
        action: "workspace.provision".into(),
        target: format!("org/{org}/workspaces/{id}"),
        details: json!({
            "provider": plan.provider, "routing": plan.routing, "delivery": plan.delivery.delivery,
            "plan_hash": hash, "decisions": decisions,
        }),
    };
    let audited = match recorded {
        Ok(()) => state.store.append_audit(&event).await,
        Err(e) => Err(e),
    };
    if let Err(e) = audited {
        // Never leave a process wsd does not know it runs.
        let _ = placement.backend.stop(id, &instance).await;
        return Err(e.into());
    }
    Ok(state.store.get_workspace(org, id).await?)
}

async fn revoke_usage_tokens(state: &AppState, workspace: &Workspace, actor: &str) -> ApiResult<()> {
    state.store.revoke_usage_tokens(&workspace.org_id, &workspace.id, actor).await?;
    state.proxy.gate.forget_usage_tokens();
    Ok(())
}

async fn stop_instance(runner: &Runner, workspace: &Workspace) -> ApiResult<()> {
    if let Some(instance) = &workspace.instance_id {
        let placement = runner.placement_of(workspace);
        placement.backend.stop(&workspace.id, instance).await.map_err(|e| backend_error(e, code::BACKEND_STOP_FAILED))?;
    }
    Ok(())
}

/// Stops a workspace and revokes its usage tokens.
pub async fn stop(state: &AppState, org: &str, id: &str, actor: &str) -> ApiResult<Workspace> {
    let runner = runner(state)?;
    let _workspace_lock = runner.locks.lock(&workspace_key(id)).await;
    let workspace = state.store.get_workspace(org, id).await?;
    stop_instance(runner, &workspace).await?;
    revoke_usage_tokens(state, &workspace, actor).await?;
    let stopped = WorkspaceState {
        status: WorkspaceStatus::Stopped,
        last_error: None,
        backend: workspace.backend.as_deref(),
        instance_id: None,
        plan_hash: workspace.plan_hash.as_deref(),
    };
    state.store.set_workspace_state(org, id, &stopped).await?;
    let event = NewAuditEvent {
        org_id: Some(org.to_owned()),
        actor: actor.to_owned(),
        action: "workspace.stop".into(),
        target: format!("org/{org}/workspaces/{id}"),
        details: json!({}),
    };
    state.store.append_audit(&event).await?;
    Ok(state.store.get_workspace(org, id).await?)
}

/// Deletes a workspace: ends whatever runs for it, removes it from the store (its secrets
/// and tokens with it) and then everything the backend kept of it (home, files, log).
pub async fn delete(state: &AppState, org: &str, id: &str, actor: &str) -> ApiResult<()> {
    let Some(runner) = &state.runner else {
        state.store.delete_workspace(org, id, actor).await?;
        state.proxy.gate.forget_usage_tokens();
        return Ok(());
    };
    let _workspace_lock = runner.locks.lock(&workspace_key(id)).await;
    let workspace = state.store.get_workspace(org, id).await?;
    stop_instance(runner, &workspace).await?;
    state.store.delete_workspace(org, id, actor).await?;
    state.proxy.gate.forget_usage_tokens();
    // What it left where it ran, and where its runtime runs now (a failed start there).
    let recorded = runner.placement_of(&workspace);
    let current = runner.placement_for(&workspace.runtime);
    recorded.backend.remove(id).await.map_err(|e| backend_error(e, code::BACKEND_REMOVE_FAILED))?;
    if !std::ptr::eq(recorded, current) {
        current.backend.remove(id).await.map_err(|e| backend_error(e, code::BACKEND_REMOVE_FAILED))?;
    }
    Ok(())
}

/// At start: takes over every workspace a previous run of wsd left running on this
/// server's backend, and ends every instance the backend runs that the store does not
/// record (one started by a run killed before it recorded it). Those whose process ended
/// meanwhile are reported as exited when next read.
pub async fn adopt_running(state: &AppState) -> Result<wsd_backend::Reconciled, wsd_store::StoreError> {
    let Some(runner) = &state.runner else { return Ok(wsd_backend::Reconciled::default()) };
    let running = state.store.running_workspaces().await?;
    let mut total = wsd_backend::Reconciled::default();
    for placement in &runner.placements {
        let recorded: Vec<(String, String)> = running
            .iter()
            .filter(|w| w.backend.as_deref() == Some(placement.backend.name()))
            .filter_map(|w| Some((w.id.clone(), w.instance_id.clone()?)))
            .collect();
        let outcome = placement.backend.reconcile(&recorded).await;
        total.adopted += outcome.adopted;
        total.gone += outcome.gone;
        total.ended += outcome.ended;
    }
    Ok(total)
}

/// A workspace as the API shows it: as stored, with its status made true (a process that
/// exited since is reported as exited), and whether its plan would now differ.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    #[serde(flatten)]
    pub workspace: Workspace,
    /// Whether its plan would now differ from the one it runs with (running ones only).
    pub stale: Option<bool>,
    /// Its process ended since it was last recorded as running: with this code, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Option<i32>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exited: bool,
}

pub async fn observe(state: &AppState, mut workspace: Workspace) -> ApiResult<WorkspaceView> {
    let mut exit_code = None;
    if let (Some(runner), Some(instance), WorkspaceStatus::Running) = (&state.runner, &workspace.instance_id, workspace.status) {
        match runner.placement_of(&workspace).backend.status(instance).await {
            Ok(wsd_backend::InstanceStatus::Exited { code }) => {
                workspace.status = WorkspaceStatus::Stopped;
                exit_code = Some(code);
            }
            Ok(_) => {}
            // What the store records stands until the backend can say otherwise.
            Err(e) => tracing::warn!(workspace = %workspace.id, error = %e, "cannot read a workspace's status from its backend"),
        }
    }
    let stale = match (&workspace.plan_hash, workspace.status) {
        (Some(hash), WorkspaceStatus::Running) => {
            let input = state.store.plan_input(&workspace.org_id, &workspace.id).await?;
            let current = service::plan_names(state, &workspace.id, &workspace.runtime, &workspace.model, &input.names, input.delivery)?;
            Some(current.map(|p| plan_hash(&p) != *hash).unwrap_or(true))
        }
        _ => None,
    };
    Ok(WorkspaceView { workspace, stale, exited: exit_code.is_some(), exit_code })
}

/// After a secret change: restarts the running workspaces of `org` (or just `workspace`)
/// whose plan now differs, when `[backends] restart_on_change` is on. Runs in the
/// background; each outcome is logged and recorded on its workspace.
pub fn restart_if_changed(state: &std::sync::Arc<AppState>, org: &str, workspace: Option<&str>, actor: &str) {
    if !state.runner.as_ref().is_some_and(|r| r.restart_on_change) {
        return;
    }
    let (state, org, workspace, actor) = (state.clone(), org.to_owned(), workspace.map(str::to_owned), actor.to_owned());
    tokio::spawn(async move {
        let workspaces = match state.store.list_workspaces(&org).await {
            Ok(list) => list,
            Err(e) => return tracing::error!(error = %e, "cannot list workspaces to restart"),
        };
        for ws in
            workspaces.into_iter().filter(|w| w.status == WorkspaceStatus::Running && workspace.as_deref().is_none_or(|id| id == w.id))
        {
            let id = ws.id.clone();
            let stale = observe(&state, ws).await.is_ok_and(|view| view.stale == Some(true));
            if stale {
                match provision(&state, &org, &id, &format!("{actor} (restart on change)")).await {
                    Ok(_) => tracing::info!(workspace = %id, "restarted after a secret change"),
                    Err(e) => tracing::warn!(workspace = %id, code = e.code, "restart after a secret change failed"),
                }
            }
        }
    });
}
