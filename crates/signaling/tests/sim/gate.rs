//! A pausable bus: each node's inbox is fed through a [`BusTap`], a relay task between the
//! in-process driver's inbox and the one the chat reads. While the tap is paused, messages
//! published to the node are held, in order; on resume they go on first, then whatever
//! follows. (The node's own publishes and its directory and registry calls, which live in
//! "Redis", are not cut off: this is a node whose subscription lags.)
//!
//! Tapping the inbox rather than wrapping the `Cluster` keeps the simulation independent of
//! the trait's methods.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chat_storage::Inbox;
use chat_storage::cluster::IN_PROCESS_BACKLOG;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The switch of one node's inbox.
pub struct BusTap {
    paused: watch::Sender<bool>,
    held: Arc<AtomicUsize>,
}

impl BusTap {
    /// Relays `inbox` to the returned inbox on `tasks` until `stop` (or until the driver
    /// closes `inbox`, when the node left the network).
    pub fn start(inbox: Inbox, tasks: &TaskTracker, stop: CancellationToken) -> (Self, Inbox) {
        let (sender, tapped) = mpsc::channel(IN_PROCESS_BACKLOG);
        let (paused, watching) = watch::channel(false);
        let held = Arc::new(AtomicUsize::new(0));
        tasks.spawn(relay(inbox, sender, watching, held.clone(), stop));
        (Self { paused, held }, tapped)
    }

    /// Holds every message to this node from now on.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Lets the held messages and the next ones through; returns how many were held.
    pub fn resume(&self) -> usize {
        self.paused.send_replace(false);
        self.held.load(Ordering::SeqCst)
    }
}

async fn relay(
    mut inbox: Inbox,
    sender: mpsc::Sender<String>,
    mut paused: watch::Receiver<bool>,
    held_count: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut held: VecDeque<String> = VecDeque::new();
    loop {
        if !*paused.borrow_and_update() {
            while let Some(message) = held.pop_front() {
                if sender.send(message).await.is_err() {
                    return;
                }
            }
            held_count.store(0, Ordering::SeqCst);
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            changed = paused.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            message = inbox.recv() => {
                let Some(message) = message else { return };
                if *paused.borrow() {
                    held.push_back(message);
                    held_count.store(held.len(), Ordering::SeqCst);
                } else if sender.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}
