//! Usage reports over a time range: whole UTC days read from the daily rollups, the
//! partial days at the range's edges from the ledger.

use std::collections::BTreeMap;

use super::{UsageSummary, UsageTotals};
use crate::calendar::{DAY_MS, civil_from_days};
use crate::db::Store;
use crate::error::Result;

/// The summing columns of a usage report read from a daily rollup (`$2`–`$3`: its first
/// and past-the-last day); a cost is `NULL` when no request of the group had a known one.
macro_rules! rollup_sums {
    () => {
        "CAST(SUM(requests) AS BIGINT) AS requests,
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
         CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
         CASE WHEN SUM(requests) > SUM(unpriced_requests) THEN CAST(SUM(cost_micros) AS BIGINT) END AS cost_micros,
         CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests"
    };
}

/// The same sums read from the ledger's rows in `[$2, $3)` and `[$4, $5)` (unix
/// milliseconds).
macro_rules! ledger_sums {
    () => {
        "COUNT(*) AS requests,
         CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
         CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens,
         CAST(SUM(cost_micros) AS BIGINT) AS cost_micros, COUNT(*) - COUNT(cost_micros) AS unpriced_requests"
    };
}

/// Rows of the same grouping from the rollup and from the ledger's edges, merged by key in
/// key order.
fn merged<K: Ord, R>(rows: impl IntoIterator<Item = R>, key: impl Fn(&R) -> K, totals: impl Fn(&mut R) -> &mut UsageTotals) -> Vec<R> {
    let mut by_key = BTreeMap::<K, R>::new();
    for mut row in rows {
        match by_key.entry(key(&row)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(row);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => totals(slot.get_mut()).absorb(totals(&mut row)),
        }
    }
    by_key.into_values().collect()
}

/// `[from, to)` (unix milliseconds) as the whole UTC days it covers, `[first, last)`, and
/// the partial days before and after them; when it covers no whole day, all of it is the
/// head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DaySplit {
    days: (i64, i64),
    head: (i64, i64),
    tail: (i64, i64),
}

impl DaySplit {
    fn of(from: i64, to: i64) -> DaySplit {
        let first = from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0);
        let last = to.div_euclid(DAY_MS);
        if first < last {
            DaySplit { days: (first, last), head: (from, first * DAY_MS), tail: (last * DAY_MS, to) }
        } else {
            DaySplit { days: (0, 0), head: (from, to), tail: (0, 0) }
        }
    }
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

/// The rows of `$sql` (a report's query on a rollup) over days `[$days.0, $days.1)` of
/// org `$org`.
macro_rules! rollup_rows {
    ($store:expr, $row:ty, $sql:expr, $org:expr, $days:expr) => {{
        let (first, last): (i64, i64) = $days;
        crate::db::on_read!($store, |pool| sqlx::query_as::<_, $row>($sql).bind($org).bind(first).bind(last).fetch_all(pool).await?)
    }};
}

/// The rows of `$sql` (a report's query on the ledger) over the partial days of `$split`.
macro_rules! ledger_rows {
    ($store:expr, $row:ty, $sql:expr, $org:expr, $split:expr) => {{
        let split: DaySplit = $split;
        crate::db::on_read!($store, |pool| {
            sqlx::query_as::<_, $row>($sql)
                .bind($org)
                .bind(split.head.0)
                .bind(split.head.1)
                .bind(split.tail.0)
                .bind(split.tail.1)
                .fetch_all(pool)
                .await?
        })
    }};
}

// Each ledger write lands in the rollups and the ledger in one transaction, and a report
// reads each day from one of them only, so no request is counted twice.

impl Store {
    /// An org's usage in `[from, to)` (unix milliseconds), by UTC day.
    pub async fn usage_by_day(&self, org: &str, from: i64, to: i64) -> Result<Vec<DailyUsage>> {
        const ROLLUP: &str =
            concat!("SELECT day, ", rollup_sums!(), " FROM usage_daily WHERE org_id = $1 AND day >= $2 AND day < $3 GROUP BY day");
        // 86400000: `DAY_MS`, the ledger's `at` being unix milliseconds.
        const LEDGER: &str = concat!(
            "SELECT at / 86400000 AS day, ",
            ledger_sums!(),
            " FROM usage_ledger WHERE org_id = $1 AND ((at >= $2 AND at < $3) OR (at >= $4 AND at < $5)) GROUP BY at / 86400000"
        );
        let split = DaySplit::of(from, to);
        let mut rows = rollup_rows!(self, DailyUsage, ROLLUP, org, split.days);
        rows.extend(ledger_rows!(self, DailyUsage, LEDGER, org, split));
        let mut rows = merged(rows, |r| r.day, |r| &mut r.totals);
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
        // Grouped in the rollup's key order, so that the database sums while it reads.
        const ROLLUP: &str = concat!(
            "SELECT workspace_id, provider, model, routing, ",
            rollup_sums!(),
            " FROM usage_daily_model WHERE org_id = $1 AND day >= $2 AND day < $3 GROUP BY workspace_id, provider, model, routing"
        );
        const LEDGER: &str = concat!(
            "SELECT workspace_id, provider, model, routing, ",
            ledger_sums!(),
            " FROM usage_ledger WHERE org_id = $1 AND ((at >= $2 AND at < $3) OR (at >= $4 AND at < $5))
             GROUP BY workspace_id, provider, model, routing"
        );
        // Read before the days' rows: a request stored between the two reads then makes the
        // entry newer than its count says, never older, and the next read recomputes it.
        const REQUESTS: &str = "SELECT CAST(SUM(requests) AS BIGINT) FROM usage_daily WHERE org_id = $1 AND day >= $2 AND day < $3";
        let split = DaySplit::of(from, to);
        let mut rows = Vec::new();
        if split.days.0 < split.days.1 {
            let requests: Option<i64> = crate::db::on_read!(self, |pool| {
                sqlx::query_scalar(REQUESTS).bind(org).bind(split.days.0).bind(split.days.1).fetch_one(pool).await?
            });
            let requests = requests.unwrap_or(0);
            let days = match self.summaries.get(org, split.days, requests) {
                Some(days) => days,
                None => {
                    let days = std::sync::Arc::new(rollup_rows!(self, UsageSummary, ROLLUP, org, split.days));
                    self.summaries.put(org, split.days, requests, days.clone());
                    days
                }
            };
            rows.extend(days.iter().cloned());
        }
        rows.extend(ledger_rows!(self, UsageSummary, LEDGER, org, split));
        Ok(merged(rows, |r| (r.workspace_id.clone(), r.provider.clone(), r.model.clone(), r.routing.clone()), |r| &mut r.totals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_splits_into_whole_days_and_its_partial_edges() {
        let d = DAY_MS;
        let split = |from, to| {
            let s = DaySplit::of(from, to);
            (s.days, s.head, s.tail)
        };
        assert_eq!(split(0, 3 * d), ((0, 3), (0, 0), (3 * d, 3 * d)));
        assert_eq!(split(d - 1, 3 * d + 1), ((1, 3), (d - 1, d), (3 * d, 3 * d + 1)));
        assert_eq!(split(d + 1, 4 * d - 1), ((2, 3), (d + 1, 2 * d), (3 * d, 4 * d - 1)));
        assert_eq!(split(d + 1, 3 * d - 1), ((0, 0), (d + 1, 3 * d - 1), (0, 0)), "no whole day: all of it is read from the ledger");
        assert_eq!(split(d, 2 * d), ((1, 2), (d, d), (2 * d, 2 * d)));
        assert_eq!(split(5, 5), ((0, 0), (5, 5), (0, 0)));
    }
}
