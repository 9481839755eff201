//! Key rotation: re-seal every stored value with the keyring's newest version, online and
//! in batches. Each row is updated only if it still holds the value that was read (a
//! concurrent write wins), so a rotation may run beside a serving wsd, be killed at any
//! point, and be run again: rows are always on an old or the new version, both of which
//! the keyring opens, and a rerun finishes the job.

use wsd_core::EnvKey;

use crate::db::{Store, on_read, on_write};
use crate::error::{Result, StoreError};
use crate::keyring::{Binding, Scope, Sealed};
use crate::model::KeyStatus;

#[derive(sqlx::FromRow)]
struct RotationRow {
    id: i64,
    owner_org: String,
    owner_workspace: String,
    key: String,
    key_version: i64,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

struct Table {
    scope: Scope,
    select: &'static str,
    update: &'static str,
}

const TABLES: [Table; 3] = [
    Table {
        scope: Scope::Org,
        select: "SELECT id, org_id AS owner_org, '' AS owner_workspace, key, key_version, nonce, ciphertext FROM org_secrets WHERE key_version <> $1 ORDER BY id LIMIT $2",
        update: "UPDATE org_secrets SET key_version = $1, nonce = $2, ciphertext = $3 WHERE id = $4 AND key_version = $5 AND nonce = $6",
    },
    Table {
        scope: Scope::Workspace,
        select: "SELECT id, org_id AS owner_org, workspace_id AS owner_workspace, key, key_version, nonce, ciphertext FROM workspace_secrets WHERE key_version <> $1 ORDER BY id LIMIT $2",
        update: "UPDATE workspace_secrets SET key_version = $1, nonce = $2, ciphertext = $3 WHERE id = $4 AND key_version = $5 AND nonce = $6",
    },
    Table {
        scope: Scope::Platform,
        select: "SELECT id, '' AS owner_org, '' AS owner_workspace, key, key_version, nonce, ciphertext FROM platform_secrets WHERE key_version <> $1 ORDER BY id LIMIT $2",
        update: "UPDATE platform_secrets SET key_version = $1, nonce = $2, ciphertext = $3 WHERE id = $4 AND key_version = $5 AND nonce = $6",
    },
];

impl Store {
    /// Re-seals up to `batch` rows per table that are not on the newest key version, and
    /// the canary. Returns how many rows it re-sealed; 0 means the rotation is complete.
    pub async fn rotate_batch(&self, batch: i64) -> Result<u64> {
        let keyring = self.keyring();
        let target = i64::from(keyring.current_version());
        let mut resealed = 0u64;
        for table in &TABLES {
            let rows: Vec<RotationRow> =
                on_read!(self, |pool| sqlx::query_as(table.select).bind(target).bind(batch).fetch_all(pool).await?);
            if rows.is_empty() {
                continue;
            }
            let mut updates = Vec::with_capacity(rows.len());
            for row in rows {
                let key = EnvKey::new(&row.key)
                    .map_err(|_| StoreError::Database(sqlx::Error::Decode(format!("stored secret key {:?} is invalid", row.key).into())))?;
                let binding = Binding { scope: table.scope, org: &row.owner_org, workspace: &row.owner_workspace, key: &key };
                let sealed = Sealed {
                    key_version: crate::error::key_version(row.key_version)?,
                    nonce: row.nonce.clone(),
                    ciphertext: row.ciphertext,
                };
                let fresh = keyring.reseal(&binding, &sealed).map_err(|reason| StoreError::SecretDecryptFailed {
                    scope: table.scope,
                    key: key.clone(),
                    reason,
                })?;
                updates.push((row.id, row.key_version, row.nonce, fresh));
            }
            on_write!(self, |pool| {
                let mut tx = crate::db::Dialect::begin_write(pool).await?;
                for (id, old_version, old_nonce, fresh) in &updates {
                    let done = sqlx::query(table.update)
                        .bind(i64::from(fresh.key_version))
                        .bind(&fresh.nonce)
                        .bind(&fresh.ciphertext)
                        .bind(id)
                        .bind(old_version)
                        .bind(old_nonce)
                        .execute(&mut *tx)
                        .await?;
                    resealed += done.rows_affected();
                }
                tx.commit().await?;
            });
        }
        self.rotate_canary().await?;
        Ok(resealed)
    }

    async fn rotate_canary(&self) -> Result<()> {
        let keyring = self.keyring();
        let target = i64::from(keyring.current_version());
        let row: (i64, Vec<u8>, Vec<u8>) =
            on_read!(self, |pool| sqlx::query_as("SELECT key_version, nonce, ciphertext FROM vault_canary WHERE id = 1")
                .fetch_one(pool)
                .await?);
        if row.0 == target {
            return Ok(());
        }
        let canary_key = EnvKey::new("WSD_VAULT_CANARY").expect("valid env name");
        let binding = Binding { scope: Scope::Platform, org: "", workspace: "", key: &canary_key };
        let sealed = Sealed { key_version: crate::error::key_version(row.0)?, nonce: row.1.clone(), ciphertext: row.2 };
        let fresh =
            keyring.reseal(&binding, &sealed).map_err(|reason| StoreError::WrongMasterKey { version: sealed.key_version, reason })?;
        on_write!(self, |pool| {
            sqlx::query(
                "UPDATE vault_canary SET key_version = $1, nonce = $2, ciphertext = $3 WHERE id = 1 AND key_version = $4 AND nonce = $5",
            )
            .bind(i64::from(fresh.key_version))
            .bind(&fresh.nonce)
            .bind(&fresh.ciphertext)
            .bind(row.0)
            .bind(&row.1)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// How many sealed values (secrets and the canary) each key version holds.
    pub async fn key_status(&self) -> Result<KeyStatus> {
        let rows: Vec<(i64, i64)> = on_read!(self, |pool| {
            sqlx::query_as(
                "SELECT key_version, COUNT(*) FROM (
                    SELECT key_version FROM org_secrets UNION ALL SELECT key_version FROM workspace_secrets
                    UNION ALL SELECT key_version FROM platform_secrets UNION ALL SELECT key_version FROM vault_canary
                 ) AS sealed GROUP BY key_version ORDER BY key_version",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(KeyStatus {
            current_version: self.keyring().current_version(),
            rows_by_version: rows
                .into_iter()
                .map(|(v, n)| Ok((crate::error::key_version(v)?, u64::try_from(n).unwrap_or(0))))
                .collect::<Result<_>>()?,
        })
    }
}
