//! Other wsd processes on the same PostgreSQL database change what this one keeps in memory:
//! each change made through any process's API is announced (`Store::announce_change`), and
//! [`follow_changes`] clears this process's caches on every announcement, so a token
//! revoked or a budget or platform key set through one process holds in all of them within
//! a moment, not at the caches' expiry. A lost connection clears them too, since
//! announcements may have been missed while it was down.

use std::sync::Arc;
use std::time::Duration;

use wsd_store::Heard;

use crate::state::AppState;

/// How long to wait before listening again after the listener failed.
const RETRY: Duration = Duration::from_secs(1);

/// Clears `state`'s caches on every change announced on its database, for as long as the
/// process runs. Returns at once on SQLite.
pub async fn follow_changes(state: Arc<AppState>) {
    loop {
        match state.store.listen_changes().await {
            Ok(None) => return,
            Ok(Some(mut listener)) => {
                tracing::info!("following the changes other wsd processes make to this database");
                loop {
                    match listener.next().await {
                        Ok(Heard::Change) => state.forget_cached(),
                        Ok(Heard::Reconnected) => {
                            tracing::warn!("the change listener's connection was lost and made again; caches cleared");
                            state.forget_cached();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the change listener failed; caches cleared, listening again");
                            state.forget_cached();
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for changes on the database; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
