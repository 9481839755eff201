//! Orgs (tenants) and their workspaces.

use serde_json::json;

use crate::audit::append_audit;
use crate::db::{Store, new_id, now_ms, on_read, on_write};
use crate::error::{Result, StoreError, conflict_or};
use crate::model::{LastError, NewAuditEvent, NewWorkspace, Org, Workspace, WorkspaceState, WorkspaceStatus};
use wsd_core::plan::CredentialDelivery;

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: String,
    name: String,
    created_at: i64,
    credential_delivery: Option<String>,
}

pub(crate) fn delivery_from(text: &str) -> Result<CredentialDelivery> {
    match text {
        "direct" => Ok(CredentialDelivery::Direct),
        "proxy" => Ok(CredentialDelivery::Proxy),
        other => Err(StoreError::Database(sqlx::Error::Decode(format!("unknown credential delivery `{other}`").into()))),
    }
}

impl OrgRow {
    fn into_org(self) -> Result<Org> {
        let credential_delivery = self.credential_delivery.as_deref().map(delivery_from).transpose()?;
        Ok(Org { id: self.id, name: self.name, created_at: self.created_at, credential_delivery })
    }
}

const ORG_COLUMNS: &str = "id, name, created_at, credential_delivery";

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    id: String,
    org_id: String,
    name: String,
    runtime: String,
    model: String,
    status: String,
    last_error_code: Option<String>,
    last_error_message: Option<String>,
    backend: Option<String>,
    instance_id: Option<String>,
    plan_hash: Option<String>,
    host_uid: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl WorkspaceRow {
    fn into_workspace(self) -> Result<Workspace> {
        let status = WorkspaceStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Database(sqlx::Error::Decode(format!("unknown workspace status `{}`", self.status).into())))?;
        let host_uid = self
            .host_uid
            .map(|uid| u32::try_from(uid).map_err(|_| StoreError::Database(sqlx::Error::Decode(format!("invalid host uid {uid}").into()))))
            .transpose()?;
        let last_error = match (self.last_error_code, self.last_error_message) {
            (Some(code), message) => Some(LastError { code, message: message.unwrap_or_default() }),
            (None, _) => None,
        };
        Ok(Workspace {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            runtime: self.runtime,
            model: self.model,
            status,
            last_error,
            backend: self.backend,
            instance_id: self.instance_id,
            plan_hash: self.plan_hash,
            host_uid,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const WORKSPACE_COLUMNS: &str = "id, org_id, name, runtime, model, status, last_error_code, last_error_message, backend, instance_id, plan_hash, host_uid, created_at, updated_at";

impl Store {
    pub async fn create_org(&self, name: &str, actor: &str) -> Result<Org> {
        let org = Org { id: new_id(), name: name.to_owned(), created_at: now_ms(), credential_delivery: None };
        let event = NewAuditEvent {
            org_id: Some(org.id.clone()),
            actor: actor.to_owned(),
            action: "org.create".into(),
            target: format!("org/{}", org.id),
            details: json!({"name": name}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, format!("org `{name}`")))?;
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(org)
    }

    pub async fn get_org(&self, id: &str) -> Result<Org> {
        let row: Option<OrgRow> =
            on_read!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?);
        row.ok_or(StoreError::NotFound { what: "org" })?.into_org()
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>> {
        let rows: Vec<OrgRow> =
            on_read!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id")))
                .fetch_all(pool)
                .await?);
        rows.into_iter().map(OrgRow::into_org).collect()
    }

    /// Sets how the org's BYOK workspaces get their keys; `None`: the platform's default.
    /// Running workspaces keep their plan until provisioned again.
    pub async fn set_credential_delivery(&self, org: &str, delivery: Option<CredentialDelivery>, actor: &str) -> Result<Org> {
        let event = NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "org.credential_delivery".into(),
            target: format!("org/{org}"),
            details: json!({"credential_delivery": delivery.map(CredentialDelivery::as_str)}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let updated = sqlx::query("UPDATE orgs SET credential_delivery = $1 WHERE id = $2")
                .bind(delivery.map(CredentialDelivery::as_str))
                .bind(org)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound { what: "org" });
            }
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        self.get_org(org).await
    }

    pub async fn create_workspace(&self, org: &str, new: &NewWorkspace<'_>, actor: &str) -> Result<Workspace> {
        let now = now_ms();
        let workspace = Workspace {
            id: new_id(),
            org_id: org.to_owned(),
            name: new.name.to_owned(),
            runtime: new.runtime.to_owned(),
            model: new.model.to_owned(),
            status: WorkspaceStatus::Created,
            last_error: None,
            backend: None,
            instance_id: None,
            plan_hash: None,
            host_uid: None,
            created_at: now,
            updated_at: now,
        };
        let event = NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "workspace.create".into(),
            target: format!("org/{org}/workspaces/{}", workspace.id),
            details: json!({"name": new.name, "runtime": new.runtime, "model": new.model}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM orgs WHERE id = $1").bind(org).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Err(StoreError::NotFound { what: "org" });
            }
            sqlx::query(
                "INSERT INTO workspaces (id, org_id, name, runtime, model, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&workspace.id)
            .bind(org)
            .bind(new.name)
            .bind(new.runtime)
            .bind(new.model)
            .bind(workspace.status.as_str())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, format!("workspace `{}`", new.name)))?;
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(workspace)
    }

    /// The workspace `id` of `org`; another org's workspace is `NotFound`.
    pub async fn get_workspace(&self, org: &str, id: &str) -> Result<Workspace> {
        let row: Option<WorkspaceRow> = on_read!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND org_id = $2")))
                .bind(id)
                .bind(org)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound { what: "workspace" })?.into_workspace()
    }

    pub async fn list_workspaces(&self, org: &str) -> Result<Vec<Workspace>> {
        let rows: Vec<WorkspaceRow> = on_read!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE org_id = $1 ORDER BY created_at, id"
            )))
            .bind(org)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(WorkspaceRow::into_workspace).collect()
    }

    /// Every workspace recorded as running, across orgs: what a starting server takes over.
    pub async fn running_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows: Vec<WorkspaceRow> = on_read!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE status = $1 ORDER BY created_at, id"
            )))
            .bind(WorkspaceStatus::Running.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(WorkspaceRow::into_workspace).collect()
    }

    /// Deletes a workspace with its secrets and tokens.
    pub async fn delete_workspace(&self, org: &str, id: &str, actor: &str) -> Result<()> {
        let event = NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "workspace.delete".into(),
            target: format!("org/{org}/workspaces/{id}"),
            details: json!({}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            sqlx::query("DELETE FROM workspace_secrets WHERE workspace_id = $1 AND org_id = $2")
                .bind(id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM api_tokens WHERE workspace_id = $1 AND org_id = $2").bind(id).bind(org).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM workspaces WHERE id = $1 AND org_id = $2").bind(id).bind(org).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "workspace" });
            }
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn set_workspace_model(&self, org: &str, id: &str, model: &str, actor: &str) -> Result<Workspace> {
        let event = NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "workspace.model".into(),
            target: format!("org/{org}/workspaces/{id}"),
            details: json!({"model": model}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let updated = sqlx::query("UPDATE workspaces SET model = $1, updated_at = $2 WHERE id = $3 AND org_id = $4")
                .bind(model)
                .bind(now_ms())
                .bind(id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "workspace" });
            }
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        self.get_workspace(org, id).await
    }

    /// Records a workspace's state after a lifecycle step.
    pub async fn set_workspace_state(&self, org: &str, id: &str, state: &WorkspaceState<'_>) -> Result<()> {
        let updated = on_write!(self, |pool| {
            sqlx::query(
                "UPDATE workspaces SET status = $1, last_error_code = $2, last_error_message = $3, backend = $4, instance_id = $5, plan_hash = $6, updated_at = $7 WHERE id = $8 AND org_id = $9",
            )
            .bind(state.status.as_str())
            .bind(state.last_error.map(|e| e.code.clone()))
            .bind(state.last_error.map(|e| e.message.clone()))
            .bind(state.backend)
            .bind(state.instance_id)
            .bind(state.plan_hash)
            .bind(now_ms())
            .bind(id)
            .bind(org)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound { what: "workspace" });
        }
        Ok(())
    }
}

impl Store {
    /// A workspace by id alone, for the operator.
    pub async fn find_workspace(&self, id: &str) -> Result<Workspace> {
        let row: Option<WorkspaceRow> = on_read!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound { what: "workspace" })?.into_workspace()
    }

    /// How many workspaces of `org` are recorded as running.
    pub async fn count_running_workspaces(&self, org: &str) -> Result<u64> {
        let count: i64 = on_read!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE org_id = $1 AND status = $2")
                .bind(org)
                .bind(WorkspaceStatus::Running.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The host uid of workspace `id`: the one it has, or the lowest of `range` no other
    /// workspace has, recorded now. Two assignments at once never share a uid (a unique
    /// index; the loser takes the next).
    pub async fn assign_host_uid(&self, org: &str, id: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32> {
        let size = u64::from(*range.end()).saturating_sub(u64::from(*range.start())) + 1;
        loop {
            if let Some(uid) = self.get_workspace(org, id).await?.host_uid {
                return Ok(uid);
            }
            let taken: Vec<i64> = on_read!(self, |pool| {
                sqlx::query_scalar("SELECT host_uid FROM workspaces WHERE host_uid >= $1 AND host_uid <= $2 ORDER BY host_uid")
                    .bind(i64::from(*range.start()))
                    .bind(i64::from(*range.end()))
                    .fetch_all(pool)
                    .await?
            });
            let mut candidate = i64::from(*range.start());
            for uid in taken {
                if uid != candidate {
                    break;
                }
                candidate += 1;
            }
            if candidate > i64::from(*range.end()) {
                return Err(StoreError::HostUidsExhausted { size });
            }
            let assigned = on_write!(self, |pool| {
                sqlx::query("UPDATE workspaces SET host_uid = $1 WHERE id = $2 AND org_id = $3 AND host_uid IS NULL")
                    .bind(candidate)
                    .bind(id)
                    .bind(org)
                    .execute(pool)
                    .await
                    .map(|_| ())
            });
            match assigned {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
        }
    }
}
