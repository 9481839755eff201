//! Short-lived memory of what the database answered, for hot paths: API token checks, the
//! proxy's usage tokens and platform keys, and plan inputs. Entries expire after the cache's
//! TTL, so a change made through another wsd process is seen within it; a change made
//! through this process clears the cache at once.
//!
//! A reader takes a [`Ticket`] before it asks the database and stores the answer with it:
//! an answer read before a clear is dropped, so it cannot outlive the change that cleared
//! the cache.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    entries: HashMap<K, (V, Instant)>,
    /// Bumped by every clear.
    generation: u64,
}

/// When a read from the database began, as far as the cache can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// Beyond `capacity` entries, expired ones go, then everything.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, inner: Mutex::new(Inner { entries: HashMap::new(), generation: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(value, _)| value.clone())
    }

    /// Taken before reading what will be stored.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Stores `value`, unless the cache was cleared since `ticket` was taken.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut inner = self.lock();
        if inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= self.capacity {
            let ttl = self.ttl;
            inner.entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if inner.entries.len() >= self.capacity {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (value, Instant::now()));
    }

    /// The cached value of `key`, or what `load` reads (kept when it is `Some`), with a
    /// ticket taken before the read: the one read-through path of every cache.
    pub async fn get_or_try_load<E>(&self, key: K, load: impl Future<Output = Result<Option<V>, E>>) -> Result<Option<V>, E> {
        if let Some(value) = self.get(&key) {
            return Ok(Some(value));
        }
        let ticket = self.ticket();
        let loaded = load.await?;
        if let Some(value) = &loaded {
            self.put(ticket, key, value.clone());
        }
        Ok(loaded)
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.put(cache.ticket(), "a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        cache.clear();
        assert_eq!(cache.get("a"), None);
        let expired = TtlCache::new(Duration::ZERO, 10);
        expired.put(expired.ticket(), "a".to_owned(), 1);
        assert_eq!(expired.get("a"), None);
    }

    #[test]
    fn an_answer_read_before_a_clear_is_not_kept() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let before = cache.ticket();
        cache.clear();
        cache.put(before, "a".to_owned(), 1);
        assert_eq!(cache.get("a"), None);
        cache.put(cache.ticket(), "a".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(2));
    }

    #[tokio::test]
    async fn read_through_keeps_what_was_found_and_nothing_else() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let found = cache.get_or_try_load("a".to_owned(), async { Ok::<_, ()>(Some(1)) }).await;
        assert_eq!(found, Ok(Some(1)));
        // Kept: the loader is not asked again.
        assert_eq!(cache.get_or_try_load("a".to_owned(), async { Err(()) }).await, Ok(Some(1)));
        // Nothing found, or an error: nothing kept.
        assert_eq!(cache.get_or_try_load("b".to_owned(), async { Ok::<_, ()>(None) }).await, Ok(None));
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get_or_try_load("c".to_owned(), async { Err::<Option<i32>, _>("down") }).await, Err("down"));
        assert_eq!(cache.get("c"), None);
        // A clear while the loader reads: its answer is passed on, not kept.
        let answer = cache
            .get_or_try_load("d".to_owned(), async {
                cache.clear();
                Ok::<_, ()>(Some(4))
            })
            .await;
        assert_eq!((answer, cache.get("d")), (Ok(Some(4)), None));
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = TtlCache::new(Duration::from_secs(60), 100);
        for i in 0..105 {
            cache.put(cache.ticket(), i, i);
        }
        assert_eq!(cache.get(&104), Some(104));
        assert!(cache.lock().entries.len() <= 100);
    }
}
