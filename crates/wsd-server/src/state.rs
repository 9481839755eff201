//! What every request handler shares: the registry (with the operator's overlays), the
//! store, the platform settings and the policy, the caches in front of the store, the
//! backend, and the metering proxy's client, gate and ledger. Built once at start.

use std::sync::Arc;
use std::time::Duration;

use wsd_core::Registry;
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_store::{PlanInput, Store};

use crate::auth::TokenCache;
use crate::cache::TtlCache;
use crate::metrics::Metrics;
use crate::preflight::Preflight;

/// How long a plan input read from the store is trusted when another wsd process may have
/// changed it.
pub const PLAN_INPUT_TTL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub store: Store,
    pub platform: Option<PlatformSettings>,
    pub policy: Policy,
    pub metrics: Metrics,
    pub tokens: TokenCache,
    /// Failed authentications, audited in aggregate.
    pub failed_auth: crate::auth::FailedAuth,
    /// Workspaces' runtime, model and secret names, for `GET …/plan`; cleared after every
    /// API request but a GET made through this process.
    pub plan_inputs: TtlCache<(String, String), Arc<PlanInput>>,
    /// Present when `[policy] preflight = true`.
    pub preflight: Option<Preflight>,
    /// Where workspaces run, and the command per runtime.
    pub runner: Option<Runner>,
    /// The metering proxy's client to the providers.
    pub upstream: Option<crate::proxy::UpstreamClient>,
    /// The proxy's checks before upstream: usage tokens, platform keys, budgets.
    pub gate: crate::proxy::gate::Gate,
    /// Metered usage on its way to the store.
    pub ledger: crate::ledger::UsageLedger,
}

/// A backend, the argv it runs per runtime and how each runtime is confined.
#[derive(Debug)]
pub struct Runner {
    pub backend: Arc<dyn wsd_backend::Backend>,
    pub commands: std::collections::BTreeMap<String, Vec<String>>,
    /// `[backends] restart_on_change`: restart a running workspace when a secret change
    /// changes its plan.
    pub restart_on_change: bool,
    /// Network and resource limits per runtime (`[backends.process]`).
    pub confinement: crate::config::ProcessSection,
    /// `[policy] max_running_workspaces_per_org` (0: no limit).
    pub max_running_per_org: u64,
    /// Why this backend cannot start workspaces (its sandbox could not be set up).
    pub unavailable: Option<String>,
    /// One lifecycle step at a time per workspace, and per org while a quota is checked.
    pub locks: crate::locks::KeyedLocks,
}

impl Runner {
    /// A runner with the default confinement and quota.
    pub fn new(backend: Arc<dyn wsd_backend::Backend>, commands: std::collections::BTreeMap<String, Vec<String>>) -> Self {
        Self {
            backend,
            commands,
            restart_on_change: false,
            confinement: crate::config::ProcessSection::default(),
            max_running_per_org: crate::config::PolicySection::default().max_running_workspaces_per_org,
            unavailable: None,
            locks: crate::locks::KeyedLocks::default(),
        }
    }
}

impl AppState {
    pub fn new(registry: Registry, store: Store, platform: Option<PlatformSettings>, policy: Policy) -> Self {
        Self {
            registry,
            store,
            platform,
            policy,
            metrics: Metrics::default(),
            tokens: TokenCache::new(crate::auth::TOKEN_CACHE_TTL, 100_000),
            failed_auth: crate::auth::FailedAuth::default(),
            plan_inputs: TtlCache::new(PLAN_INPUT_TTL, 10_000),
            preflight: None,
            runner: None,
            upstream: crate::proxy::UpstreamClient::new(&crate::proxy::ProxySettings::default()).ok(),
            gate: crate::proxy::gate::Gate::default(),
            ledger: crate::ledger::UsageLedger::default(),
        }
    }

    /// Forgets everything read from the store and kept for a while. Called once after every
    /// API request that may change something; provisioning outside a request (a restart on
    /// change) clears the usage grants it ends itself.
    pub fn forget_cached(&self) {
        self.plan_inputs.clear();
        self.tokens.clear();
        self.gate.forget_usage_tokens();
        self.gate.forget_platform_keys();
        self.gate.forget_budgets();
    }

    /// Queues a metered request's ledger row, counts it against the org's budget and in the
    /// metrics.
    pub fn record_usage(self: &Arc<Self>, record: wsd_store::UsageRecord) {
        self.gate.charge(&record.org_id, record.input_tokens.saturating_add(record.output_tokens));
        self.metrics.record_proxied(&record);
        self.ledger.record(Arc::downgrade(self), record);
    }
}
