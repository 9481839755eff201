//! The HTTP routes. Handlers parse and authorize; the store and the planner
//! do the rest.

pub mod audit;
pub mod operations;
pub mod orgs;
pub mod registry;
pub mod secrets;
pub mod usage;
pub mod workspaces;
