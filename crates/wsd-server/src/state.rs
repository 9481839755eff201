//! What every request handler shares: the registry (with the operator's overlays), the
//! store, the platform settings and the policy. Built once at start.

use wsd_core::Registry;
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_store::Store;

use crate::auth::TokenCache;
use crate::metrics::Metrics;
use crate::preflight::Preflight;

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub store: Store,
    pub platform: Option<PlatformSettings>,
    pub policy: Policy,
    pub metrics: Metrics,
    pub tokens: TokenCache,
    /// Present when `[policy] preflight = true`.
    pub preflight: Option<Preflight>,
    /// Where workspaces run, and the command per runtime.
    pub runner: Option<Runner>,
    /// The metering proxy's client to the providers.
    pub upstream: Option<crate::proxy::UpstreamClient>,
}

/// A backend and the argv it runs per runtime.
#[derive(Debug)]
pub struct Runner {
    pub backend: std::sync::Arc<dyn wsd_backend::Backend>,
    pub commands: std::collections::BTreeMap<String, Vec<String>>,
    /// `[backends] restart_on_change`: restart a running workspace when a secret change
    /// changes its plan.
    pub restart_on_change: bool,
}

impl AppState {
    pub fn new(registry: Registry, store: Store, platform: Option<PlatformSettings>, policy: Policy) -> Self {
        Self {
            registry,
            store,
            platform,
            policy,
            metrics: Metrics::default(),
            tokens: TokenCache::default(),
            preflight: None,
            runner: None,
            upstream: crate::proxy::UpstreamClient::new().ok(),
        }
    }
}
