//! The audit log: append-only and hash-chained. Each event's hash covers the previous
//! event's hash and every field of its own; `audit_head` records the newest, so editing,
//! deleting or reordering any event, the newest included, is detected by `verify_audit`.
//!
//! Events carry names, decisions and codes, never secret values.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{Store, on_read};
use crate::error::{Result, StoreError};
use crate::model::{AuditEvent, NewAuditEvent};

/// The hash of an event, chained to `prev`.
pub(crate) fn chain_hash(prev: &[u8], seq: i64, at: i64, event: &NewAuditEvent, details: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"wsd-audit-v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [event.org_id.as_deref().unwrap_or(""), &event.actor, &event.action, &event.target, details] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_vec()
}

/// Appends `$event` inside the open write transaction `$tx` on `$pool`, after taking the
/// chain's head as the pool's dialect does.
macro_rules! append_audit {
    ($tx:expr, $event:expr, $pool:expr) => {{
        let event: &$crate::model::NewAuditEvent = $event;
        let head_sql = $crate::db::audit_head_sql($pool);
        let (last_seq, last_hash): (i64, Vec<u8>) = sqlx::query_as(head_sql).fetch_one(&mut *$tx).await?;
        let seq = last_seq + 1;
        let at = $crate::db::now_ms();
        let details = event.details.to_string();
        let hash = $crate::audit::chain_hash(&last_hash, seq, at, event, &details);
        sqlx::query(
            "INSERT INTO audit_events (seq, at, org_id, actor, action, target, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq)
        .bind(at)
        .bind(event.org_id.clone())
        .bind(event.actor.clone())
        .bind(event.action.clone())
        .bind(event.target.clone())
        .bind(details)
        .bind(last_hash)
        .bind(hash.clone())
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET last_seq = $1, last_hash = $2 WHERE id = 1").bind(seq).bind(hash).execute(&mut *$tx).await?;
    }};
}

pub(crate) use append_audit;

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    org_id: Option<String>,
    actor: String,
    action: String,
    target: String,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl AuditRow {
    fn event(&self) -> NewAuditEvent {
        NewAuditEvent {
            org_id: self.org_id.clone(),
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            details: serde_json::Value::Null,
        }
    }

    fn into_event(self) -> AuditEvent {
        AuditEvent {
            seq: self.seq,
            at: self.at,
            details: serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null),
            org_id: self.org_id,
            actor: self.actor,
            action: self.action,
            target: self.target,
        }
    }
}

/// The outcome of a verification that passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    pub events: u64,
    pub last_seq: i64,
}

impl Store {
    /// Appends one event on its own.
    pub async fn append_audit(&self, event: &NewAuditEvent) -> Result<()> {
        crate::db::on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            append_audit!(tx, event, pool);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Events of `org` (all events when `None`), oldest first, after `after_seq`.
    pub async fn list_audit(&self, org: Option<&str>, after_seq: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows: Vec<AuditRow> = on_read!(self, |pool| match org {
            Some(org) => {
                sqlx::query_as(
                    "SELECT seq, at, org_id, actor, action, target, details, prev_hash, hash FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(org)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT seq, at, org_id, actor, action, target, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        });
        Ok(rows.into_iter().map(AuditRow::into_event).collect())
    }

    /// Walks the whole chain and checks every link and the head.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let (head_seq, head_hash): (i64, Vec<u8>) =
            on_read!(self, |pool| sqlx::query_as("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetch_one(pool).await?);
        let mut prev_hash = vec![0u8; 32];
        let mut expected_seq = 1i64;
        let mut events = 0u64;
        let mut after = 0i64;
        loop {
            let rows: Vec<AuditRow> = on_read!(self, |pool| {
                sqlx::query_as(
                    "SELECT seq, at, org_id, actor, action, target, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000",
                )
                .bind(after)
                .fetch_all(pool)
                .await?
            });
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let broken = |problem: &str| StoreError::AuditChainBroken { seq: row.seq, problem: problem.to_owned() };
                if row.seq != expected_seq {
                    return Err(StoreError::AuditChainBroken {
                        seq: expected_seq,
                        problem: format!("event {expected_seq} is missing (next is {})", row.seq),
                    });
                }
                if row.prev_hash != prev_hash {
                    return Err(broken("it does not follow the previous event"));
                }
                if chain_hash(&prev_hash, row.seq, row.at, &row.event(), &row.details) != row.hash {
                    return Err(broken("its content does not match its hash (edited)"));
                }
                prev_hash = row.hash.clone();
                expected_seq += 1;
                after = row.seq;
                events += 1;
            }
        }
        if expected_seq - 1 != head_seq || prev_hash != head_hash {
            return Err(StoreError::AuditChainBroken {
                seq: head_seq,
                problem: format!(
                    "the log ends at event {} but its head records event {head_seq} (newest events deleted)",
                    expected_seq - 1
                ),
            });
        }
        Ok(AuditVerification { events, last_seq: head_seq })
    }
}
