//! One simulated node: its [`ChatService`] and [`SessionLifecycle`] over the shared store,
//! its sockets (a [`Delivery`] that logs what each socket is handed), and the gateway's
//! paths (connect, disconnect, end a session) done in the gateway's order
//! (`http-gateway/src/realtime/handler.rs` and `hub.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chat_domain::{GuestUser, MessageId, UserId};
use chat_presence_stats::{Connected, SessionLifecycle, StatsTrigger};
use chat_signaling::{
    ChatConfig, ChatParts, ChatService, Delivery, FileUrls, Membership, Outgoing, Receipt,
    SessionEnd,
};
use chat_storage::{InProcessNetwork, MemoryStore, SessionPatch, SessionStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::BusTap;
use super::model::NODE_TIMEOUT;
use super::store::SharedStore;

/// A socket, numbered once per run.
pub type SocketId = u64;

/// How often each node's expiry sweep looks.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Users are only shown offline for staleness after this long: longer than any run, so the
/// stale sweep never interferes with the model (it is not run either).
const STALE_AFTER: Duration = Duration::from_secs(86_400);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a socket closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A newer socket of the session took over (`session:replaced`).
    Replaced,
    /// The session ended (deleted, or expired: `session:expired`).
    Ended {
        /// Expired rather than deleted.
        expired: bool,
    },
    /// Its node crashed.
    NodeDied,
}

/// Something a socket was handed, or happened to it.
#[derive(Debug)]
pub enum Seen {
    /// A chat event.
    Event(Outgoing),
    /// The socket was closed by the server (or lost with its node).
    Closed(Closed),
    /// This node's expiry sweep was handed the session (the socket may be anywhere).
    SweptExpired,
}

/// One entry of the log.
#[derive(Debug)]
pub struct Entry {
    /// The socket (0 for [`Seen::SweptExpired`]).
    pub socket: SocketId,
    /// The socket's user.
    pub user: UserId,
    /// What happened.
    pub seen: Seen,
}

/// What every node's sockets were handed, in order, and the receipts of chat messages.
#[derive(Default)]
pub struct Log {
    entries: Mutex<Vec<Entry>>,
    receipts: Mutex<HashMap<(SocketId, MessageId), Receipt>>,
}

impl Log {
    fn push(&self, socket: SocketId, user: &UserId, seen: Seen) {
        lock(&self.entries).push(Entry {
            socket,
            user: user.clone(),
            seen,
        });
    }

    /// Everything logged since the last take.
    pub fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *lock(&self.entries))
    }

    /// The receipt of message `id` handed to `socket`, taken out.
    pub fn take_receipt(&self, socket: SocketId, id: &MessageId) -> Option<Receipt> {
        lock(&self.receipts).remove(&(socket, id.clone()))
    }

    /// The ids of the messages whose receipts `socket` still holds, sorted.
    pub fn receipts_of(&self, socket: SocketId) -> Vec<MessageId> {
        let mut ids: Vec<MessageId> = lock(&self.receipts)
            .keys()
            .filter(|(holder, _)| *holder == socket)
            .map(|(_, id)| id.clone())
            .collect();
        ids.sort_by_key(ToString::to_string);
        ids
    }

    /// A closed socket's receipts go with it.
    fn drop_receipts(&self, socket: SocketId) {
        lock(&self.receipts).retain(|(holder, _), _| *holder != socket);
    }
}

/// One node's live sockets: at most one per user, as the gateway's registry.
pub struct Sockets {
    users: Mutex<BTreeMap<UserId, SocketId>>,
    log: Arc<Log>,
    lifecycle: SessionLifecycle,
}

impl Sockets {
    /// The socket `user` has here.
    pub fn socket_of(&self, user: &UserId) -> Option<SocketId> {
        lock(&self.users).get(user).copied()
    }

    /// Registers `socket` for `user`; returns the socket it replaced.
    fn insert(&self, user: &UserId, socket: SocketId) -> Option<SocketId> {
        lock(&self.users).insert(user.clone(), socket)
    }

    /// Unregisters `socket` if it is still `user`'s socket here.
    fn remove(&self, user: &UserId, socket: SocketId) -> bool {
        let mut users = lock(&self.users);
        if users.get(user) == Some(&socket) {
            users.remove(user);
            true
        } else {
            false
        }
    }

    /// Ends `user`'s socket here with their session (`session:expired` when it expired);
    /// returns whether there was one.
    fn end(&self, user: &UserId, end: SessionEnd) -> bool {
        let removed = lock(&self.users).remove(user);
        let Some(socket) = removed else {
            return false;
        };
        let expired = end == SessionEnd::Expired;
        self.close(user, socket, Closed::Ended { expired });
        self.lifecycle.ended(user);
        true
    }

    fn close(&self, user: &UserId, socket: SocketId, why: Closed) {
        self.log.drop_receipts(socket);
        self.log.push(socket, user, Seen::Closed(why));
    }
}

impl Delivery for Sockets {
    fn is_local(&self, to: &UserId) -> bool {
        lock(&self.users).contains_key(to)
    }

    fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>) {
        let Some(socket) = self.socket_of(to) else {
            return;
        };
        if let Some(receipt) = receipt {
            let key = (socket, receipt.message_id().clone());
            lock(&self.log.receipts).insert(key, receipt);
        }
        self.log.push(socket, to, Seen::Event(event));
    }

    fn replaced_elsewhere(&self, user: &UserId) {
        let removed = lock(&self.users).remove(user);
        if let Some(socket) = removed {
            self.close(user, socket, Closed::Replaced);
            self.lifecycle.replaced(user);
        }
    }

    fn ended_elsewhere(&self, user: &UserId, end: SessionEnd) {
        self.end(user, end);
    }
}

/// Download URLs are not part of the simulation.
struct Urls;

impl FileUrls for Urls {
    fn url_for(&self, file: &chat_domain::FileId, viewer: &UserId) -> String {
        format!("/api/files/{file}?for={viewer}")
    }
}

/// What a connecting socket got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// Refused at the handshake: no such live session.
    Refused,
    /// Connected; the chat says the user's room is this.
    Connected(Option<chat_domain::RoomId>),
}

/// One running node.
pub struct Node {
    /// Its id on the bus.
    pub id: String,
    /// The chat.
    pub chat: ChatService,
    /// The session lifecycle of this process.
    pub lifecycle: SessionLifecycle,
    /// Its sockets.
    pub sockets: Arc<Sockets>,
    /// The switch of its inbox.
    pub tap: BusTap,
    store: Arc<MemoryStore>,
    network: InProcessNetwork,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Node {
    /// Starts a node with bus id `id`: joins the network, builds the chat and starts its
    /// expiry sweep.
    pub fn start(
        id: String,
        store: &Arc<MemoryStore>,
        network: &InProcessNetwork,
        log: &Arc<Log>,
    ) -> Arc<Self> {
        let session_store: Arc<dyn SessionStore> = Arc::new(SharedStore(store.clone()));
        let lifecycle =
            SessionLifecycle::new(session_store.clone(), STALE_AFTER, StatsTrigger::default());
        let sockets = Arc::new(Sockets {
            users: Mutex::default(),
            log: log.clone(),
            lifecycle: lifecycle.clone(),
        });
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let (cluster, inbox) = network.join(id.clone());
        let (tap, inbox) = BusTap::start(inbox, &tasks, stop.clone());
        let parts = ChatParts {
            sessions: session_store,
            shared: store.clone(),
            delivery: sockets.clone(),
            urls: Arc::new(Urls),
            cluster: Some(Membership {
                cluster,
                inbox,
                node_timeout: NODE_TIMEOUT,
                observer: None,
            }),
            blocks: None,
        };
        let chat = ChatService::new(ChatConfig::default(), parts, lifecycle.on_change());
        Arc::new_cyclic(|weak: &std::sync::Weak<Node>| {
            let sweeper = weak.clone();
            let log = log.clone();
            tasks.spawn(
                lifecycle.expiry_sweeper(SWEEP_EVERY, stop.clone(), move |expired| {
                    let node = sweeper.upgrade();
                    let log = log.clone();
                    async move {
                        let Some(node) = node else { return };
                        for user in expired {
                            log.push(0, &user, Seen::SweptExpired);
                            node.end_session(&user, SessionEnd::Expired).await;
                        }
                    }
                }),
            );
            Node {
                id,
                chat,
                lifecycle,
                sockets,
                tap,
                store: store.clone(),
                network: network.clone(),
                stop,
                tasks,
            }
        })
    }

    /// A socket of `user` connects here (`ChatHandler::connect` then `connected`).
    pub async fn connect(&self, user: &UserId, socket: SocketId) -> Connect {
        if !matches!(self.store.get(user).await, Ok(Some(_))) {
            return Connect::Refused;
        }
        if let Some(old) = self.sockets.insert(user, socket) {
            self.sockets.close(user, old, Closed::Replaced);
        }
        self.chat.claim_user(user).await;
        let Ok(Some(Connected { change, .. })) =
            self.lifecycle.connected(user, &format!("s{socket}")).await
        else {
            self.sockets.remove(user, socket);
            return Connect::Refused;
        };
        let room = self.chat.user_connected(user).await;
        change.announce();
        Connect::Connected(room)
    }

    /// `user`'s socket here drops (`ChatHandler::disconnected`); false when it is not the
    /// registered socket any more.
    pub async fn disconnect(&self, user: &UserId, socket: SocketId) -> bool {
        if !self.sockets.remove(user, socket) {
            return false;
        }
        self.sockets.log.drop_receipts(socket);
        self.chat.release_user(user).await;
        let change = self
            .lifecycle
            .disconnected(user, &format!("s{socket}"))
            .await;
        self.chat.user_disconnected(user).await;
        change.announce();
        true
    }

    /// Ends `user`'s session through this node (`Hub::end_session`): their socket here, or
    /// through the node holding it.
    pub async fn end_session(&self, user: &UserId, end: SessionEnd) {
        if self.sockets.end(user, end.clone()) {
            self.chat.release_user(user).await;
        }
        self.chat.end_elsewhere(user, end.clone()).await;
        self.lifecycle.ended(user);
        self.chat.session_ended(user, end).await;
    }

    /// `DELETE /api/guest/me` through this node; returns whether a session was deleted.
    pub async fn delete(&self, user: &UserId) -> bool {
        self.end_session(user, SessionEnd::Deleted).await;
        matches!(self.lifecycle.delete(user).await, Ok(Some(_)))
    }

    /// `POST /api/guest` through this node.
    pub async fn create(&self, user: &GuestUser) -> bool {
        self.lifecycle.create(user).await.is_ok()
    }

    /// An event from `user`'s socket is activity, as the gateway's dispatch records it.
    pub async fn activity(&self, user: &UserId) {
        let _ = self.lifecycle.activity(user, false).await;
    }

    /// The session's TTL runs out now: its last activity is moved back past the TTL, so it
    /// is invisible at once and the next expiry sweep (of any node) hands it out.
    pub async fn expire(store: &MemoryStore, user: &UserId) -> bool {
        let patch = SessionPatch {
            touch: Some(chat_domain::Timestamp::from_millis(0)),
            ..SessionPatch::default()
        };
        matches!(store.update(user, patch).await, Ok(Some(_)))
    }

    /// The node crashes: it leaves the network without a word (no more publishes or
    /// heartbeats), its sockets are lost with it and its sweep stops; no disconnect rule
    /// runs. The chat goes when the caller drops the node.
    pub fn kill(&self) {
        self.network.leave(&self.id);
        self.stop.cancel();
        let sockets = std::mem::take(&mut *lock(&self.sockets.users));
        for (user, socket) in sockets {
            self.sockets.close(&user, socket, Closed::NodeDied);
        }
    }

    /// An orderly stop at the end of a run.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.chat.shutdown().await;
    }
}
