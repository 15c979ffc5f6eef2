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
use tokio::{sync::oneshot, time::Instant};

use crate::{error::AckError, registry::lock};

/// What to call with a client's answer (see [`Socket::emit_with_ack_callback`](crate::Socket::emit_with_ack_callback)).
pub(crate) type AckCallback = Box<dyn FnOnce(Result<Vec<Value>, AckError>) + Send>;

/// Who waits for one acknowledgement.
enum Waiter {
    /// A future (`emit_with_ack`), which also keeps its own timeout.
    Future(oneshot::Sender<Vec<Value>>),
    /// A callback, run by whoever resolves, expires or clears it.
    Callback {
        deadline: Instant,
        call: AckCallback,
    },
}

/// Pending acknowledgements of one socket. The map allocates only once an ack is requested.
#[derive(Default)]
pub(crate) struct PendingAcks {
    next_id: AtomicI64,
    waiting: Mutex<HashMap<i64, Waiter>>,
}

impl PendingAcks {
    /// Reserves an ack id and the receiver its answer will arrive on.
    pub(crate) fn register(&self) -> (i64, oneshot::Receiver<Vec<Value>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiting).insert(id, Waiter::Future(sender));
        (id, receiver)
    }

    /// Reserves an ack id answered by calling `call`, with `Err(Timeout)` once `deadline`
    /// has passed.
    pub(crate) fn register_callback(&self, deadline: Instant, call: AckCallback) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).insert(id, Waiter::Callback { deadline, call });
        id
    }

    /// Delivers the client's answer to `id`; unknown or late ids are ignored.
    pub(crate) fn resolve(&self, id: i64, args: Vec<Value>) {
        let waiter = lock(&self.waiting).remove(&id);
        match waiter {
            // The waiter may have given up already; nothing to do then.
            Some(Waiter::Future(sender)) => drop(sender.send(args)),
            Some(Waiter::Callback { deadline, call }) if Instant::now() <= deadline => {
                call(Ok(args));
            }
            Some(Waiter::Callback { call, .. }) => call(Err(AckError::Timeout)),
            None => {}
        }
    }

    /// Answers every callback whose deadline passed with `Err(Timeout)`.
    pub(crate) fn expire(&self, now: Instant) {
        let expired: Vec<AckCallback> = lock(&self.waiting)
            .extract_if(
                |_, waiter| matches!(waiter, Waiter::Callback { deadline, .. } if *deadline < now),
            )
            .filter_map(|(_, waiter)| match waiter {
                Waiter::Callback { call, .. } => Some(call),
                Waiter::Future(_) => None,
            })
            .collect();
        for call in expired {
            call(Err(AckError::Timeout));
        }
    }

    pub(crate) fn remove(&self, id: i64) {
        let mut waiting = lock(&self.waiting);
        waiting.remove(&id);
        if waiting.is_empty() && waiting.capacity() > 0 {
            *waiting = HashMap::new();
        }
    }

    /// Drops every pending sender and answers every callback: their waiters see the socket
    /// as disconnected.
    pub(crate) fn clear(&self) {
        let waiting = std::mem::take(&mut *lock(&self.waiting));
        for waiter in waiting.into_values() {
            if let Waiter::Callback { call, .. } = waiter {
                call(Err(AckError::Disconnected));
            }
        }
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

    fn recorder() -> (
        AckCallback,
        std::sync::mpsc::Receiver<Result<Vec<Value>, AckError>>,
    ) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let call: AckCallback = Box::new(move |answer| drop(sender.send(answer)));
        (call, receiver)
    }

    #[tokio::test(start_paused = true)]
    async fn callbacks_are_answered_once_by_resolve_expiry_or_clear() {
        let acks = PendingAcks::default();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let (call, answered) = recorder();
        let id = acks.register_callback(deadline, call);
        acks.expire(Instant::now());
        assert!(
            answered.try_recv().is_err(),
            "not expired before its deadline"
        );
        acks.resolve(id, vec![json!("ok")]);
        assert_eq!(answered.try_recv().unwrap().unwrap(), vec![json!("ok")]);
        acks.resolve(id, vec![json!("again")]);
        assert!(answered.try_recv().is_err(), "answered once");

        let (call, expired) = recorder();
        acks.register_callback(deadline, call);
        tokio::time::advance(std::time::Duration::from_secs(11)).await;
        acks.expire(Instant::now());
        assert!(matches!(
            expired.try_recv().unwrap(),
            Err(AckError::Timeout)
        ));

        let (call, late) = recorder();
        let id = acks.register_callback(Instant::now(), call);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        acks.resolve(id, vec![]);
        assert!(matches!(late.try_recv().unwrap(), Err(AckError::Timeout)));

        let (call, cleared) = recorder();
        acks.register_callback(deadline, call);
        acks.clear();
        assert!(matches!(
            cleared.try_recv().unwrap(),
            Err(AckError::Disconnected)
        ));
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
