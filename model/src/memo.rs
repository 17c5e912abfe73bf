//! `HashMemo`: a value's hash, computed once and kept beside it.
//!
//! The model checker fingerprints every state it generates by hashing the
//! whole state, and most of a state is shared, unchanged, with the state
//! it came from: a step changes one bucket of one replica. A type that is
//! shared behind an `Arc` and changed only copy-on-write (`DurableBucket`)
//! keeps its hash here, so that hashing a state costs, for the parts a
//! step did not touch, one `u64` each instead of their whole content.
//!
//! Soundness rests on one rule: **the memo is cleared whenever the value
//! may change.** A copy starts empty (`Clone`), and every mutable access
//! to a memoised value goes through a function that clears it first
//! (`DurableBucket::edit`). A stale memo would make two different states
//! look the same, and the checker would silently skip states; the
//! checker's tests compare each memo with a fresh hash in every state of a
//! run (`hash memos are current`).
//!
//! The runtime never hashes its state, so the memo stays empty there and
//! costs one word per bucket.

use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The hash of the value that holds it, once computed (0: not yet).
#[derive(Default)]
pub struct HashMemo(AtomicU64);

impl HashMemo {
    /// The memoised hash, computing it with `content` the first time. The
    /// hasher is SipHash with fixed keys, so the value is the same in
    /// every thread and every run.
    pub fn get_or_compute(&self, content: impl FnOnce(&mut DefaultHasher)) -> u64 {
        let known = self.0.load(Ordering::Relaxed);
        if known != 0 {
            return known;
        }
        let mut hasher = DefaultHasher::new();
        content(&mut hasher);
        // 0 means "not computed"; a content hash of 0 is stored as 1.
        let hash = hasher.finish().max(1);
        self.0.store(hash, Ordering::Relaxed);
        hash
    }

    /// Forget the hash: the value is about to change.
    pub fn clear(&mut self) {
        *self.0.get_mut() = 0;
    }

    /// The memoised hash, if computed (for the checker's test that memos
    /// are current).
    pub fn known(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            hash => Some(hash),
        }
    }
}

/// A copy starts with no hash: copies are made to be changed.
impl Clone for HashMemo {
    fn clone(&self) -> Self {
        HashMemo::default()
    }
}

/// Not part of the value: two values equal in content are equal.
impl PartialEq for HashMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HashMemo {}

impl std::fmt::Debug for HashMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashMemo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn a_memo_is_computed_once_and_cleared_by_a_change_or_a_copy() {
        let mut memo = HashMemo::default();
        assert_eq!(memo.known(), None);
        let first = memo.get_or_compute(|h| 7u32.hash(h));
        // Once known, the content is not looked at again.
        assert_eq!(memo.get_or_compute(|h| 8u32.hash(h)), first);
        assert_eq!(memo.clone().known(), None);
        memo.clear();
        assert_ne!(memo.get_or_compute(|h| 8u32.hash(h)), first);
    }
}
