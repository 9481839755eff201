//! The usage ledger: one row per metered LLM request.

use crate::db::{Store, on_write};
use crate::error::Result;
use crate::model::UsageRecord;

impl Store {
    pub async fn append_usage(&self, record: &UsageRecord) -> Result<()> {
        on_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO usage_ledger (at, org_id, workspace_id, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, latency_ms, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(record.at)
            .bind(&record.org_id)
            .bind(&record.workspace_id)
            .bind(&record.provider)
            .bind(&record.model)
            .bind(record.input_tokens)
            .bind(record.output_tokens)
            .bind(record.cache_read_tokens)
            .bind(record.cache_write_tokens)
            .bind(record.status)
            .bind(record.latency_ms)
            .bind(&record.request_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
