//! `ChunkedMap`: a sorted map kept as shared chunks of at most
//! `MAX_CHUNK` entries, so that copying it costs a pointer per chunk and
//! changing one entry of a copy copies one chunk. A bucket's state (units
//! and the idempotency table) grows with its history, and a replica copies
//! it whenever it changes a bucket it shares with its last save: with a
//! plain map every write would cost the whole history.
//!
//! It behaves as a `BTreeMap`: equality, ordering and hashing are those of
//! its entries in key order (however they are split into chunks), and it
//! serialises as a map, in the same format.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The most entries in one chunk; a fuller one is split in two.
const MAX_CHUNK: usize = 16;

/// A sorted map of shared chunks (see the module's documentation).
#[derive(Clone)]
pub struct ChunkedMap<K, V> {
    /// Each chunk under its smallest key; no chunk is empty.
    chunks: BTreeMap<K, Arc<BTreeMap<K, V>>>,
    len: usize,
}

impl<K, V> Default for ChunkedMap<K, V> {
    fn default() -> Self {
        ChunkedMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Clone, V: Clone> ChunkedMap<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key of the chunk that holds, or would hold, `key`.
    fn chunk_of(&self, key: &K) -> Option<K> {
        self.chunks
            .range(..=key)
            .next_back()
            .or_else(|| self.chunks.iter().next())
            .map(|(first, _)| first.clone())
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.chunks.range(..=key).next_back()?.1.get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Puts `chunk` back under its smallest key, split if too full.
    fn put_back(&mut self, mut chunk: Arc<BTreeMap<K, V>>) {
        if chunk.len() > MAX_CHUNK {
            let middle = chunk.keys().nth(chunk.len() / 2).expect("full").clone();
            let upper = Arc::make_mut(&mut chunk).split_off(&middle);
            self.chunks.insert(middle, Arc::new(upper));
        }
        if let Some(first) = chunk.keys().next().cloned() {
            self.chunks.insert(first, chunk);
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(at) = self.chunk_of(&key) else {
            self.len = 1;
            self.chunks
                .insert(key.clone(), Arc::new(BTreeMap::from([(key, value)])));
            return None;
        };
        let mut chunk = self.chunks.remove(&at).expect("found");
        let old = Arc::make_mut(&mut chunk).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        self.put_back(chunk);
        old
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.chunks.range(..=key).next_back()?.0.clone();
        if !self.chunks[&at].contains_key(key) {
            return None;
        }
        let mut chunk = self.chunks.remove(&at).expect("found");
        let old = Arc::make_mut(&mut chunk).remove(key);
        self.len -= 1;
        self.put_back(chunk);
        old
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.chunks.values().flat_map(|chunk| chunk.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, value)| value)
    }
}

impl<'a, K: Ord + Clone, V: Clone> IntoIterator for &'a ChunkedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Ord + Clone, V: Clone> Extend<(K, V)> for ChunkedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for ChunkedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = ChunkedMap::default();
        map.extend(entries);
        map
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for ChunkedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let aligned =
            self.chunks.len() == other.chunks.len() && self.chunks.keys().eq(other.chunks.keys());
        if aligned {
            // Split alike: chunks shared with the other copy need no look.
            return self
                .chunks
                .values()
                .zip(other.chunks.values())
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b);
        }
        self.iter().eq(other.iter())
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for ChunkedMap<K, V> {}

impl<K: Ord + Clone, V: Clone + Ord> PartialOrd for ChunkedMap<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord + Clone, V: Clone + Ord> Ord for ChunkedMap<K, V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<K: Ord + Clone + Hash, V: Clone + Hash> Hash for ChunkedMap<K, V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len);
        for entry in self.iter() {
            entry.hash(state);
        }
    }
}

impl<K: Ord + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for ChunkedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> Serialize for ChunkedMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The length first, as a `BTreeMap` does (postcard needs it).
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for ChunkedMap<K, V>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Goal: a `ChunkedMap` behaves as a `BTreeMap` under any inserts
        /// and removals (entries, order, length, equality with a copy
        /// built otherwise, the serialised form), and a copy is unchanged
        /// by changes to the original.
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec((any::<bool>(), 0u16..400, any::<u8>()), 0..800)) {
            let mut map = ChunkedMap::default();
            let mut reference = BTreeMap::new();
            let mut copy = None;
            for (index, (insert, key, value)) in ops.iter().enumerate() {
                if index == ops.len() / 2 {
                    copy = Some((map.clone(), reference.clone()));
                }
                if *insert {
                    prop_assert_eq!(map.insert(*key, *value), reference.insert(*key, *value));
                } else {
                    prop_assert_eq!(map.remove(key), reference.remove(key));
                }
                prop_assert_eq!(map.get(key), reference.get(key));
            }
            prop_assert_eq!(map.len(), reference.len());
            prop_assert!(map.iter().eq(reference.iter()));
            let rebuilt: ChunkedMap<u16, u8> = reference.clone().into_iter().rev().collect();
            prop_assert_eq!(&rebuilt, &map);
            prop_assert_eq!(
                serde_json::to_string(&map).unwrap(),
                serde_json::to_string(&reference).unwrap()
            );
            if let Some((map, reference)) = copy {
                prop_assert!(map.iter().eq(reference.iter()));
            }
        }
    }
}
