//! [`Hub`]: the realtime services of one node, shared by the Socket.IO handler and the REST
//! routes, and the [`Delivery`] of chat events to this node's sockets. With Redis the chat
//! itself forwards events for users on other nodes ([`chat_signaling::cluster`]); this node's
//! sockets only see what is theirs.

use std::sync::Arc;
use std::time::Duration;

use actix_socketio::EncodedPacket;
use chat_domain::{FileId, Timestamp, UserId};
use chat_presence_stats::{RealtimeStats, SessionLifecycle, StatsBroadcaster, StatsSink};
use chat_signaling::{
    ChatConfig, ChatParts, ChatService, Delivery, FileUrls, Membership, Outgoing, Receipt,
    SessionEnd,
};
use chat_storage::cluster::NodeRecord;
use chat_storage::{ChatStore, SessionStore};
use serde_json::json;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::files::FileSigner;
use crate::metrics::Metrics;
use crate::realtime::registry::Registry;
use crate::realtime::wire;
use crate::settings::Settings;

/// How long a recipient has to ack a `chat:message` before the receipt is given up.
const RECEIPT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything realtime of one node.
///
/// Background work runs on one [`TaskTracker`] and stops at one [`CancellationToken`]: a task
/// spawned for the hub goes on `tasks` and returns once `shutdown` is cancelled (the stats
/// broadcast and the presence sweeps do); the chat's own timers and bus tasks stop with
/// [`ChatService::shutdown`]. [`Hub::shutdown`] cancels, then awaits both; nothing is aborted.
pub struct Hub {
    /// Live sockets by user.
    pub registry: Arc<Registry>,
    /// The chat.
    pub chat: ChatService,
    /// The session lifecycle: presence writes and stats pokes.
    pub lifecycle: SessionLifecycle,
    /// When this node started (for `/api/cluster/nodes` on a single node).
    started_at: Timestamp,
    /// Stops the background tasks spawned on `tasks`.
    shutdown: CancellationToken,
    /// Background tasks that stop when `shutdown` is cancelled (so far the lifecycle's: stats
    /// broadcast, stale and expiry sweeps).
    tasks: TaskTracker,
    /// A hub dropped without [`Hub::shutdown`] still tells its tasks to stop.
    _stop_on_drop: DropGuard,
}

impl Hub {
    /// Builds the hub and starts its background tasks on the current runtime. With a
    /// `cluster` membership, the chat forwards events for users on other nodes over the bus
    /// and serves this node's inbox.
    pub fn start(
        settings: &Settings,
        store: Arc<dyn SessionStore>,
        shared: Arc<dyn ChatStore>,
        signer: FileSigner,
        metrics: Arc<Metrics>,
        cluster: Option<Membership>,
        blocks: Arc<dyn chat_storage::ModerationStore>,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry::default());
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
        let broadcaster = StatsBroadcaster::new(store.clone(), sink, interval, refresh);
        let lifecycle = SessionLifecycle::new(
            store.clone(),
            Duration::from_secs(settings.presence.stale_after_secs),
            broadcaster.trigger(),
        );
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(broadcaster.run(shutdown.clone()));
        tasks.spawn(lifecycle.stale_sweeper(shutdown.clone()));
        let delivery = Arc::new(SocketDelivery {
            registry: registry.clone(),
            lifecycle: lifecycle.clone(),
            metrics,
        });
        let config = ChatConfig {
            call_timeout: Duration::from_secs(settings.webrtc.call_timeout_secs),
            reconnect_grace: Duration::from_secs(settings.chat.reconnect_grace_secs),
        };
        let parts = ChatParts {
            sessions: store.clone(),
            shared,
            delivery,
            urls: Arc::new(signer),
            cluster,
            blocks: Some(blocks),
        };
        let chat = ChatService::new(config, parts, lifecycle.on_change());
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let sweeper_hub = weak.clone();
            tasks.spawn(lifecycle.expiry_sweeper(
                sweep_period(settings),
                shutdown.clone(),
                move |expired| {
                    let hub = sweeper_hub.upgrade();
                    async move {
                        if let Some(hub) = hub {
                            hub.sessions_expired(expired).await;
                        }
                    }
                },
            ));
            Hub {
                registry,
                chat,
                lifecycle,
                started_at: Timestamp::now(),
                _stop_on_drop: shutdown.clone().drop_guard(),
                shutdown,
                tasks,
            }
        })
    }

    /// Sessions whose TTL ran out (already swept from the store and forgotten by the
    /// lifecycle): their sockets get `session:expired` and are disconnected, their partners
    /// `room:closed` (`session_expired`).
    pub async fn sessions_expired(&self, users: Vec<UserId>) {
        for user in users {
            self.end_session(&user, SessionEnd::Expired).await;
        }
    }

    /// Ends `user`'s realtime life wherever their socket is: closes the room, tells and
    /// disconnects the socket (here, or through the node holding it).
    pub async fn end_session(&self, user: &UserId, end: SessionEnd) {
        if let Some(socket) = self.registry.get(user) {
            end_socket(&self.registry, &self.lifecycle, &socket, &end);
            self.release_user(user).await;
        }
        // Also after ending a socket here: a newer one on another node (whose replace has
        // not arrived yet) ends too.
        self.chat.end_elsewhere(user, end.clone()).await;
        self.lifecycle.ended(user);
        self.chat.session_ended(user, end).await;
    }

    /// `user` connected here: a socket of theirs on another node is replaced, and this node
    /// becomes the one their events go to.
    pub async fn claim_user(&self, user: &UserId) {
        self.chat.claim_user(user).await;
    }

    /// `user`'s socket here is gone.
    pub async fn release_user(&self, user: &UserId) {
        self.chat.release_user(user).await;
    }

    /// Tells every socket the server is stopping (`server:shutdown`).
    pub fn announce_shutdown(&self) {
        if let Ok(packet) = EncodedPacket::event("/", "server:shutdown", &json!({})) {
            for socket in self.registry.all() {
                let _ = socket.emit_encoded(&packet);
            }
        }
    }

    /// Stops this node's realtime work once its sockets are closed: cancels the background
    /// tasks and waits until they have stopped (a sweep under way is finished first), then
    /// shuts the chat down (its timers stand down, events queued for other nodes are sent).
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.chat.shutdown().await;
    }

    /// The live nodes (`GET /api/cluster/nodes`), by id: with Redis those of the registry
    /// (this one alone while Redis is away), on a single node this one.
    pub async fn live_nodes(&self) -> Vec<NodeRecord> {
        if let Some(nodes) = self.chat.live_nodes().await {
            return nodes;
        }
        vec![NodeRecord {
            id: self.node_id().to_owned(),
            started_at: self.started_at,
            last_seen: Timestamp::now(),
            sockets: u64::try_from(self.registry.len()).unwrap_or(u64::MAX),
        }]
    }

    /// This node's id (`local` on a single node).
    pub fn node_id(&self) -> &str {
        self.chat.node_id().unwrap_or("local")
    }
}

/// Ends `socket`, `user`'s socket here, with their session: `session:expired` when it
/// expired, `session:banned {until, reason}` when banned, then disconnected. It is taken out of the registry first, so its disconnect
/// starts no reconnect grace.
fn end_socket(
    registry: &Registry,
    lifecycle: &SessionLifecycle,
    socket: &actix_socketio::Socket<crate::realtime::handler::SocketState>,
    end: &SessionEnd,
) {
    match end {
        SessionEnd::Expired => {
            let _ = socket.emit("session:expired", &json!({}));
        }
        SessionEnd::Banned { until, reason } => {
            let _ = socket.emit("session:banned", &json!({"until": until, "reason": reason}));
        }
        SessionEnd::Deleted => {}
    }
    registry.remove(socket);
    socket.disconnect();
    lifecycle.ended(&socket.state().user_id);
}

fn sweep_period(settings: &Settings) -> Duration {
    // Expired sessions are noticed within a few seconds, or sooner for short test TTLs.
    Duration::from_secs(settings.session.ttl_secs.div_ceil(4).clamp(1, 5))
}

/// Hands chat events to this node's sockets.
struct SocketDelivery {
    registry: Arc<Registry>,
    lifecycle: SessionLifecycle,
    metrics: Arc<Metrics>,
}

impl Delivery for SocketDelivery {
    fn is_local(&self, to: &UserId) -> bool {
        self.registry.get(to).is_some()
    }

    fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>) {
        let Some(socket) = self.registry.get(to) else {
            return;
        };
        self.metrics
            .match_event(&socket.state().match_clock, &event);
        let name = wire::event_name(&event);
        let payload = wire::Payload(&event);
        let Some(receipt) = receipt else {
            let _ = socket.emit(name, &payload);
            return;
        };
        Metrics::bump(&self.metrics.messages_relayed);
        // The recipient's ack of chat:message is its delivery receipt, confirmed from the
        // recipient's connection task as the ack arrives (no task or timer per message).
        let metrics = self.metrics.clone();
        let _ = socket.emit_with_ack_callback(name, &payload, RECEIPT_ACK_TIMEOUT, move |ack| {
            if ack.is_ok() && receipt.confirm() {
                Metrics::bump(&metrics.receipts_relayed);
            }
        });
    }

    fn replaced_elsewhere(&self, user: &UserId) {
        if let Some(socket) = self.registry.get(user) {
            let _ = socket.emit("session:replaced", &json!({}));
            self.registry.remove(&socket);
            socket.disconnect();
            self.lifecycle.replaced(user);
        }
    }

    fn ended_elsewhere(&self, user: &UserId, end: SessionEnd) {
        if let Some(socket) = self.registry.get(user) {
            end_socket(&self.registry, &self.lifecycle, &socket, &end);
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
