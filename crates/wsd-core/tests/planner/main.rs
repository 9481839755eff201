//! The planner's and the registry's integration tests, in one test binary: one link per
//! build instead of one per file keeps mutation testing of the core quick.

mod derivation;
mod plan_properties;
mod plan_snapshots;
mod proxy_delivery;
mod registry_validation;
mod seed_regressions;
mod support;
