//! [`ChatService`]: matching, rooms, messages, receipts, grace and calls, tied to the stores,
//! to this node's [`Delivery`] and, with several nodes, to the [`Cluster`](chat_storage::Cluster).
//!
//! One concern per module, all of them `impl ChatService` blocks over the core here:
//! - `matching`: search, cancel, next;
//! - `relay`: messages and their receipts, typing, leave, clear;
//! - `grace`: a socket dropping and coming back (on any node), sessions ending;
//! - `calls`: WebRTC offers, answers, candidates, hang-ups and the call timer;
//! - `nodes`: this node among others (directory claims, the inbox).
//!
//! The node-local state ([`Link`]s of this node's users) sits behind one `std::sync::Mutex`
//! that is never held across an `.await`: each method decides under the lock, then does its
//! I/O (store calls, deliveries) after releasing it.

mod calls;
mod grace;
mod matching;
mod nodes;
mod relay;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_domain::moderation::REPORT_AFTER_CLOSE;
use chat_domain::{RoomId, UserId, Username};
use chat_storage::{ChatStore, ModerationStore, RoomRecord, SessionPatch, SessionStore};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::cluster::{Membership, Node};
use crate::delivery::{CloseReason, Delivery, FileUrls, Outgoing};
use crate::error::ChatError;
use crate::links::{Call, Link};

pub use grace::SessionEnd;
pub use relay::{Receipt, SentMessage};

/// Timings of the chat.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// How long an offer waits for answer, reject or end.
    pub call_timeout: Duration,
    /// How long a room waits for a dropped user.
    pub reconnect_grace: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(10),
        }
    }
}

/// What a [`ChatService`] works over.
pub struct ChatParts {
    /// The sessions (profiles, flags, files).
    pub sessions: Arc<dyn SessionStore>,
    /// The state shared by every node: the search queue and the room records.
    pub shared: Arc<dyn ChatStore>,
    /// This node's sockets.
    pub delivery: Arc<dyn Delivery>,
    /// Signed download URLs of files in messages.
    pub urls: Arc<dyn FileUrls>,
    /// This node's place among several: `None` on a single node, where every user is local.
    pub cluster: Option<Membership>,
    /// Who may never be paired with whom (reports): `None` blocks nobody.
    pub blocks: Option<Arc<dyn ModerationStore>>,
}

/// The chat of one node. Cheap to clone; clones share everything.
///
/// Its timers and, with a cluster, its bus tasks run until [`ChatService::shutdown`].
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

/// What clones of a [`ChatService`] share. Tasks and [`Receipt`]s hold it weakly.
pub(crate) struct Inner {
    config: ChatConfig,
    sessions: Arc<dyn SessionStore>,
    shared: Arc<dyn ChatStore>,
    delivery: Arc<dyn Delivery>,
    urls: Arc<dyn FileUrls>,
    blocks: Option<Arc<dyn ModerationStore>>,
    on_change: Box<dyn Fn() + Send + Sync>,
    state: Mutex<State>,
    node: Option<Node>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// A service dropped without [`ChatService::shutdown`] still tells its tasks to stop.
    _stop_on_drop: DropGuard,
}

#[derive(Default)]
struct State {
    links: HashMap<UserId, Link>,
    generation: u64,
    /// This node's users whose match is being made here, as searcher or as the popped
    /// partner: set before the first await of the pairing, taken once both sides are told.
    pairing: HashMap<UserId, Pairing>,
    /// This node's users waiting in the shared queue (their last search queued them), until
    /// they are paired, cancel, search again or drop.
    waiting: HashSet<UserId>,
    /// This node's users who moved on (cancelled, searched again, left) after another
    /// search took them out of the queue: the `match:found` in flight for them is refused.
    moved_on: HashMap<UserId, Instant>,
    /// The partner each of this node's users left, or was left by, through `match:next`:
    /// their searches avoid each other until their next pairing.
    avoid: HashMap<UserId, UserId>,
    /// The room each of this node's users was last in, and when they left it: a user may
    /// still report that partner for [`chat_domain::moderation::REPORT_AFTER_CLOSE`].
    last_room: HashMap<UserId, (RoomRecord, Instant)>,
}

/// A match being made for one user on this node.
#[derive(Debug, Clone, Copy)]
struct Pairing {
    /// Tells this pairing from a later one of the same user.
    token: u64,
    /// The user's socket dropped meanwhile: once the room is open, it waits for them.
    away: bool,
}

/// How long a user who moved on refuses a `match:found` from the search that had already
/// taken them out of the queue (that search opens its room within a few round trips).
const MOVED_ON_FOR: Duration = Duration::from_secs(30);

/// What [`ChatService::observe`] decided about an event for a user of this node.
enum Observed {
    /// Hand it to the socket.
    Deliver,
    /// Drop it: it tells the socket nothing new (a second `partner:disconnected`).
    Drop,
    /// A `match:found` for a user who moved on, or is in another room: not delivered, and
    /// the new room is to be closed, its other member told `partner_left`.
    Refuse(RoomRecord),
}

impl State {
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Takes `user`'s link, remembering its room as the last one they were in.
    fn unlink(&mut self, user: &UserId) -> Option<Link> {
        let link = self.links.remove(user)?;
        let now = Instant::now();
        if self.last_room.len() >= 1024 {
            self.last_room
                .retain(|_, (_, left)| now.duration_since(*left) < REPORT_AFTER_CLOSE);
        }
        self.last_room
            .insert(user.clone(), (link.room.clone(), now));
        Some(link)
    }
}

impl ChatService {
    /// A chat over `parts`; `on_change` is called whenever the service's counters may have
    /// changed (searching, chatting). With a cluster, this node's bus tasks start here, so a
    /// Tokio runtime is needed; on a single node nothing is spawned until a timer starts.
    pub fn new(
        config: ChatConfig,
        parts: ChatParts,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let ChatParts {
            sessions,
            shared,
            delivery,
            urls,
            cluster,
            blocks,
        } = parts;
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let (node, inbox) = match cluster {
            Some(membership) => {
                let (node, inbox) = Node::start(membership, &tasks, &shutdown);
                (Some(node), Some(inbox))
            }
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            config,
            sessions,
            shared,
            delivery,
            urls,
            blocks,
            on_change: Box::new(on_change),
            state: Mutex::new(State::default()),
            node,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            tasks,
        });
        let service = Self { inner };
        if let Some(inbox) = inbox {
            service.serve_inbox(inbox);
        }
        service.watch_nodes();
        service
    }

    /// Stops the chat of this node: call timers and grace timers stand down, events already
    /// queued for other nodes are sent, the bus tasks end; returns once every task has. Chat
    /// actions after it still work, but without timers or other nodes.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a poisoned lock is taken over.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        (self.inner.on_change)();
    }

    /// Runs `then` on this service after `delay`, unless it shut down (or was dropped)
    /// first. The task holds the service weakly.
    fn after<F, Fut>(&self, delay: Duration, then: F)
    where
        F: FnOnce(ChatService) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(delay) => {
                    if let Some(inner) = weak.upgrade() {
                        then(ChatService { inner }).await;
                    }
                }
            }
        });
    }

    /// Runs `work` on this service's tasks now (it stops at shutdown like a timer).
    fn in_background<F, Fut>(&self, work: F)
    where
        F: FnOnce(ChatService) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        self.after(Duration::ZERO, work);
    }

    /// Sends `event` to `to`: on this node observed into their link and handed to their
    /// socket, else queued for the node holding their socket.
    fn deliver(&self, to: &UserId, event: Outgoing) {
        let local = self.inner.delivery.is_local(to);
        self.deliver_to(to, event, local);
    }

    /// [`ChatService::deliver`] when `local` (whether `to`'s socket is here) is known.
    fn deliver_to(&self, to: &UserId, event: Outgoing, local: bool) {
        if local {
            match self.observe(to, &event) {
                Observed::Deliver => {}
                Observed::Drop => return,
                Observed::Refuse(room) => return self.refuse_room(to, room),
            }
        }
        self.hand_over(to, event, local);
    }

    /// Whether events can reach users on other nodes now: with a cluster, this node's bus
    /// subscription is live and the store reaches Redis. Two flags, no I/O.
    fn others_reachable(&self) -> bool {
        self.inner.node.as_ref().is_none_or(|node| {
            node.cluster().bus_health().up && self.inner.sessions.health().redis_up
        })
    }

    /// Where an event of a relay for `to` goes: `Ok(true)` to their socket here, `Ok(false)`
    /// to another node; [`ChatError::PartnerUnreachable`] when it would need another node
    /// and they cannot be reached (Redis or the bus is down), so that the sender is told
    /// instead of the event being lost. A partner on this node costs nothing more.
    fn route(&self, to: &UserId) -> Result<bool, ChatError> {
        let local = self.inner.delivery.is_local(to);
        if !local && !self.others_reachable() {
            return Err(ChatError::PartnerUnreachable);
        }
        Ok(local)
    }

    /// Hands an already observed `event` to `to`'s socket on this node (a message with its
    /// receipt), or to their node; on a single node, an event for nobody here is dropped.
    fn hand_over(&self, to: &UserId, event: Outgoing, local: bool) {
        if local {
            let receipt = match &event {
                Outgoing::Message(message) => Some(Receipt::new(&self.inner, to, &message.id)),
                _ => None,
            };
            self.inner.delivery.deliver_local(to, event, receipt);
        } else if let Some(node) = &self.inner.node {
            node.forward(to, event);
        }
    }

    /// An event for `to` arrived from another node: update what this node knows of `to`'s
    /// chat, then hand it to their socket (dropped if they are not here any more).
    pub(crate) fn receive(&self, to: &UserId, event: Outgoing) {
        if self.inner.delivery.is_local(to) {
            self.deliver_to(to, event, true);
        }
    }

    /// `to` refused the `match:found` of `room` (see [`Observed::Refuse`]): the room closes
    /// in the background and its other member hears `partner_left`.
    fn refuse_room(&self, to: &UserId, room: RoomRecord) {
        tracing::debug!(room_id = %room.room_id, "match refused: the partner moved on");
        let notices = room
            .partner_of(to)
            .map(|(partner, _)| vec![(partner.clone(), CloseReason::PartnerLeft)])
            .unwrap_or_default();
        self.in_background(move |service| async move {
            service.close(&room, notices).await;
        });
    }

    /// Keeps `to`'s link in step with the events they receive, and says whether the event
    /// still goes to their socket.
    fn observe(&self, to: &UserId, event: &Outgoing) -> Observed {
        let mut state = self.state();
        if let Outgoing::Found {
            room_id,
            partner,
            own_username,
            initiator,
        } = event
        {
            let room = RoomRecord {
                room_id: room_id.clone(),
                members: [
                    (to.clone(), own_username.clone()),
                    (partner.id.clone(), partner.username.clone()),
                ],
            };
            state.waiting.remove(to);
            // The waiting side (the initiator) may have moved on since it was popped; and
            // nobody is ever in two rooms.
            let moved_on = *initiator
                && state
                    .moved_on
                    .remove(to)
                    .is_some_and(|since| since.elapsed() < MOVED_ON_FOR);
            // Already known (announced again after a move between nodes): nothing new.
            if state
                .links
                .get(to)
                .is_some_and(|link| link.room_id() == room_id)
            {
                return Observed::Drop;
            }
            let elsewhere = state
                .links
                .get(to)
                .is_some_and(|link| link.room_id() != room_id);
            if moved_on || elsewhere {
                return Observed::Refuse(room);
            }
            state.avoid.remove(to);
            let mut link = Link::new(room);
            link.announced = true;
            state.links.insert(to.clone(), link);
            return Observed::Deliver;
        }
        let Some(link) = state.links.get_mut(to) else {
            return Observed::Deliver;
        };
        match event {
            Outgoing::RoomClosed { room_id, reason } if link.room_id() == room_id => {
                let partner = link.sides(to).map(|(partner, _)| partner);
                state.unlink(to);
                if let (CloseReason::PartnerSkipped, Some(partner)) = (reason, partner) {
                    state.avoid.insert(to.clone(), partner);
                }
            }
            Outgoing::Message(message) if link.room_id() == &message.room_id => {
                link.expect_receipt(message.id.clone(), message.sender_id.clone())
            }
            Outgoing::PartnerDisconnected { .. } if link.partner_away => return Observed::Drop,
            Outgoing::PartnerDisconnected { .. } => link.partner_away = true,
            Outgoing::PartnerReconnected => link.partner_away = false,
            Outgoing::Offer { from, .. } => {
                let answered = link.call.as_ref().is_some_and(|call| call.answered);
                link.call = Some(Call {
                    caller: from.clone(),
                    answered,
                    timer: None,
                });
            }
            Outgoing::Answer { .. } => {
                if let Some(call) = link.call.as_mut() {
                    call.answered = true;
                }
            }
            Outgoing::CallEnded { .. }
            | Outgoing::CallRejected { .. }
            | Outgoing::CallTimeout { .. } => link.call = None,
            _ => {}
        }
        Observed::Deliver
    }

    /// `user`'s socket moved to another node, which now holds their chat (or their session
    /// ended): forget everything of theirs here without telling anyone.
    pub(crate) fn forget_local(&self, user: &UserId) {
        let mut state = self.state();
        state.unlink(user);
        state.waiting.remove(user);
        state.moved_on.remove(user);
        state.avoid.remove(user);
    }

    /// Whether `user` is in a chat as this node knows it (their socket is here). No I/O:
    /// events that need a chat are refused with `not_in_chat` on this before their payload
    /// is read.
    pub fn in_chat(&self, user: &UserId) -> bool {
        self.state().links.contains_key(user)
    }

    /// Number of this node's users in a chat.
    pub fn local_chats(&self) -> usize {
        self.state().links.len()
    }

    /// Whom `user` may report: their partner, or the last one within
    /// [`REPORT_AFTER_CLOSE`] after their room closed; with the room. Known on the user's
    /// node.
    pub fn partner_to_report(&self, user: &UserId) -> Option<(UserId, RoomId)> {
        let state = self.state();
        let room = match state.links.get(user) {
            Some(link) => &link.room,
            None => {
                let (room, left) = state.last_room.get(user)?;
                if left.elapsed() >= REPORT_AFTER_CLOSE {
                    return None;
                }
                room
            }
        };
        let (partner, _) = room.partner_of(user)?;
        Some((partner.clone(), room.room_id.clone()))
    }

    /// The room `user` is in, if any (this node's knowledge first, then the shared store).
    pub async fn room_of(&self, user: &UserId) -> Option<RoomId> {
        if let Some(room) = self
            .state()
            .links
            .get(user)
            .map(|link| link.room_id().clone())
        {
            return Some(room);
        }
        self.inner
            .shared
            .room_of(user)
            .await
            .ok()
            .flatten()
            .map(|room| room.room_id)
    }

    /// Whether `viewer` is a member of the open room `room`.
    pub async fn is_member(&self, room: &RoomId, viewer: &UserId) -> bool {
        if self
            .state()
            .links
            .get(viewer)
            .is_some_and(|link| link.room_id() == room)
        {
            return true;
        }
        self.inner
            .shared
            .room(room)
            .await
            .ok()
            .flatten()
            .is_some_and(|record| record.has_member(viewer))
    }

    /// The room, partner and own name of `user`, and whether the partner is away; or
    /// `not_in_chat`; `unavailable` while the partner is away when `need_partner` is set.
    fn sides(
        &self,
        user: &UserId,
        need_partner: bool,
    ) -> Result<(RoomRecord, UserId, Username, bool), ChatError> {
        let state = self.state();
        let link = state.links.get(user).ok_or_else(ChatError::not_in_chat)?;
        let (partner, own) = link.sides(user).ok_or_else(ChatError::not_in_chat)?;
        if need_partner && link.partner_away {
            return Err(ChatError::PartnerUnavailable);
        }
        Ok((link.room.clone(), partner, own, link.partner_away))
    }

    /// Closes `room` (once across nodes), tells `notices`, forgets this node's links into it,
    /// resets both members' flags and deletes the room's files.
    async fn close(&self, room: &RoomRecord, notices: Vec<(UserId, CloseReason)>) {
        let closed = match self.inner.shared.close_room(room).await {
            Ok(closed) => closed,
            Err(error) => {
                tracing::warn!(%error, room_id = %room.room_id, "could not close a room in the store");
                true
            }
        };
        if !closed {
            // Someone else closed it first and told everyone.
            self.forget_room(room);
            return;
        }
        for (to, reason) in notices {
            self.deliver(
                &to,
                Outgoing::RoomClosed {
                    room_id: room.room_id.clone(),
                    reason,
                },
            );
        }
        self.forget_room(room);
        // Both members' flags and the room's files, in one round trip.
        let [(first, _), (second, _)] = &room.members;
        let ((), (), deleted) = tokio::join!(
            self.set_flags(first, out_of_chat()),
            self.set_flags(second, out_of_chat()),
            self.inner.sessions.delete_room_files(&room.room_id),
        );
        if let Err(error) = deleted {
            tracing::warn!(%error, room_id = %room.room_id, "could not delete the files of a closed room");
        }
        self.changed();
    }

    fn forget_room(&self, room: &RoomRecord) {
        let mut state = self.state();
        for (member, _) in &room.members {
            if state
                .links
                .get(member)
                .is_some_and(|link| link.room_id() == &room.room_id)
            {
                state.unlink(member);
            }
        }
    }

    /// Takes `user` out of the queue on their behalf (their socket or session is gone), with
    /// the searching flag reset if they were in it. Returns whether they were, or may have
    /// been (the store did not answer: logged with `why`).
    async fn leave_queue(&self, user: &UserId, why: &'static str) -> bool {
        match self.inner.shared.cancel_search(user).await {
            Ok(true) => {
                self.set_searching(user, false).await;
                true
            }
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(%error, why, "could not take a user out of the queue");
                true
            }
        }
    }

    /// Sets the searching flag of `user` and tells the stats it changed.
    async fn set_searching(&self, user: &UserId, searching: bool) {
        let patch = SessionPatch {
            is_searching: Some(searching),
            ..SessionPatch::default()
        };
        self.set_flags(user, patch).await;
        self.changed();
    }

    async fn set_flags(&self, user: &UserId, patch: SessionPatch) {
        if let Err(error) = self.inner.sessions.update(user, patch).await {
            tracing::warn!(%error, user_id = %user, "could not update session flags");
        }
    }
}

/// The session patch of a user who is in no chat any more.
fn out_of_chat() -> SessionPatch {
    SessionPatch {
        chat: Some(None),
        ..SessionPatch::default()
    }
}
