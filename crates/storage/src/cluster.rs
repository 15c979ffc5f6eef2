//! [`Cluster`]: what the nodes of one deployment share besides storage: the bus that carries
//! messages from one node to another, the directory of which node holds each user's socket,
//! and the registry of live nodes.
//!
//! Drivers, side by side:
//! - [`InProcessNetwork`] / [`InProcessCluster`]: several nodes in one process (tests, and the
//!   single node of memory mode), a map and one bounded channel per node;
//! - `redis::RedisCluster` (feature `redis`): Redis pub/sub, one channel per node, and the
//!   directory and the registry in Redis keys.
//!
//! Liveness: each node [`heartbeat`](Cluster::heartbeat)s its record (last seen, sockets) a
//! few times per node timeout; [`census`](Cluster::census) splits the records into live and
//! dead by the driver's own clock (Redis `TIME`, or Tokio's clock in process, so paused time
//! drives it). Besides the directory, each node has a set of the users it *answers for*: the
//! users the directory places there, and those whose chat waits for them after their socket
//! dropped there (reconnect grace). [`claim_dead_node`](Cluster::claim_dead_node) hands that
//! set to exactly one survivor, which then stands in for the dead node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Timestamp, UserId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{StorageError, StoreResult};

/// Messages published to one node, in publish order per publisher.
pub type Inbox = tokio::sync::mpsc::Receiver<String>;

/// What `/readyz` says of the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusHealth {
    /// Whether this node's subscription is live, so that messages published to it arrive.
    pub up: bool,
}

/// A node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node's id.
    pub id: String,
    /// When the node started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub last_seen: Timestamp,
    /// How many sockets it held then.
    pub sockets: u64,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The node's record was there; it is refreshed.
    Refreshed,
    /// The node had no record (its first beat, the shared store lost its data, or the other
    /// nodes took it for dead and stood in for it): it is registered anew, and should record
    /// its users in the directory again.
    Registered,
    /// Nothing is shared right now (Redis is away): the node is on its own, nothing written.
    Alone,
}

/// The registry split by liveness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Nodes seen within the timeout, by id.
    pub live: Vec<NodeRecord>,
    /// Ids of the nodes not seen within the timeout (or gone away), still unclaimed.
    pub dead: Vec<String>,
}

/// The bus between nodes, the user → node directory and the registry of nodes.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// Sends `payload` to `node`'s inbox.
    async fn publish(&self, node: &str, payload: String) -> StoreResult<()>;

    /// Records that `user`'s socket lives on this node, which now answers for them (the node
    /// that held them before no longer does). The entry has no expiry: it goes when the
    /// socket leaves, or when a survivor stands in for a dead node. Fails with
    /// [`StorageError::Unavailable`] when nothing is shared right now (Redis is away): the
    /// caller records it again later.
    async fn set_user_node(&self, user: &UserId) -> StoreResult<()>;

    /// Forgets that `user`'s socket lives on this node (not if another node took over); this
    /// node no longer answers for them.
    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()>;

    /// [`Cluster::clear_user_node`], but this node still answers for `user` (their chat waits
    /// for them here) until [`Cluster::drop_held_user`]. By default the same as
    /// [`Cluster::clear_user_node`] (a driver without liveness).
    async fn clear_user_node_held(&self, user: &UserId) -> StoreResult<()> {
        self.clear_user_node(user).await
    }

    /// This node no longer answers for `user` (the wait for them is over). By default nothing.
    async fn drop_held_user(&self, user: &UserId) -> StoreResult<()> {
        let _ = user;
        Ok(())
    }

    /// The node holding `user`'s socket.
    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>>;

    /// Whether this node's subscription is live. Cheap, no I/O.
    fn bus_health(&self) -> BusHealth;

    // Liveness. The defaults are those of a driver without a registry: every beat is alone,
    // nobody is seen, nothing is claimed. Wrappers must forward these too.

    /// Refreshes this node's record: alive now, started at `started_at`, holding `sockets`.
    async fn heartbeat(&self, started_at: Timestamp, sockets: u64) -> StoreResult<Heartbeat> {
        let _ = (started_at, sockets);
        Ok(Heartbeat::Alone)
    }

    /// The registry: nodes seen within `timeout` are live, the others dead. `None` when
    /// nothing is shared right now (Redis is away).
    async fn census(&self, timeout: Duration) -> StoreResult<Option<Census>> {
        let _ = timeout;
        Ok(None)
    }

    /// Takes charge of `node` if it is still unseen for `timeout` and nobody took it yet (one
    /// caller at most gets it): its record goes, and the users it answered for are returned.
    async fn claim_dead_node(
        &self,
        node: &str,
        timeout: Duration,
    ) -> StoreResult<Option<Vec<UserId>>> {
        let _ = (node, timeout);
        Ok(None)
    }

    /// Drops `user`'s directory entry if it still names `node`; returns whether it did.
    async fn take_user_from(&self, user: &UserId, node: &str) -> StoreResult<bool> {
        let _ = (user, node);
        Ok(false)
    }

    /// This node is stopping: its record is marked gone, so the others see it dead at once
    /// (and one of them stands in for the users it still answers for).
    async fn deregister(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The error of a directory write while nothing is shared (Redis is away).
pub fn not_shared() -> StorageError {
    StorageError::Unavailable("the directory is not shared right now".into())
}

/// How many messages an in-process inbox holds before publishers wait.
pub const IN_PROCESS_BACKLOG: usize = 65_536;

/// The shared "Redis" of several nodes living in one process: the directory, the registry of
/// nodes and one inbox per joined node. Clones share the same network; nothing is global, so
/// each test builds its own. Liveness is judged by Tokio's clock, so paused time drives it.
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
    /// Each node's record and when it last beat (`None`: deregistered).
    registry: HashMap<String, (NodeRecord, Option<Instant>)>,
    /// The users each node answers for.
    held: HashMap<String, HashSet<UserId>>,
    /// Whether the shared store is away (see [`InProcessNetwork::set_outage`]).
    outage: bool,
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
    /// already joined replaces the earlier node (its inbox closes, its handle is dead).
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

    /// The node dies without a word (a crash, `SIGKILL`): messages published to it from now on
    /// are dropped (as Redis drops messages to a channel nobody subscribes to), its inbox
    /// closes once what was already queued has been read, and its handle neither publishes
    /// nor beats any more. Its record, directory entries and held users stay, as they would
    /// in Redis, until a survivor claims the node.
    pub fn leave(&self, node_id: &str) {
        self.lock().nodes.remove(node_id);
    }

    /// Simulates an outage of the shared store (`true`) and its return (`false`): meanwhile
    /// nothing is published, the directory neither records nor answers, and heartbeats say
    /// [`Heartbeat::Alone`], as through a failover store serving from memory.
    pub fn set_outage(&self, outage: bool) {
        self.lock().outage = outage;
    }

    /// The ids of the joined nodes, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.lock().nodes.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// The users node `node_id` answers for, sorted by id.
    pub fn held_users(&self, node_id: &str) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .lock()
            .held
            .get(node_id)
            .map(|users| users.iter().cloned().collect())
            .unwrap_or_default();
        users.sort_by(|first, second| first.as_str().cmp(second.as_str()));
        users
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

    /// Whether this handle is the node's current join (not left, not replaced).
    fn is_joined(&self, network: &Network) -> bool {
        network
            .nodes
            .get(&self.node_id)
            .is_some_and(|joined| joined.generation == self.generation)
    }

    /// The network, locked, for a call of this node; an error once the node is gone.
    fn live(&self) -> StoreResult<MutexGuard<'_, Network>> {
        let network = self.network.lock();
        if self.is_joined(&network) {
            Ok(network)
        } else {
            Err(StorageError::Unavailable(format!(
                "node {} left the network",
                self.node_id
            )))
        }
    }

    /// Clears `user`'s entry if it names this node; unless `hold`, stops holding them.
    fn clear(&self, user: &UserId, hold: bool) -> StoreResult<()> {
        let mut network = self.live()?;
        if network.outage {
            return Ok(());
        }
        if network.directory.get(user) == Some(&self.node_id) {
            network.directory.remove(user);
        }
        if !hold && let Some(held) = network.held.get_mut(&self.node_id) {
            held.remove(user);
        }
        Ok(())
    }
}

#[async_trait]
impl Cluster for InProcessCluster {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn publish(&self, node: &str, payload: String) -> StoreResult<()> {
        // The sender is cloned under the lock and used after it is released. A node that is
        // gone sends nothing.
        let sender = {
            let network = self.network.lock();
            if network.outage || !self.is_joined(&network) {
                None
            } else {
                network.nodes.get(node).map(|joined| joined.inbox.clone())
            }
        };
        if let Some(sender) = sender {
            // A closed inbox is a node that went away: the message is dropped, as in Redis.
            let _ = sender.send(payload).await;
        }
        Ok(())
    }

    async fn set_user_node(&self, user: &UserId) -> StoreResult<()> {
        let mut network = self.live()?;
        if network.outage {
            return Err(not_shared());
        }
        let previous = network.directory.insert(user.clone(), self.node_id.clone());
        if let Some(previous) = previous.filter(|previous| previous != &self.node_id)
            && let Some(held) = network.held.get_mut(&previous)
        {
            held.remove(user);
        }
        network
            .held
            .entry(self.node_id.clone())
            .or_default()
            .insert(user.clone());
        Ok(())
    }

    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.clear(user, false)
    }

    async fn clear_user_node_held(&self, user: &UserId) -> StoreResult<()> {
        self.clear(user, true)
    }

    async fn drop_held_user(&self, user: &UserId) -> StoreResult<()> {
        let mut network = self.live()?;
        if !network.outage
            && let Some(held) = network.held.get_mut(&self.node_id)
        {
            held.remove(user);
        }
        Ok(())
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        let network = self.network.lock();
        if network.outage {
            return Ok(None);
        }
        Ok(network.directory.get(user).cloned())
    }

    fn bus_health(&self) -> BusHealth {
        let network = self.network.lock();
        let up = !network.outage
            && network.nodes.get(&self.node_id).is_some_and(|joined| {
                joined.generation == self.generation && !joined.inbox.is_closed()
            });
        BusHealth { up }
    }

    async fn heartbeat(&self, started_at: Timestamp, sockets: u64) -> StoreResult<Heartbeat> {
        let mut network = self.live()?;
        if network.outage {
            return Ok(Heartbeat::Alone);
        }
        let record = NodeRecord {
            id: self.node_id.clone(),
            started_at,
            last_seen: Timestamp::now(),
            sockets,
        };
        let previous = network
            .registry
            .insert(self.node_id.clone(), (record, Some(Instant::now())));
        Ok(match previous {
            Some((_, Some(_))) => Heartbeat::Refreshed,
            _ => Heartbeat::Registered,
        })
    }

    async fn census(&self, timeout: Duration) -> StoreResult<Option<Census>> {
        let network = self.network.lock();
        if network.outage {
            return Ok(None);
        }
        let mut census = Census::default();
        for (id, (record, beat)) in &network.registry {
            if beat.is_some_and(|beat| beat.elapsed() < timeout) {
                census.live.push(record.clone());
            } else {
                census.dead.push(id.clone());
            }
        }
        census
            .live
            .sort_by(|first, second| first.id.cmp(&second.id));
        census.dead.sort();
        Ok(Some(census))
    }

    async fn claim_dead_node(
        &self,
        node: &str,
        timeout: Duration,
    ) -> StoreResult<Option<Vec<UserId>>> {
        let mut network = self.live()?;
        let dead = network
            .registry
            .get(node)
            .is_some_and(|(_, beat)| beat.is_none_or(|beat| beat.elapsed() >= timeout));
        if network.outage || node == self.node_id || !dead {
            return Ok(None);
        }
        network.registry.remove(node);
        let held = network.held.remove(node).unwrap_or_default();
        Ok(Some(held.into_iter().collect()))
    }

    async fn take_user_from(&self, user: &UserId, node: &str) -> StoreResult<bool> {
        let mut network = self.live()?;
        if network.outage || network.directory.get(user).map(String::as_str) != Some(node) {
            return Ok(false);
        }
        network.directory.remove(user);
        Ok(true)
    }

    async fn deregister(&self) -> StoreResult<()> {
        let mut network = self.live()?;
        if let Some((_, beat)) = network.registry.get_mut(&self.node_id) {
            *beat = None;
        }
        Ok(())
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
        old.publish("a", "from a dead handle".into()).await.unwrap();
        new.publish("a", "to the new one".into()).await.unwrap();
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

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_node_that_stops_beating_is_dead_and_claimed_once() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (second, _second_inbox) = network.join("b");
        let (third, _third_inbox) = network.join("c");
        let started = Timestamp::now();
        assert_eq!(
            first.heartbeat(started, 0).await.unwrap(),
            Heartbeat::Registered
        );
        assert_eq!(
            first.heartbeat(started, 2).await.unwrap(),
            Heartbeat::Refreshed
        );
        second.heartbeat(started, 1).await.unwrap();
        third.heartbeat(started, 0).await.unwrap();
        let (held, away) = (UserId::generate(), UserId::generate());
        second.set_user_node(&held).await.unwrap();
        second.set_user_node(&away).await.unwrap();
        // Away in a chat's grace: no directory entry, still answered for.
        second.clear_user_node_held(&away).await.unwrap();
        assert_eq!(network.held_users("b").len(), 2);

        network.leave("b");
        assert!(
            second.heartbeat(started, 1).await.is_err(),
            "a dead node beats no more"
        );
        tokio::time::advance(TIMEOUT / 2).await;
        first.heartbeat(started, 2).await.unwrap();
        third.heartbeat(started, 0).await.unwrap();
        let census = first.census(TIMEOUT).await.unwrap().unwrap();
        assert_eq!(census.live.len(), 3);
        assert_eq!(
            first.claim_dead_node("b", TIMEOUT).await.unwrap(),
            None,
            "not yet"
        );

        tokio::time::advance(TIMEOUT / 2).await;
        first.heartbeat(started, 2).await.unwrap();
        third.heartbeat(started, 0).await.unwrap();
        let census = third.census(TIMEOUT).await.unwrap().unwrap();
        let live: Vec<_> = census.live.iter().map(|node| node.id.as_str()).collect();
        assert_eq!((live, census.dead), (vec!["a", "c"], vec!["b".to_owned()]));
        assert_eq!(census.live[0].sockets, 2);
        let mut users = first.claim_dead_node("b", TIMEOUT).await.unwrap().unwrap();
        users.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        let mut expected = vec![held.clone(), away.clone()];
        expected.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(users, expected);
        assert_eq!(
            third.claim_dead_node("b", TIMEOUT).await.unwrap(),
            None,
            "claimed once"
        );
        assert!(
            third
                .census(TIMEOUT)
                .await
                .unwrap()
                .unwrap()
                .dead
                .is_empty()
        );
        // The survivor drops the entries that still name the dead node.
        assert!(!first.take_user_from(&away, "b").await.unwrap());
        assert!(first.take_user_from(&held, "b").await.unwrap());
        assert_eq!(first.user_node(&held).await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_never_claims_itself_or_a_live_node_and_deregistering_is_dying() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (second, _second_inbox) = network.join("b");
        let started = Timestamp::now();
        first.heartbeat(started, 0).await.unwrap();
        second.heartbeat(started, 0).await.unwrap();
        tokio::time::advance(TIMEOUT).await;
        assert_eq!(first.claim_dead_node("a", TIMEOUT).await.unwrap(), None);
        second.heartbeat(started, 0).await.unwrap();
        assert_eq!(first.claim_dead_node("b", TIMEOUT).await.unwrap(), None);
        second.deregister().await.unwrap();
        assert_eq!(
            first.claim_dead_node("b", TIMEOUT).await.unwrap(),
            Some(vec![])
        );
        assert_eq!(
            second.heartbeat(started, 0).await.unwrap(),
            Heartbeat::Registered
        );
    }

    #[tokio::test]
    async fn moving_a_user_moves_who_answers_for_them() {
        let network = InProcessNetwork::default();
        let (first, _first_inbox) = network.join("a");
        let (second, _second_inbox) = network.join("b");
        let user = UserId::generate();
        first.set_user_node(&user).await.unwrap();
        second.set_user_node(&user).await.unwrap();
        assert!(network.held_users("a").is_empty());
        assert_eq!(network.held_users("b"), vec![user.clone()]);
        second.clear_user_node_held(&user).await.unwrap();
        assert_eq!(network.held_users("b"), vec![user.clone()]);
        second.drop_held_user(&user).await.unwrap();
        assert!(network.held_users("b").is_empty());
    }

    #[tokio::test]
    async fn during_an_outage_nothing_is_shared() {
        let network = InProcessNetwork::default();
        let (node, mut inbox) = network.join("a");
        let user = UserId::generate();
        network.set_outage(true);
        assert!(!node.bus_health().up);
        assert!(node.set_user_node(&user).await.is_err());
        assert_eq!(
            node.heartbeat(Timestamp::now(), 1).await.unwrap(),
            Heartbeat::Alone
        );
        assert_eq!(node.census(TIMEOUT).await.unwrap(), None);
        node.publish("a", "lost".into()).await.unwrap();
        network.set_outage(false);
        assert_eq!(node.user_node(&user).await.unwrap(), None);
        node.set_user_node(&user).await.unwrap();
        node.publish("a", "kept".into()).await.unwrap();
        assert_eq!(inbox.recv().await.as_deref(), Some("kept"));
    }
}
