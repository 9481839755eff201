//! Budget slices leased to a process. A process that shares its budgets with others (several
//! `wsd serve` on one PostgreSQL) would otherwise pay a serialized database round trip per
//! request; with a lease it reserves a slice of what remains in one admission, admits
//! requests in memory while they fit in the slice, and asks again when they no longer do.
//!
//! A lease is a reservation row like a request's, so every budget's spent + reserved stays
//! within its limit in the database whatever the processes do in memory. Each request's
//! ledger row draws what it used from the lease (spent grows by as much as reserved shrinks);
//! when the process asks again it first gives back what the lease holds beyond its requests
//! in flight, and a lease left with nothing in flight is released whole. A lease expires like
//! any reservation unless its process extends it, so a process that dies frees its slices.
//!
//! A slice is at most one [`LEASE_SHARE`]th of the least headroom of the budgets of its unit,
//! and exactly the request that asks for it when that share would not hold two: near a limit
//! slices are single requests and admission is exact; far from it, most admissions never
//! reach the database.

use crate::budgets::{Admission, BudgetPeriod, BudgetStanding, BudgetUnit, Estimate, budget_refusal};
use crate::calendar::DAY_MS;
use crate::db::{Dialect, Store};
use crate::error::{Result, StoreError};
use crate::reservations::{delete_reservations, draw_from_reservations, insert_reservation, subtract_released};

/// A lease takes at most this fraction of what remains of a budget, so that others (another
/// workspace of the org, another process) find room too.
pub const LEASE_SHARE: i64 = 8;

/// An amount in both units a budget can count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub tokens: i64,
    /// Micro-dollars.
    pub cost_micros: i64,
}

impl Amounts {
    /// The amount in `unit`.
    pub fn of(&self, unit: BudgetUnit) -> i64 {
        match unit {
            BudgetUnit::Tokens => self.tokens,
            BudgetUnit::Usd => self.cost_micros,
        }
    }
}

/// What a stored usage row releases of the budgets' reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The request's own reservation, deleted whole.
    Reservation(String),
    /// What the request used, drawn from the lease it was admitted under (no more than the
    /// lease still holds, as its process counts); `last`: the lease was replaced and this was
    /// its last request in flight, so the lease is then released whole.
    Lease { id: String, drawn: Amounts, last: bool },
}

/// A process asks for a slice of the budgets that apply to a workspace.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub org: &'a str,
    pub workspace: &'a str,
    /// The new lease's id.
    pub lease: &'a str,
    /// A lease of the same workspace this process holds, and what it gives back of it first
    /// (what it holds beyond its requests in flight).
    pub returned: Option<(&'a str, Amounts)>,
    /// The request that asks: the slice is at least this, or the request is refused.
    pub need: Estimate,
    /// The most the process asks for.
    pub want: Amounts,
    pub now: i64,
    pub expires_at: i64,
}

/// The answer to a [`LeaseRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// No budget applies to the workspace: nothing was leased (nor given back).
    Unbudgeted,
    /// The new lease holds `granted`; `standings` are the budgets that apply, before it.
    Granted { granted: Amounts, standings: Vec<BudgetStanding> },
    /// The request does not fit (nothing was leased; what was given back stays given back).
    Refused(Admission),
}

/// The slice a lease asking `want` for a request of `need` is granted under `standings` (the
/// budgets that apply, after what was given back); `None` when the request does not fit
/// (`budget_refusal` says why). Per unit that a budget counts, one [`LEASE_SHARE`]th of the
/// least headroom among that unit's budgets, at most `want`, when that is at least two
/// requests' `need`; else exactly `need`, so that near a limit no slice holds more than its
/// request and every process finds what is left. Nothing in a unit no budget counts.
pub fn lease_grant(standings: &[BudgetStanding], need: Estimate, want: Amounts) -> Option<Amounts> {
    if budget_refusal(standings, need).is_some() {
        return None;
    }
    let slice = |unit: BudgetUnit, need: i64| {
        let headroom = standings
            .iter()
            .filter(|s| s.budget.unit == unit)
            .map(|s| i128::from(s.budget.limit) - i128::from(s.spent) - i128::from(s.reserved))
            .min();
        match headroom {
            None => 0,
            Some(headroom) => {
                let share = (headroom / i128::from(LEASE_SHARE)).min(i128::from(want.of(unit)));
                // Within [2 × need, want], both i64, or exactly the need: the cast is exact.
                if share >= 2 * i128::from(need) { share as i64 } else { need }
            }
        }
    };
    Some(Amounts { tokens: slice(BudgetUnit::Tokens, need.tokens), cost_micros: slice(BudgetUnit::Usd, need.cost_micros.unwrap_or(0)) })
}

/// A row of `wsd_lease`: a budget that applies, its spent and reserved before the lease, and
/// the slice granted (`NULL` when the request does not fit).
type LeaseRow = (String, String, Option<String>, String, String, i64, i64, i64, i64, Option<i64>, Option<i64>);

impl Store {
    /// Leases a slice of the budgets that apply to a workspace (see the module's doc). On
    /// PostgreSQL one call of the `wsd_lease` function, which locks the budgets, gives back,
    /// reads the standings after the locks are granted and leases; on SQLite one write
    /// transaction.
    pub async fn lease(&self, request: &LeaseRequest<'_>) -> Result<Leased> {
        match &self.db {
            crate::db::Db::Postgres(pool) => lease_on_postgres(pool, request).await,
            crate::db::Db::Sqlite { write, .. } => lease_on_sqlite(write, request).await,
        }
    }

    /// Releases the reservations `ids` (leases, most often) whole: what each still holds
    /// leaves the running totals. An id already released (or swept) releases nothing.
    pub async fn release_reservations(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        crate::db::on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let released = delete_reservations!(tx, ids.iter().map(String::as_str));
            subtract_released!(tx, &released);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Extends the reservations `ids` until `expires_at`; answers the ids that were still
    /// held (one swept away after its expiry is gone: its holder must stop counting on it).
    pub async fn extend_reservations(&self, ids: &[String], expires_at: i64) -> Result<Vec<String>> {
        let mut held = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::reservations::IDS_PER_STATEMENT) {
            crate::db::on_write!(self, |pool| {
                let mut update = sqlx::QueryBuilder::new("UPDATE budget_reservations SET expires_at = ");
                update.push_bind(expires_at).push(" WHERE id IN (");
                let mut list = update.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                update.push(") RETURNING id");
                held.extend(update.build_query_scalar::<String>().fetch_all(pool).await?);
            });
        }
        Ok(held)
    }
}

/// The standings `wsd_lease` answered, and its grant checked against [`lease_grant`] on
/// them: two judges of one set of numbers that disagree refuse rather than guess.
fn leased_from_rows(rows: Vec<LeaseRow>, request: &LeaseRequest<'_>) -> Result<Leased> {
    let Some(granted) = rows.first().map(|row| (row.9, row.10)) else { return Ok(Leased::Unbudgeted) };
    let mut standings = Vec::with_capacity(rows.len());
    for (id, org_id, workspace_id, unit, period, limit, updated_at, spent, reserved, _, _) in rows {
        let budget = crate::budgets::from_row((id, org_id, workspace_id, unit, period, limit, updated_at))?;
        let mut standing = BudgetStanding { remaining: 0, resets_at: budget.period.end(request.now), spent, reserved, budget };
        standing.recount();
        standings.push(standing);
    }
    match (granted, lease_grant(&standings, request.need, request.want), budget_refusal(&standings, request.need)) {
        ((Some(tokens), Some(cost_micros)), Some(expected), None) if expected == (Amounts { tokens, cost_micros }) => {
            Ok(Leased::Granted { granted: expected, standings })
        }
        ((None, None), None, Some(refusal)) => Ok(Leased::Refused(refusal)),
        (granted, judged, _) => Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "budget lease of org {}: the database granted {granted:?}, its standings say {judged:?}",
            request.org
        )))),
    }
}

async fn lease_on_postgres(pool: &sqlx::PgPool, request: &LeaseRequest<'_>) -> Result<Leased> {
    let first_day = |period: BudgetPeriod| period.start(request.now).div_euclid(DAY_MS);
    let (returned_id, returned) = request.returned.unzip();
    let returned = returned.unwrap_or_default();
    let rows: Vec<LeaseRow> =
        sqlx::query_as("SELECT * FROM wsd_lease($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
            .bind(request.org)
            .bind(request.workspace)
            .bind(request.lease)
            .bind(returned_id)
            .bind(returned.tokens)
            .bind(returned.cost_micros)
            .bind(request.need.tokens)
            .bind(request.need.cost_micros)
            .bind(request.want.tokens)
            .bind(request.want.cost_micros)
            .bind(LEASE_SHARE)
            .bind(first_day(BudgetPeriod::Day))
            .bind(first_day(BudgetPeriod::Week))
            .bind(first_day(BudgetPeriod::Month))
            .bind(request.now)
            .bind(request.expires_at)
            .fetch_all(pool)
            .await?;
    leased_from_rows(rows, request)
}

async fn lease_on_sqlite(pool: &sqlx::SqlitePool, request: &LeaseRequest<'_>) -> Result<Leased> {
    let mut tx = pool.begin_write().await?;
    let rows: Vec<crate::budgets::BudgetRow> =
        sqlx::query_as(crate::budgets::BUDGETS_APPLYING).bind(request.org).bind(request.workspace).fetch_all(&mut *tx).await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(Leased::Unbudgeted);
    }
    let budgets = rows.into_iter().map(crate::budgets::from_row).collect::<Result<Vec<_>>>()?;
    let given_back = draw_from_reservations!(tx, request.returned.into_iter());
    subtract_released!(tx, &given_back);
    let standings = crate::budgets::standings_of!(tx, budgets, request.org, Some(request.workspace), request.now);
    if let Some(refusal) = budget_refusal(&standings, request.need) {
        tx.commit().await?;
        return Ok(Leased::Refused(refusal));
    }
    // A request that fits every budget is granted at least its need.
    let granted = lease_grant(&standings, request.need, request.want)
        .ok_or_else(|| StoreError::Database(sqlx::Error::Protocol("a fitting request was granted no lease".into())))?;
    insert_reservation!(tx, request.lease, request.org, request.workspace, granted, request.expires_at);
    tx.commit().await?;
    Ok(Leased::Granted { granted, standings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budgets::{BudgetLimit, BudgetPeriod};

    fn standing(unit: BudgetUnit, limit: i64, spent: i64, reserved: i64) -> BudgetStanding {
        let budget = BudgetLimit {
            id: format!("bud_{}_{limit}", unit.as_str()),
            org_id: "org".into(),
            workspace_id: None,
            unit,
            period: BudgetPeriod::Day,
            limit,
            updated_at: 0,
        };
        let mut standing = BudgetStanding { budget, spent, reserved, remaining: 0, resets_at: 0 };
        standing.recount();
        standing
    }

    const NEED: Estimate = Estimate { tokens: 20, cost_micros: Some(30) };
    const WANT: Amounts = Amounts { tokens: 2_000, cost_micros: 3_000 };

    #[test]
    fn a_slice_is_a_share_of_the_least_headroom_between_the_need_and_the_want() {
        // Far from the limit: what is wanted.
        let far = [standing(BudgetUnit::Tokens, 1_000_000, 0, 0)];
        assert_eq!(lease_grant(&far, NEED, WANT), Some(Amounts { tokens: 2_000, cost_micros: 0 }));
        // An eighth of the least headroom of the unit's budgets: 800 − 100 − 20 = 680 → 85.
        let nearer = [standing(BudgetUnit::Tokens, 1_000_000, 0, 0), standing(BudgetUnit::Tokens, 800, 100, 20)];
        assert_eq!(lease_grant(&nearer, NEED, WANT), Some(Amounts { tokens: 85, cost_micros: 0 }));
        // Near it, never less than the request: exactly its need.
        let near = [standing(BudgetUnit::Tokens, 100, 50, 30)];
        assert_eq!(lease_grant(&near, NEED, WANT), Some(Amounts { tokens: 20, cost_micros: 0 }));
        // A share that would not hold two requests is exactly one: 319 / 8 = 39 < 40.
        let two_short = [standing(BudgetUnit::Tokens, 319, 0, 0)];
        assert_eq!(lease_grant(&two_short, NEED, WANT), Some(Amounts { tokens: 20, cost_micros: 0 }));
        let two = [standing(BudgetUnit::Tokens, 320, 0, 0)];
        assert_eq!(lease_grant(&two, NEED, WANT), Some(Amounts { tokens: 40, cost_micros: 0 }));
        // Both units, each on its own budgets.
        let both = [standing(BudgetUnit::Tokens, 100, 0, 0), standing(BudgetUnit::Usd, 8_000, 0, 0)];
        assert_eq!(lease_grant(&both, NEED, WANT), Some(Amounts { tokens: 20, cost_micros: 1_000 }));
        // Headroom past the limit (a request used more than its estimate) never grants.
        let over = [standing(BudgetUnit::Tokens, 100, 150, 0)];
        assert_eq!(lease_grant(&over, NEED, WANT), None);
        assert!(matches!(budget_refusal(&over, NEED), Some(Admission::Exceeded { .. })));
    }

    #[test]
    fn a_request_that_does_not_fit_is_refused_as_admission_refuses_it() {
        let one_short = [standing(BudgetUnit::Tokens, 100, 50, 31)];
        assert_eq!(lease_grant(&one_short, NEED, WANT), None);
        let exactly = [standing(BudgetUnit::Tokens, 100, 50, 30)];
        assert!(lease_grant(&exactly, NEED, WANT).is_some());
        let unpriced = Estimate { tokens: 20, cost_micros: None };
        let usd = [standing(BudgetUnit::Usd, 1_000_000, 0, 0)];
        assert_eq!(lease_grant(&usd, unpriced, WANT), None);
        // Without a USD budget, an unpriced request leases tokens only.
        let tokens = [standing(BudgetUnit::Tokens, 1_000_000, 0, 0)];
        assert_eq!(lease_grant(&tokens, unpriced, WANT), Some(Amounts { tokens: 2_000, cost_micros: 0 }));
        // Extreme numbers neither overflow nor grant beyond the want.
        let huge = [standing(BudgetUnit::Tokens, i64::MAX, i64::MIN, 0)];
        assert_eq!(lease_grant(&huge, NEED, WANT), Some(Amounts { tokens: 2_000, cost_micros: 0 }));
    }
}
