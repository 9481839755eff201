//! Short-lived memory of what the database answered, for hot paths: API token checks, and
//! the proxy's usage tokens and platform keys. Entries expire after the cache's TTL, so a
//! change made through another wsd process is seen within it; a change made through this
//! process clears the cache at once.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; beyond it expired entries go, then everything.
const CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(value, _)| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let cache = TtlCache::new(Duration::from_secs(60));
        cache.put("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        cache.clear();
        assert_eq!(cache.get("a"), None);
        let expired = TtlCache::new(Duration::ZERO);
        expired.put("a".to_owned(), 1);
        assert_eq!(expired.get("a"), None);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = TtlCache::new(Duration::from_secs(60));
        for i in 0..CAPACITY + 5 {
            cache.put(i, i);
        }
        assert_eq!(cache.get(&(CAPACITY + 4)), Some(CAPACITY + 4));
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
