//! The HTTP routes. Handlers parse and authorize; the store and the planner
//! do the rest.

pub mod misc;
pub mod orgs;
pub mod secrets;
pub mod workspaces;
