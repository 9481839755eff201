//! wsd's core: the provider registry, provider derivation, and the credential planner.
//!
//! Architecture invariant: this crate is pure. It does no IO, reads no clock and no process
//! environment, and has no async code; everything it needs is an argument. Its Cargo.toml
//! admits no IO crate. That is what lets its behaviour be proven by property and mutation
//! tests.

pub mod derive;
pub mod env_key;
pub mod error;
pub mod plan;
pub mod prices;
pub mod protected_env;
pub mod registry;
pub mod secret;

pub use derive::{Derivation, DerivationRule, derive, derive_with};
pub use env_key::{EnvKey, EnvKeyError};
pub use error::{DeriveError, ErrorCode, PlanError};
pub use plan::{Plan, PlanReport, plan};
pub use registry::{Registry, RegistryError};
pub use secret::SecretValue;
