//! Budget admission from slices leased in the database, for a database several processes
//! share (PostgreSQL). Each workspace under budgets has a lease here: a reservation in the
//! database ([`wsd_store::Store::lease`]) that this process admits requests from in memory
//! while their estimates fit in it. When a request does not fit, the workspace's lease gives
//! back what it holds beyond its requests in flight and a new one is asked for, in one round
//! trip; a refusal there is the budget's own (the database checked every budget). Every
//! budget's spent + reserved stays within its limit in the database, because every slice is
//! reserved there before any request is admitted from it.
//!
//! Each request's ledger row draws what it used from its lease (no more than the lease holds).
//! A lease left with nothing in flight is released after [`LEASE_IDLE_MS`] idle, or as soon
//! as a newer lease replaced it; leases in use are extended before they expire, so that a
//! process that dies frees its slices within [`LEASE_TTL_MS`]. When budgets change, every
//! lease stops admitting until the database was asked again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use wsd_store::{Admission, Amounts, BudgetStanding, BudgetUnit, Estimate, LeaseRequest, Leased, Release, Store, StoreError};

/// A lease asks for this many times the estimate of the request that asks for it (the
/// database grants less near a limit).
const LEASE_REQUESTS: i64 = 256;
/// A lease not extended holds for this long: the longest a dead process's slices stay held.
pub const LEASE_TTL_MS: i64 = 60_000;
/// A lease with nothing in flight is released after this long without an admission.
pub const LEASE_IDLE_MS: i64 = 1_000;
/// How often leases are released and extended.
const UPKEEP_EVERY: Duration = Duration::from_millis(250);

/// Each workspace's slot, by org and workspace: looked up without allocating.
#[derive(Debug, Default)]
struct Slots(HashMap<String, HashMap<String, Slot>>);

impl Slots {
    fn get_mut(&mut self, org: &str, workspace: &str) -> Option<&mut Slot> {
        self.0.get_mut(org)?.get_mut(workspace)
    }

    fn entry(&mut self, org: &str, workspace: &str) -> &mut Slot {
        if !self.0.contains_key(org) {
            self.0.insert(org.to_owned(), HashMap::new());
        }
        let workspaces = self.0.get_mut(org).expect("inserted above");
        if !workspaces.contains_key(workspace) {
            workspaces.insert(workspace.to_owned(), Slot::default());
        }
        workspaces.get_mut(workspace).expect("inserted above")
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.0.values_mut().flat_map(HashMap::values_mut)
    }
}

/// A slice of the budgets that apply to one workspace, reserved in the database.
#[derive(Debug)]
struct Lease {
    id: Arc<str>,
    /// What the reservation holds, as this process counts: what was granted, less what rows
    /// drew from it and what was given back (the database holds at least this: rows that
    /// drew are stored a batch later).
    held: Amounts,
    /// The estimates of the requests in flight under it.
    outstanding: Amounts,
    in_flight: u32,
    expires_at: i64,
}

impl Lease {
    /// What it holds beyond its requests in flight.
    fn unused(&self) -> Amounts {
        Amounts {
            tokens: self.held.tokens.saturating_sub(self.outstanding.tokens).max(0),
            cost_micros: self.held.cost_micros.saturating_sub(self.outstanding.cost_micros).max(0),
        }
    }
}

/// One workspace's leases and the budgets that apply to it.
#[derive(Debug, Default)]
struct Slot {
    /// The lease requests are admitted from.
    current: Option<Lease>,
    /// Leases replaced by a newer one, released once nothing is in flight under them.
    draining: Vec<Lease>,
    /// The budgets that apply, as the last lease saw them, with this process's requests since.
    standings: Vec<BudgetStanding>,
    /// No budget applies to the workspace (as of the last ask).
    unbudgeted: bool,
    /// Budgets changed since the last ask: ask again before admitting.
    stale: bool,
    last_admitted: i64,
    /// Held while the database is asked, so that one request asks for the workspace and the
    /// others wait for its answer rather than ask too.
    asking: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    /// Admits a request from the current lease if the budgets are known and it fits.
    fn admit_here(&mut self, estimate: Estimate, now: i64) -> Option<Admission> {
        if self.stale || self.standings.iter().any(|s| now >= s.resets_at) {
            return None;
        }
        if self.unbudgeted {
            return Some(Admission::Admitted { reservation: None, standings: Vec::new() });
        }
        if estimate.cost_micros.is_none()
            && let Some(usd) = self.standings.iter().find(|s| s.budget.unit == BudgetUnit::Usd)
        {
            return Some(Admission::Unpriced { budget: usd.budget.clone() });
        }
        let amounts = amounts(estimate);
        let counted = |unit| self.standings.iter().any(|s| s.budget.unit == unit);
        let lease = self.current.as_mut()?;
        let fits = |unit| !counted(unit) || lease.outstanding.of(unit).saturating_add(amounts.of(unit)) <= lease.held.of(unit);
        if !(fits(BudgetUnit::Tokens) && fits(BudgetUnit::Usd)) {
            return None;
        }
        add(&mut lease.outstanding, amounts);
        lease.in_flight += 1;
        let id = lease.id.clone();
        self.last_admitted = now;
        Some(self.held_under(&id, estimate))
    }

    /// The admission of a request of `estimate` under lease `lease`: the standings with it held.
    fn held_under(&mut self, lease: &str, estimate: Estimate) -> Admission {
        for standing in &mut self.standings {
            standing.hold(estimate.amount(standing.budget.unit).unwrap_or(0));
        }
        Admission::Admitted { reservation: Some(lease.to_owned()), standings: self.standings.clone() }
    }

    /// Makes `lease` the current one; the one it replaces drains.
    fn replace_current(&mut self, lease: Lease) {
        if let Some(old) = self.current.replace(lease) {
            self.draining.push(old);
        }
    }

    fn lease_mut(&mut self, id: &str) -> Option<&mut Lease> {
        self.current.iter_mut().chain(self.draining.iter_mut()).find(|l| &*l.id == id)
    }
}

/// What a request in flight holds.
#[derive(Debug)]
struct Hold {
    lease: String,
    estimate: Estimate,
}

#[derive(Debug, Default)]
pub struct LeasedBudgets {
    slots: Mutex<Slots>,
    holds: Mutex<HashMap<String, Hold>>,
    /// Names holds: unique within this process, which is where they live.
    next_hold: std::sync::atomic::AtomicU64,
    upkeep: OnceLock<()>,
}

impl LeasedBudgets {
    /// Admits a request of `workspace` under its org's budgets, or refuses it.
    pub async fn admit(
        self: &Arc<Self>,
        store: &Arc<Store>,
        org: &str,
        workspace: &str,
        estimate: Estimate,
        now: i64,
    ) -> Result<Admission, StoreError> {
        self.start_upkeep(store);
        let asking = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(org, workspace);
            if let Some(admission) = slot.admit_here(estimate, now) {
                return Ok(self.track(admission, estimate));
            }
            slot.asking.clone()
        };
        let _asking = asking.lock().await;
        // Another request may have asked while this one waited.
        let returned = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(org, workspace);
            if let Some(admission) = slot.admit_here(estimate, now) {
                return Ok(self.track(admission, estimate));
            }
            // The current lease gives back what it holds beyond its requests and drains.
            slot.current.take().map(|mut lease| {
                let unused = lease.unused();
                subtract(&mut lease.held, unused);
                let id = lease.id.clone();
                slot.draining.push(lease);
                (id, unused)
            })
        };
        let id = format!("lease_{}", uuid::Uuid::now_v7().simple());
        let need = amounts(estimate);
        let request = LeaseRequest {
            org,
            workspace,
            lease: &id,
            returned: returned.as_ref().map(|(id, amounts)| (&**id, *amounts)),
            need: estimate,
            want: Amounts {
                tokens: need.tokens.saturating_mul(LEASE_REQUESTS),
                cost_micros: need.cost_micros.saturating_mul(LEASE_REQUESTS),
            },
            now,
            expires_at: now + LEASE_TTL_MS,
        };
        let leased = store.lease(&request).await?;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(org, workspace);
        slot.stale = false;
        slot.last_admitted = now;
        let admission = match leased {
            Leased::Unbudgeted => {
                slot.unbudgeted = true;
                slot.standings.clear();
                Admission::Admitted { reservation: None, standings: Vec::new() }
            }
            Leased::Refused(refusal) => {
                slot.unbudgeted = false;
                refusal
            }
            Leased::Granted { granted, mut standings } => {
                hide_unused(&slots, org, &mut standings);
                let slot = slots.entry(org, workspace);
                slot.unbudgeted = false;
                slot.standings = standings;
                slot.replace_current(Lease {
                    id: id.as_str().into(),
                    held: granted,
                    outstanding: need,
                    in_flight: 1,
                    expires_at: now + LEASE_TTL_MS,
                });
                slot.held_under(&id, estimate)
            }
        };
        drop(slots);
        Ok(self.track(admission, estimate))
    }

    /// Keeps the hold of an admitted request, named by an id of its own.
    fn track(&self, admission: Admission, estimate: Estimate) -> Admission {
        match admission {
            Admission::Admitted { reservation: Some(lease), standings } => {
                let hold = format!("hold_{}", self.next_hold.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                let held = Hold { lease, estimate };
                self.holds.lock().unwrap_or_else(|e| e.into_inner()).insert(hold.clone(), held);
                Admission::Admitted { reservation: Some(hold), standings }
            }
            other => other,
        }
    }

    /// Settles the hold `hold` with what the request used (`tokens`, `cost_micros`): what the
    /// request's ledger row draws from its lease. `None` when the hold is not this process's,
    /// or its lease is gone (swept away after its expiry).
    pub fn settle(&self, hold: &str, org: &str, workspace: &str, tokens: i64, cost_micros: Option<i64>) -> Option<Release> {
        let hold = self.holds.lock().unwrap_or_else(|e| e.into_inner()).remove(hold)?;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.get_mut(org, workspace)?;
        let used = Amounts { tokens: tokens.max(0), cost_micros: cost_micros.unwrap_or(0).max(0) };
        for standing in &mut slot.standings {
            let unit = standing.budget.unit;
            standing.reserved = standing.reserved.saturating_sub(hold.estimate.amount(unit).unwrap_or(0)).max(0);
            standing.spent = standing.spent.saturating_add(used.of(unit));
            standing.recount();
        }
        let lease = slot.lease_mut(&hold.lease)?;
        subtract(&mut lease.outstanding, amounts(hold.estimate));
        lease.in_flight = lease.in_flight.saturating_sub(1);
        let drawn =
            Amounts { tokens: used.tokens.min(lease.held.tokens.max(0)), cost_micros: used.cost_micros.min(lease.held.cost_micros.max(0)) };
        subtract(&mut lease.held, drawn);
        let id = lease.id.clone();
        // The last request of a replaced lease: its row releases the lease.
        let last = lease.in_flight == 0 && slot.current.as_ref().is_none_or(|current| current.id != id);
        if last {
            slot.draining.retain(|l| l.id != id);
        }
        Some(Release::Lease { id: id.to_string(), drawn, last })
    }

    /// Budgets changed: every workspace asks the database again before its next admission.
    pub fn forget(&self) {
        for slot in self.slots.lock().unwrap_or_else(|e| e.into_inner()).all_mut() {
            slot.stale = true;
        }
    }

    /// `standings` read from the store, less what this process's leases hold beyond their
    /// requests in flight: reserved as requests hold it.
    pub fn overlay(&self, org: &str, standings: &mut [BudgetStanding]) {
        hide_unused(&self.slots.lock().unwrap_or_else(|e| e.into_inner()), org, standings);
    }

    /// Releases leases that nothing needs any more, extends those in use before they
    /// expire, and forgets workspaces idle for long.
    pub async fn upkeep(&self, store: &Store, now: i64) {
        let mut released = Vec::new();
        let mut extend = Vec::new();
        {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            for slot in slots.all_mut() {
                let idle = now - slot.last_admitted >= LEASE_IDLE_MS;
                if idle && slot.current.as_ref().is_some_and(|l| l.in_flight == 0) {
                    released.extend(slot.current.take().map(|l| l.id.to_string()));
                }
                slot.draining.retain(|l| {
                    let done = l.in_flight == 0;
                    if done {
                        released.push(l.id.to_string());
                    }
                    !done
                });
                for lease in slot.current.iter_mut().chain(slot.draining.iter_mut()) {
                    if lease.expires_at - now < LEASE_TTL_MS / 2 {
                        lease.expires_at = now + LEASE_TTL_MS;
                        extend.push(lease.id.to_string());
                    }
                }
            }
            for workspaces in slots.0.values_mut() {
                workspaces.retain(|_, slot| slot.current.is_some() || !slot.draining.is_empty() || now - slot.last_admitted < LEASE_TTL_MS);
            }
            slots.0.retain(|_, workspaces| !workspaces.is_empty());
        }
        if let Err(e) = store.release_reservations(&released).await {
            // Unreleased, they expire.
            tracing::warn!(error = %e, leases = released.len(), "budget leases not released; they expire");
        }
        match store.extend_reservations(&extend, now + LEASE_TTL_MS).await {
            Ok(kept) if kept.len() == extend.len() => {}
            Ok(kept) => self.lost(extend.iter().filter(|id| !kept.contains(id))),
            Err(e) => tracing::warn!(error = %e, leases = extend.len(), "budget leases not extended"),
        }
    }

    /// Leases the database no longer holds (swept away after their expiry): nothing is
    /// admitted from them or drawn from them any more.
    fn lost<'a>(&self, ids: impl Iterator<Item = &'a String>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            tracing::warn!(lease = %id, "a budget lease expired before it was extended");
            for slot in slots.all_mut() {
                if slot.current.as_ref().is_some_and(|l| *l.id == **id)
                    && let Some(lease) = slot.current.take()
                {
                    slot.draining.push(lease);
                }
                if let Some(lease) = slot.lease_mut(id) {
                    lease.held = Amounts::default();
                }
            }
        }
    }

    /// Releases every lease (at shutdown, after the last ledger row is stored).
    pub async fn release_all(&self, store: &Store) {
        let ids: Vec<String> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut slots.0)
                .into_values()
                .flat_map(HashMap::into_values)
                .flat_map(|slot| slot.current.into_iter().chain(slot.draining).map(|l| l.id.to_string()))
                .collect()
        };
        if let Err(e) = store.release_reservations(&ids).await {
            tracing::warn!(error = %e, leases = ids.len(), "budget leases not released at shutdown; they expire");
        }
    }

    /// Starts the task that keeps leases, with the first admission (inside the runtime). It
    /// ends when these budgets are dropped.
    fn start_upkeep(self: &Arc<Self>, store: &Arc<Store>) {
        self.upkeep.get_or_init(|| {
            let (budgets, store): (Weak<Self>, Arc<Store>) = (Arc::downgrade(self), store.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(budgets) = budgets.upgrade() else { return };
                    budgets.upkeep(&store, wsd_store::now_ms()).await;
                }
            });
        });
    }
}

/// `standings` of org `org` less what the leases of `slots` hold beyond their requests in
/// flight.
fn hide_unused(slots: &Slots, org: &str, standings: &mut [BudgetStanding]) {
    for (workspace, slot) in slots.0.get(org).into_iter().flatten() {
        for lease in slot.current.iter().chain(slot.draining.iter()) {
            let unused = lease.unused();
            for standing in standings.iter_mut().filter(|s| s.applies_to(workspace)) {
                standing.reserved = standing.reserved.saturating_sub(unused.of(standing.budget.unit)).max(0);
                standing.recount();
            }
        }
    }
}

fn amounts(estimate: Estimate) -> Amounts {
    Amounts { tokens: estimate.tokens, cost_micros: estimate.cost_micros.unwrap_or(0) }
}

fn add(to: &mut Amounts, amounts: Amounts) {
    to.tokens = to.tokens.saturating_add(amounts.tokens);
    to.cost_micros = to.cost_micros.saturating_add(amounts.cost_micros);
}

fn subtract(from: &mut Amounts, amounts: Amounts) {
    from.tokens = from.tokens.saturating_sub(amounts.tokens);
    from.cost_micros = from.cost_micros.saturating_sub(amounts.cost_micros);
}

#[cfg(test)]
mod tests {
    use wsd_store::{BudgetPeriod, NewBudget, UsageRecord};

    use super::*;
    use crate::test_support::{admitted, estimate, temp_store, usage_row};

    /// A ledger row of `used` tokens that releases `release`.
    fn row(org: &str, workspace: &str, used: i64, release: Option<Release>) -> UsageRecord {
        usage_row(org, workspace, wsd_store::now_ms(), used, Some(used), release)
    }

    async fn reserved(store: &Store, org: &str) -> (i64, i64) {
        let standing = &store.budget_standings(org, wsd_store::now_ms()).await.unwrap()[0];
        (standing.spent, standing.reserved)
    }

    #[tokio::test]
    async fn requests_are_admitted_from_one_slice_drawn_from_and_given_back() {
        let store = Arc::new(temp_store("leased-budgets").await);
        let org = store.create_org("acme", "test").await.unwrap().id;
        let new = wsd_store::NewWorkspace { name: "a", runtime: "claude-code", model: "minimax/MiniMax-M2.7" };
        let a = store.create_workspace(&org, &new, "test").await.unwrap().id;
        let leased = Arc::new(LeasedBudgets::default());
        let now = wsd_store::now_ms();
        // No budget: nothing held.
        assert_eq!(
            leased.admit(&store, &org, &a, estimate(10), now).await.unwrap(),
            Admission::Admitted { reservation: None, standings: Vec::new() }
        );
        let budget = NewBudget { workspace_id: None, unit: BudgetUnit::Tokens, period: BudgetPeriod::Day, limit: 1_000_000 };
        store.put_budget(&org, &budget, "test").await.unwrap();
        leased.forget();

        // A hundred requests, one slice of 256 estimates in the database.
        let mut holds = Vec::new();
        for _ in 0..100 {
            holds.push(admitted(leased.admit(&store, &org, &a, estimate(10), now).await.unwrap()));
        }
        assert_eq!(reserved(&store, &org).await, (0, 2_560));
        let mut shown = store.budget_standings(&org, now).await.unwrap();
        leased.overlay(&org, &mut shown);
        assert_eq!((shown[0].reserved, shown[0].remaining), (1_000, 999_000), "reserved as the requests hold it");
        let Admission::Admitted { standings, .. } = leased.admit(&store, &org, &a, estimate(10), now).await.unwrap() else { panic!() };
        assert_eq!(standings[0].reserved, 1_010, "what the answer's headers say");
        holds.push(leased.holds.lock().unwrap().keys().find(|k| !holds.contains(k)).unwrap().clone());

        // Each ends having used 3: its row draws 3 from the slice; settled once.
        let mut rows = Vec::new();
        for hold in &holds {
            let release = leased.settle(hold, &org, &a, 3, Some(3));
            let Some(Release::Lease { drawn, last: false, .. }) = release.clone() else { panic!("{release:?}") };
            assert_eq!(drawn, Amounts { tokens: 3, cost_micros: 0 }, "no USD budget: no cost leased");
            rows.push(row(&org, &a, 3, release));
        }
        assert_eq!(leased.settle(&holds[0], &org, &a, 3, Some(3)), None, "settled once");
        store.append_usage(&rows).await.unwrap();
        assert_eq!(reserved(&store, &org).await, (303, 2_560 - 303));
        let mut shown = store.budget_standings(&org, now).await.unwrap();
        leased.overlay(&org, &mut shown);
        assert_eq!((shown[0].spent, shown[0].reserved), (303, 0));

        // Budgets change: the next request asks again, the old slice gives back all it held.
        leased.forget();
        let hold = admitted(leased.admit(&store, &org, &a, estimate(10), now).await.unwrap());
        let fresh = (1_000_000 - 303) / wsd_store::LEASE_SHARE;
        assert_eq!(reserved(&store, &org).await, (303, 2_560.min(fresh)));
        // Idle, a slice with a request in flight stays; released once it has none.
        leased.upkeep(&store, now + LEASE_IDLE_MS).await;
        assert_eq!(reserved(&store, &org).await, (303, 2_560), "the emptied slice is released, the one in use kept");
        let release = leased.settle(&hold, &org, &a, 10, Some(10));
        store.append_usage(&[row(&org, &a, 10, release)]).await.unwrap();
        leased.upkeep(&store, now + 2 * LEASE_IDLE_MS).await;
        assert_eq!(reserved(&store, &org).await, (313, 0));

        // Near the limit slices are single requests: exactly what fits is admitted.
        let budget = NewBudget { limit: 313 + 30, ..budget };
        store.put_budget(&org, &budget, "test").await.unwrap();
        leased.forget();
        let fitting: Vec<_> = [0; 3].iter().map(|_| now).collect();
        let mut in_flight = Vec::new();
        for at in fitting {
            in_flight.push(admitted(leased.admit(&store, &org, &a, estimate(10), at).await.unwrap()));
        }
        assert!(matches!(leased.admit(&store, &org, &a, estimate(1), now).await.unwrap(), Admission::Exceeded { .. }));
        // The last request of a replaced slice releases it with its row.
        let releases: Vec<_> = in_flight.iter().map(|hold| leased.settle(hold, &org, &a, 1, Some(1))).collect();
        assert!(releases.iter().all(|r| matches!(r, Some(Release::Lease { last: true, .. }))), "{releases:?}");
        let rows: Vec<_> = releases.into_iter().map(|r| row(&org, &a, 1, r)).collect();
        store.append_usage(&rows).await.unwrap();
        assert_eq!(reserved(&store, &org).await, (316, 0));

        // A slice swept away after its expiry is neither admitted from nor drawn from.
        let budget = NewBudget { limit: 1_000_000, ..budget };
        store.put_budget(&org, &budget, "test").await.unwrap();
        leased.forget();
        let hold = admitted(leased.admit(&store, &org, &a, estimate(10), now).await.unwrap());
        let id = leased.slots.lock().unwrap().all_mut().find_map(|s| s.current.as_ref().map(|l| l.id.to_string())).unwrap();
        store.release_reservations(&[id]).await.unwrap();
        leased.upkeep(&store, now + LEASE_TTL_MS).await;
        assert!(leased.slots.lock().unwrap().all_mut().all(|s| s.current.is_none()), "no longer admitted from");
        assert!(
            matches!(leased.settle(&hold, &org, &a, 5, Some(5)), Some(Release::Lease { drawn: Amounts { tokens: 0, cost_micros: 0 }, .. })),
            "nothing drawn from it"
        );
        // At shutdown every slice is released.
        admitted(leased.admit(&store, &org, &a, estimate(10), now).await.unwrap());
        assert_ne!(reserved(&store, &org).await.1, 0);
        leased.release_all(&store).await;
        assert_eq!(reserved(&store, &org).await, (316, 0));
    }
}
