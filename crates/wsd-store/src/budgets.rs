//! Budgets and where they stand. A budget limits an org or one of its workspaces, in tokens
//! or in micro-dollars, over a UTC day, ISO week or calendar month. A request is admitted
//! under a budget when spent + reserved + its estimate is within the limit
//! ([`budget_refusal`]); what requests may still spend is held by reservations (see
//! `leases.rs` for the slices processes lease, `reservations.rs` for their release).

use serde::{Deserialize, Serialize};

use crate::calendar::{DAY_MS, civil_from_days};
use crate::db::{Dialect, Store, new_id, on_read, on_write};
use crate::error::{Result, StoreError};

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    /// Input plus output tokens.
    Tokens,
    /// Cost in micro-dollars (10⁻⁶ USD), from the price book.
    Usd,
}

impl BudgetUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetUnit::Tokens => "tokens",
            BudgetUnit::Usd => "usd",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "tokens" => Ok(BudgetUnit::Tokens),
            "usd" => Ok(BudgetUnit::Usd),
            other => Err(crate::error::corrupt(format!("stored budget unit `{other}` is unknown"))),
        }
    }
}

/// The window a budget renews over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// The UTC day.
    Day,
    /// The ISO week, Monday 00:00 UTC to the next.
    Week,
    /// The calendar month, UTC.
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Week => "week",
            BudgetPeriod::Month => "month",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "day" => Ok(BudgetPeriod::Day),
            "week" => Ok(BudgetPeriod::Week),
            "month" => Ok(BudgetPeriod::Month),
            other => Err(crate::error::corrupt(format!("stored budget period `{other}` is unknown"))),
        }
    }

    /// The start of the window containing `now` (unix milliseconds).
    pub fn start(self, now: i64) -> i64 {
        let days = now.div_euclid(DAY_MS);
        let first = match self {
            BudgetPeriod::Day => days,
            // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
            BudgetPeriod::Week => days - (days + 3).rem_euclid(7),
            BudgetPeriod::Month => {
                let (_, _, day_of_month) = civil_from_days(days);
                days - (day_of_month - 1)
            }
        };
        first * DAY_MS
    }

    /// The end of the window containing `now`: when the budget renews.
    pub fn end(self, now: i64) -> i64 {
        let start = self.start(now);
        match self {
            BudgetPeriod::Day => start + DAY_MS,
            BudgetPeriod::Week => start + 7 * DAY_MS,
            BudgetPeriod::Month => {
                let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                crate::calendar::days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

/// One budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BudgetLimit {
    pub id: String,
    pub org_id: String,
    /// `None`: the whole org.
    pub workspace_id: Option<String>,
    pub unit: BudgetUnit,
    pub period: BudgetPeriod,
    /// Tokens, or micro-dollars for `usd`.
    pub limit: i64,
    pub updated_at: i64,
}

/// A budget to set: it replaces the one of the same scope, unit and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBudget {
    pub workspace_id: Option<String>,
    pub unit: BudgetUnit,
    pub period: BudgetPeriod,
    pub limit: i64,
}

/// Where a budget stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BudgetStanding {
    #[serde(flatten)]
    pub budget: BudgetLimit,
    /// Recorded use in the current window.
    pub spent: i64,
    /// Held by requests still running.
    pub reserved: i64,
    /// `limit - spent - reserved`, never below 0.
    pub remaining: i64,
    /// When the window renews (unix milliseconds).
    pub resets_at: i64,
}

/// What a request may spend, estimated at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub tokens: i64,
    /// `None`: the model has no price, so no USD budget can admit it.
    pub cost_micros: Option<i64>,
}

impl Estimate {
    /// The estimate in a budget's unit; `None` for USD without a price.
    pub fn amount(&self, unit: BudgetUnit) -> Option<i64> {
        match unit {
            BudgetUnit::Tokens => Some(self.tokens),
            BudgetUnit::Usd => self.cost_micros,
        }
    }
}

impl BudgetStanding {
    /// Holds `amount` more for a request in flight.
    pub fn hold(&mut self, amount: i64) {
        self.reserved = self.reserved.saturating_add(amount);
        self.recount();
    }

    /// `remaining` from the limit, spent and reserved: never below 0.
    pub fn recount(&mut self) {
        self.remaining = self.budget.limit.saturating_sub(self.spent).saturating_sub(self.reserved).max(0);
    }

    /// Whether the budget limits requests of `workspace`.
    pub fn applies_to(&self, workspace: &str) -> bool {
        self.budget.workspace_id.as_deref().is_none_or(|own| own == workspace)
    }
}

/// Why a request of `estimate` does not fit every budget of `standings` (spent, reserved
/// and the estimate within each limit), if it does not: the first budget it would exceed,
/// or a USD budget the estimate has no cost for.
pub fn budget_refusal(standings: &[BudgetStanding], estimate: Estimate) -> Option<Admission> {
    for standing in standings {
        let Some(amount) = estimate.amount(standing.budget.unit) else {
            return Some(Admission::Unpriced { budget: standing.budget.clone() });
        };
        if standing.spent.saturating_add(standing.reserved).saturating_add(amount) > standing.budget.limit {
            return Some(Admission::Exceeded { standing: standing.clone(), estimate: amount });
        }
    }
    None
}

/// The outcome of an admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every budget holds. `reservation` is `None` when none applies (nothing was held);
    /// `standings` are after this request's reservation.
    Admitted { reservation: Option<String>, standings: Vec<BudgetStanding> },
    /// This budget would be exceeded: spent + reserved + `estimate` > limit.
    Exceeded { standing: BudgetStanding, estimate: i64 },
    /// A USD budget applies and the model's cost cannot be estimated.
    Unpriced { budget: BudgetLimit },
}

pub(crate) type BudgetRow = (String, String, Option<String>, String, String, i64, i64);

pub(crate) fn from_row((id, org_id, workspace_id, unit, period, limit, updated_at): BudgetRow) -> Result<BudgetLimit> {
    Ok(BudgetLimit { id, org_id, workspace_id, unit: BudgetUnit::parse(&unit)?, period: BudgetPeriod::parse(&period)?, limit, updated_at })
}

/// Where each budget of org `$1` stands, in one statement: its recorded use since its
/// window's first day (`$2`, `$3`, `$4`: today's, this week's and this month's), and what
/// live reservations hold of its scope and unit: the running totals of `budget_reserved`,
/// less the reservations past their expiry (`$5`: now) not yet swept away. `$6`: only the budgets that
/// apply to that workspace (the org's and its own); NULL: every budget of the org.
pub(crate) const STANDINGS_SQL: &str = "SELECT b.id,
    CAST(CASE WHEN b.workspace_id IS NULL THEN
        (SELECT SUM(CASE WHEN b.unit = 'tokens' THEN d.tokens ELSE d.cost_micros END) FROM usage_daily d
         WHERE d.org_id = b.org_id AND d.day >= CASE b.period WHEN 'day' THEN $2 WHEN 'week' THEN $3 ELSE $4 END)
    ELSE
        (SELECT SUM(CASE WHEN b.unit = 'tokens' THEN d.tokens ELSE d.cost_micros END) FROM usage_daily_workspace d
         WHERE d.org_id = b.org_id AND d.workspace_id = b.workspace_id
           AND d.day >= CASE b.period WHEN 'day' THEN $2 WHEN 'week' THEN $3 ELSE $4 END)
    END AS BIGINT) AS spent,
    CAST(COALESCE((SELECT SUM(CASE WHEN b.unit = 'tokens' THEN t.tokens ELSE t.cost_micros END) FROM budget_reserved t
          WHERE t.org_id = b.org_id AND (b.workspace_id IS NULL OR t.workspace_id = b.workspace_id)), 0)
       - COALESCE((SELECT SUM(CASE WHEN b.unit = 'tokens' THEN r.tokens ELSE r.cost_micros END) FROM budget_reservations r
          WHERE r.org_id = b.org_id AND (b.workspace_id IS NULL OR r.workspace_id = b.workspace_id) AND r.expires_at <= $5), 0)
         AS BIGINT) AS reserved
    FROM budget_limits b
    WHERE b.org_id = $1 AND ($6 IS NULL OR b.workspace_id IS NULL OR b.workspace_id = $6)
    ORDER BY b.id";

/// The standing of each of `budgets` (of org `$org`, those that apply to `$workspace` or
/// every one), read in one statement inside `$conn` (a transaction or a connection).
macro_rules! standings_of {
    ($conn:expr, $budgets:expr, $org:expr, $workspace:expr, $now:expr) => {{
        let first_day = |period: $crate::budgets::BudgetPeriod| period.start($now).div_euclid($crate::calendar::DAY_MS);
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as($crate::budgets::STANDINGS_SQL)
            .bind($org)
            .bind(first_day($crate::budgets::BudgetPeriod::Day))
            .bind(first_day($crate::budgets::BudgetPeriod::Week))
            .bind(first_day($crate::budgets::BudgetPeriod::Month))
            .bind($now)
            .bind($workspace)
            .fetch_all(&mut *$conn)
            .await?;
        let mut standings = Vec::with_capacity($budgets.len());
        for budget in $budgets {
            // A budget set since the list was read has no row here: it is read next time.
            let Some((_, spent, reserved)) = rows.iter().find(|(id, _, _)| *id == budget.id) else { continue };
            let (spent, reserved) = (spent.unwrap_or(0), reserved.unwrap_or(0));
            let mut standing =
                $crate::budgets::BudgetStanding { remaining: 0, resets_at: budget.period.end($now), spent, reserved, budget };
            standing.recount();
            standings.push(standing);
        }
        standings
    }};
}

pub(crate) use standings_of;

/// The budgets of org `$1` that apply to its workspace `$2`: the org's and the workspace's.
pub(crate) const BUDGETS_APPLYING: &str = "SELECT id, org_id, workspace_id, unit, period, limit_value, updated_at FROM budget_limits
     WHERE org_id = $1 AND (workspace_id IS NULL OR workspace_id = $2) ORDER BY id";

impl Store {
    /// Sets a budget: replaces the one of the same scope, unit and period, or adds it.
    pub async fn put_budget(&self, org: &str, new: &NewBudget, actor: &str) -> Result<BudgetLimit> {
        if let Some(workspace) = &new.workspace_id {
            self.get_workspace(org, workspace).await?;
        } else {
            self.get_org(org).await?;
        }
        let now = crate::db::now_ms();
        let event = crate::model::NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "budget.put".into(),
            target: format!("org/{org}/budget"),
            details: serde_json::json!({
                "workspace": new.workspace_id, "unit": new.unit, "period": new.period, "limit": new.limit,
            }),
        };
        let budget = on_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM budget_limits WHERE org_id = $1 AND workspace_id IS NOT DISTINCT FROM $2 AND unit = $3 AND period = $4",
            )
            .bind(org)
            .bind(new.workspace_id.as_deref())
            .bind(new.unit.as_str())
            .bind(new.period.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let id = match existing {
                Some(id) => {
                    sqlx::query("UPDATE budget_limits SET limit_value = $1, updated_at = $2 WHERE id = $3")
                        .bind(new.limit)
                        .bind(now)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    id
                }
                None => {
                    let id = format!("bud_{}", new_id());
                    sqlx::query(
                        "INSERT INTO budget_limits (id, org_id, workspace_id, unit, period, limit_value, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&id)
                    .bind(org)
                    .bind(new.workspace_id.as_deref())
                    .bind(new.unit.as_str())
                    .bind(new.period.as_str())
                    .bind(new.limit)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            };
            crate::audit::append_audit!(tx, &event, pool);
            tx.commit().await?;
            BudgetLimit {
                id,
                org_id: org.to_owned(),
                workspace_id: new.workspace_id.clone(),
                unit: new.unit,
                period: new.period,
                limit: new.limit,
                updated_at: now,
            }
        });
        Ok(budget)
    }

    /// An org's budgets, its own first, then its workspaces'.
    pub async fn list_budgets(&self, org: &str) -> Result<Vec<BudgetLimit>> {
        let sql = "SELECT id, org_id, workspace_id, unit, period, limit_value, updated_at FROM budget_limits WHERE org_id = $1
                   ORDER BY workspace_id IS NOT NULL, workspace_id, unit, period";
        let rows: Vec<BudgetRow> = on_read!(self, |pool| sqlx::query_as(sql).bind(org).fetch_all(pool).await?);
        rows.into_iter().map(from_row).collect()
    }

    /// Removes a budget of the org.
    pub async fn delete_budget(&self, org: &str, id: &str, actor: &str) -> Result<()> {
        let event = crate::model::NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "budget.delete".into(),
            target: format!("org/{org}/budget/{id}"),
            details: serde_json::json!({}),
        };
        on_write!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let deleted =
                sqlx::query("DELETE FROM budget_limits WHERE org_id = $1 AND id = $2").bind(org).bind(id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "budget" });
            }
            crate::audit::append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Where each of the org's budgets stands at `now`.
    pub async fn budget_standings(&self, org: &str, now: i64) -> Result<Vec<BudgetStanding>> {
        let budgets = self.list_budgets(org).await?;
        let standings = on_read!(self, |pool| {
            let mut conn = pool.acquire().await?;
            standings_of!(conn, budgets, org, None::<&str>, now)
        });
        Ok(standings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_midnight_on_mondays_and_on_the_first_utc() {
        // 2026-11-28T15:30:00Z, a Saturday.
        let now = 1_795_879_800_000;
        assert_eq!(BudgetPeriod::Day.start(now), 1_795_824_000_000); // 2026-11-28T00:00Z
        assert_eq!(BudgetPeriod::Day.end(now), 1_795_910_400_000); // 2026-11-29T00:00Z
        assert_eq!(BudgetPeriod::Week.start(now), 1_795_392_000_000); // Monday 2026-11-23
        assert_eq!(BudgetPeriod::Week.end(now), 1_795_996_800_000); // Monday 2026-11-30
        assert_eq!(BudgetPeriod::Month.start(now), 1_793_491_200_000); // 2026-11-01T00:00Z
        assert_eq!(BudgetPeriod::Month.end(now), 1_796_083_200_000); // 2026-12-01T00:00Z
        // December rolls into January.
        let december = 1_796_083_200_000 + 5 * DAY_MS;
        assert_eq!(BudgetPeriod::Month.end(december), 1_798_761_600_000); // 2027-01-01
        // A Monday starts its own week; the epoch's week began on Monday 1969-12-29.
        assert_eq!(BudgetPeriod::Week.start(1_795_392_000_000), 1_795_392_000_000);
        assert_eq!(BudgetPeriod::Week.start(0), -3 * DAY_MS);
    }

    #[test]
    fn units_and_periods_read_back_what_they_write() {
        for unit in [BudgetUnit::Tokens, BudgetUnit::Usd] {
            assert_eq!(BudgetUnit::parse(unit.as_str()).unwrap(), unit);
        }
        for period in [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month] {
            assert_eq!(BudgetPeriod::parse(period.as_str()).unwrap(), period);
        }
        assert!(BudgetUnit::parse("eur").is_err() && BudgetPeriod::parse("year").is_err());
    }
}
