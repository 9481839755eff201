//! The usage ledger: one row per metered LLM request.

use crate::calendar::{DAY_MS, civil_from_days};
use crate::db::{Store, on_write};
use crate::error::Result;
use crate::model::UsageRecord;

/// Input plus output tokens per (org, UTC day) of `records`.
fn daily_totals(records: &[UsageRecord]) -> std::collections::BTreeMap<(&str, i64), i64> {
    let mut totals = std::collections::BTreeMap::new();
    for r in records {
        *totals.entry((r.org_id.as_str(), r.at.div_euclid(DAY_MS))).or_insert(0) += r.input_tokens + r.output_tokens;
    }
    totals
}

/// Rows per INSERT statement: 13 parameters each stays far below both databases' limits.
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
                    "INSERT INTO usage_ledger (at, org_id, workspace_id, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, latency_ms, request_id, cost_micros) ",
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
                        .push_bind(r.cost_micros);
                });
                insert.build().execute(&mut *tx).await?;
            }
            for ((org, day), tokens) in daily_totals(records) {
                sqlx::query(
                    "INSERT INTO usage_daily (org_id, day, tokens) VALUES ($1, $2, $3)
                     ON CONFLICT (org_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens",
                )
                .bind(org)
                .bind(day)
                .bind(tokens)
                .execute(&mut *tx)
                .await?;
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
                "SELECT workspace_id, provider, model, ",
                sums!(),
                " FROM usage_ledger WHERE org_id = $1 AND at >= $2 AND at < $3
                 GROUP BY workspace_id, provider, model ORDER BY workspace_id, provider, model"
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
                "SELECT at, org_id, workspace_id, provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, status, latency_ms, request_id, cost_micros
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

/// How much an org may use per period, in tokens (input + output).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Budget {
    pub period: BudgetPeriod,
    pub tokens: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// The UTC day.
    Day,
    /// The calendar month, UTC.
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        }
    }

    /// The start of the period containing `now` (unix milliseconds, UTC).
    pub fn start(self, now: i64) -> i64 {
        let day_start = now.div_euclid(DAY_MS) * DAY_MS;
        match self {
            BudgetPeriod::Day => day_start,
            BudgetPeriod::Month => {
                // Civil date of `now` (days since 1970-01-01), back to the 1st of its month.
                let days = now.div_euclid(DAY_MS);
                let (_, _, day_of_month) = civil_from_days(days);
                (days - (day_of_month - 1)) * DAY_MS
            }
        }
    }
}

impl Store {
    pub async fn put_budget(&self, org: &str, budget: &Budget, actor: &str) -> Result<()> {
        let event = crate::model::NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "budget.put".into(),
            target: format!("org/{org}/budget"),
            details: serde_json::json!({"period": budget.period, "tokens": budget.tokens}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO budgets (org_id, period, tokens, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org_id) DO UPDATE SET period = excluded.period, tokens = excluded.tokens, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(budget.period.as_str())
            .bind(budget.tokens)
            .bind(crate::db::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => crate::StoreError::NotFound { what: "org" },
                _ => crate::StoreError::Database(e),
            })?;
            crate::audit::append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_budget(&self, org: &str) -> Result<Option<Budget>> {
        let row: Option<(String, i64)> =
            crate::db::on_read!(self, |pool| sqlx::query_as("SELECT period, tokens FROM budgets WHERE org_id = $1")
                .bind(org)
                .fetch_optional(pool)
                .await?);
        row.map(|(period, tokens)| {
            let period = match period.as_str() {
                "day" => BudgetPeriod::Day,
                "month" => BudgetPeriod::Month,
                other => return Err(crate::error::corrupt(format!("stored budget period `{other}` is unknown"))),
            };
            Ok(Budget { period, tokens })
        })
        .transpose()
    }

    /// An org's budget and the tokens it used in the current period, if it has a budget.
    pub async fn budget_usage(&self, org: &str) -> Result<Option<(Budget, i64)>> {
        let Some(budget) = self.get_budget(org).await? else { return Ok(None) };
        let used = self.tokens_used_from_day_of(org, budget.period.start(crate::db::now_ms())).await?;
        Ok(Some((budget, used)))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_midnight_and_on_the_first_utc() {
        // 2026-11-28T15:30:00Z
        let now = 1_795_879_800_000;
        assert_eq!(BudgetPeriod::Day.start(now), 1_795_824_000_000); // 2026-11-28T00:00Z
        assert_eq!(BudgetPeriod::Month.start(now), 1_793_491_200_000); // 2026-11-01T00:00Z
    }
}
