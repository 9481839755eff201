//! What every request handler shares: the registry (with the operator's overlays), the
//! store, the platform settings and the policy, the caches in front of the store, the
//! backend, and the metering proxy (which owns its own state). Built once at start.

use std::sync::Arc;
use std::time::Duration;

use wsd_core::Registry;
use wsd_core::plan::{CredentialDelivery, DeliveryChoice, DeliverySetBy, PlatformSettings, Policy};
use wsd_store::{PlanInput, Store};

use crate::auth::{Authenticates, Authenticator};
use crate::cache::TtlCache;
use crate::metrics::Metrics;
use crate::preflight::Preflight;
use crate::proxy::{Proxy, ProxySettings, UpstreamClient};

/// How long a plan input read from the store is trusted when another wsd process may have
/// changed it.
pub const PLAN_INPUT_TTL: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub store: Arc<Store>,
    pub platform: Option<PlatformSettings>,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    /// API callers by their bearer token.
    pub auth: Authenticator,
    /// Workspaces' runtime, model and secret names, for `GET …/plan`; cleared after every
    /// API request but a GET made through this process.
    pub plan_inputs: TtlCache<(String, String), Arc<PlanInput>>,
    /// Present when `[policy] preflight = true`.
    pub preflight: Option<Preflight>,
    /// Where workspaces run, and the command per runtime.
    pub runner: Option<Runner>,
    /// The metering proxy, with its own state.
    pub proxy: Arc<Proxy>,
    /// `[policy] credential_delivery`: for orgs that chose none.
    pub default_delivery: CredentialDelivery,
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
    /// A state with the proxy on its default settings.
    pub fn new(registry: Registry, store: Store, platform: Option<PlatformSettings>, policy: Policy) -> Self {
        let store = Arc::new(store);
        let metrics = Arc::new(Metrics::default());
        let upstream = UpstreamClient::new(&ProxySettings::default()).ok();
        Self {
            proxy: Arc::new(Proxy::new(&registry, store.clone(), metrics.clone(), upstream)),
            auth: Authenticator::new(store.clone(), metrics.clone()),
            registry,
            store,
            platform,
            policy,
            metrics,
            plan_inputs: TtlCache::new(PLAN_INPUT_TTL, 10_000),
            preflight: None,
            runner: None,
            default_delivery: CredentialDelivery::Direct,
        }
    }

    /// The credential delivery of an org's workspaces: its own setting, else the default.
    pub fn delivery(&self, org_setting: Option<CredentialDelivery>) -> DeliveryChoice {
        match org_setting {
            Some(delivery) => DeliveryChoice { delivery, set_by: DeliverySetBy::Org },
            None => DeliveryChoice { delivery: self.default_delivery, set_by: DeliverySetBy::Platform },
        }
    }

    /// The proxy on `settings` (`[proxy]`), before the state is shared.
    pub fn with_proxy_settings(mut self, settings: &ProxySettings) -> Result<Self, String> {
        let upstream = UpstreamClient::new(settings)?;
        self.proxy = Arc::new(Proxy::new(&self.registry, self.store.clone(), self.metrics.clone(), Some(upstream)));
        Ok(self)
    }

    /// Forgets everything read from the store and kept for a while. Called once after every
    /// API request that may change something; provisioning outside a request (a restart on
    /// change) clears the usage grants it ends itself.
    pub fn forget_cached(&self) {
        self.plan_inputs.clear();
        self.auth.forget_tokens();
        self.proxy.gate.forget_usage_tokens();
        self.proxy.gate.forget_platform_keys();
        self.proxy.gate.forget_tenant_keys();
        self.proxy.forget_budgets();
    }
}

impl Authenticates for Arc<AppState> {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}
