//! [`Hub`]: the realtime services of one process, shared by the Socket.IO handler and the
//! REST routes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_socketio::EncodedPacket;
use chat_domain::{FileId, UserId};
use chat_presence_stats::{PresenceTracker, RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger};
use chat_signaling::{ChatConfig, ChatService, Delivery, FileUrls, Outgoing, SessionEnd};
use chat_storage::{SessionPatch, SessionStore};
use serde_json::json;

use crate::files::FileSigner;
use crate::metrics::Metrics;
use crate::realtime::registry::Registry;
use crate::realtime::wire;
use crate::settings::Settings;

/// How long a recipient has to ack a `chat:message` before the receipt is given up.
const RECEIPT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything realtime of one process.
pub struct Hub {
    /// Live sockets by user.
    pub registry: Arc<Registry>,
    /// The chat.
    pub chat: ChatService,
    /// Activity of connected users.
    pub presence: PresenceTracker,
    /// Pokes the stats broadcaster.
    pub stats: StatsTrigger,
    broadcaster: StatsBroadcaster,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Hub {
    /// Builds the hub and starts its background tasks on the current runtime.
    pub fn start(settings: &Settings, store: Arc<dyn SessionStore>, signer: FileSigner, metrics: Arc<Metrics>) -> Arc<Self> {
        let registry = Arc::new(Registry::default());
        let sink = Arc::new(SocketStatsSink { registry: registry.clone(), metrics: metrics.clone() });
        let interval = Duration::from_millis(settings.stats.broadcast_interval_ms);
        let broadcaster = StatsBroadcaster::spawn(store.clone(), sink, interval, interval.max(Duration::from_secs(5)));
        let stats = broadcaster.trigger();
        let delivery = Arc::new(SocketDelivery { registry: registry.clone(), chat: OnceLock::new(), metrics });
        let config = ChatConfig {
            call_timeout: Duration::from_secs(settings.webrtc.call_timeout_secs),
            reconnect_grace: Duration::from_secs(settings.chat.reconnect_grace_secs),
        };
        let trigger = stats.clone();
        let chat = ChatService::new(config, store.clone(), delivery.clone(), Arc::new(signer), move || trigger.poke());
        let _ = delivery.chat.set(chat.clone());
        let presence = PresenceTracker::new(Duration::from_secs(settings.presence.stale_after_secs));
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let sweeper_hub = weak.clone();
            let expiry = chat_presence_stats::spawn_expiry_sweeper(store.clone(), sweep_period(settings), move |expired| {
                if let Some(hub) = sweeper_hub.upgrade() {
                    tokio::spawn(async move { hub.sessions_expired(expired).await });
                }
            });
            let stale_hub = weak.clone();
            let stale_store = store.clone();
            let stale_every = Duration::from_secs(settings.presence.stale_after_secs.div_ceil(3).max(1));
            let stale = tokio::spawn(async move {
                let mut ticker = tokio::time::interval(stale_every);
                loop {
                    ticker.tick().await;
                    let Some(hub) = stale_hub.upgrade() else { return };
                    let stale = hub.presence.newly_stale();
                    for user in &stale {
                        let patch = SessionPatch { is_online: Some(false), ..SessionPatch::default() };
                        if let Err(error) = stale_store.update(user, patch).await {
                            tracing::warn!(%error, "could not mark a stale user offline");
                        }
                    }
                    if !stale.is_empty() {
                        hub.stats.poke();
                    }
                }
            });
            Hub { registry, chat, presence, stats, broadcaster, background: vec![expiry, stale] }
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
        }
        self.presence.disconnected(user);
        self.chat.session_ended(user, end).await;
    }

    /// Tells every socket the server is stopping (`server:shutdown`).
    pub fn announce_shutdown(&self) {
        if let Ok(packet) = EncodedPacket::event("/", "server:shutdown", &json!({})) {
            for socket in self.registry.all() {
                let _ = socket.emit_encoded(&packet);
            }
        }
    }

    /// The broadcaster, kept alive with the hub.
    pub fn broadcaster(&self) -> &StatsBroadcaster {
        &self.broadcaster
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

/// Delivers chat events to this process's sockets.
struct SocketDelivery {
    registry: Arc<Registry>,
    chat: OnceLock<ChatService>,
    metrics: Arc<Metrics>,
}

impl Delivery for SocketDelivery {
    fn deliver(&self, to: &UserId, event: Outgoing) {
        let Some(socket) = self.registry.get(to) else { return };
        let name = wire::event_name(&event);
        let payload = wire::payload(&event);
        let Outgoing::Message(message) = &event else {
            let _ = socket.emit(name, &payload);
            return;
        };
        Metrics::bump(&self.metrics.messages_relayed);
        // The recipient's ack of chat:message is its delivery receipt.
        let Ok(ack) = socket.emit_with_ack(name, &payload, RECEIPT_ACK_TIMEOUT) else { return };
        let Some(chat) = self.chat.get().cloned() else { return };
        let (recipient, id, metrics) = (to.clone(), message.id.clone(), self.metrics.clone());
        tokio::spawn(async move {
            if ack.await.is_ok() && chat.confirm_delivery(&recipient, &id) {
                Metrics::bump(&metrics.receipts_relayed);
            }
        });
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
        let Ok(packet) = EncodedPacket::event("/", "realtime:stats", &payload) else { return };
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
