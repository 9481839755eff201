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
    /// Runtimes whose workspaces reach the proxy by another URL (those in containers).
    pub runtime_platform: std::collections::BTreeMap<String, PlatformSettings>,
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
    /// The web console's open sessions.
    pub console: crate::sessions::Sessions,
    /// `[policy] credential_delivery`: for orgs that chose none.
    pub default_delivery: CredentialDelivery,
}

/// A backend with what it runs per runtime and how each runtime is confined on it.
#[derive(Debug)]
pub struct Placement {
    pub backend: Arc<dyn wsd_backend::Backend>,
    /// argv per runtime.
    pub commands: std::collections::BTreeMap<String, Vec<String>>,
    /// Whether a runtime without a configured command can run (a container image's own).
    pub command_optional: bool,
    /// Network and resource limits per runtime.
    pub confinement: Confinements,
    /// Why this backend cannot start workspaces (its sandbox could not be set up).
    pub unavailable: Option<String>,
}

impl Placement {
    /// A backend that runs only configured commands, with the default confinement.
    pub fn new(backend: Arc<dyn wsd_backend::Backend>, commands: std::collections::BTreeMap<String, Vec<String>>) -> Self {
        Self {
            backend,
            commands,
            command_optional: false,
            confinement: Confinements::from_process(&crate::config::ProcessSection::default()),
            unavailable: None,
        }
    }
}

/// The confinement of each runtime: its own where configured, else the default.
#[derive(Debug, Clone, Default)]
pub struct Confinements {
    pub default: wsd_backend::Confinement,
    pub runtimes: std::collections::BTreeMap<String, wsd_backend::Confinement>,
}

impl Confinements {
    pub fn from_process(section: &crate::config::ProcessSection) -> Self {
        Self {
            // A runtime with no settings of its own.
            default: section.confinement("\0"),
            runtimes: section.runtimes.keys().map(|runtime| (runtime.clone(), section.confinement(runtime))).collect(),
        }
    }

    pub fn of(&self, runtime: &str) -> wsd_backend::Confinement {
        self.runtimes.get(runtime).copied().unwrap_or(self.default)
    }
}

/// The backends workspaces run on, which runtime runs where, and the lifecycle's rules.
#[derive(Debug)]
pub struct Runner {
    /// By backend name; the first is the default.
    pub placements: Vec<Placement>,
    /// `[backends.runtimes]`: runtimes that run on another backend than the default.
    pub runtime_backends: std::collections::BTreeMap<String, &'static str>,
    /// `[backends] restart_on_change`: restart a running workspace when a secret change
    /// changes its plan.
    pub restart_on_change: bool,
    /// `[policy] max_running_workspaces_per_org` (0: no limit).
    pub max_running_per_org: u64,
    /// One lifecycle step at a time per workspace, and per org while a quota is checked.
    pub locks: crate::locks::KeyedLocks,
}

impl Runner {
    /// A runner of one backend with the default confinement and quota.
    pub fn new(backend: Arc<dyn wsd_backend::Backend>, commands: std::collections::BTreeMap<String, Vec<String>>) -> Self {
        Self::of(vec![Placement::new(backend, commands)])
    }

    /// A runner of these backends (the first is the default).
    pub fn of(placements: Vec<Placement>) -> Self {
        Self {
            placements,
            runtime_backends: std::collections::BTreeMap::new(),
            restart_on_change: false,
            max_running_per_org: crate::config::PolicySection::default().max_running_workspaces_per_org,
            locks: crate::locks::KeyedLocks::default(),
        }
    }

    /// Where `runtime` runs now.
    pub fn placement_for(&self, runtime: &str) -> &Placement {
        self.runtime_backends.get(runtime).and_then(|name| self.named(name)).unwrap_or(&self.placements[0])
    }

    /// The backend called `name`, when this server runs it.
    pub fn named(&self, name: &str) -> Option<&Placement> {
        self.placements.iter().find(|p| p.backend.name() == name)
    }

    /// Where a workspace's recorded instance runs: the backend that started it, or where
    /// its runtime runs now when nothing was started.
    pub fn placement_of(&self, workspace: &wsd_store::Workspace) -> &Placement {
        workspace.backend.as_deref().and_then(|name| self.named(name)).unwrap_or_else(|| self.placement_for(&workspace.runtime))
    }
}

impl AppState {
    /// The platform settings a workspace of `runtime` is planned with.
    pub fn platform_for(&self, runtime: &str) -> Option<&PlatformSettings> {
        self.platform.as_ref().map(|platform| self.runtime_platform.get(runtime).unwrap_or(platform))
    }

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
            console: crate::sessions::Sessions::default(),
            runtime_platform: std::collections::BTreeMap::new(),
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
