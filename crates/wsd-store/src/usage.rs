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

/// Usage of one workspace and model over a time range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct UsageSummary {
    pub workspace_id: String,
    pub provider: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
}

impl Store {
    /// An org's usage in `[from, to)` (unix milliseconds), by workspace and model.
    pub async fn usage_summary(&self, org: &str, from: i64, to: i64) -> Result<Vec<UsageSummary>> {
        let rows: Vec<UsageSummary> = crate::db::on_read!(self, |pool| {
            sqlx::query_as(
                "SELECT workspace_id, provider, model, COUNT(*) AS requests,
                        CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
                        CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens
                 FROM usage_ledger WHERE org_id = $1 AND at >= $2 AND at < $3
                 GROUP BY workspace_id, provider, model ORDER BY workspace_id, provider, model",
            )
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
