//! A sharded map from session or socket id to value, so that concurrent connects, disconnects
//! and polling requests rarely contend on one lock.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use engineioxide_core::Sid;

const SHARDS: usize = 32;

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its data
/// consistent, so a panic elsewhere must not take the server down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sharded `Sid -> V` map with an exact length.
pub(crate) struct Registry<V> {
    shards: Box<[Mutex<HashMap<Sid, V>>]>,
    len: AtomicUsize,
}

impl<V: Clone> Registry<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, sid: &Sid) -> &Mutex<HashMap<Sid, V>> {
        let hash = sid.as_str().bytes().fold(0usize, |acc, byte| {
            acc.wrapping_mul(31).wrapping_add(usize::from(byte))
        });
        &self.shards[hash % SHARDS]
    }

    /// Inserts `value`, replacing (and returning) any previous value for `sid`.
    pub(crate) fn insert(&self, sid: Sid, value: V) -> Option<V> {
        let previous = lock(self.shard(&sid)).insert(sid, value);
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        previous
    }

    pub(crate) fn remove(&self, sid: &Sid) -> Option<V> {
        let removed = lock(self.shard(sid)).remove(sid);
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    pub(crate) fn get(&self, sid: &Sid) -> Option<V> {
        lock(self.shard(sid)).get(sid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Clones out every value `keep` accepts, one shard lock at a time, so the caller can act
    /// on them without holding any registry lock.
    pub(crate) fn collect(&self, mut keep: impl FnMut(&V) -> bool) -> Vec<V> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(shard).values().filter(|value| keep(value)).cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_keep_the_length_exact() {
        let registry = Registry::new();
        let ids: Vec<Sid> = (0..100).map(|_| Sid::new()).collect();
        for (index, sid) in ids.iter().enumerate() {
            assert!(registry.insert(*sid, index).is_none());
        }
        assert_eq!(registry.len(), 100);
        assert_eq!(registry.insert(ids[0], 1000), Some(0));
        assert_eq!(registry.len(), 100);
        assert_eq!(registry.get(&ids[0]), Some(1000));
        assert_eq!(registry.remove(&ids[1]), Some(1));
        assert_eq!(registry.remove(&ids[1]), None);
        assert_eq!(registry.len(), 99);
        assert_eq!(registry.collect(|value| *value >= 98).len(), 3);
    }
}
