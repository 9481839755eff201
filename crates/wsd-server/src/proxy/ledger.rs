//! Usage rows on their way to the store. A proxied request hands its row over without
//! waiting; one writer task gathers rows for up to [`BATCH_WINDOW`] and stores them in one
//! transaction. Under load that is one commit for hundreds of requests instead of one each,
//! and the database thread wakes a few times a second rather than per request. At shutdown
//! [`UsageLedger::flush`] waits until every queued row is stored.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use wsd_store::{Store, UsageRecord};

/// The most rows one transaction takes.
const MAX_BATCH: usize = 1024;
/// How long the first row of a batch waits for others. A row is in the store at most this
/// long (plus the write) after its request ended; budgets do not wait for it, they count
/// usage in memory as it is metered.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Attempts at storing a batch before its rows are reported lost.
const ATTEMPTS: u32 = 6;

enum Command {
    Row(Box<UsageRecord>),
    /// Answered once every row queued before it is stored.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
pub struct UsageLedger {
    store: Arc<Store>,
    queue: OnceLock<mpsc::UnboundedSender<Command>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Row(_) => "Row",
            Command::Flush(_) => "Flush",
        })
    }
}

impl UsageLedger {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store, queue: OnceLock::new() }
    }

    /// Queues a row; the writer task starts with the first one. Must run inside the tokio
    /// runtime. The writer ends once the ledger is dropped and its queue is stored.
    pub fn record(&self, record: UsageRecord) {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(write_batches(self.store.clone(), receiver));
            sender
        });
        if queue.send(Command::Row(Box::new(record))).is_err() {
            tracing::error!("the usage ledger's writer is gone; a usage row was lost");
        }
    }

    /// Waits until every row recorded so far is stored, or reported lost.
    pub async fn flush(&self) {
        let Some(queue) = self.queue.get() else { return };
        let (done, stored) = oneshot::channel();
        if queue.send(Command::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }
}

async fn write_batches(store: Arc<Store>, mut queue: mpsc::UnboundedReceiver<Command>) {
    let mut rows = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = queue.recv().await {
        let gathering = matches!(first, Command::Row(_));
        let mut next = Some(first);
        if gathering && queue.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
        }
        while let Some(command) = next.take() {
            match command {
                Command::Row(row) => rows.push(*row),
                Command::Flush(done) => flushes.push(done),
            }
            if rows.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        store_with_retries(&store, &rows).await;
        rows.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn store_with_retries(store: &Store, rows: &[UsageRecord]) {
    for attempt in 1..=ATTEMPTS {
        match store.append_usage(rows).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, rows = rows.len(), attempt, "could not store usage rows; retrying");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            Err(e) => tracing::error!(error = %e, rows = rows.len(), "could not store usage rows; they are lost"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_recorded_in_bulk_are_all_stored_by_flush() {
        let store = Arc::new(crate::test_support::temp_store("ledger").await);
        let ledger = UsageLedger::new(store.clone());
        ledger.flush().await;
        let now = wsd_store::now_ms();
        // More than one batch's worth, queued at once.
        for i in 0..2_500 {
            ledger.record(UsageRecord {
                at: now,
                org_id: "o".into(),
                workspace_id: format!("w{}", i % 3),
                provider: "minimax".into(),
                model: "MiniMax-M2.7".into(),
                input_tokens: 2,
                output_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                status: 200,
                latency_ms: 1,
                request_id: format!("r{i}"),
                routing: "platform".into(),
                cost_micros: None,
                reservation: None,
            });
        }
        ledger.flush().await;
        let summary = store.usage_summary("o", now, now + 1).await.unwrap();
        assert_eq!(summary.iter().map(|s| s.totals.requests).sum::<i64>(), 2_500);
        assert_eq!(store.tokens_used_from_day_of("o", now).await.unwrap(), 7_500);
    }
}
