//! Budget admission in this process's memory, for a database only this process serves
//! (SQLite; a second server on it is warned at start). The decision is the database's own
//! (`wsd_store::budget_refusal`) over standings kept here: spent as read from the store and
//! raised by every row this process meters (the store learns of it up to a batch later),
//! reserved as the estimates of the requests in flight. A write transaction per request
//! would serialize every admission on SQLite's one writer.
//!
//! Standings are read again when budgets change (any change through the API) and when a
//! window renews; what is in flight is kept across a read, and spent never goes back below
//! what this process counted in the same window.

use std::collections::HashMap;
use std::sync::Mutex;

use wsd_store::{Admission, BudgetStanding, BudgetUnit, Estimate, Store, StoreError};

/// What a request in flight holds, by budget.
#[derive(Debug)]
struct Hold {
    org: String,
    amounts: Vec<(String, i64)>,
}

#[derive(Debug, Default)]
struct Org {
    standings: Vec<BudgetStanding>,
    /// Read again before the next admission (budgets changed).
    stale: bool,
}

/// Where both locks are taken, `orgs` is taken first.
#[derive(Debug, Default)]
pub struct LocalBudgets {
    orgs: Mutex<HashMap<String, Org>>,
    holds: Mutex<HashMap<String, Hold>>,
    /// Names holds: unique within this process, which is where they live.
    next_hold: std::sync::atomic::AtomicU64,
}

impl LocalBudgets {
    /// Admits a request of `workspace` under its org's budgets, or refuses it.
    pub async fn admit(&self, store: &Store, org: &str, workspace: &str, estimate: Estimate, now: i64) -> Result<Admission, StoreError> {
        let fresh = {
            let orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
            orgs.get(org).is_some_and(|o| !o.stale && o.standings.iter().all(|s| now < s.resets_at))
        };
        if !fresh {
            let read = store.budget_standings(org, now).await?;
            self.merge(org, read);
        }
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(known) = orgs.get_mut(org) else { return Ok(Admission::Admitted { reservation: None, standings: Vec::new() }) };
        let applying: Vec<BudgetStanding> = known.standings.iter().filter(|s| s.applies_to(workspace)).cloned().collect();
        if applying.is_empty() {
            return Ok(Admission::Admitted { reservation: None, standings: Vec::new() });
        }
        if let Some(refusal) = wsd_store::budget_refusal(&applying, estimate) {
            return Ok(refusal);
        }
        let mut amounts = Vec::with_capacity(applying.len());
        for standing in known.standings.iter_mut().filter(|s| s.applies_to(workspace)) {
            let amount = estimate.amount(standing.budget.unit).unwrap_or(0);
            standing.hold(amount);
            amounts.push((standing.budget.id.clone(), amount));
        }
        let standings = known.standings.iter().filter(|s| s.applies_to(workspace)).cloned().collect();
        // A counter, not a random id: the hold lives in this process only, and a random id
        // costs a system call per request.
        let id = format!("local_{}", self.next_hold.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.holds.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), Hold { org: org.to_owned(), amounts });
        Ok(Admission::Admitted { reservation: Some(id), standings })
    }

    /// Settles the hold `reservation` with what the request used: `false` when the hold is
    /// not this process's (a reservation stored in the database).
    pub fn settle(&self, reservation: &str, workspace: &str, tokens: i64, cost_micros: Option<i64>) -> bool {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(hold) = self.holds.lock().unwrap_or_else(|e| e.into_inner()).remove(reservation) else { return false };
        if let Some(known) = orgs.get_mut(&hold.org) {
            for standing in known.standings.iter_mut() {
                if let Some((_, amount)) = hold.amounts.iter().find(|(id, _)| *id == standing.budget.id) {
                    standing.reserved = standing.reserved.saturating_sub(*amount).max(0);
                }
                if standing.applies_to(workspace) {
                    let used = match standing.budget.unit {
                        BudgetUnit::Tokens => tokens,
                        BudgetUnit::Usd => cost_micros.unwrap_or(0),
                    };
                    standing.spent = standing.spent.saturating_add(used);
                }
                standing.recount();
            }
        }
        true
    }

    /// Budgets changed: every org's standings are read again before its next admission.
    pub fn forget(&self) {
        for known in self.orgs.lock().unwrap_or_else(|e| e.into_inner()).values_mut() {
            known.stale = true;
        }
    }

    /// `standings` as the API shows them: with what is in flight here, and spent as counted
    /// here when the store has not caught up yet.
    pub fn overlay(&self, org: &str, standings: &mut [BudgetStanding]) {
        let orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(known) = orgs.get(org) else { return };
        for standing in standings.iter_mut() {
            if let Some(local) = known.standings.iter().find(|s| s.budget.id == standing.budget.id && s.resets_at == standing.resets_at) {
                standing.spent = standing.spent.max(local.spent);
                standing.reserved = local.reserved;
                standing.recount();
            }
        }
    }

    /// Takes standings read from the store: what is in flight stays held, and spent in the
    /// same window never drops below what was counted here.
    fn merge(&self, org: &str, mut read: Vec<BudgetStanding>) {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let known = orgs.entry(org.to_owned()).or_default();
        for standing in &mut read {
            if let Some(old) = known.standings.iter().find(|s| s.budget.id == standing.budget.id && s.resets_at == standing.resets_at) {
                standing.spent = standing.spent.max(old.spent);
            }
            standing.reserved = holds
                .values()
                .filter(|h| h.org == org)
                .flat_map(|h| h.amounts.iter())
                .filter(|(id, _)| *id == standing.budget.id)
                .map(|(_, amount)| *amount)
                .fold(0i64, i64::saturating_add);
            standing.recount();
        }
        known.standings = read;
        known.stale = false;
    }
}

#[cfg(test)]
mod tests {
    use wsd_store::{BudgetPeriod, NewBudget};

    use super::*;
    use crate::test_support::{admitted, estimate, temp_store, usage_row};

    #[tokio::test]
    async fn holds_survive_a_read_and_spent_never_goes_back() {
        let store = temp_store("local-budgets").await;
        let org = store.create_org("acme", "test").await.unwrap().id;
        let new = wsd_store::NewWorkspace { name: "a", runtime: "claude-code", model: "minimax/MiniMax-M2.7" };
        let a = store.create_workspace(&org, &new, "test").await.unwrap().id;
        let local = LocalBudgets::default();
        let now = wsd_store::now_ms();
        // No budget: nothing held, nothing kept.
        assert_eq!(
            local.admit(&store, &org, &a, estimate(10), now).await.unwrap(),
            Admission::Admitted { reservation: None, standings: Vec::new() }
        );
        let budget = NewBudget { workspace_id: None, unit: BudgetUnit::Tokens, period: BudgetPeriod::Day, limit: 100 };
        store.put_budget(&org, &budget, "test").await.unwrap();
        local.forget();

        let first = admitted(local.admit(&store, &org, &a, estimate(40), now).await.unwrap());
        let second = admitted(local.admit(&store, &org, &a, estimate(40), now).await.unwrap());
        let Admission::Exceeded { standing, estimate: over } = local.admit(&store, &org, &a, estimate(40), now).await.unwrap() else {
            panic!()
        };
        assert_eq!((standing.spent, standing.reserved, over), (0, 80, 40));
        // Budgets change: read again, the two in flight still held.
        local.forget();
        assert!(matches!(local.admit(&store, &org, &a, estimate(21), now).await.unwrap(), Admission::Exceeded { .. }));
        // One ends having used 5: its 40 are released, the 5 spent at once (the store has
        // not stored the row yet), and a read from the store does not lose them.
        assert!(local.settle(&first, &a, 5, Some(5)));
        assert!(!local.settle(&first, &a, 5, Some(5)), "settled once");
        assert!(!local.settle("res_stored-in-the-database", &a, 5, None));
        local.forget();
        let third = admitted(local.admit(&store, &org, &a, estimate(55), now).await.unwrap());
        let mut shown = store.budget_standings(&org, now).await.unwrap();
        assert_eq!((shown[0].spent, shown[0].reserved), (0, 0), "the store knows of nothing yet");
        local.overlay(&org, &mut shown);
        assert_eq!((shown[0].spent, shown[0].reserved, shown[0].remaining), (5, 95, 0));
        // The store catches up: spent as stored, not twice.
        let row = usage_row(&org, &a, now, 5, None, None);
        store.append_usage(&[row]).await.unwrap();
        local.forget();
        local.settle(&second, &a, 0, None);
        local.settle(&third, &a, 0, None);
        let fourth = admitted(local.admit(&store, &org, &a, estimate(95), now).await.unwrap());
        assert!(matches!(local.admit(&store, &org, &a, estimate(1), now).await.unwrap(), Admission::Exceeded { .. }));
        // The next window starts from what the store holds for it: nothing; what is in
        // flight is held in it too.
        let tomorrow = BudgetPeriod::Day.end(now);
        assert!(matches!(local.admit(&store, &org, &a, estimate(6), tomorrow).await.unwrap(), Admission::Exceeded { .. }));
        local.settle(&fourth, &a, 0, None);
        assert!(matches!(local.admit(&store, &org, &a, estimate(100), tomorrow).await.unwrap(), Admission::Admitted { .. }));
        // A workspace budget is that workspace's; another org's standings are its own.
        let mut untouched = store.budget_standings(&org, now).await.unwrap();
        local.overlay("another-org", &mut untouched);
        assert_eq!(untouched[0].reserved, 0);
    }
}
