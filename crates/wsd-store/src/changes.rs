//! Telling every wsd process on one PostgreSQL database that something they keep in memory
//! changed (a token revoked, a budget or a platform key set): `NOTIFY` on one channel, and
//! a listener per process that clears its caches on each. SQLite is one process's database:
//! there is no one to tell.

use sqlx::postgres::PgListener;

use crate::db::{Db, Store};
use crate::error::Result;

/// The channel change announcements travel on.
pub const CHANNEL: &str = "wsd_changes";

/// A process's subscription to change announcements.
#[derive(Debug)]
pub struct ChangeListener {
    listener: PgListener,
}

/// What the listener heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// A change was announced.
    Change,
    /// The connection was lost and made again: announcements may have been missed.
    Reconnected,
}

impl ChangeListener {
    /// Waits for the next announcement.
    pub async fn next(&mut self) -> Result<Heard> {
        Ok(match self.listener.try_recv().await? {
            Some(_) => Heard::Change,
            None => Heard::Reconnected,
        })
    }
}

impl Store {
    /// Announces a change to every process listening on this database (itself included).
    pub async fn announce_change(&self) -> Result<()> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(pool).await?;
        }
        Ok(())
    }

    /// A subscription to change announcements; `None` on SQLite.
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>> {
        let Db::Postgres(pool) = &self.db else { return Ok(None) };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }
}
