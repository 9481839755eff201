//! Budget admission: a request of a workspace under a budget reserves what it may spend
//! before it goes upstream; its ledger row releases the reservation with what it really
//! used. The answer tells the client where it stands.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use wsd_core::prices::TokenCounts;
use wsd_store::{Admission, BudgetStanding, BudgetUnit, Estimate};

use super::gate::UsageGrant;
use super::{Budgets, Proxy};
use crate::code;
use crate::error::ApiError;

/// Input tokens are estimated at one per this many bytes of the request body: fewer bytes
/// per token than any vendor's tokenizer averages on text, so the estimate is high.
pub const BYTES_PER_INPUT_TOKEN: u64 = 3;

/// What a request admitted under budgets holds.
#[derive(Debug, Default)]
pub struct Held {
    /// Released by the request's ledger row.
    pub reservation: Option<String>,
    /// After this request's reservation.
    pub standings: Vec<BudgetStanding>,
}

/// The estimate of a request: its body's bytes for input, its maximum (or the configured
/// default) for output, priced by the book.
pub fn estimate(proxy: &Proxy, vendor_model: &str, body_bytes: usize, max_output: Option<u64>, default_output: u64) -> Estimate {
    let input = (body_bytes as u64).div_ceil(BYTES_PER_INPUT_TOKEN);
    let output = max_output.unwrap_or(default_output);
    let tokens = TokenCounts { input, output, cache_read: 0, cache_write: 0 };
    Estimate {
        tokens: i64::try_from(input.saturating_add(output)).unwrap_or(i64::MAX),
        cost_micros: proxy.prices.cost(vendor_model, &tokens).micros(),
    }
}

/// Admits the request under every budget of its org and workspace, or refuses it (402
/// `BUDGET_EXCEEDED`, 402 `BUDGET_PRICE_UNKNOWN`). Without a budget, nothing is held, nothing
/// estimated and the database is not asked.
pub async fn admit(proxy: &Proxy, grant: &UsageGrant, estimate: impl FnOnce() -> Estimate) -> Result<Held, ApiError> {
    if !proxy.gate.budgeted(&proxy.store, &grant.org, &grant.workspace).await? {
        return Ok(Held::default());
    }
    let estimate = estimate();
    let now = wsd_store::now_ms();
    let admission = match &proxy.budgets {
        Budgets::Local(local) => local.admit(&proxy.store, &grant.org, &grant.workspace, estimate, now).await?,
        Budgets::Leased(leased) => leased.admit(&proxy.store, &grant.org, &grant.workspace, estimate, now).await?,
    };
    match admission {
        Admission::Admitted { reservation, standings } => Ok(Held { reservation, standings }),
        Admission::Exceeded { standing, estimate } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            code::BUDGET_EXCEEDED,
            format!(
                "the {} budget of {} would be exceeded: {} spent and {} reserved of {}, and this request may use {}; it renews at {}",
                standing.budget.period.as_str(),
                scope(&standing),
                amount(standing.budget.unit, standing.spent),
                amount(standing.budget.unit, standing.reserved),
                amount(standing.budget.unit, standing.budget.limit),
                amount(standing.budget.unit, estimate),
                wsd_store::calendar::format_utc(standing.resets_at),
            ),
        )),
        Admission::Unpriced { budget } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            code::BUDGET_PRICE_UNKNOWN,
            format!(
                "a USD budget applies ({} per {}) and the price book has no price for this model; the operator can add one ([prices.\"<model>\"])",
                amount(budget.unit, budget.limit),
                budget.period.as_str()
            ),
        )),
    }
}

fn scope(standing: &BudgetStanding) -> String {
    match &standing.budget.workspace_id {
        Some(workspace) => format!("workspace {workspace}"),
        None => "the org".to_owned(),
    }
}

/// `1200 tokens`, `$0.015625`.
pub fn amount(unit: BudgetUnit, value: i64) -> String {
    match unit {
        BudgetUnit::Tokens => format!("{value} tokens"),
        BudgetUnit::Usd => wsd_core::prices::dollars(value),
    }
}

/// Headers that tell the client where it stands: per unit, the least remaining of the
/// budgets that apply and when that budget renews.
pub fn standing_headers(standings: &[BudgetStanding], headers: &mut HeaderMap) {
    for (unit, remaining_name, reset_name) in [
        (BudgetUnit::Tokens, "x-wsd-budget-remaining-tokens", "x-wsd-budget-reset-tokens"),
        (BudgetUnit::Usd, "x-wsd-budget-remaining-usd", "x-wsd-budget-reset-usd"),
    ] {
        let Some(tightest) = standings.iter().filter(|s| s.budget.unit == unit).min_by_key(|s| s.remaining) else { continue };
        let remaining = match unit {
            BudgetUnit::Tokens => tightest.remaining.to_string(),
            BudgetUnit::Usd => amount(unit, tightest.remaining).trim_start_matches('$').to_owned(),
        };
        if let (Ok(remaining), Some(reset)) = (HeaderValue::from_str(&remaining), reset_header(tightest.resets_at)) {
            headers.insert(remaining_name, remaining);
            headers.insert(reset_name, reset);
        }
    }
}

/// The header value of a reset time: formatted once per window, as every answer within
/// it carries the same.
fn reset_header(resets_at: i64) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(i64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((at, value)) if *at == resets_at => Some(value.clone()),
        _ => {
            let value = HeaderValue::from_str(&wsd_store::calendar::format_utc(resets_at)).ok()?;
            *last = Some((resets_at, value.clone()));
            Some(value)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(amount(BudgetUnit::Tokens, 1200), "1200 tokens");
        assert_eq!(amount(BudgetUnit::Usd, 15_625), "$0.015625");
        assert_eq!(amount(BudgetUnit::Usd, 12_500_000), "$12.500000");
        assert_eq!(amount(BudgetUnit::Usd, -5), "-$0.000005");
    }
}
