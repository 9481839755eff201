//! What every request handler shares: the registry (with the operator's overlays), the
//! store, the platform settings and the policy. Built once at start.

use wsd_core::Registry;
use wsd_core::plan::{PlatformSettings, Policy};
use wsd_store::Store;

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub store: Store,
    pub platform: Option<PlatformSettings>,
    pub policy: Policy,
}
