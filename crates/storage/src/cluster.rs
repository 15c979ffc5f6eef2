//! [`Cluster`]: what the nodes of one deployment share besides storage: the bus that carries
//! messages from one node to another, and the directory of which node holds each user's
//! socket.
//!
//! Drivers, side by side:
//! - [`InProcessNetwork`] / [`InProcessCluster`]: several nodes in one process (tests, and the
//!   single node of memory mode), a map and one bounded channel per node;
//! - `redis::RedisCluster` (feature `redis`): Redis pub/sub, one channel per node, and the
//!   directory in Redis keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chat_domain::UserId;
use tokio::sync::mpsc;

use crate::StoreResult;

/// Messages published to one node, in publish order per publisher.
pub type Inbox = tokio::sync::mpsc::Receiver<String>;

/// What `/readyz` says of the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusHealth {
    /// Whether this node's subscription is live, so that messages published to it arrive.
    pub up: bool,
}

/// The bus between nodes and the user → node directory.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// Sends `payload` to `node`'s inbox.
    async fn publish(&self, node: &str, payload: String) -> StoreResult<()>;

    /// Records that `user`'s socket lives on this node.
    async fn set_user_node(&self, user: &UserId) -> StoreResult<()>;

    /// Forgets that `user`'s socket lives on this node (not if another node took over).
    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()>;

    /// The node holding `user`'s socket.
    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>>;

    /// Whether this node's subscription is live. Cheap, no I/O.
    fn bus_health(&self) -> BusHealth;
}

/// How many messages an in-process inbox holds before publishers wait.
pub const IN_PROCESS_BACKLOG: usize = 65_536;

/// The shared "Redis" of several nodes living in one process: the directory and one inbox per
/// joined node. Clones share the same network; nothing is global, so each test builds its own.
#[derive(Debug, Clone)]
pub struct InProcessNetwork {
    shared: Arc<Mutex<Network>>,
    backlog: usize,
}

impl Default for InProcessNetwork {
    fn default() -> Self {
        Self::with_backlog(IN_PROCESS_BACKLOG)
    }
}

#[derive(Debug, Default)]
struct Network {
    directory: HashMap<UserId, String>,
    nodes: HashMap<String, Joined>,
    /// Tells apart the successive joins of one node id.
    next_generation: u64,
}

#[derive(Debug)]
struct Joined {
    generation: u64,
    inbox: mpsc::Sender<String>,
}

impl InProcessNetwork {
    /// An empty network whose inboxes hold `backlog` messages (at least one) before a
    /// publisher waits for the node to take some.
    pub fn with_backlog(backlog: usize) -> Self {
        Self {
            shared: Arc::default(),
            backlog: backlog.max(1),
        }
    }

    /// Joins `node_id` to the network: returns its cluster handle and its inbox. Joining an id
    /// already joined replaces the earlier node (its inbox closes).
    pub fn join(&self, node_id: impl Into<String>) -> (Arc<InProcessCluster>, Inbox) {
        let node_id = node_id.into();
        let (sender, inbox) = mpsc::channel(self.backlog);
        let mut network = self.lock();
        let generation = network.next_generation;
        network.next_generation += 1;
        network.nodes.insert(
            node_id.clone(),
            Joined {
                generation,
                inbox: sender,
            },
        );
        drop(network);
        let cluster = InProcessCluster {
            network: self.clone(),
            node_id,
            generation,
        };
        (Arc::new(cluster), inbox)
    }

    /// The node is gone: messages published to it from now on are dropped (as Redis drops
    /// messages to a channel nobody subscribes to) and its inbox closes once what was already
    /// queued has been read. Its directory entries stay, as they would in Redis.
    pub fn leave(&self, node_id: &str) {
        self.lock().nodes.remove(node_id);
    }

    /// The ids of the joined nodes, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.lock().nodes.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    fn lock(&self) -> MutexGuard<'_, Network> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node of an [`InProcessNetwork`].
#[derive(Debug)]
pub struct InProcessCluster {
    network: InProcessNetwork,
    node_id: String,
    generation: u64,
}

impl InProcessCluster {
    /// The network this node joined.
    pub fn network(&self) -> &InProcessNetwork {
        &self.network
    }
}

#[async_trait]
impl Cluster for InProcessCluster {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn publish(&self, node: &str, payload: String) -> StoreResult<()> {
        // The sender is cloned under the lock and used after it is released.
        let sender = self
            .network
            .lock()
            .nodes
            .get(node)
            .map(|joined| joined.inbox.clone());
        if let Some(sender) = sender {
            // A closed inbox is a node that went away: the message is dropped, as in Redis.
            let _ = sender.send(payload).await;
        }
        Ok(())
    }

    async fn set_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.network
            .lock()
            .directory
            .insert(user.clone(), self.node_id.clone());
        Ok(())
    }

    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()> {
        let mut network = self.network.lock();
        if network.directory.get(user) == Some(&self.node_id) {
            network.directory.remove(user);
        }
        Ok(())
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        Ok(self.network.lock().directory.get(user).cloned())
    }

    fn bus_health(&self) -> BusHealth {
        let network = self.network.lock();
        let up = network.nodes.get(&self.node_id).is_some_and(|joined| {
            joined.generation == self.generation && !joined.inbox.is_closed()
        });
        BusHealth { up }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn publish_reaches_the_node_in_order() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (_second, mut second_inbox) = network.join("b");
        for index in 0..100 {
            first.publish("b", index.to_string()).await.unwrap();
        }
        for index in 0..100 {
            assert_eq!(second_inbox.recv().await, Some(index.to_string()));
        }
        assert!(second_inbox.try_recv().is_err());
        assert_eq!(network.nodes(), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_node_receives_its_own_messages_and_unknown_nodes_drop_them() {
        let network = InProcessNetwork::default();
        let (node, mut inbox) = network.join("a");
        node.publish("nobody", "lost".into()).await.unwrap();
        node.publish("a", "self".into()).await.unwrap();
        assert_eq!(inbox.recv().await.as_deref(), Some("self"));
    }

    #[tokio::test]
    async fn leaving_drops_messages_and_closes_the_inbox() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (second, mut second_inbox) = network.join("b");
        first.publish("b", "queued".into()).await.unwrap();
        assert!(second.bus_health().up);
        network.leave("b");
        assert!(!second.bus_health().up);
        first.publish("b", "dropped".into()).await.unwrap();
        assert_eq!(second_inbox.recv().await.as_deref(), Some("queued"));
        assert_eq!(second_inbox.recv().await, None);
        assert_eq!(network.nodes(), ["a"]);
    }

    #[tokio::test]
    async fn rejoining_replaces_the_earlier_node() {
        let network = InProcessNetwork::default();
        let (old, mut old_inbox) = network.join("a");
        let (new, mut new_inbox) = network.join("a");
        assert!(!old.bus_health().up);
        assert!(new.bus_health().up);
        assert_eq!(old_inbox.recv().await, None);
        old.publish("a", "to the new one".into()).await.unwrap();
        assert_eq!(new_inbox.recv().await.as_deref(), Some("to the new one"));
        drop(new_inbox);
        assert!(!new.bus_health().up, "a dropped inbox is no subscription");
    }

    #[tokio::test]
    async fn the_directory_follows_the_last_node_that_took_the_user() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (second, _second_inbox) = network.join("b");
        let user = UserId::generate();
        assert_eq!(first.user_node(&user).await.unwrap(), None);
        first.set_user_node(&user).await.unwrap();
        assert_eq!(second.user_node(&user).await.unwrap().as_deref(), Some("a"));
        second.set_user_node(&user).await.unwrap();
        // The node that lost the user clears nothing.
        first.clear_user_node(&user).await.unwrap();
        assert_eq!(first.user_node(&user).await.unwrap().as_deref(), Some("b"));
        second.clear_user_node(&user).await.unwrap();
        assert_eq!(first.user_node(&user).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_inbox_makes_the_publisher_wait_without_losing_messages() {
        let network = InProcessNetwork::with_backlog(2);
        let (node, mut inbox) = network.join("a");
        let publisher = tokio::spawn(async move {
            for index in 0..10 {
                node.publish("a", index.to_string()).await.unwrap();
            }
        });
        for index in 0..10 {
            assert_eq!(inbox.recv().await, Some(index.to_string()));
        }
        publisher.await.unwrap();
    }

    #[tokio::test]
    async fn networks_are_independent() {
        let (first, _first_inbox) = InProcessNetwork::default().join("a");
        let (second, _second_inbox) = InProcessNetwork::default().join("a");
        let user = UserId::generate();
        first.set_user_node(&user).await.unwrap();
        assert_eq!(second.user_node(&user).await.unwrap(), None);
    }
}
