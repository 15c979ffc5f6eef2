//! This node among several: the node-to-node protocol over a [`Cluster`] (its bus and its
//! user → node directory).
//!
//! - An event for a user whose socket is on another node goes to an ordered forwarder: each
//!   batch of queued events looks up the users' nodes once and publishes one bus message per
//!   node (a JSON array of `{"kind": "event", to, event}` objects). Nothing of this runs for
//!   a user on this node.
//! - This node's inbox is served by the [`ChatService`](crate::ChatService): an event is
//!   observed into the recipient's link, then handed to their socket; a `replaced` message
//!   closes the user's socket here ([`Delivery::replaced_elsewhere`](crate::Delivery::replaced_elsewhere)) and
//!   forgets their chat, which their new node holds now.
//! - A socket connecting claims its user in the directory, telling the node that held them
//!   before; a socket leaving releases them (unless another node took over).

use std::collections::HashMap;
use std::sync::Arc;

use chat_domain::UserId;
use chat_storage::{Cluster, Inbox};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::delivery::Outgoing;

/// How many forwarded events one bus message carries at most.
pub const FORWARD_BATCH: usize = 256;

/// This node's membership in a cluster, handed to [`ChatService::new`](crate::ChatService::new)
/// through [`ChatParts`](crate::ChatParts): the cluster handle and the inbox of messages
/// published to this node.
pub struct Membership {
    /// The bus and the directory, as this node sees them.
    pub cluster: Arc<dyn Cluster>,
    /// Messages published to this node.
    pub inbox: Inbox,
}

/// What travels on the bus between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum BusMessage {
    /// A chat event for a user whose socket is on the receiving node.
    Event {
        /// The user.
        to: UserId,
        /// The event.
        event: Outgoing,
    },
    /// The user connected on another node: their socket here is replaced.
    Replaced {
        /// The user.
        user: UserId,
    },
}

impl BusMessage {
    /// The messages of one bus payload, or `None` (logged) if it cannot be read.
    pub(crate) fn decode(text: &str) -> Option<Vec<Self>> {
        match serde_json::from_str(text) {
            Ok(messages) => Some(messages),
            Err(error) => {
                tracing::warn!(%error, "unreadable bus message");
                None
            }
        }
    }
}

/// The running part of a membership: the cluster handle and the forwarder's queue.
pub(crate) struct Node {
    cluster: Arc<dyn Cluster>,
    /// Events for users on other nodes, in order.
    outbox: mpsc::UnboundedSender<(UserId, Outgoing)>,
}

impl Node {
    /// Starts the forwarder on `tasks` (it stops at `shutdown`, after sending what is
    /// queued); returns the node and the inbox for the service to serve.
    pub(crate) fn start(
        membership: Membership,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> (Self, Inbox) {
        let Membership { cluster, inbox } = membership;
        let (outbox, queue) = mpsc::unbounded_channel();
        tasks.spawn(run_forwarder(cluster.clone(), queue, shutdown.clone()));
        (Self { cluster, outbox }, inbox)
    }

    /// The cluster handle.
    pub(crate) fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    /// Queues `event` for `to`'s node. Never blocks.
    pub(crate) fn forward(&self, to: &UserId, event: Outgoing) {
        let _ = self.outbox.send((to.clone(), event));
    }

    /// `user` connected here: the node that held them before (if another) replaces its
    /// socket, and this node becomes the one their events go to.
    pub(crate) async fn claim(&self, user: &UserId) {
        let previous = self.cluster.user_node(user).await.ok().flatten();
        if let Some(previous) = previous.filter(|previous| previous != self.cluster.node_id()) {
            let message = [BusMessage::Replaced { user: user.clone() }];
            if let Ok(text) = serde_json::to_string(&message)
                && let Err(error) = self.cluster.publish(&previous, text).await
            {
                tracing::warn!(%error, "could not publish to another node");
            }
        }
        if let Err(error) = self.cluster.set_user_node(user).await {
            tracing::warn!(%error, "could not record the user's node");
        }
    }

    /// `user`'s socket here is gone.
    pub(crate) async fn release(&self, user: &UserId) {
        if let Err(error) = self.cluster.clear_user_node(user).await {
            tracing::warn!(%error, "could not clear the user's node");
        }
    }
}

/// Forwards queued events in order, a batch at a time, until the queue's sender is gone or
/// `shutdown` is cancelled; then what is already queued is sent too.
async fn run_forwarder(
    cluster: Arc<dyn Cluster>,
    mut queue: mpsc::UnboundedReceiver<(UserId, Outgoing)>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            received = queue.recv_many(&mut batch, FORWARD_BATCH) => received,
        };
        if received == 0 {
            return;
        }
        send_batch(cluster.as_ref(), &mut batch).await;
    }
    // Shutting down: what was queued before still goes out.
    loop {
        while batch.len() < FORWARD_BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        send_batch(cluster.as_ref(), &mut batch).await;
    }
}

/// Sends the events of `batch` (emptied) to their users' nodes, one bus message per node;
/// events for users on no other node are dropped.
async fn send_batch(cluster: &dyn Cluster, batch: &mut Vec<(UserId, Outgoing)>) {
    let own = cluster.node_id();
    let mut nodes: HashMap<UserId, Option<String>> = HashMap::new();
    let mut by_node: HashMap<String, Vec<BusMessage>> = HashMap::new();
    for (to, event) in batch.drain(..) {
        if !nodes.contains_key(&to) {
            let node = cluster
                .user_node(&to)
                .await
                .ok()
                .flatten()
                .filter(|node| node != own);
            nodes.insert(to.clone(), node);
        }
        if let Some(Some(node)) = nodes.get(&to) {
            by_node
                .entry(node.clone())
                .or_default()
                .push(BusMessage::Event { to, event });
        }
    }
    for (node, messages) in by_node {
        let Ok(text) = serde_json::to_string(&messages) else {
            continue;
        };
        if let Err(error) = cluster.publish(&node, text).await {
            tracing::warn!(%error, "could not forward events to another node");
        }
    }
}
