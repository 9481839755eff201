//! The usage ledger: one row per metered LLM request, and its daily rollups.

mod report;
mod summary_cache;

pub use report::DailyUsage;
pub(crate) use summary_cache::SummaryCache;

use std::collections::BTreeMap;

use crate::calendar::DAY_MS;
use crate::db::{Store, on_write};
use crate::error::Result;
use crate::leases::{Amounts, Release};
use crate::model::UsageRecord;
use crate::reservations::{delete_reservations, draw_from_reservations, subtract_released};

/// The key of the finest rollup: org, workspace, provider, model, routing, UTC day.
type ModelDay<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, i64);

/// `records` summed per rollup key.
fn daily_sums(records: &[UsageRecord]) -> BTreeMap<ModelDay<'_>, UsageTotals> {
    let mut sums = BTreeMap::<ModelDay<'_>, UsageTotals>::new();
    for r in records {
        let key = (
            r.org_id.as_str(),
            r.workspace_id.as_str(),
            r.provider.as_str(),
            r.model.as_str(),
            r.routing.as_str(),
            r.at.div_euclid(DAY_MS),
        );
        sums.entry(key).or_default().absorb(&UsageTotals::of(r));
    }
    sums
}

/// The finest sums folded to a coarser key.
fn fold<'a, K: Ord>(sums: &BTreeMap<ModelDay<'a>, UsageTotals>, key: impl Fn(&ModelDay<'a>) -> K) -> BTreeMap<K, UsageTotals> {
    let mut folded = BTreeMap::<K, UsageTotals>::new();
    for (k, s) in sums {
        folded.entry(key(k)).or_default().absorb(s);
    }
    folded
}

/// What `records` draw from each lease they were admitted under, summed per lease, and
/// whether a row was the lease's last.
fn lease_draws(records: &[UsageRecord]) -> BTreeMap<&str, (Amounts, bool)> {
    let mut draws = BTreeMap::<&str, (Amounts, bool)>::new();
    for record in records {
        if let Some(Release::Lease { id, drawn, last }) = &record.reservation {
            let (sum, ends) = draws.entry(id.as_str()).or_default();
            sum.tokens = sum.tokens.saturating_add(drawn.tokens);
            sum.cost_micros = sum.cost_micros.saturating_add(drawn.cost_micros);
            *ends |= *last;
        }
    }
    draws
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
            let sums = daily_sums(records);
            for ((org, day), s) in fold(&sums, |k| (k.0, k.5)) {
                sqlx::query(
                    "INSERT INTO usage_daily (org_id, day, tokens, cost_micros, requests, input_tokens, output_tokens,
                                              cache_read_tokens, cache_write_tokens, unpriced_requests)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (org_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens,
                        cost_micros = usage_daily.cost_micros + excluded.cost_micros,
                        requests = usage_daily.requests + excluded.requests,
                        input_tokens = usage_daily.input_tokens + excluded.input_tokens,
                        output_tokens = usage_daily.output_tokens + excluded.output_tokens,
                        cache_read_tokens = usage_daily.cache_read_tokens + excluded.cache_read_tokens,
                        cache_write_tokens = usage_daily.cache_write_tokens + excluded.cache_write_tokens,
                        unpriced_requests = usage_daily.unpriced_requests + excluded.unpriced_requests",
                )
                .bind(org)
                .bind(day)
                .bind(s.tokens())
                .bind(s.cost_micros.unwrap_or(0))
                .bind(s.requests)
                .bind(s.input_tokens)
                .bind(s.output_tokens)
                .bind(s.cache_read_tokens)
                .bind(s.cache_write_tokens)
                .bind(s.unpriced_requests)
                .execute(&mut *tx)
                .await?;
            }
            for ((org, workspace, day), s) in fold(&sums, |k| (k.0, k.1, k.5)) {
                sqlx::query(
                    "INSERT INTO usage_daily_workspace (org_id, workspace_id, day, tokens, cost_micros) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (org_id, workspace_id, day) DO UPDATE SET tokens = usage_daily_workspace.tokens + excluded.tokens,
                        cost_micros = usage_daily_workspace.cost_micros + excluded.cost_micros",
                )
                .bind(org)
                .bind(workspace)
                .bind(day)
                .bind(s.tokens())
                .bind(s.cost_micros.unwrap_or(0))
                .execute(&mut *tx)
                .await?;
            }
            for ((org, workspace, provider, model, routing, day), s) in sums {
                sqlx::query(
                    "INSERT INTO usage_daily_model (org_id, workspace_id, provider, model, routing, day, requests, input_tokens,
                                                    output_tokens, cache_read_tokens, cache_write_tokens, cost_micros, unpriced_requests)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (org_id, workspace_id, provider, model, routing, day) DO UPDATE SET
                        requests = usage_daily_model.requests + excluded.requests,
                        input_tokens = usage_daily_model.input_tokens + excluded.input_tokens,
                        output_tokens = usage_daily_model.output_tokens + excluded.output_tokens,
                        cache_read_tokens = usage_daily_model.cache_read_tokens + excluded.cache_read_tokens,
                        cache_write_tokens = usage_daily_model.cache_write_tokens + excluded.cache_write_tokens,
                        cost_micros = usage_daily_model.cost_micros + excluded.cost_micros,
                        unpriced_requests = usage_daily_model.unpriced_requests + excluded.unpriced_requests",
                )
                .bind(org)
                .bind(workspace)
                .bind(provider)
                .bind(model)
                .bind(routing)
                .bind(day)
                .bind(s.requests)
                .bind(s.input_tokens)
                .bind(s.output_tokens)
                .bind(s.cache_read_tokens)
                .bind(s.cache_write_tokens)
                .bind(s.cost_micros.unwrap_or(0))
                .bind(s.unpriced_requests)
                .execute(&mut *tx)
                .await?;
            }
            // Reservations that outlived their request (wsd stopped in between) go, and the
            // requests' real use replaces what they held at admission; what each released
            // leaves the running totals (a reservation already swept is released once).
            let mut released: Vec<crate::reservations::Released> = sqlx::query_as(
                "DELETE FROM budget_reservations WHERE expires_at <= $1 RETURNING org_id, workspace_id, tokens, cost_micros",
            )
            .bind(crate::db::now_ms())
            .fetch_all(&mut *tx)
            .await?;
            let whole = records.iter().filter_map(|r| match &r.reservation {
                Some(Release::Reservation(id)) => Some(id.as_str()),
                _ => None,
            });
            released.extend(delete_reservations!(tx, whole));
            let draws = lease_draws(records);
            released.extend(draw_from_reservations!(tx, draws.iter().map(|(id, (drawn, _))| (*id, *drawn))));
            // A lease whose last request this was is released whole (after what it drew).
            released.extend(delete_reservations!(tx, draws.iter().filter(|(_, (_, last))| *last).map(|(id, _)| *id)));
            subtract_released!(tx, &released);
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

impl UsageTotals {
    /// One ledger row's.
    fn of(r: &UsageRecord) -> UsageTotals {
        UsageTotals {
            requests: 1,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_tokens: r.cache_read_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cost_micros: r.cost_micros,
            unpriced_requests: i64::from(r.cost_micros.is_none()),
        }
    }

    /// Input plus output: what token budgets count.
    fn tokens(&self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Adds `other`'s counts to these; costs add where known, and a cost stays unknown only
    /// when neither side knows one.
    fn absorb(&mut self, other: &UsageTotals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.cost_micros = match (self.cost_micros, other.cost_micros) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        self.unpriced_requests = self.unpriced_requests.saturating_add(other.unpriced_requests);
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
