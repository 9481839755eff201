//! The usage ledger: one row per metered LLM request.

use crate::calendar::{DAY_MS, civil_from_days};
use crate::db::{Store, on_write};
use crate::error::Result;
use crate::model::UsageRecord;

/// Input plus output tokens and known cost per (org, workspace, UTC day) of `records`.
fn daily_totals(records: &[UsageRecord]) -> std::collections::BTreeMap<(&str, &str, i64), (i64, i64)> {
    let mut totals = std::collections::BTreeMap::new();
    for r in records {
        let entry: &mut (i64, i64) = totals.entry((r.org_id.as_str(), r.workspace_id.as_str(), r.at.div_euclid(DAY_MS))).or_default();
        entry.0 = entry.0.saturating_add(r.input_tokens.saturating_add(r.output_tokens));
        entry.1 = entry.1.saturating_add(r.cost_micros.unwrap_or(0));
    }
    totals
}

/// Rows per INSERT statement: 14 parameters each stays far below both databases' limits.
const ROWS_PER_STATEMENT: usize = 256;

impl Store {
    /// Appends usage rows in one transaction, a few hundred per statement.
    pub async fn append_usage(&self, records: &[UsageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_ledger (at, org_id, workspace_id, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, latency_ms, request_id, cost_micros, routing) ",
                );
                insert.push_values(chunk, |mut row, r| {
                    row.push_bind(r.at)
                        .push_bind(&r.org_id)
                        .push_bind(&r.workspace_id)
                        .push_bind(&r.provider)
                        .push_bind(&r.model)
                        .push_bind(r.input_tokens)
                        .push_bind(r.output_tokens)
                        .push_bind(r.cache_read_tokens)
                        .push_bind(r.cache_write_tokens)
                        .push_bind(r.status)
                        .push_bind(r.latency_ms)
                        .push_bind(&r.request_id)
                        .push_bind(r.cost_micros)
                        .push_bind(&r.routing);
                });
                insert.build().execute(&mut *tx).await?;
            }
            for ((org, workspace, day), (tokens, cost)) in daily_totals(records) {
                sqlx::query(
                    "INSERT INTO usage_daily (org_id, day, tokens, cost_micros) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (org_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens,
                        cost_micros = usage_daily.cost_micros + excluded.cost_micros",
                )
                .bind(org)
                .bind(day)
                .bind(tokens)
                .bind(cost)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO usage_daily_workspace (org_id, workspace_id, day, tokens, cost_micros) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (org_id, workspace_id, day) DO UPDATE SET tokens = usage_daily_workspace.tokens + excluded.tokens,
                        cost_micros = usage_daily_workspace.cost_micros + excluded.cost_micros",
                )
                .bind(org)
                .bind(workspace)
                .bind(day)
                .bind(tokens)
                .bind(cost)
                .execute(&mut *tx)
                .await?;
            }
            // Reservations that outlived their request (wsd stopped in between) go.
            sqlx::query("DELETE FROM budget_reservations WHERE expires_at <= $1").bind(crate::db::now_ms()).execute(&mut *tx).await?;
            // The requests' real use replaces what they held at admission.
            for chunk in records.iter().filter_map(|r| r.reservation.as_deref()).collect::<Vec<_>>().chunks(ROWS_PER_STATEMENT) {
                let mut delete = sqlx::QueryBuilder::new("DELETE FROM budget_reservations WHERE id IN (");
                let mut ids = delete.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await?;
            }
            tx.commit().await?
        });
        Ok(())
    }
}

/// What a group of metered requests used and cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// The summed cost of the requests whose cost is known, in micro-dollars; `None` when
    /// none is.
    pub cost_micros: Option<i64>,
    /// Requests whose cost is unknown (a price missing from the price book).
    pub unpriced_requests: i64,
}

/// Usage of one workspace and model over a time range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageSummary {
    pub workspace_id: String,
    pub provider: String,
    pub model: String,
    /// `platform`, or `byok`: the org's own key, through wsd's proxy.
    pub routing: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// The summing columns of a usage summary, shared by its groupings.
macro_rules! sums {
    () => {
        "COUNT(*) AS requests,
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
         CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
         CAST(SUM(cost_micros) AS BIGINT) AS cost_micros, COUNT(*) - COUNT(cost_micros) AS unpriced_requests"
    };
}

/// Usage of one UTC day over all of an org's workspaces and models.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`, UTC.
    #[sqlx(skip)]
    pub date: String,
    #[serde(skip)]
    pub day: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub totals: UsageTotals,
}

impl Store {
    /// An org's usage in `[from, to)` (unix milliseconds), by UTC day.
    pub async fn usage_by_day(&self, org: &str, from: i64, to: i64) -> Result<Vec<DailyUsage>> {
        // 86400000: `DAY_MS`, the ledger's `at` being unix milliseconds.
        const SQL: &str = concat!(
            "SELECT at / 86400000 AS day, ",
            sums!(),
            " FROM usage_ledger WHERE org_id = $1 AND at >= $2 AND at < $3 GROUP BY at / 86400000 ORDER BY at / 86400000"
        );
        let mut rows: Vec<DailyUsage> =
            crate::db::on_read!(self, |pool| sqlx::query_as(SQL).bind(org).bind(from).bind(to).fetch_all(pool).await?);
        for row in &mut rows {
            let (y, m, d) = civil_from_days(row.day);
            row.date = format!("{y:04}-{m:02}-{d:02}");
        }
        Ok(rows)
    }
}

impl Store {
    /// An org's usage in `[from, to)` (unix milliseconds), by workspace and model.
    pub async fn usage_summary(&self, org: &str, from: i64, to: i64) -> Result<Vec<UsageSummary>> {
        let rows: Vec<UsageSummary> = crate::db::on_read!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT workspace_id, provider, model, routing, ",
                sums!(),
                " FROM usage_ledger WHERE org_id = $1 AND at >= $2 AND at < $3
                 GROUP BY workspace_id, provider, model, routing ORDER BY workspace_id, provider, model, routing"
            ))
            .bind(org)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

impl Store {
    /// An org's latest metered requests, newest first; one workspace's when given.
    pub async fn usage_requests(&self, org: &str, workspace: Option<&str>, limit: i64) -> Result<Vec<UsageRecord>> {
        let rows: Vec<UsageRecord> = crate::db::on_read!(self, |pool| {
            sqlx::query_as(
                "SELECT at, org_id, workspace_id, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, latency_ms, request_id, cost_micros, routing
                 FROM usage_ledger WHERE org_id = $1 AND ($2 IS NULL OR workspace_id = $2) ORDER BY at DESC, id DESC LIMIT $3",
            )
            .bind(org)
            .bind(workspace)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

impl Store {
    /// Tokens (input + output) an org used from the start of the UTC day that contains
    /// `from` (unix milliseconds) on. Budget periods start at midnight UTC, so for them this
    /// is exact; it reads the daily totals, not the ledger.
    pub async fn tokens_used_from_day_of(&self, org: &str, from: i64) -> Result<i64> {
        let used: Option<i64> = crate::db::on_read!(self, |pool| {
            sqlx::query_scalar("SELECT CAST(SUM(tokens) AS BIGINT) FROM usage_daily WHERE org_id = $1 AND day >= $2")
                .bind(org)
                .bind(from.div_euclid(DAY_MS))
                .fetch_one(pool)
                .await?
        });
        Ok(used.unwrap_or(0))
    }
}
