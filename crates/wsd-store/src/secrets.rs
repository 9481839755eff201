//! Secrets in the `org`, `workspace` and `platform` scopes: sealed on write, listed by name,
//! and loaded with provenance as the planner's input.
//!
//! Invariants: a value is sealed before it reaches SQL and opened only into a
//! `SecretValue`; a workspace's secrets load in one query per scope, and any row that fails
//! to open fails the whole load (`SECRET_DECRYPT_FAILED`), never a partial set; a storage
//! error is an error, never an empty result.

use serde_json::json;
use wsd_core::plan::SecretOrigin;
use wsd_core::{EnvKey, SecretValue};

use crate::audit::append_audit;
use crate::db::{Store, now_ms, on_read, on_write};
use crate::error::{Result, StoreError};
use crate::keyring::{Binding, Scope, Sealed};
use crate::model::{NewAuditEvent, SecretMeta, SecretOwner, WorkspaceSecrets};

#[derive(sqlx::FromRow)]
struct SealedRow {
    key: String,
    key_version: i64,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct MetaRow {
    key: String,
    key_version: i64,
    created_at: i64,
    updated_at: i64,
    updated_by: Option<String>,
}

fn corrupt_key(key: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(format!("stored secret key {key:?} is not a valid env-var name").into()))
}

impl MetaRow {
    fn into_meta(self) -> Result<SecretMeta> {
        Ok(SecretMeta {
            key: EnvKey::new(&self.key).map_err(|_| corrupt_key(&self.key))?,
            key_version: crate::error::key_version(self.key_version)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            updated_by: self.updated_by,
        })
    }
}

impl SecretOwner<'_> {
    fn scope(&self) -> Scope {
        match self {
            SecretOwner::Org { .. } => Scope::Org,
            SecretOwner::Workspace { .. } => Scope::Workspace,
            SecretOwner::Platform => Scope::Platform,
        }
    }

    fn binding<'k>(&'k self, key: &'k EnvKey) -> Binding<'k> {
        match *self {
            SecretOwner::Org { org } => Binding { scope: Scope::Org, org, workspace: "", key },
            SecretOwner::Workspace { org, workspace } => Binding { scope: Scope::Workspace, org, workspace, key },
            SecretOwner::Platform => Binding { scope: Scope::Platform, org: "", workspace: "", key },
        }
    }

    fn org(&self) -> Option<&str> {
        match *self {
            SecretOwner::Org { org } | SecretOwner::Workspace { org, .. } => Some(org),
            SecretOwner::Platform => None,
        }
    }

    fn target(&self, key: &EnvKey) -> String {
        match *self {
            SecretOwner::Org { org } => format!("org/{org}/secrets/{key}"),
            SecretOwner::Workspace { org, workspace } => format!("org/{org}/workspaces/{workspace}/secrets/{key}"),
            SecretOwner::Platform => format!("platform/secrets/{key}"),
        }
    }
}

/// The ids that name a secret's owner, in the order its table's key columns take them.
fn owner_ids<'a>(owner: SecretOwner<'a>) -> Vec<&'a str> {
    match owner {
        SecretOwner::Org { org } => vec![org],
        SecretOwner::Workspace { org, workspace } => vec![org, workspace],
        SecretOwner::Platform => vec![],
    }
}

/// The row that must exist before a secret is written to it (bound with [`owner_ids`]),
/// and what it is called when it does not.
fn parent_check(owner: SecretOwner<'_>) -> Option<(&'static str, &'static str)> {
    match owner {
        SecretOwner::Org { .. } => Some(("SELECT CAST(1 AS BIGINT) FROM orgs WHERE id = $1", "org")),
        SecretOwner::Workspace { .. } => Some(("SELECT CAST(1 AS BIGINT) FROM workspaces WHERE org_id = $1 AND id = $2", "workspace")),
        SecretOwner::Platform => None,
    }
}

/// Writes or replaces a sealed value: the owner's ids, then key, key version, nonce,
/// ciphertext, the time and the actor; answers the secret's first creation time.
fn upsert_sql(owner: SecretOwner<'_>) -> &'static str {
    match owner {
        SecretOwner::Org { .. } => {
            "INSERT INTO org_secrets (org_id, key, key_version, nonce, ciphertext, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
             ON CONFLICT (org_id, key) DO UPDATE SET key_version = excluded.key_version, nonce = excluded.nonce, ciphertext = excluded.ciphertext,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
             RETURNING created_at"
        }
        SecretOwner::Workspace { .. } => {
            "INSERT INTO workspace_secrets (org_id, workspace_id, key, key_version, nonce, ciphertext, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
             ON CONFLICT (workspace_id, key) DO UPDATE SET key_version = excluded.key_version, nonce = excluded.nonce, ciphertext = excluded.ciphertext,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
             RETURNING created_at"
        }
        SecretOwner::Platform => {
            "INSERT INTO platform_secrets (key, key_version, nonce, ciphertext, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $5, $6)
             ON CONFLICT (key) DO UPDATE SET key_version = excluded.key_version, nonce = excluded.nonce, ciphertext = excluded.ciphertext,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
             RETURNING created_at"
        }
    }
}

impl Store {
    /// Writes (or replaces) a secret. `value` must be non-empty; validation of the KEY is
    /// the `EnvKey` type's.
    pub async fn put_secret(&self, owner: SecretOwner<'_>, key: &EnvKey, value: &SecretValue, actor: &str) -> Result<SecretMeta> {
        let sealed = self.keyring().seal(&owner.binding(key), value);
        let now = now_ms();
        let event = NewAuditEvent {
            org_id: owner.org().map(str::to_owned),
            actor: actor.to_owned(),
            action: "secret.put".into(),
            target: owner.target(key),
            details: json!({"scope": owner.scope().as_str(), "key": key, "key_version": sealed.key_version}),
        };
        let version = i64::from(sealed.key_version);
        let created_at: i64 = on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            if let Some((exists, what)) = parent_check(owner) {
                let mut exists = sqlx::query_scalar::<_, i64>(exists);
                for id in owner_ids(owner) {
                    exists = exists.bind(id);
                }
                if exists.fetch_optional(&mut *tx).await?.is_none() {
                    return Err(StoreError::NotFound { what });
                }
            }
            let mut upsert = sqlx::query_scalar::<_, i64>(upsert_sql(owner));
            for id in owner_ids(owner) {
                upsert = upsert.bind(id);
            }
            let created_at = upsert
                .bind(key.as_str())
                .bind(version)
                .bind(&sealed.nonce)
                .bind(&sealed.ciphertext)
                .bind(now)
                .bind(actor)
                .fetch_one(&mut *tx)
                .await?;
            append_audit!(tx, &event, pool);
            tx.commit().await?;
            created_at
        });
        Ok(SecretMeta {
            key: key.clone(),
            key_version: sealed.key_version,
            created_at,
            updated_at: now,
            updated_by: Some(actor.to_owned()),
        })
    }

    /// Deletes a secret; `NotFound` when there is none.
    pub async fn delete_secret(&self, owner: SecretOwner<'_>, key: &EnvKey, actor: &str) -> Result<()> {
        let event = NewAuditEvent {
            org_id: owner.org().map(str::to_owned),
            actor: actor.to_owned(),
            action: "secret.delete".into(),
            target: owner.target(key),
            details: json!({"scope": owner.scope().as_str(), "key": key}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let deleted = match owner {
                SecretOwner::Org { org } => {
                    sqlx::query("DELETE FROM org_secrets WHERE org_id = $1 AND key = $2")
                        .bind(org)
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?
                }
                SecretOwner::Workspace { org, workspace } => {
                    sqlx::query("DELETE FROM workspace_secrets WHERE org_id = $1 AND workspace_id = $2 AND key = $3")
                        .bind(org)
                        .bind(workspace)
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?
                }
                SecretOwner::Platform => {
                    sqlx::query("DELETE FROM platform_secrets WHERE key = $1").bind(key.as_str()).execute(&mut *tx).await?
                }
            };
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "secret" });
            }
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The names and metadata of an owner's secrets, sorted by KEY.
    pub async fn list_secrets(&self, owner: SecretOwner<'_>) -> Result<Vec<SecretMeta>> {
        let rows: Vec<MetaRow> = on_read!(self, |pool| match owner {
            SecretOwner::Org { org } => {
                sqlx::query_as(
                    "SELECT key, key_version, created_at, updated_at, updated_by FROM org_secrets WHERE org_id = $1 ORDER BY key",
                )
                .bind(org)
                .fetch_all(pool)
                .await?
            }
            SecretOwner::Workspace { org, workspace } => {
                sqlx::query_as(
                    "SELECT key, key_version, created_at, updated_at, updated_by FROM workspace_secrets WHERE org_id = $1 AND workspace_id = $2 ORDER BY key",
                )
                .bind(org)
                .bind(workspace)
                .fetch_all(pool)
                .await?
            }
            SecretOwner::Platform => {
                sqlx::query_as("SELECT key, key_version, created_at, updated_at, updated_by FROM platform_secrets ORDER BY key")
                    .fetch_all(pool)
                    .await?
            }
        });
        rows.into_iter().map(MetaRow::into_meta).collect()
    }

    /// A workspace's secrets with provenance: the org's and the workspace's own, one query
    /// each. A workspace secret overrides the org secret of the same KEY (the planner
    /// records that as `overridden`). Any row that fails to open fails the load.
    pub async fn load_workspace_secrets(&self, org: &str, workspace: &str) -> Result<WorkspaceSecrets> {
        let (org_rows, workspace_rows): (Vec<SealedRow>, Vec<SealedRow>) = on_read!(self, |pool| {
            let org_rows = sqlx::query_as("SELECT key, key_version, nonce, ciphertext FROM org_secrets WHERE org_id = $1")
                .bind(org)
                .fetch_all(pool)
                .await?;
            let workspace_rows =
                sqlx::query_as("SELECT key, key_version, nonce, ciphertext FROM workspace_secrets WHERE org_id = $1 AND workspace_id = $2")
                    .bind(org)
                    .bind(workspace)
                    .fetch_all(pool)
                    .await?;
            (org_rows, workspace_rows)
        });
        let mut secrets = WorkspaceSecrets::default();
        for (origin, owner, rows) in [
            (SecretOrigin::Org, SecretOwner::Org { org }, org_rows),
            (SecretOrigin::Workspace, SecretOwner::Workspace { org, workspace }, workspace_rows),
        ] {
            for row in rows {
                let (key, value) = self.open_row(owner, row)?;
                secrets.insert(origin, key, value);
            }
        }
        Ok(secrets)
    }

    /// The value of one platform secret (the proxy's vendor keys).
    pub async fn get_platform_secret(&self, key: &EnvKey) -> Result<Option<SecretValue>> {
        self.get_secret(SecretOwner::Platform, key).await
    }

    /// The value of one secret.
    pub async fn get_secret(&self, owner: SecretOwner<'_>, key: &EnvKey) -> Result<Option<SecretValue>> {
        let row: Option<SealedRow> = on_read!(self, |pool| match owner {
            SecretOwner::Org { org } => {
                sqlx::query_as("SELECT key, key_version, nonce, ciphertext FROM org_secrets WHERE org_id = $1 AND key = $2")
                    .bind(org)
                    .bind(key.as_str())
                    .fetch_optional(pool)
                    .await?
            }
            SecretOwner::Workspace { org, workspace } => {
                sqlx::query_as("SELECT key, key_version, nonce, ciphertext FROM workspace_secrets WHERE org_id = $1 AND workspace_id = $2 AND key = $3")
                    .bind(org)
                    .bind(workspace)
                    .bind(key.as_str())
                    .fetch_optional(pool)
                    .await?
            }
            SecretOwner::Platform => {
                sqlx::query_as("SELECT key, key_version, nonce, ciphertext FROM platform_secrets WHERE key = $1")
                    .bind(key.as_str())
                    .fetch_optional(pool)
                    .await?
            }
        });
        row.map(|row| self.open_row(owner, row).map(|(_, value)| value)).transpose()
    }

    fn open_row(&self, owner: SecretOwner<'_>, row: SealedRow) -> Result<(EnvKey, SecretValue)> {
        let key = EnvKey::new(&row.key).map_err(|_| corrupt_key(&row.key))?;
        let sealed = Sealed { key_version: crate::error::key_version(row.key_version)?, nonce: row.nonce, ciphertext: row.ciphertext };
        let value = self.open_sealed(&owner.binding(&key), &sealed).map_err(|reason| StoreError::SecretDecryptFailed {
            scope: owner.scope(),
            key: key.clone(),
            reason,
        })?;
        Ok((key, value))
    }
}

impl Store {
    /// The names of a workspace's secrets by origin, without opening any value: the
    /// planner's input for plans that are shown rather than provisioned.
    pub async fn secret_names(&self, org: &str, workspace: Option<&str>) -> Result<wsd_core::plan::SecretNames> {
        let (org_keys, workspace_keys): (Vec<String>, Vec<String>) = on_read!(self, |pool| {
            let org_keys = sqlx::query_scalar("SELECT key FROM org_secrets WHERE org_id = $1").bind(org).fetch_all(pool).await?;
            let workspace_keys = match workspace {
                Some(workspace) => {
                    sqlx::query_scalar("SELECT key FROM workspace_secrets WHERE org_id = $1 AND workspace_id = $2")
                        .bind(org)
                        .bind(workspace)
                        .fetch_all(pool)
                        .await?
                }
                None => Vec::new(),
            };
            (org_keys, workspace_keys)
        });
        let parse = |keys: Vec<String>| keys.iter().map(|k| EnvKey::new(k).map_err(|_| corrupt_key(k))).collect::<Result<_>>();
        Ok(wsd_core::plan::SecretNames { org: parse(org_keys)?, workspace: parse(workspace_keys)? })
    }
}

/// What planning a stored workspace needs, read in one query.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub runtime: String,
    pub model: String,
    pub names: wsd_core::plan::SecretNames,
    /// The org's credential delivery; `None`: the platform's default.
    pub delivery: Option<wsd_core::plan::CredentialDelivery>,
}

impl Store {
    /// The runtime, model and secret names of workspace `id` of `org`, in one round trip
    /// and one row (names are aggregated: a row per key would cost a hand-off each);
    /// `NotFound` when the org has no such workspace.
    pub async fn plan_input(&self, org: &str, id: &str) -> Result<PlanInput> {
        type Row = (String, String, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> =
            on_read!(self, |pool| sqlx::query_as(crate::db::plan_input_sql(pool)).bind(id).bind(org).fetch_optional(pool).await?);
        let (runtime, model, org_keys, workspace_keys, delivery) = row.ok_or(StoreError::NotFound { what: "workspace" })?;
        let parse = |csv: Option<String>| -> Result<std::collections::BTreeSet<EnvKey>> {
            csv.iter().flat_map(|c| c.split(',')).map(|k| EnvKey::new(k).map_err(|_| corrupt_key(k))).collect()
        };
        let names = wsd_core::plan::SecretNames { org: parse(org_keys)?, workspace: parse(workspace_keys)? };
        let delivery = delivery.as_deref().map(crate::orgs::delivery_from).transpose()?;
        Ok(PlanInput { runtime, model, names, delivery })
    }

    /// The planner's input of every workspace of `org`, by workspace id, in three reads
    /// (the org, its secret names, its workspaces' secret names) whatever their number: for
    /// pages that list an org's workspaces with their plans.
    pub async fn plan_inputs(&self, org: &str) -> Result<std::collections::BTreeMap<String, PlanInput>> {
        let delivery = self.get_org(org).await?.credential_delivery;
        let org_keys: Vec<(String,)> =
            on_read!(self, |pool| sqlx::query_as("SELECT key FROM org_secrets WHERE org_id = $1").bind(org).fetch_all(pool).await?);
        let workspace_keys: Vec<(String, String)> =
            on_read!(self, |pool| sqlx::query_as("SELECT workspace_id, key FROM workspace_secrets WHERE org_id = $1")
                .bind(org)
                .fetch_all(pool)
                .await?);
        let org_names =
            org_keys.iter().map(|(k,)| EnvKey::new(k).map_err(|_| corrupt_key(k))).collect::<Result<std::collections::BTreeSet<_>>>()?;
        let mut inputs: std::collections::BTreeMap<String, PlanInput> = self
            .list_workspaces(org)
            .await?
            .into_iter()
            .map(|w| {
                let names = wsd_core::plan::SecretNames { org: org_names.clone(), workspace: Default::default() };
                (w.id, PlanInput { runtime: w.runtime, model: w.model, names, delivery })
            })
            .collect();
        for (workspace, key) in workspace_keys {
            if let Some(input) = inputs.get_mut(&workspace) {
                input.names.workspace.insert(EnvKey::new(&key).map_err(|_| corrupt_key(&key))?);
            }
        }
        Ok(inputs)
    }
}
