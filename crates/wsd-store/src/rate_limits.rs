//! An org's own rate limits per workspace, in place of the platform's defaults.

use serde::{Deserialize, Serialize};

use crate::db::{Dialect, Store, on_read, on_write};
use crate::error::{Result, StoreError};

/// An org's own rate limits per workspace; 0: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrgRateLimits {
    pub requests_per_minute: i64,
    pub tokens_per_minute: i64,
}

impl Store {
    /// Sets the org's own rate limits, in place of the platform's defaults.
    pub async fn put_rate_limits(&self, org: &str, limits: OrgRateLimits, actor: &str) -> Result<()> {
        let event = crate::model::NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "rate_limits.put".into(),
            target: format!("org/{org}/rate-limits"),
            details: serde_json::json!({"requests_per_minute": limits.requests_per_minute, "tokens_per_minute": limits.tokens_per_minute}),
        };
        on_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO org_rate_limits (org_id, requests_per_minute, tokens_per_minute, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
                    tokens_per_minute = excluded.tokens_per_minute, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(limits.requests_per_minute)
            .bind(limits.tokens_per_minute)
            .bind(crate::db::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: "org" },
                _ => StoreError::Database(e),
            })?;
            crate::audit::append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The org's own rate limits, if it has any.
    pub async fn get_rate_limits(&self, org: &str) -> Result<Option<OrgRateLimits>> {
        let row: Option<(i64, i64)> =
            on_read!(self, |pool| sqlx::query_as("SELECT requests_per_minute, tokens_per_minute FROM org_rate_limits WHERE org_id = $1")
                .bind(org)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(requests_per_minute, tokens_per_minute)| OrgRateLimits { requests_per_minute, tokens_per_minute }))
    }

    /// Back to the platform's defaults.
    pub async fn delete_rate_limits(&self, org: &str, actor: &str) -> Result<()> {
        let event = crate::model::NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "rate_limits.delete".into(),
            target: format!("org/{org}/rate-limits"),
            details: serde_json::json!({}),
        };
        on_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let deleted = sqlx::query("DELETE FROM org_rate_limits WHERE org_id = $1").bind(org).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "rate limits" });
            }
            crate::audit::append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }
}
