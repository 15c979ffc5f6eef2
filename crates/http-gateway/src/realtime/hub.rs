//! [`Hub`]: the realtime services of one node, shared by the Socket.IO handler and the REST
//! routes; and, with Redis, this node's part in the cluster: the user → node directory and
//! the bus that carries events to users whose socket is on another node.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_socketio::EncodedPacket;
use chat_domain::{FileId, UserId};
use chat_presence_stats::{
    PresenceTracker, RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger,
};
use chat_signaling::{ChatConfig, ChatService, Delivery, FileUrls, Outgoing, SessionEnd};
use chat_storage::{ChatStore, SessionPatch, SessionStore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::files::FileSigner;
use crate::metrics::Metrics;
use crate::realtime::registry::Registry;
use crate::realtime::wire;
use crate::settings::Settings;

/// How long a recipient has to ack a `chat:message` before the receipt is given up.
const RECEIPT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// What travels on the bus between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BusMessage {
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

/// This node in a cluster: its id, and the bus messages addressed to it.
pub struct ClusterLink {
    /// This node's id.
    pub node_id: String,
    /// Messages published to this node.
    pub inbox: mpsc::Receiver<String>,
}

/// Everything realtime of one node.
pub struct Hub {
    /// Live sockets by user.
    pub registry: Arc<Registry>,
    /// The chat.
    pub chat: ChatService,
    /// Activity of connected users.
    pub presence: PresenceTracker,
    /// Pokes the stats broadcaster.
    pub stats: StatsTrigger,
    /// The shared chat state (directory of user → node).
    shared: Arc<dyn ChatStore>,
    /// This node's id.
    node_id: String,
    broadcaster: StatsBroadcaster,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Hub {
    /// Builds the hub and starts its background tasks on the current runtime. With a
    /// `cluster` link, events for users on other nodes go over the bus and this node serves
    /// its inbox.
    pub fn start(
        settings: &Settings,
        store: Arc<dyn SessionStore>,
        shared: Arc<dyn ChatStore>,
        signer: FileSigner,
        metrics: Arc<Metrics>,
        cluster: Option<ClusterLink>,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry::default());
        let node_id = cluster
            .as_ref()
            .map_or_else(|| "local".to_owned(), |cluster| cluster.node_id.clone());
        let sink = Arc::new(SocketStatsSink {
            registry: registry.clone(),
            metrics: metrics.clone(),
        });
        let interval = Duration::from_millis(settings.stats.broadcast_interval_ms);
        // With several nodes, changes made elsewhere are only seen by looking again.
        let refresh = if cluster.is_some() {
            interval
        } else {
            interval.max(Duration::from_secs(5))
        };
        let broadcaster = StatsBroadcaster::spawn(store.clone(), sink, interval, refresh);
        let stats = broadcaster.trigger();
        let (outbox, forwarder) = match cluster {
            Some(_) => {
                let (sender, receiver) = mpsc::unbounded_channel();
                (
                    Some(sender),
                    Some(spawn_forwarder(shared.clone(), node_id.clone(), receiver)),
                )
            }
            None => (None, None),
        };
        let delivery = Arc::new(SocketDelivery {
            registry: registry.clone(),
            chat: OnceLock::new(),
            metrics,
            outbox,
        });
        let config = ChatConfig {
            call_timeout: Duration::from_secs(settings.webrtc.call_timeout_secs),
            reconnect_grace: Duration::from_secs(settings.chat.reconnect_grace_secs),
        };
        let trigger = stats.clone();
        let chat = ChatService::new(
            config,
            store.clone(),
            shared.clone(),
            delivery.clone(),
            Arc::new(signer),
            move || trigger.poke(),
        );
        let _ = delivery.chat.set(chat.clone());
        let presence =
            PresenceTracker::new(Duration::from_secs(settings.presence.stale_after_secs));
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let mut background: Vec<_> = forwarder.into_iter().collect();
            let sweeper_hub = weak.clone();
            background.push(chat_presence_stats::spawn_expiry_sweeper(
                store.clone(),
                sweep_period(settings),
                move |expired| {
                    if let Some(hub) = sweeper_hub.upgrade() {
                        tokio::spawn(async move { hub.sessions_expired(expired).await });
                    }
                },
            ));
            background.push(spawn_stale_sweeper(weak.clone(), store.clone(), settings));
            if let Some(cluster) = cluster {
                background.push(spawn_inbox(weak.clone(), cluster.inbox));
            }
            Hub {
                registry,
                chat,
                presence,
                stats,
                shared,
                node_id,
                broadcaster,
                background,
            }
        })
    }

    /// Sessions whose TTL ran out: their sockets get `session:expired` and are disconnected,
    /// their partners `room:closed` (`session_expired`).
    pub async fn sessions_expired(&self, users: Vec<UserId>) {
        for user in users {
            self.end_session(&user, SessionEnd::Expired).await;
        }
    }

    /// Ends `user`'s realtime life: closes the room, tells and disconnects the socket.
    pub async fn end_session(&self, user: &UserId, end: SessionEnd) {
        if let Some(socket) = self.registry.get(user) {
            if end == SessionEnd::Expired {
                let _ = socket.emit("session:expired", &json!({}));
            }
            self.registry.remove(&socket);
            socket.disconnect();
            self.release_user(user).await;
        }
        self.presence.disconnected(user);
        self.chat.session_ended(user, end).await;
    }

    /// `user` connected here: a socket of theirs on another node is replaced, and this node
    /// becomes the one their events go to.
    pub async fn claim_user(&self, user: &UserId) {
        let previous = self.shared.user_node(user).await.ok().flatten();
        if let Some(previous) = previous.filter(|previous| previous != &self.node_id) {
            publish(
                &self.shared,
                &previous,
                BusMessage::Replaced { user: user.clone() },
            )
            .await;
        }
        if let Err(error) = self.shared.set_user_node(user, &self.node_id).await {
            tracing::warn!(%error, "could not record the user's node");
        }
    }

    /// `user`'s socket here is gone.
    pub async fn release_user(&self, user: &UserId) {
        if let Err(error) = self.shared.clear_user_node(user, &self.node_id).await {
            tracing::warn!(%error, "could not clear the user's node");
        }
    }

    /// Tells every socket the server is stopping (`server:shutdown`).
    pub fn announce_shutdown(&self) {
        if let Ok(packet) = EncodedPacket::event("/", "server:shutdown", &json!({})) {
            for socket in self.registry.all() {
                let _ = socket.emit_encoded(&packet);
            }
        }
    }

    /// This node's id (`local` on a single node).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The broadcaster, kept alive with the hub.
    pub fn broadcaster(&self) -> &StatsBroadcaster {
        &self.broadcaster
    }

    fn handle_bus_message(&self, text: &str) {
        let messages = match serde_json::from_str::<Vec<BusMessage>>(text) {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "unreadable bus message");
                return;
            }
        };
        for message in messages {
            match message {
                BusMessage::Event { to, event } => self.chat.receive(&to, event),
                BusMessage::Replaced { user } => {
                    if let Some(socket) = self.registry.get(&user) {
                        let _ = socket.emit("session:replaced", &json!({}));
                        self.registry.remove(&socket);
                        socket.disconnect();
                        self.presence.disconnected(&user);
                    }
                    self.chat.forget_local(&user);
                }
            }
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

fn sweep_period(settings: &Settings) -> Duration {
    // Expired sessions are noticed within a few seconds, or sooner for short test TTLs.
    Duration::from_secs(settings.session.ttl_secs.div_ceil(4).clamp(1, 5))
}

/// Marks users without activity for `stale_after` offline, until their next event.
fn spawn_stale_sweeper(
    hub: std::sync::Weak<Hub>,
    store: Arc<dyn SessionStore>,
    settings: &Settings,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(settings.presence.stale_after_secs.div_ceil(3).max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            let stale = hub.presence.newly_stale();
            for user in &stale {
                let patch = SessionPatch {
                    is_online: Some(false),
                    ..SessionPatch::default()
                };
                if let Err(error) = store.update(user, patch).await {
                    tracing::warn!(%error, "could not mark a stale user offline");
                }
            }
            if !stale.is_empty() {
                hub.stats.poke();
            }
        }
    })
}

/// Serves this node's bus inbox.
fn spawn_inbox(
    hub: std::sync::Weak<Hub>,
    mut inbox: mpsc::Receiver<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(text) = inbox.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            hub.handle_bus_message(&text);
        }
    })
}

async fn publish(shared: &Arc<dyn ChatStore>, node: &str, message: BusMessage) {
    let Ok(text) = serde_json::to_string(&[message]) else {
        return;
    };
    if let Err(error) = shared.publish(node, text).await {
        tracing::warn!(%error, "could not publish to another node");
    }
}

/// Delivers chat events to this node's sockets, and forwards the others over the bus.
struct SocketDelivery {
    registry: Arc<Registry>,
    chat: OnceLock<ChatService>,
    metrics: Arc<Metrics>,
    /// Events for users on other nodes, in order; `None` on a single node.
    outbox: Option<mpsc::UnboundedSender<(UserId, Outgoing)>>,
}

/// How many forwarded events one bus batch carries at most.
const FORWARD_BATCH: usize = 256;

/// Forwards events for users on other nodes, in order: each batch looks up the users' nodes
/// and sends one bus message per node.
fn spawn_forwarder(
    shared: Arc<dyn ChatStore>,
    own: String,
    mut outbox: mpsc::UnboundedReceiver<(UserId, Outgoing)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(FORWARD_BATCH);
        while outbox.recv_many(&mut batch, FORWARD_BATCH).await > 0 {
            let mut nodes: HashMap<UserId, Option<String>> = HashMap::new();
            let mut by_node: HashMap<String, Vec<BusMessage>> = HashMap::new();
            for (to, event) in batch.drain(..) {
                if !nodes.contains_key(&to) {
                    let node = shared
                        .user_node(&to)
                        .await
                        .ok()
                        .flatten()
                        .filter(|node| node != &own);
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
                if let Err(error) = shared.publish(&node, text).await {
                    tracing::warn!(%error, "could not forward events to another node");
                }
            }
        }
    })
}

impl Delivery for SocketDelivery {
    fn is_local(&self, to: &UserId) -> bool {
        self.registry.get(to).is_some()
    }

    fn deliver_local(&self, to: &UserId, event: Outgoing) {
        let Some(socket) = self.registry.get(to) else {
            return;
        };
        let name = wire::event_name(&event);
        let payload = wire::Payload(&event);
        let Outgoing::Message(message) = &event else {
            let _ = socket.emit(name, &payload);
            return;
        };
        Metrics::bump(&self.metrics.messages_relayed);
        let Some(chat) = self.chat.get().cloned() else {
            let _ = socket.emit(name, &payload);
            return;
        };
        // The recipient's ack of chat:message is its delivery receipt, confirmed from the
        // recipient's connection task as the ack arrives (no task or timer per message).
        let (recipient, id, metrics) = (to.clone(), message.id.clone(), self.metrics.clone());
        let _ = socket.emit_with_ack_callback(name, &payload, RECEIPT_ACK_TIMEOUT, move |ack| {
            if ack.is_ok() && chat.confirm_delivery(&recipient, &id) {
                Metrics::bump(&metrics.receipts_relayed);
            }
        });
    }

    fn forward(&self, to: &UserId, event: Outgoing) {
        if let Some(outbox) = &self.outbox {
            let _ = outbox.send((to.clone(), event));
        }
    }
}

/// Sends each stats snapshot to every socket, encoded once.
struct SocketStatsSink {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl StatsSink for SocketStatsSink {
    fn broadcast(&self, snapshot: &RealtimeStats) {
        let payload = json!({"stats": snapshot.stats, "onlineUsers": snapshot.online_users, "timestamp": snapshot.timestamp});
        let Ok(packet) = EncodedPacket::event("/", "realtime:stats", &payload) else {
            return;
        };
        for socket in self.registry.all() {
            let _ = socket.emit_encoded(&packet);
        }
        Metrics::bump(&self.metrics.stats_broadcasts);
    }
}

impl FileUrls for FileSigner {
    fn url_for(&self, file: &FileId, viewer: &UserId) -> String {
        self.url(file, viewer, chat_domain::Timestamp::now())
    }
}
