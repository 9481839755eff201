//! wsd's state of record: orgs, workspaces (with their model as a column), secrets in the
//! `org`, `workspace` and `platform` scopes sealed with AES-256-GCM under a versioned
//! keyring, API tokens (hashes only), the hash-chained audit log and the usage ledger — on
//! SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//!
//! Architecture invariants: plaintext secret values exist only inside `SecretValue`; a
//! ciphertext is bound to its (scope, org, workspace, KEY); a wrong master key is refused at
//! open (canary); loading a workspace's secrets is all or nothing.

mod audit;
mod budgets;
pub mod calendar;
mod changes;
mod db;
mod error;
pub mod keyfile;
pub mod keyring;
mod leases;
mod model;
mod orgs;
mod rate_limits;
mod reservations;
mod rotation;
mod secrets;
mod tokens;
mod usage;

pub use audit::AuditVerification;
pub use budgets::{Admission, BudgetLimit, BudgetPeriod, BudgetStanding, BudgetUnit, Estimate, NewBudget, budget_refusal};
pub use changes::{ChangeListener, Heard};
pub use db::{Backend, Store, StoreOptions, backend_of, now_ms};
pub use error::{Result, StoreError};
pub use leases::{Amounts, LEASE_SHARE, LeaseRequest, Leased, Release, lease_grant};
pub use model::*;
pub use rate_limits::OrgRateLimits;
pub use secrets::PlanInput;
pub use tokens::{TOKEN_PREFIX, generate_token, token_hash};
pub use usage::{DailyUsage, UsageSummary, UsageTotals};
