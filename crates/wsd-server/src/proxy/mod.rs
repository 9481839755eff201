//! The metering proxy: platform-routed workspaces reach LLMs only through here.
//! A request moves through named phases (see `forward`): admit → endpoint → prepare →
//! forward → the answer streamed back unbuffered through the meter → one usage-ledger row,
//! whatever happened.
//!
//! The proxy owns its state ([`Proxy`]): the gate (usage tokens, platform keys, budgets),
//! the vendors computed from the registry, the upstream client and the ledger. It imports
//! nothing of the API's state; the server composes it in.
//!
//! Invariants: neither the usage token nor the platform key appears in any response, error
//! or log line; every admitted request gets exactly one ledger row (a [`metered`] meter
//! writes it when it finishes or is dropped).

mod budget;
mod dialect;
mod endpoint;
mod forward;
pub mod gate;
mod leased_budgets;
pub mod ledger;
mod local_budgets;
mod meter;
mod metered;
pub mod rate;
mod request;
mod scrub;
mod silence;
mod upstream;
mod usage;
mod vendor;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use wsd_core::Registry;
use wsd_core::registry::Protocol;
use wsd_store::{Release, Store, UsageRecord};

pub use self::upstream::{ProxySettings, UpstreamClient};
use crate::metrics::Metrics;

/// The largest request body forwarded.
pub const MAX_PROXY_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The metering proxy's state: built once, shared by every proxied request.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<Store>,
    /// The checks before upstream: usage tokens, platform keys, budgets.
    pub gate: gate::Gate,
    vendors: vendor::Vendors,
    /// `None` when the HTTP client could not be built: every call is 503 `PROXY_DISABLED`.
    upstream: Option<UpstreamClient>,
    metrics: Arc<Metrics>,
    /// Metered usage on its way to the store.
    ledger: ledger::UsageLedger,
    /// What each row cost, by its model.
    prices: wsd_core::prices::PriceBook,
    /// Requests and tokens per minute per workspace.
    limiter: rate::Limiter,
    /// Where budget admission is decided.
    budgets: Budgets,
}

/// Where budget admission is decided.
#[derive(Debug)]
enum Budgets {
    /// In memory, on a database only this process serves (SQLite).
    Local(local_budgets::LocalBudgets),
    /// From slices leased in the database (PostgreSQL, shared by several processes).
    Leased(Arc<leased_budgets::LeasedBudgets>),
}

impl Proxy {
    pub fn new(registry: &Registry, store: Arc<Store>, metrics: Arc<Metrics>, upstream: Option<UpstreamClient>) -> Self {
        let budgets = match store.backend() {
            wsd_store::Backend::Sqlite => Budgets::Local(local_budgets::LocalBudgets::default()),
            wsd_store::Backend::Postgres => Budgets::Leased(Arc::default()),
        };
        Self {
            ledger: ledger::UsageLedger::new(store.clone()),
            store,
            gate: gate::Gate::default(),
            vendors: vendor::Vendors::new(registry),
            upstream,
            metrics,
            prices: registry.prices().clone(),
            limiter: rate::Limiter::default(),
            budgets,
        }
    }

    /// A proxied request's ledger row: priced, counted in the metrics at once, queued for
    /// the store, where it also releases the request's budget reservation.
    pub fn record(&self, mut record: UsageRecord) {
        record.cost_micros = self.cost(&record);
        let tokens = record.input_tokens.saturating_add(record.output_tokens);
        // A hold in this process's memory is settled here; the row releases what the
        // database holds for it: the request's part of a lease, or its own reservation.
        if let Some(Release::Reservation(hold)) = &record.reservation {
            match &self.budgets {
                Budgets::Local(local) => {
                    if local.settle(hold, &record.workspace_id, tokens, record.cost_micros) {
                        record.reservation = None;
                    }
                }
                Budgets::Leased(leased) => {
                    record.reservation = leased.settle(hold, &record.org_id, &record.workspace_id, tokens, record.cost_micros)
                }
            }
        }
        self.limiter.charge(&record.workspace_id, u64::try_from(tokens).unwrap_or(0));
        self.metrics.record_proxied(&record);
        self.ledger.record(record);
    }

    /// Budgets or rate limits may have changed: read them again.
    pub fn forget_budgets(&self) {
        self.gate.forget_budgets();
        match &self.budgets {
            Budgets::Local(local) => local.forget(),
            Budgets::Leased(leased) => leased.forget(),
        }
    }

    /// `standings` read from the store, as this process sees them: with what it holds in
    /// memory for requests in flight (SQLite), or without what its leases hold beyond them.
    pub fn overlay_budgets(&self, org: &str, standings: &mut [wsd_store::BudgetStanding]) {
        match &self.budgets {
            Budgets::Local(local) => local.overlay(org, standings),
            Budgets::Leased(leased) => leased.overlay(org, standings),
        }
    }

    /// Each workspace's rate limits where its org has none of its own.
    pub fn default_rate_limits(&self) -> rate::RateLimits {
        self.upstream.as_ref().map(|u| u.rate_limits).unwrap_or_default()
    }

    /// The row's cost by the price book: `None` when a price it needs is unknown.
    fn cost(&self, record: &UsageRecord) -> Option<i64> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let tokens = wsd_core::prices::TokenCounts {
            input: count(record.input_tokens),
            output: count(record.output_tokens),
            cache_read: count(record.cache_read_tokens),
            cache_write: count(record.cache_write_tokens),
        };
        self.prices.cost(&record.model, &tokens).micros()
    }

    /// Waits until every ledger row recorded so far is stored (or reported lost).
    pub async fn flush(&self) {
        self.ledger.flush().await;
    }

    /// At shutdown: stores every ledger row recorded so far, then releases the budget slices
    /// this process leased.
    pub async fn close(&self) {
        self.ledger.flush().await;
        if let Budgets::Leased(leased) = &self.budgets {
            leased.release_all(&self.store).await;
        }
    }

    /// One proxied call on `surface` (see [`surface`]), answered.
    pub(crate) async fn call(self: Arc<Self>, surface: Protocol, request: Request) -> Response {
        forward::forward(self, surface, request).await.unwrap_or_else(IntoResponse::into_response)
    }
}

/// The proxy's surface a path is under, with its route as the metrics name it: `None` for
/// a path that is not the proxy's.
pub(crate) fn surface(path: &str) -> Option<(Protocol, &'static str)> {
    if path.starts_with("/llm/anthropic/") {
        Some((Protocol::Anthropic, "/llm/anthropic/{*rest}"))
    } else if path.starts_with("/llm/openai/") {
        Some((Protocol::Openai, "/llm/openai/{*rest}"))
    } else {
        None
    }
}
