//! `SortedVecMap`: the planner's working maps. A plan holds a few dozen keys that mostly
//! arrive in order, so a sorted vector (an append when the key sorts last, else a binary
//! search) beats a B-tree here; the result converts to a `BTreeMap` in linear time.

use std::borrow::Borrow;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub(crate) struct SortedVecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K: Ord, V> Default for SortedVecMap<K, V> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<K: Ord, V> SortedVecMap<K, V> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { entries: Vec::with_capacity(capacity) }
    }

    fn position<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        match self.entries.last() {
            Some((last, _)) if last.borrow() < key => Err(self.entries.len()),
            None => Err(0),
            _ => self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key)),
        }
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.position(key).is_ok()
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.position(key).ok().map(|i| self.entries.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn into_entries(self) -> Vec<(K, V)> {
        self.entries
    }

    pub fn into_btree_map(self) -> BTreeMap<K, V> {
        self.entries.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut map = SortedVecMap::default();
        assert_eq!(map.insert(5, "e"), None);
        assert_eq!(map.insert(1, "a"), None);
        assert_eq!(map.insert(9, "i"), None);
        assert_eq!(map.insert(3, "c"), None);
        assert_eq!(map.insert(3, "C"), Some("c"));
        assert_eq!(map.get(&3), Some(&"C"));
        assert_eq!(map.get(&4), None);
        assert!(map.contains_key(&9) && !map.contains_key(&10) && !map.contains_key(&0));
        assert_eq!(map.remove(&5), Some("e"));
        assert_eq!(map.remove(&5), None);
        assert_eq!(map.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3, 9]);
        let btree = map.clone().into_btree_map();
        assert_eq!(btree.into_iter().collect::<Vec<_>>(), map.into_entries());
        let empty: SortedVecMap<u8, u8> = SortedVecMap::with_capacity(4);
        assert_eq!(empty.get(&1), None);
    }
}
