//! This node among others: users claimed and released in the directory, the inbox of events
//! and notices other nodes publish to this one, and liveness: this node's heartbeat, and
//! standing in for a node that died. Without a cluster each is a no-op.
//!
//! Standing in for a dead node, for each user it held: a user the directory still places
//! there has their entry dropped and their session marked offline with the socket detached,
//! exactly as if their socket had dropped: out of the queue, and in a chat the partner gets
//! `partner:disconnected` and the room waits `reconnect_grace`, on this node's timer, then
//! closes (`partner_disconnected`) unless the user has a socket again (reconnected on any live
//! node). A user who was already away there (in grace) only gets the timer: the partner was
//! told. A user the directory places on a live node is left alone.

use std::sync::Arc;

use chat_domain::UserId;
use chat_storage::cluster::{Heartbeat, NodeRecord};
use chat_storage::{BusHealth, Inbox, RoomRecord, SessionPatch};
use tokio::time::Instant;

use super::{ChatService, SessionEnd};
use crate::cluster::BusMessage;

impl ChatService {
    /// This node's id in the cluster (`None` on a single node).
    pub fn node_id(&self) -> Option<&str> {
        self.inner
            .node
            .as_ref()
            .map(|node| node.cluster().node_id())
    }

    /// Whether this node's bus subscription is live (`None` on a single node).
    pub fn bus_health(&self) -> Option<BusHealth> {
        self.inner
            .node
            .as_ref()
            .map(|node| node.cluster().bus_health())
    }

    /// The live nodes of the cluster, by id, this one included even while the registry is
    /// out of reach (then it is the only one listed); `None` on a single node.
    pub async fn live_nodes(&self) -> Option<Vec<NodeRecord>> {
        let node = self.inner.node.as_ref()?;
        let cluster = node.cluster();
        let mut live = match cluster.census(node.dead_after()).await {
            Ok(Some(census)) => census.live,
            Ok(None) => Vec::new(),
            Err(error) => {
                tracing::warn!(%error, "could not read the registry of nodes");
                Vec::new()
            }
        };
        if !live.iter().any(|record| record.id == cluster.node_id()) {
            live.push(NodeRecord {
                id: cluster.node_id().to_owned(),
                started_at: node.started_at(),
                last_seen: chat_domain::Timestamp::now(),
                sockets: u64::try_from(node.local_count()).unwrap_or(u64::MAX),
            });
            live.sort_by(|first, second| first.id.cmp(&second.id));
        }
        Some(live)
    }

    /// `user` connected on this node: a socket of theirs on another node is replaced, and
    /// this node becomes the one their events go to. Call it before
    /// [`ChatService::user_connected`].
    ///
    /// If the node that held them was in fact dead (its crash not noticed yet), nothing
    /// replaced the socket there and its claim will not list them: a node timeout later this
    /// node looks, and ends the search the dead socket left (an `orphaned` bus message).
    pub async fn claim_user(&self, user: &UserId) {
        let Some(node) = &self.inner.node else {
            return;
        };
        let Some(previous) = node.claim(user).await else {
            return;
        };
        let user = user.clone();
        self.after(node.node_timeout(), move |service| async move {
            let Some(node) = &service.inner.node else {
                return;
            };
            let alive = match node.cluster().census(node.dead_after()).await {
                Ok(Some(census)) => census.live.iter().any(|record| record.id == previous),
                // Nothing shared or unreadable: no judgement.
                Ok(None) | Err(_) => true,
            };
            if !alive {
                service.orphaned(&user, true).await;
            }
        });
    }

    /// `user`'s socket on this node is gone (not if another node took them over since). Call
    /// it before [`ChatService::user_disconnected`]: a user in a chat stays held by this node
    /// while the room waits for them.
    pub async fn release_user(&self, user: &UserId) {
        if let Some(node) = &self.inner.node {
            let hold = self.state().links.contains_key(user);
            node.release(user, hold).await;
        }
    }

    /// The wait for `user` on this node is over (their grace ran out, here or because they
    /// came back elsewhere).
    pub(super) async fn unhold_user(&self, user: &UserId) {
        if let Some(node) = &self.inner.node {
            node.unhold(user).await;
        }
    }

    /// Serves this node's inbox on the service's tasks until shutdown or the inbox closes.
    pub(super) fn serve_inbox(&self, mut inbox: Inbox) {
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            loop {
                let text = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    text = inbox.recv() => text,
                };
                let (Some(text), Some(inner)) = (text, weak.upgrade()) else {
                    return;
                };
                ChatService { inner }.handle_bus_message(&text).await;
            }
        });
    }

    async fn handle_bus_message(&self, text: &str) {
        let Some(messages) = BusMessage::decode(text) else {
            if let Some(node) = &self.inner.node {
                node.unreadable();
            }
            return;
        };
        for message in messages {
            match message {
                BusMessage::Event { to, event, sent_us } => {
                    self.receive(&to, event);
                    if let Some(node) = &self.inner.node {
                        node.delivered(sent_us);
                    }
                }
                BusMessage::Handed { user } => {
                    let mut state = self.state();
                    if self.inner.delivery.is_local(&user)
                        && !state.links.contains_key(&user)
                        && !state.pairing.contains_key(&user)
                    {
                        state.waiting.insert(user);
                    }
                }
                BusMessage::Replaced { user, by } => {
                    // A late replace never closes a socket newer than its claim.
                    let applies = match &self.inner.node {
                        Some(node) => node.replaced_here(&user).await,
                        None => true,
                    };
                    if !applies {
                        continue;
                    }
                    // The search the old socket made goes on for the new one.
                    let waiting = self.state().waiting.contains(&user);
                    if let (true, Some(by), Some(node)) = (waiting, by, &self.inner.node) {
                        node.tell(&by, BusMessage::Handed { user: user.clone() })
                            .await;
                    }
                    let room = self.state().links.get(&user).map(|link| link.room.clone());
                    self.inner.delivery.replaced_elsewhere(&user);
                    self.forget_local(&user);
                    if let Some(node) = &self.inner.node {
                        node.moved_away(&user);
                    }
                    if let Some(room) = room {
                        self.hand_room_over(&user, &room).await;
                    }
                }
                BusMessage::Orphaned { user } => self.orphaned(&user, false).await,
                BusMessage::Ended {
                    user,
                    expired,
                    banned,
                } => {
                    let end = match (expired, banned) {
                        (_, Some((until, reason))) => SessionEnd::Banned { until, reason },
                        (true, None) => SessionEnd::Expired,
                        (false, None) => SessionEnd::Deleted,
                    };
                    self.inner.delivery.ended_elsewhere(&user, end);
                    self.forget_local(&user);
                    if let Some(node) = &self.inner.node {
                        node.moved_away(&user);
                    }
                }
            }
        }
    }

    /// `user`'s socket moved to another node while this one held a link into `room`: a room
    /// opened after the claim (this node still took the old socket for theirs) is unknown
    /// there, so its `match:found` follows the user (dropped there if already known).
    async fn hand_room_over(&self, user: &UserId, room: &RoomRecord) {
        if !self.still_open(user, &room.room_id).await {
            return;
        }
        if let (Some((found, _)), Some(node)) = (self.found_of(user, room).await, &self.inner.node)
        {
            node.forward(user, found);
        }
    }

    /// `user`'s socket on a dead node is gone, their socket is here now: a queue entry of
    /// theirs this node did not make (no search of theirs waits or is being made here) was
    /// the dead socket's, and goes. With `forward`, a user whose socket moved on from here
    /// meanwhile is looked up and their node told.
    async fn orphaned(&self, user: &UserId, forward: bool) {
        let ours = {
            let state = self.state();
            state.waiting.contains(user)
                || state.pairing.contains_key(user)
                || state.links.contains_key(user)
        };
        if ours {
            return;
        }
        if !self.inner.delivery.is_local(user) {
            if let (true, Some(node)) = (forward, &self.inner.node)
                && let Ok(Some(entry)) = node.cluster().user_node(user).await
                && entry != node.cluster().node_id()
            {
                node.orphaned_on(&entry, user).await;
            }
            return;
        }
        self.leave_queue(user, "a dead socket's search").await;
    }

    /// Beats this node's record on the service's tasks until shutdown (then the record is
    /// marked gone), and stands in for the nodes found dead.
    pub(super) fn watch_nodes(&self) {
        let Some(node) = &self.inner.node else {
            return;
        };
        let cluster = node.cluster().clone();
        let period = node.beat_period();
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut healthy_since = None;
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                healthy_since = ChatService { inner }.beat(healthy_since).await;
            }
            if let Err(error) = cluster.deregister().await {
                tracing::debug!(%error, "could not deregister this node");
            }
        });
    }

    /// One heartbeat; returns since when the beats have been reaching the shared store
    /// without a failure. Dead nodes are only judged after that lasted `dead_after`, so a
    /// node back from an outage first lets the others beat again.
    async fn beat(&self, healthy_since: Option<Instant>) -> Option<Instant> {
        let node = self.inner.node.as_ref()?;
        let sockets = u64::try_from(node.local_count()).unwrap_or(u64::MAX);
        match node.cluster().heartbeat(node.started_at(), sockets).await {
            Ok(Heartbeat::Refreshed) => {}
            Ok(Heartbeat::Registered) => node.needs_resync(),
            Ok(Heartbeat::Alone) => {
                node.needs_resync();
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed");
                node.needs_resync();
                return None;
            }
        }
        node.resync_if_needed().await;
        let since = healthy_since.unwrap_or_else(Instant::now);
        if since.elapsed() >= node.dead_after() {
            self.stand_in_for_dead_nodes().await;
        }
        Some(since)
    }

    /// Claims every node unseen for too long and stands in for the users it held.
    async fn stand_in_for_dead_nodes(&self) {
        let Some(node) = &self.inner.node else {
            return;
        };
        let cluster = node.cluster();
        let dead = match cluster.census(node.dead_after()).await {
            Ok(Some(census)) => census.dead,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read the registry of nodes");
                return;
            }
        };
        for dead in dead.iter().filter(|dead| *dead != cluster.node_id()) {
            let users = match cluster.claim_dead_node(dead, node.dead_after()).await {
                Ok(Some(users)) => users,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, node = %dead, "could not claim a dead node");
                    continue;
                }
            };
            tracing::warn!(node = %dead, users = users.len(), "a node is gone: standing in for its users");
            for user in users {
                self.stand_in(dead, &user).await;
            }
        }
    }

    /// `user` was held by the dead node `dead`: they are treated as if their socket dropped.
    async fn stand_in(&self, dead: &str, user: &UserId) {
        let Some(node) = &self.inner.node else {
            return;
        };
        let cluster = node.cluster();
        let dropped = match cluster.user_node(user).await {
            Ok(Some(entry)) if entry == dead => cluster.take_user_from(user, dead).await,
            // Connected on a live node now (before the death was noticed): a search the dead
            // socket left in the queue ends there, unless that node knows it as its own.
            Ok(Some(entry)) => {
                if entry == cluster.node_id() {
                    self.orphaned(user, false).await;
                } else {
                    node.orphaned_on(&entry, user).await;
                }
                return;
            }
            // Already away there: their chat was waiting for them.
            Ok(None) => Ok(false),
            Err(error) => Err(error),
        };
        let dropped = match dropped {
            Ok(dropped) => dropped,
            Err(error) => {
                tracing::warn!(%error, "could not take over a dead node's user");
                return;
            }
        };
        let session = match self.inner.sessions.get(user).await {
            Ok(Some(session)) => session,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read a dead node's user");
                return;
            }
        };
        if !dropped && session.socket_id.is_some() {
            return;
        }
        if dropped {
            let offline = SessionPatch {
                is_online: Some(false),
                socket: Some(None),
                ..SessionPatch::default()
            };
            self.set_flags(user, offline).await;
            self.changed();
        }
        self.leave_queue(user, "a dead node's user").await;
        match self.inner.shared.room_of(user).await {
            // As after any drop; a partner already told (the user was away there) hears
            // nothing twice.
            Ok(Some(room)) => self.wait_for_dropped(user, room),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "could not read a dead node's user's room"),
        }
    }
}
