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
//!   forgets their chat, which their new node holds now; an `ended` message (a session
//!   deleted or expired through another node) ends the user's socket here and forgets what
//!   this node held for them.
//! - A socket connecting claims its user in the directory, telling the node that held them
//!   before; a socket leaving releases them (unless another node took over). A user whose
//!   chat waits for them (reconnect grace) stays *held* by this node until the wait is over.
//! - Liveness: every [`Membership::node_timeout`] / 5 the node beats its record (with its
//!   socket count) and, once it has been beating without a failure for a while, looks for
//!   nodes unseen for 4/5 of the timeout: it claims each (one survivor gets it) and stands in
//!   for the users it held (see `service/nodes.rs`). A dead node is thus noticed within the
//!   timeout of its last beat. When a beat finds the node unregistered (first beat, Redis
//!   lost its data or took it for dead) or a directory write did not land (Redis away), the
//!   node records every local user again.
//! - Watching: a [`ClusterObserver`] in the membership hears how long each forwarded event
//!   took from its publication to its delivery on the receiving node (each event carries
//!   the wall-clock time it was published, so the two nodes' clocks take part), and of events
//!   this node gave up on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_domain::{Timestamp, UserId};
use chat_storage::{Cluster, Inbox};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::delivery::Outgoing;
use crate::service::SessionEnd;

/// How many forwarded events one bus message carries at most.
pub const FORWARD_BATCH: usize = 256;

/// This node's membership in a cluster, handed to [`ChatService::new`](crate::ChatService::new)
/// through [`ChatParts`](crate::ChatParts): the cluster handle, the inbox of messages
/// published to this node, and how soon a silent node counts as dead.
pub struct Membership {
    /// The bus and the directory, as this node sees them.
    pub cluster: Arc<dyn Cluster>,
    /// Messages published to this node.
    pub inbox: Inbox,
    /// A node that dies without a word is noticed by the others within this long.
    pub node_timeout: Duration,
    /// Told how long events took between nodes, and of events dropped (metrics); `None`:
    /// nobody watches.
    pub observer: Option<Arc<dyn ClusterObserver>>,
}

/// What a node tells whoever watches its traffic with other nodes (see [`Membership`]).
/// Called on the bus tasks: keep it cheap.
pub trait ClusterObserver: Send + Sync {
    /// An event another node published for a user here was handed to their socket
    /// `latency` after its publication (by the two nodes' wall clocks: skew between them
    /// shows here; a negative difference counts as zero).
    fn event_delivered(&self, latency: Duration);

    /// `events` events (for users on other nodes, or from them) were dropped, for `reason`.
    fn events_dropped(&self, events: usize, reason: DropReason);
}

/// Why events between nodes were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No node held the user for [`UNPLACED_WAIT`].
    Unplaced,
    /// Publishing them to the user's node failed (Redis away, say).
    PublishFailed,
    /// A bus payload from another node could not be read (counted as one).
    Unreadable,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [Self; 3] = [Self::Unplaced, Self::PublishFailed, Self::Unreadable];

    /// A short stable name (a metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unplaced => "unplaced",
            Self::PublishFailed => "publish_failed",
            Self::Unreadable => "unreadable",
        }
    }
}

/// The default [`Membership::node_timeout`].
pub const NODE_TIMEOUT: Duration = Duration::from_secs(10);

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
        /// When it was published, in µs since the Unix epoch (set by [`publish_all`]; absent
        /// from a node that does not stamp its events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_us: Option<u64>,
    },
    /// The user connected on another node: their socket here is replaced.
    Replaced {
        /// The user.
        user: UserId,
        /// The claiming node, told with [`BusMessage::Handed`] if a search of the user's
        /// waits in the queue.
        #[serde(default)]
        by: Option<String>,
    },
    /// The user's socket moved to the receiving node while their search waited in the queue:
    /// the search is theirs there now.
    Handed {
        /// The user.
        user: UserId,
    },
    /// The user's socket on a node that died is gone, and the receiving node holds their
    /// socket now: a search of theirs it does not know of was the dead socket's, and ends.
    Orphaned {
        /// The user.
        user: UserId,
    },
    /// The user's session ended through another node: their socket here ends, and this
    /// node forgets what it held for them.
    Ended {
        /// The user.
        user: UserId,
        /// Whether it expired (the socket is told `session:expired` first).
        expired: bool,
        /// It was banned: until when, and why (the socket is told `session:banned`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        banned: Option<(Timestamp, String)>,
    },
}

impl BusMessage {
    /// An event for `to`, not stamped yet.
    fn event(to: UserId, event: Outgoing) -> Self {
        Self::Event {
            to,
            event,
            sent_us: None,
        }
    }

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
    node_timeout: Duration,
    started_at: Timestamp,
    /// The users whose socket is on this node, as claimed.
    local: Mutex<HashSet<UserId>>,
    /// A directory write did not land: every local user is recorded again at the next beat
    /// that reaches the shared store.
    resync: AtomicBool,
    /// Whoever watches this node's traffic with the others.
    observer: Option<Arc<dyn ClusterObserver>>,
}

impl Node {
    /// Starts the forwarder on `tasks` (it stops at `shutdown`, after sending what is
    /// queued); returns the node and the inbox for the service to serve.
    pub(crate) fn start(
        membership: Membership,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> (Self, Inbox) {
        let Membership {
            cluster,
            inbox,
            node_timeout,
            observer,
        } = membership;
        let (outbox, queue) = mpsc::unbounded_channel();
        let forwarder = Forwarder {
            cluster: cluster.clone(),
            observer: observer.clone(),
        };
        tasks.spawn(run_forwarder(forwarder, queue, shutdown.clone()));
        let node = Self {
            cluster,
            outbox,
            // Below a few milliseconds the beats would spin.
            node_timeout: node_timeout.max(Duration::from_millis(50)),
            started_at: Timestamp::now(),
            local: Mutex::default(),
            resync: AtomicBool::new(false),
            observer,
        };
        (node, inbox)
    }

    /// How often this node beats (and looks for dead nodes).
    pub(crate) fn beat_period(&self) -> Duration {
        self.node_timeout / 5
    }

    /// How long a node may stay unseen before it counts as dead: four beats, so that a dead
    /// node is noticed within the timeout of its last beat.
    pub(crate) fn dead_after(&self) -> Duration {
        self.beat_period() * 4
    }

    /// When this node started.
    pub(crate) fn started_at(&self) -> Timestamp {
        self.started_at
    }

    fn local(&self) -> MutexGuard<'_, HashSet<UserId>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many users have their socket here.
    pub(crate) fn local_count(&self) -> usize {
        self.local().len()
    }

    /// Every local user is to be recorded again.
    pub(crate) fn needs_resync(&self) {
        self.resync.store(true, Ordering::Relaxed);
    }

    /// Records every local user in the directory again if a write did not land (or the node
    /// was unregistered); keeps the flag when a write fails again.
    pub(crate) async fn resync_if_needed(&self) {
        if !self.resync.swap(false, Ordering::Relaxed) {
            return;
        }
        let users: Vec<UserId> = self.local().iter().cloned().collect();
        if !users.is_empty() {
            tracing::info!(users = users.len(), "recording this node's users again");
        }
        for user in users {
            if self.cluster.set_user_node(&user).await.is_err() {
                self.needs_resync();
                return;
            }
        }
    }

    /// The cluster handle.
    pub(crate) fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    /// An event published at `sent_us` (µs since the epoch; `None` from a node that does not
    /// say) was handed to its user's socket here.
    pub(crate) fn delivered(&self, sent_us: Option<u64>) {
        if let (Some(observer), Some(sent_us)) = (&self.observer, sent_us) {
            let latency = now_us().saturating_sub(sent_us);
            observer.event_delivered(Duration::from_micros(latency));
        }
    }

    /// A bus payload could not be read.
    pub(crate) fn unreadable(&self) {
        if let Some(observer) = &self.observer {
            observer.events_dropped(1, DropReason::Unreadable);
        }
    }

    /// Queues `event` for `to`'s node. Never blocks.
    pub(crate) fn forward(&self, to: &UserId, event: Outgoing) {
        let _ = self.outbox.send((to.clone(), event));
    }

    /// `user` connected here: the node that held them before (if another) replaces its
    /// socket, and this node becomes the one their events go to.
    /// The directory names this node before the old node hears of it: a `replaced` that
    /// arrives late is checked against the directory there (see
    /// [`Node::replaced_here`]), so it never closes a socket newer than this claim.
    /// Returns the other node that held them, if any.
    pub(crate) async fn claim(&self, user: &UserId) -> Option<String> {
        self.local().insert(user.clone());
        let previous = self.cluster.user_node(user).await.ok().flatten();
        if let Err(error) = self.cluster.set_user_node(user).await {
            // Redis is away, say: recorded again when it is back.
            tracing::debug!(%error, "could not record the user's node");
            self.needs_resync();
        }
        let previous = previous.filter(|previous| previous != self.cluster.node_id())?;
        let replaced = BusMessage::Replaced {
            user: user.clone(),
            by: Some(self.cluster.node_id().to_owned()),
        };
        self.tell(&previous, replaced).await;
        Some(previous)
    }

    /// How long after a claim from `previous` this node looks whether it was alive.
    pub(crate) fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// Whether a `replaced` for `user` still applies here: not when the directory names this
    /// node, which means the user connected here again after the claim that sent it (the
    /// claiming node records itself before it publishes).
    pub(crate) async fn replaced_here(&self, user: &UserId) -> bool {
        match self.cluster.user_node(user).await {
            Ok(node) => node.as_deref() != Some(self.cluster.node_id()),
            // Cannot tell: the claim is newer than anything the directory could say.
            Err(_) => true,
        }
    }

    /// `user`'s session ended here while their socket (per the directory) is on another
    /// node: that node is told to end it.
    pub(crate) async fn end_elsewhere(&self, user: &UserId, end: SessionEnd) {
        let node = match self.cluster.user_node(user).await {
            Ok(node) => node,
            Err(error) => {
                tracing::warn!(%error, "could not look up the node of an ended session");
                return;
            }
        };
        let Some(node) = node.filter(|node| node != self.cluster.node_id()) else {
            return;
        };
        let ended = BusMessage::Ended {
            user: user.clone(),
            expired: end == SessionEnd::Expired,
            banned: match end {
                SessionEnd::Banned { until, reason } => Some((until, reason)),
                _ => None,
            },
        };
        self.tell(&node, ended).await;
    }

    /// `user`, held by a dead node, has their socket on the live node `node` now: that node
    /// ends the search the dead socket left (see [`BusMessage::Orphaned`]).
    pub(crate) async fn orphaned_on(&self, node: &str, user: &UserId) {
        self.tell(node, BusMessage::Orphaned { user: user.clone() })
            .await;
    }

    /// Publishes one `message` to `node` (a failure is logged).
    pub(crate) async fn tell(&self, node: &str, message: BusMessage) {
        let message = [message];
        if let Ok(text) = serde_json::to_string(&message)
            && let Err(error) = self.cluster.publish(node, text).await
        {
            tracing::warn!(%error, node, "could not publish to another node");
        }
    }

    /// `user`'s socket here is gone; with `hold`, their chat waits for them here.
    pub(crate) async fn release(&self, user: &UserId, hold: bool) {
        self.local().remove(user);
        let cleared = if hold {
            self.cluster.clear_user_node_held(user).await
        } else {
            self.cluster.clear_user_node(user).await
        };
        if let Err(error) = cleared {
            tracing::warn!(%error, "could not clear the user's node");
        }
    }

    /// `user`'s socket moved to another node, which holds them now (or their session ended).
    pub(crate) fn moved_away(&self, user: &UserId) {
        self.local().remove(user);
    }

    /// The wait for `user` here is over: this node no longer answers for them.
    pub(crate) async fn unhold(&self, user: &UserId) {
        if let Err(error) = self.cluster.drop_held_user(user).await {
            tracing::warn!(%error, "could not drop a held user");
        }
    }
}

/// How long events for a user the directory places nowhere wait for an entry before they are
/// dropped: their node may be recording its users again after a Redis outage (its searchers
/// go back into the shared queue at the same time, and can be paired before the directory
/// names their node again).
pub const UNPLACED_WAIT: Duration = Duration::from_secs(5);

/// How often events waiting for a directory entry look again.
const UNPLACED_RETRY: Duration = Duration::from_millis(100);

/// Events for users the directory did not place yet, in order per user, with when the first
/// of them arrived.
type Unplaced = HashMap<UserId, (tokio::time::Instant, Vec<Outgoing>)>;

/// What the forwarder works with: the cluster, and who hears of the events it drops.
struct Forwarder {
    cluster: Arc<dyn Cluster>,
    observer: Option<Arc<dyn ClusterObserver>>,
}

impl Forwarder {
    fn dropped(&self, events: usize, reason: DropReason) {
        if let (Some(observer), true) = (&self.observer, events > 0) {
            observer.events_dropped(events, reason);
        }
    }
}

/// Microseconds since the Unix epoch, now.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Forwards queued events in order, a batch at a time, until the queue's sender is gone or
/// `shutdown` is cancelled; then what is already queued is sent too. Events for a user with
/// no directory entry wait (up to [`UNPLACED_WAIT`], later events for that user behind them)
/// and are looked up again every [`UNPLACED_RETRY`].
async fn run_forwarder(
    forwarder: Forwarder,
    mut queue: mpsc::UnboundedReceiver<(UserId, Outgoing)>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    let mut unplaced = Unplaced::new();
    let mut retry_at = tokio::time::Instant::now();
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep_until(retry_at), if !unplaced.is_empty() => {
                retry_unplaced(&forwarder, &mut unplaced).await;
                retry_at = tokio::time::Instant::now() + UNPLACED_RETRY;
                continue;
            }
            received = queue.recv_many(&mut batch, FORWARD_BATCH) => received,
        };
        if received == 0 {
            return;
        }
        let waited = !unplaced.is_empty();
        send_batch(&forwarder, &mut batch, &mut unplaced).await;
        if !waited && !unplaced.is_empty() {
            retry_at = tokio::time::Instant::now() + UNPLACED_RETRY;
        }
    }
    // Shutting down: what was queued before still goes out (once; nothing waits any more).
    loop {
        while batch.len() < FORWARD_BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        send_batch(&forwarder, &mut batch, &mut unplaced).await;
    }
    retry_unplaced(&forwarder, &mut unplaced).await;
    drop_unplaced(&forwarder, unplaced);
}

/// The node holding `to`'s socket other than this one: `Ok(None)` when `to` is on this node,
/// `Err(())` when the directory places them nowhere (or cannot be read).
async fn node_of(cluster: &dyn Cluster, to: &UserId) -> Result<Option<String>, ()> {
    match cluster.user_node(to).await {
        Ok(Some(node)) if node == cluster.node_id() => Ok(None),
        Ok(Some(node)) => Ok(Some(node)),
        Ok(None) | Err(_) => Err(()),
    }
}

/// Sends the events of `batch` (emptied) to their users' nodes, one bus message per node.
/// Events for a user on this node again are dropped (their socket left); events for a user
/// placed nowhere, or behind such events, go to `unplaced`.
async fn send_batch(
    forwarder: &Forwarder,
    batch: &mut Vec<(UserId, Outgoing)>,
    unplaced: &mut Unplaced,
) {
    let cluster = forwarder.cluster.as_ref();
    let mut nodes: HashMap<UserId, Result<Option<String>, ()>> = HashMap::new();
    let mut by_node: HashMap<String, Vec<BusMessage>> = HashMap::new();
    for (to, event) in batch.drain(..) {
        if let Some((_, waiting)) = unplaced.get_mut(&to) {
            waiting.push(event);
            continue;
        }
        if !nodes.contains_key(&to) {
            let node = node_of(cluster, &to).await;
            nodes.insert(to.clone(), node);
        }
        match nodes.get(&to) {
            Some(Ok(Some(node))) => by_node
                .entry(node.clone())
                .or_default()
                .push(BusMessage::event(to, event)),
            Some(Err(())) => {
                unplaced.insert(to, (tokio::time::Instant::now(), vec![event]));
            }
            _ => {}
        }
    }
    publish_all(forwarder, by_node).await;
}

/// Looks up the users of `unplaced` again: those placed now get their events, in order;
/// those still placed nowhere after [`UNPLACED_WAIT`] lose them (logged).
async fn retry_unplaced(forwarder: &Forwarder, unplaced: &mut Unplaced) {
    let cluster = forwarder.cluster.as_ref();
    let mut by_node: HashMap<String, Vec<BusMessage>> = HashMap::new();
    let mut expired = Unplaced::new();
    let users: Vec<UserId> = unplaced.keys().cloned().collect();
    for user in users {
        let node = node_of(cluster, &user).await;
        let waited_out = unplaced
            .get(&user)
            .is_some_and(|(since, _)| since.elapsed() >= UNPLACED_WAIT);
        if node.is_err() && !waited_out {
            continue;
        }
        let Some((since, events)) = unplaced.remove(&user) else {
            continue;
        };
        match node {
            Ok(Some(node)) => by_node.entry(node).or_default().extend(
                events
                    .into_iter()
                    .map(|event| BusMessage::event(user.clone(), event)),
            ),
            Ok(None) => {}
            Err(()) => {
                expired.insert(user, (since, events));
            }
        }
    }
    publish_all(forwarder, by_node).await;
    drop_unplaced(forwarder, expired);
}

/// Gives up on events whose user no node holds.
fn drop_unplaced(forwarder: &Forwarder, unplaced: Unplaced) {
    for (user, (_, events)) in unplaced {
        tracing::warn!(user_id = %user, events = events.len(), "events dropped: no node holds the user");
        forwarder.dropped(events.len(), DropReason::Unplaced);
    }
}

/// Publishes each node's events, stamped with the time of publication.
async fn publish_all(forwarder: &Forwarder, by_node: HashMap<String, Vec<BusMessage>>) {
    for (node, mut messages) in by_node {
        let now = now_us();
        for message in &mut messages {
            if let BusMessage::Event { sent_us, .. } = message {
                *sent_us = Some(now);
            }
        }
        let Ok(text) = serde_json::to_string(&messages) else {
            continue;
        };
        if let Err(error) = forwarder.cluster.publish(&node, text).await {
            tracing::warn!(%error, "could not forward events to another node");
            forwarder.dropped(messages.len(), DropReason::PublishFailed);
        }
    }
}
