//! Acknowledgements the server waits for: ids, pending senders, and the cleanup that keeps the
//! map from leaking on timeout, disconnect or a dropped future.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::registry::lock;

/// Pending acknowledgements of one socket. The map allocates only once an ack is requested.
#[derive(Default)]
pub(crate) struct PendingAcks {
    next_id: AtomicI64,
    waiting: Mutex<HashMap<i64, oneshot::Sender<Vec<Value>>>>,
}

impl PendingAcks {
    /// Reserves an ack id and the receiver its answer will arrive on.
    pub(crate) fn register(&self) -> (i64, oneshot::Receiver<Vec<Value>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiting).insert(id, sender);
        (id, receiver)
    }

    /// Delivers the client's answer to `id`; unknown or late ids are ignored.
    pub(crate) fn resolve(&self, id: i64, args: Vec<Value>) {
        let sender = lock(&self.waiting).remove(&id);
        if let Some(sender) = sender {
            // The waiter may have given up already; nothing to do then.
            let _ = sender.send(args);
        }
    }

    pub(crate) fn remove(&self, id: i64) {
        let mut waiting = lock(&self.waiting);
        waiting.remove(&id);
        if waiting.is_empty() && waiting.capacity() > 0 {
            *waiting = HashMap::new();
        }
    }

    /// Drops every pending sender: their waiters see the socket as disconnected.
    pub(crate) fn clear(&self) {
        let waiting = std::mem::take(&mut *lock(&self.waiting));
        drop(waiting);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.waiting).len()
    }
}

/// Removes an ack id from its socket's map when the waiting future ends or is dropped.
pub(crate) struct AckGuard<'a> {
    pub(crate) acks: &'a PendingAcks,
    pub(crate) id: i64,
}

impl Drop for AckGuard<'_> {
    fn drop(&mut self) {
        self.acks.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn resolve_delivers_and_clear_disconnects() {
        let acks = PendingAcks::default();
        let (first, first_rx) = acks.register();
        let (_, second_rx) = acks.register();
        assert_eq!(acks.len(), 2);
        acks.resolve(first, vec![json!(1)]);
        assert_eq!(first_rx.await.ok(), Some(vec![json!(1)]));
        acks.clear();
        assert!(second_rx.await.is_err());
        assert_eq!(acks.len(), 0);
    }

    #[test]
    fn guard_removes_on_drop() {
        let acks = PendingAcks::default();
        let (id, _rx) = acks.register();
        drop(AckGuard { acks: &acks, id });
        assert_eq!(acks.len(), 0);
    }
}
