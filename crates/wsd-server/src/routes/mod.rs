//! The HTTP routes. Handlers parse and authorize; the store and the planner
//! do the rest.

pub mod audit;
pub mod operations;
pub mod orgs;
pub mod registry;
pub mod secrets;
pub mod usage;
pub mod workspaces;

use serde::Deserialize;

/// The `{id}` of a path under an org (a workspace's or a token's); the org comes with
/// [`crate::auth::OrgScope`].
#[derive(Deserialize)]
pub struct IdPath {
    pub id: String,
}

/// The `{key}` of a secret's path.
#[derive(Deserialize)]
pub struct KeyPath {
    pub key: String,
}

/// The `{id}` and `{key}` of a workspace secret's path.
#[derive(Deserialize)]
pub struct IdKeyPath {
    pub id: String,
    pub key: String,
}
