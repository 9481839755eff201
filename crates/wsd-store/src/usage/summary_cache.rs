//! Usage summaries of whole days, kept in memory while those days are unchanged.
//!
//! The ledger only grows: no request is ever removed or changed. So the number of requests
//! an org's days hold (one read of the per-day rollup, a row per day) says whether what
//! they sum to has changed since an entry was computed: an entry answers only a read that
//! finds the count it was computed at. Several replicas of wsd on one database stay exact,
//! as each reads the count from the database.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::UsageSummary;

/// Summary rows held over all entries: about 200 bytes each, so some 20 MB at most.
const MAX_ROWS: usize = 100_000;

struct Entry {
    org: String,
    days: (i64, i64),
    requests: i64,
    rows: Arc<Vec<UsageSummary>>,
}

/// The most recently used summaries, bounded by the rows they hold.
#[derive(Default)]
pub(crate) struct SummaryCache {
    /// Most recently used first.
    entries: Mutex<VecDeque<Entry>>,
}

impl SummaryCache {
    /// The summary of org `org`'s days `[days.0, days.1)` when it was computed while they
    /// held `requests` requests.
    pub(crate) fn get(&self, org: &str, days: (i64, i64), requests: i64) -> Option<Arc<Vec<UsageSummary>>> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = entries.iter().position(|e| e.org == org && e.days == days)?;
        if entries[at].requests != requests {
            entries.remove(at);
            return None;
        }
        let entry = entries.remove(at)?;
        let rows = entry.rows.clone();
        entries.push_front(entry);
        Some(rows)
    }

    /// Keeps `rows`, the summary of `org`'s days `[days.0, days.1)` while they held
    /// `requests` requests, dropping the least recently used entries beyond the bound. A
    /// summary larger than the bound is not kept.
    pub(crate) fn put(&self, org: &str, days: (i64, i64), requests: i64, rows: Arc<Vec<UsageSummary>>) {
        if rows.len() > MAX_ROWS {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|e| !(e.org == org && e.days == days));
        entries.push_front(Entry { org: org.to_owned(), days, requests, rows });
        let mut held = 0;
        let keep = entries
            .iter()
            .take_while(|e| {
                held += e.rows.len();
                held <= MAX_ROWS
            })
            .count();
        entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UsageTotals;

    fn rows(n: usize) -> Arc<Vec<UsageSummary>> {
        let row = UsageSummary {
            workspace_id: "w".into(),
            provider: "p".into(),
            model: "m".into(),
            routing: "platform".into(),
            totals: UsageTotals::default(),
        };
        Arc::new(vec![row; n])
    }

    #[test]
    fn an_entry_answers_only_the_count_it_was_computed_at() {
        let cache = SummaryCache::default();
        cache.put("o", (1, 5), 10, rows(3));
        assert_eq!(cache.get("o", (1, 5), 10).map(|r| r.len()), Some(3));
        assert!(cache.get("o", (1, 6), 10).is_none(), "other days");
        assert!(cache.get("p", (1, 5), 10).is_none(), "another org");
        assert!(cache.get("o", (1, 5), 11).is_none(), "a request stored since");
        assert!(cache.get("o", (1, 5), 10).is_none(), "a stale entry is dropped");
    }

    #[test]
    fn the_rows_held_stay_bounded_and_the_least_recently_used_go_first() {
        let cache = SummaryCache::default();
        cache.put("a", (0, 1), 1, rows(MAX_ROWS / 2));
        cache.put("b", (0, 1), 1, rows(MAX_ROWS / 2));
        assert!(cache.get("a", (0, 1), 1).is_some());
        cache.put("c", (0, 1), 1, rows(1));
        assert!(cache.get("b", (0, 1), 1).is_none(), "b was the least recently used");
        assert!(cache.get("a", (0, 1), 1).is_some() && cache.get("c", (0, 1), 1).is_some());
        cache.put("d", (0, 1), 1, rows(MAX_ROWS + 1));
        assert!(cache.get("d", (0, 1), 1).is_none(), "larger than the bound: not kept");
        assert!(cache.get("a", (0, 1), 1).is_some(), "and nothing dropped for it");
    }
}
