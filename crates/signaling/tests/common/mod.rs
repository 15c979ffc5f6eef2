//! The test harness shared by the chat's test files: chat nodes in one process over one
//! `MemoryStore` (as nodes share one Redis) and, with several nodes, the in-process cluster
//! driver (as they share one pub/sub bus and directory). Each node's "sockets" are a set of
//! users; every event any node hands to a socket is logged, with its receipt kept for acks.
//!
//! Events between nodes travel through the forwarder and inbox tasks: tests with several
//! nodes run with paused time and [`Harness::settle`] after each step.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod gated;

#[allow(unused_imports)]
pub use gated::{Gated, Held, Step};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use chat_domain::webrtc::{self, IceCandidate, SdpType, SessionDescription};
use chat_domain::{ChatPayload, FileId, GuestUser, MessageId, Profile, RoomId, Timestamp, UserId};
use chat_signaling::{
    ChatConfig, ChatError, ChatParts, ChatService, ClusterObserver, Delivery, DropReason, FileUrls,
    Membership, Outgoing, Receipt, SearchFilters, SessionEnd,
};
use chat_storage::cluster::{Census, Heartbeat};
use chat_storage::memory::MemoryStore;
use chat_storage::{
    BusHealth, Cluster, InProcessCluster, InProcessNetwork, SessionPatch, SessionStore,
    StoreConfig, StoreResult,
};
use serde_json::{Value, json};

/// What every node handed to its sockets, in order.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<(UserId, Outgoing)>>,
    receipts: Mutex<HashMap<(UserId, MessageId), Receipt>>,
    /// `(node, user)` for each socket replaced from another node.
    replaced: Mutex<Vec<(usize, UserId)>>,
    /// `(node, user, how)` for each socket ended from another node.
    ended: Mutex<Vec<(usize, UserId, SessionEnd)>>,
    nodes: OnceLock<Vec<ChatService>>,
    /// For each `match:found` handed to a socket: how many chat links all nodes held then.
    links_at_found: Mutex<Vec<usize>>,
}

/// What every node told its [`ClusterObserver`]: events delivered from another node (with
/// their latency), and events dropped.
#[derive(Default)]
pub struct Watch {
    /// The latency of each event delivered from another node, in order.
    pub delivered: Mutex<Vec<Duration>>,
    /// Each drop: how many events, and why.
    pub dropped: Mutex<Vec<(usize, DropReason)>>,
}

impl ClusterObserver for Watch {
    fn event_delivered(&self, latency: Duration) {
        self.delivered.lock().unwrap().push(latency);
    }

    fn events_dropped(&self, events: usize, reason: DropReason) {
        self.dropped.lock().unwrap().push((events, reason));
    }
}

/// One node's sockets: the users connected to it.
struct Sockets {
    index: usize,
    users: Mutex<HashSet<UserId>>,
    log: Arc<Log>,
}

impl Delivery for Sockets {
    fn is_local(&self, to: &UserId) -> bool {
        self.users.lock().unwrap().contains(to)
    }

    fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>) {
        if matches!(event, Outgoing::Found { .. })
            && let Some(nodes) = self.log.nodes.get()
        {
            let links = nodes.iter().map(ChatService::local_chats).sum();
            self.log.links_at_found.lock().unwrap().push(links);
        }
        if let Some(receipt) = receipt {
            let key = (to.clone(), receipt.message_id().clone());
            self.log.receipts.lock().unwrap().insert(key, receipt);
        }
        self.log.events.lock().unwrap().push((to.clone(), event));
    }

    fn replaced_elsewhere(&self, user: &UserId) {
        if self.users.lock().unwrap().remove(user) {
            self.log
                .replaced
                .lock()
                .unwrap()
                .push((self.index, user.clone()));
        }
    }

    fn ended_elsewhere(&self, user: &UserId, end: SessionEnd) {
        if self.users.lock().unwrap().remove(user) {
            self.log
                .ended
                .lock()
                .unwrap()
                .push((self.index, user.clone(), end));
        }
    }
}

/// A node's in-process cluster handle that counts the calls made through it (each would be
/// a Redis round trip in production).
struct Counted {
    inner: Arc<InProcessCluster>,
    calls: Arc<AtomicUsize>,
}

impl Counted {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Cluster for Counted {
    fn node_id(&self) -> &str {
        self.inner.node_id()
    }

    async fn publish(&self, node: &str, payload: String) -> StoreResult<()> {
        self.count();
        self.inner.publish(node, payload).await
    }

    async fn set_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.count();
        self.inner.set_user_node(user).await
    }

    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.count();
        self.inner.clear_user_node(user).await
    }

    async fn clear_user_node_held(&self, user: &UserId) -> StoreResult<()> {
        self.count();
        self.inner.clear_user_node_held(user).await
    }

    async fn drop_held_user(&self, user: &UserId) -> StoreResult<()> {
        self.count();
        self.inner.drop_held_user(user).await
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        self.count();
        self.inner.user_node(user).await
    }

    fn bus_health(&self) -> BusHealth {
        self.inner.bus_health()
    }

    // Liveness runs on timers, not per event: not counted.

    async fn heartbeat(&self, started_at: Timestamp, sockets: u64) -> StoreResult<Heartbeat> {
        self.inner.heartbeat(started_at, sockets).await
    }

    async fn census(&self, timeout: Duration) -> StoreResult<Option<Census>> {
        self.inner.census(timeout).await
    }

    async fn claim_dead_node(
        &self,
        node: &str,
        timeout: Duration,
    ) -> StoreResult<Option<Vec<UserId>>> {
        self.inner.claim_dead_node(node, timeout).await
    }

    async fn take_user_from(&self, user: &UserId, node: &str) -> StoreResult<bool> {
        self.inner.take_user_from(user, node).await
    }

    async fn deregister(&self) -> StoreResult<()> {
        self.inner.deregister().await
    }
}

/// Signed URLs, unsigned.
pub struct Urls;

impl FileUrls for Urls {
    fn url_for(&self, file: &FileId, viewer: &UserId) -> String {
        format!("/api/files/{file}?for={viewer}")
    }
}

/// How soon a node that died is noticed, in every test with several nodes.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// The chat's timings in every test: a 30 s call timeout, 10 s of reconnect grace.
pub fn config() -> ChatConfig {
    ChatConfig {
        call_timeout: Duration::from_secs(30),
        reconnect_grace: Duration::from_secs(10),
    }
}

/// Chat nodes sharing one store (and, with several, one in-process cluster).
pub struct Harness {
    /// The nodes' chat services.
    pub nodes: Vec<ChatService>,
    /// The store every node shares.
    pub store: Arc<MemoryStore>,
    /// The same store as the nodes see it: Redis health and held calls.
    pub gated: Arc<Gated>,
    /// The cluster's network (`None` for a single node without a cluster).
    pub network: Option<InProcessNetwork>,
    /// The first node.
    pub chat: ChatService,
    /// What the nodes told their cluster observer (all nodes share it).
    pub watch: Arc<Watch>,
    sockets: Vec<Arc<Sockets>>,
    log: Arc<Log>,
    cluster_calls: Arc<AtomicUsize>,
}

impl Harness {
    /// One node, no cluster: what `chat-server` runs in memory mode.
    pub fn new() -> Self {
        Self::build(1, None)
    }

    /// `count` nodes on one in-process cluster.
    pub fn with_nodes(count: usize) -> Self {
        Self::build(count, Some(InProcessNetwork::default()))
    }

    fn build(count: usize, network: Option<InProcessNetwork>) -> Self {
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let gated = Arc::new(Gated::new(store.clone()));
        let log = Arc::new(Log::default());
        let mut nodes = Vec::new();
        let mut sockets = Vec::new();
        let cluster_calls = Arc::new(AtomicUsize::new(0));
        let watch = Arc::new(Watch::default());
        for index in 0..count {
            let node_sockets = Arc::new(Sockets {
                index,
                users: Mutex::default(),
                log: log.clone(),
            });
            let cluster = network.as_ref().map(|network| {
                let (cluster, inbox) = network.join(format!("node-{index}"));
                let cluster = Arc::new(Counted {
                    inner: cluster,
                    calls: cluster_calls.clone(),
                });
                Membership {
                    cluster,
                    inbox,
                    node_timeout: NODE_TIMEOUT,
                    observer: Some(watch.clone()),
                }
            });
            let parts = ChatParts {
                sessions: gated.clone(),
                shared: gated.clone(),
                delivery: node_sockets.clone(),
                urls: Arc::new(Urls),
                cluster,
                blocks: Some(store.clone()),
            };
            nodes.push(ChatService::new(config(), parts, || {}));
            sockets.push(node_sockets);
        }
        let _ = log.nodes.set(nodes.clone());
        let chat = nodes[0].clone();
        Self {
            nodes,
            store,
            gated,
            network,
            chat,
            watch,
            sockets,
            log,
            cluster_calls,
        }
    }

    /// Calls made to the cluster (bus and directory) by all nodes since the last call.
    pub fn take_cluster_calls(&self) -> usize {
        self.cluster_calls.swap(0, Ordering::Relaxed)
    }

    /// Lets the nodes' bus tasks run until nothing moves (with paused time: without letting
    /// any timer of the chat fire).
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// Everything handed to sockets since the last take.
    pub fn take(&self) -> Vec<(UserId, Outgoing)> {
        std::mem::take(&mut *self.log.events.lock().unwrap())
    }

    /// What `user` got since the last take (everyone else's events are taken too).
    pub fn for_user(&self, user: &UserId) -> Vec<Outgoing> {
        self.take()
            .into_iter()
            .filter(|(to, _)| to == user)
            .map(|(_, event)| event)
            .collect()
    }

    /// The sockets replaced from another node so far: `(node, user)`.
    pub fn replaced(&self) -> Vec<(usize, UserId)> {
        self.log.replaced.lock().unwrap().clone()
    }

    /// The sockets ended from another node so far: `(node, user, how)`.
    pub fn ended(&self) -> Vec<(usize, UserId, SessionEnd)> {
        self.log.ended.lock().unwrap().clone()
    }

    /// How many chat links all nodes held at each `match:found` handed to a socket.
    pub fn links_at_found(&self) -> Vec<usize> {
        self.log.links_at_found.lock().unwrap().clone()
    }

    /// Chat links held by all nodes.
    pub fn local_chats(&self) -> usize {
        self.nodes.iter().map(ChatService::local_chats).sum()
    }

    /// `user`'s client acknowledges the message `id` it received: confirms its receipt.
    pub fn ack(&self, user: &UserId, id: &MessageId) -> bool {
        let receipt = self
            .log
            .receipts
            .lock()
            .unwrap()
            .remove(&(user.clone(), id.clone()));
        receipt.is_some_and(Receipt::confirm)
    }

    /// A new session whose socket is on node `node` (the session names the socket, as after
    /// a connect).
    pub async fn user_on(&self, node: usize, profile: Value) -> UserId {
        let user = GuestUser::new(Profile::from_json(&profile).unwrap(), Timestamp::now());
        self.store.create(&user).await.unwrap();
        self.place(&user.id, Some(node)).await;
        self.set_socket(&user.id, Some(format!("socket-{node}")))
            .await;
        user.id
    }

    /// A new session on the first node.
    pub async fn user(&self, profile: Value) -> UserId {
        self.user_on(0, profile).await
    }

    /// The node `user`'s socket is on.
    pub fn node_of(&self, user: &UserId) -> Option<usize> {
        self.sockets
            .iter()
            .position(|sockets| sockets.users.lock().unwrap().contains(user))
    }

    /// Moves `user`'s socket to node `node` (claiming them in the directory, as a connecting
    /// socket does), or takes it away (`None`, releasing them).
    pub async fn place(&self, user: &UserId, node: Option<usize>) {
        if let Some(current) = self.node_of(user) {
            self.sockets[current].users.lock().unwrap().remove(user);
            self.nodes[current].release_user(user).await;
        }
        if let Some(node) = node {
            self.sockets[node]
                .users
                .lock()
                .unwrap()
                .insert(user.clone());
            self.nodes[node].claim_user(user).await;
        }
    }

    /// A second socket of `user` connects on node `node` while the first is still on its
    /// node, as the gateway handles it: the user is claimed (the old node replaces its
    /// socket), then connected.
    pub async fn connect_another_socket(&self, user: &UserId, node: usize) -> Option<RoomId> {
        self.sockets[node]
            .users
            .lock()
            .unwrap()
            .insert(user.clone());
        self.nodes[node].claim_user(user).await;
        self.set_socket(user, Some(format!("socket-{node}"))).await;
        self.nodes[node].user_connected(user).await
    }

    /// `user`'s socket drops, as the gateway handles it: gone from its node, no socket in
    /// the session, the chat told.
    pub async fn disconnect(&self, user: &UserId) {
        let node = self.node_of(user).expect("a connected user");
        self.place(user, None).await;
        self.set_socket(user, None).await;
        self.nodes[node].user_disconnected(user).await;
    }

    /// `user` connects (again) on node `node`, as the gateway handles it; returns their room.
    pub async fn connect(&self, user: &UserId, node: usize) -> Option<RoomId> {
        self.place(user, Some(node)).await;
        self.set_socket(user, Some(format!("socket-{node}"))).await;
        self.nodes[node].user_connected(user).await
    }

    async fn set_socket(&self, user: &UserId, socket: Option<String>) {
        let patch = SessionPatch {
            socket: Some(socket.map(|socket| (socket, Timestamp::now()))),
            ..SessionPatch::default()
        };
        self.store.update(user, patch).await.unwrap();
    }

    /// Two users matched on nodes `first` and `second`; returns (initiator, other, room).
    pub async fn pair_on(&self, first: usize, second: usize) -> (UserId, UserId, RoomId) {
        let alice = self.user_on(first, json!({})).await;
        let bob = self.user_on(second, json!({})).await;
        self.nodes[first]
            .search(&alice, SearchFilters::default())
            .await
            .unwrap();
        self.nodes[second]
            .search(&bob, SearchFilters::default())
            .await
            .unwrap();
        self.settle().await;
        let room = self.nodes[first].room_of(&alice).await.unwrap();
        self.take();
        (alice, bob, room)
    }

    /// Two users matched on the first node.
    pub async fn pair(&self) -> (UserId, UserId, RoomId) {
        self.pair_on(0, 0).await
    }

    /// Node `node` dies without a word (a crash): it leaves the network (publishes nothing,
    /// beats no more, hears nothing), its sockets are gone without any disconnect being
    /// handled, and its chat stops (no timer of its fires).
    pub async fn crash(&self, node: usize) {
        let network = self.network.as_ref().expect("a cluster");
        network.leave(&format!("node-{node}"));
        self.sockets[node].users.lock().unwrap().clear();
        self.nodes[node].shutdown().await;
    }

    /// Simulates an outage of the shared directory and bus (`true`) and its end (`false`).
    pub fn set_outage(&self, outage: bool) {
        self.network.as_ref().expect("a cluster").set_outage(outage);
    }

    /// Shuts every node down.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}

/// A text message payload with client id `c1`.
pub fn text(content: &str) -> ChatPayload {
    ChatPayload::from_json(&json!({"type": "text", "content": content, "clientId": "c1"})).unwrap()
}

/// `webrtc:offer` as the gateway runs it: the payload parsed (before the chat is asked),
/// then relayed.
pub fn offer(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    let description = SessionDescription::parse(payload.get("offer"), SdpType::Offer)?;
    let kind = webrtc::parse_call_kind(payload.get("type"))?;
    chat.offer(user, description, kind)
}

/// `webrtc:answer` as the gateway runs it.
pub fn answer(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    let description = SessionDescription::parse(payload.get("answer"), SdpType::Answer)?;
    chat.answer(user, description)
}

/// `webrtc:ice-candidate` as the gateway runs it.
pub fn candidate(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    chat.candidate(user, IceCandidate::parse(payload.get("candidate"))?)
}
