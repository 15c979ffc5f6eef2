//! [`ChatService`]: matching, rooms, messages, receipts, grace and calls, tied to the stores
//! and to a [`Delivery`].
//!
//! The node-local state ([`Link`]s of this node's users) sits behind one `std::sync::Mutex`
//! that is never held across an `.await`: each method decides under the lock, then does its
//! I/O (store calls, deliveries) after releasing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chat_domain::webrtc::{self, SdpRole};
use chat_domain::{
    ChatBody, ChatPayload, DomainError, FileId, FileInfo, FileType, Message, MessageContent,
    MessageId, MessageStatus, MessageType, RoomId, SearchFilters, Searcher, Timestamp, UserId,
    Username,
};
use chat_storage::{ChatStore, RoomRecord, SessionPatch, SessionStore};
use serde_json::Value;

use crate::delivery::{CloseReason, Delivery, FileUrls, Outgoing};
use crate::error::ChatError;
use crate::links::{Call, Link};

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

/// What the sender's ack of `chat:message` carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The server's id of the message.
    pub id: MessageId,
    /// The client's own id, echoed.
    pub client_id: Option<String>,
    /// When the server routed it.
    pub timestamp: Timestamp,
}

/// How a session ended, for its partner's `room:closed` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its TTL ran out.
    Expired,
    /// Its owner deleted it.
    Deleted,
}

/// The chat of one node. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    config: ChatConfig,
    sessions: Arc<dyn SessionStore>,
    shared: Arc<dyn ChatStore>,
    delivery: Arc<dyn Delivery>,
    urls: Arc<dyn FileUrls>,
    on_change: Box<dyn Fn() + Send + Sync>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    links: HashMap<UserId, Link>,
    generation: u64,
}

impl State {
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

impl ChatService {
    /// A chat over the session store `sessions` and the shared chat state `shared`,
    /// delivering through `delivery`; `on_change` is called whenever the service's counters
    /// may have changed (searching, chatting).
    pub fn new(
        config: ChatConfig,
        sessions: Arc<dyn SessionStore>,
        shared: Arc<dyn ChatStore>,
        delivery: Arc<dyn Delivery>,
        urls: Arc<dyn FileUrls>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let inner = Inner {
            config,
            sessions,
            shared,
            delivery,
            urls,
            on_change: Box::new(on_change),
            state: Mutex::new(State::default()),
        };
        Self {
            inner: Arc::new(inner),
        }
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

    /// Sends `event` to `to`: on this node through [`ChatService::receive`]'s path, else to
    /// the node holding their socket.
    fn deliver(&self, to: &UserId, event: Outgoing) {
        let local = self.inner.delivery.is_local(to);
        if local {
            self.observe(to, &event);
        }
        self.hand_over(to, event, local);
    }

    /// Hands an already observed `event` to `to`'s socket on this node, or to their node.
    fn hand_over(&self, to: &UserId, event: Outgoing, local: bool) {
        if local {
            self.inner.delivery.deliver_local(to, event);
        } else {
            self.inner.delivery.forward(to, event);
        }
    }

    /// An event for `to` arrived from another node: update what this node knows of `to`'s
    /// chat, then hand it to their socket (dropped if they are not here any more).
    pub fn receive(&self, to: &UserId, event: Outgoing) {
        if self.inner.delivery.is_local(to) {
            self.observe(to, &event);
            self.inner.delivery.deliver_local(to, event);
        }
    }

    /// Keeps `to`'s link in step with the events they receive.
    fn observe(&self, to: &UserId, event: &Outgoing) {
        let mut state = self.state();
        if let Outgoing::Found {
            room_id,
            partner,
            own_username,
            ..
        } = event
        {
            let room = RoomRecord {
                room_id: room_id.clone(),
                members: [
                    (to.clone(), own_username.clone()),
                    (partner.id.clone(), partner.username.clone()),
                ],
            };
            state.links.insert(to.clone(), Link::new(room));
            return;
        }
        let Some(link) = state.links.get_mut(to) else {
            return;
        };
        match event {
            Outgoing::RoomClosed { room_id, .. } if link.room_id() == room_id => {
                state.links.remove(to);
            }
            Outgoing::Message(message) if link.room_id() == &message.room_id => {
                link.expect_receipt(message.id.clone(), message.sender_id.clone())
            }
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
    }

    /// `user`'s socket moved to another node, which now holds their chat: forget it here
    /// without telling anyone.
    pub fn forget_local(&self, user: &UserId) {
        self.state().links.remove(user);
    }

    /// Number of this node's users in a chat.
    pub fn local_chats(&self) -> usize {
        self.state().links.len()
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

    /// `match:search`: queue `user`, or pair them with the oldest compatible searcher.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn search(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        self.search_avoiding(user, filters, None).await
    }

    async fn search_avoiding(
        &self,
        user: &UserId,
        filters: SearchFilters,
        avoid: Option<UserId>,
    ) -> Result<(), ChatError> {
        let already = || {
            ChatError::from(DomainError::invalid(
                "Already in a chat: use match:next or chat:leave",
            ))
        };
        if self.state().links.contains_key(user) {
            return Err(already());
        }
        let profile = self
            .inner
            .sessions
            .get(user)
            .await?
            .ok_or_else(|| DomainError::NotFound("Guest session not found".into()))?;
        let mut me = profile.public();
        me.is_searching = true;
        let partner = self
            .inner
            .shared
            .search(&Searcher {
                user: me.clone(),
                filters,
                avoid,
            })
            .await?;
        self.deliver(user, Outgoing::Searching);
        let Some(partner) = partner else {
            self.set_searching(user, true).await;
            return Ok(());
        };
        let mut partner = partner.user;
        // The one who waited longer sends the offer.
        let room = RoomRecord {
            room_id: RoomId::generate(),
            members: [
                (partner.id.clone(), partner.username.clone()),
                (me.id.clone(), me.username.clone()),
            ],
        };
        // The room record and both sessions' flags are independent writes: one round trip
        // for the three of them (they travel together to the store).
        let in_chat_with = |other: &UserId| SessionPatch {
            is_searching: Some(false),
            chat: Some(Some(other.clone())),
            ..SessionPatch::default()
        };
        let (opened, (), ()) = tokio::join!(
            self.inner.shared.open_room(&room),
            self.set_flags(user, in_chat_with(&partner.id)),
            self.set_flags(&partner.id, in_chat_with(user)),
        );
        if let Err(error) = opened {
            // No room: neither is in a chat after all.
            let out_of_chat = || SessionPatch {
                chat: Some(None),
                ..SessionPatch::default()
            };
            tokio::join!(
                self.set_flags(user, out_of_chat()),
                self.set_flags(&partner.id, out_of_chat()),
            );
            return Err(error.into());
        }
        for view in [&mut me, &mut partner] {
            view.is_searching = false;
            view.in_chat = true;
        }
        tracing::debug!(room_id = %room.room_id, "matched");
        let (partner_id, partner_name, my_name) = (
            partner.id.clone(),
            partner.username.clone(),
            me.username.clone(),
        );
        let to_partner = Outgoing::Found {
            room_id: room.room_id.clone(),
            partner: me,
            initiator: true,
            own_username: partner_name,
        };
        let to_me = Outgoing::Found {
            room_id: room.room_id,
            partner,
            initiator: false,
            own_username: my_name,
        };
        // Both sides' links exist before either side hears of the match, and the searcher hears
        // first: a partner who answers at once never reaches a user whose node does not know
        // the room yet, nor gets ahead of the searcher's own match:found.
        let local = [(user, &to_me), (&partner_id, &to_partner)].map(|(to, event)| {
            let local = self.inner.delivery.is_local(to);
            if local {
                self.observe(to, event);
            }
            local
        });
        for ((to, event), local) in [(user, to_me), (&partner_id, to_partner)]
            .into_iter()
            .zip(local)
        {
            self.hand_over(to, event, local);
        }
        self.changed();
        Ok(())
    }

    /// `match:cancel`: leave the queue (answered with `match:cancelled` either way).
    pub async fn cancel(&self, user: &UserId) -> Result<(), ChatError> {
        if self.inner.shared.cancel_search(user).await? {
            self.set_searching(user, false).await;
        }
        self.deliver(user, Outgoing::Cancelled);
        Ok(())
    }

    /// `match:next`: leave the current chat (the partner gets `room:closed`, `partner_left`)
    /// and search again, not paired with that partner while anyone else fits.
    pub async fn next(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        let link = self.state().links.remove(user);
        let avoid = match link {
            Some(link) => {
                let partner = link
                    .room
                    .partner_of(user)
                    .map(|(partner, _)| partner.clone());
                let notices = partner
                    .iter()
                    .map(|partner| (partner.clone(), CloseReason::PartnerLeft))
                    .collect();
                self.close(&link.room, notices).await;
                partner
            }
            None => None,
        };
        self.search_avoiding(user, filters, avoid).await
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
        let out_of_chat = || SessionPatch {
            chat: Some(None),
            ..SessionPatch::default()
        };
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
                state.links.remove(member);
            }
        }
    }

    /// The room, partner and own name of `user`, or `not_in_chat`; `unavailable` while the
    /// partner is away when `need_partner` is set.
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

    /// `chat:message`: relays a message to the partner and returns what the sender's ack says.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn send_message(
        &self,
        user: &UserId,
        payload: ChatPayload,
    ) -> Result<SentMessage, ChatError> {
        let (room, recipient, own_name, _) = self.sides(user, true)?;
        let (kind, content) = match payload.body {
            ChatBody::Text(text) => (MessageType::Text, MessageContent::Text(text)),
            ChatBody::File(file_id) => (
                MessageType::File,
                self.file_content(&room.room_id, &file_id, &recipient, false)
                    .await?,
            ),
            ChatBody::Voice(file_id) => (
                MessageType::Voice,
                self.file_content(&room.room_id, &file_id, &recipient, true)
                    .await?,
            ),
        };
        let timestamp = Timestamp::now();
        let id = MessageId::generate(timestamp);
        let message = Message {
            id: id.clone(),
            room_id: room.room_id,
            sender_id: user.clone(),
            sender_username: own_name,
            kind,
            content,
            timestamp,
            status: MessageStatus::Delivered,
        };
        self.deliver(&recipient, Outgoing::Message(Box::new(message)));
        self.deliver(
            user,
            Outgoing::Sent {
                id: id.clone(),
                client_id: payload.client_id.clone(),
                timestamp,
            },
        );
        Ok(SentMessage {
            id,
            client_id: payload.client_id,
            timestamp,
        })
    }

    async fn file_content(
        &self,
        room: &RoomId,
        file: &FileId,
        viewer: &UserId,
        voice: bool,
    ) -> Result<MessageContent, ChatError> {
        let not_here = || DomainError::Forbidden("file does not belong to this chat".into());
        let meta = self
            .inner
            .sessions
            .file_meta(file)
            .await?
            .ok_or_else(not_here)?;
        if &meta.room_id != room {
            return Err(not_here().into());
        }
        if voice != (meta.file_type == FileType::Voice) {
            let expected = if voice {
                "a voice message needs a voice upload"
            } else {
                "a voice upload must be sent as a voice message"
            };
            return Err(DomainError::invalid(expected).into());
        }
        Ok(MessageContent::File(FileInfo {
            file_url: self.inner.urls.url_for(file, viewer),
            file_id: meta.file_id,
            filename: meta.filename,
            file_type: meta.file_type,
            file_size: meta.size,
            duration: meta.duration,
            expires_at: meta.expires_at,
        }))
    }

    /// `message:delivered` (or the ack of `chat:message`) from `recipient`: tells the sender
    /// once. Returns whether a receipt was sent.
    pub fn confirm_delivery(&self, recipient: &UserId, id: &MessageId) -> bool {
        let sender = self
            .state()
            .links
            .get_mut(recipient)
            .and_then(|link| link.confirm_receipt(id));
        match sender {
            Some(sender) => {
                self.deliver(
                    &sender,
                    Outgoing::Delivered {
                        id: id.clone(),
                        delivered_at: Timestamp::now(),
                    },
                );
                true
            }
            None => false,
        }
    }

    /// `chat:typing` (dropped while the partner is away).
    pub fn typing(&self, user: &UserId, is_typing: bool) -> Result<(), ChatError> {
        let (_, partner, _, away) = self.sides(user, false)?;
        if !away {
            self.deliver(
                &partner,
                Outgoing::Typing {
                    from: user.clone(),
                    is_typing,
                },
            );
        }
        Ok(())
    }

    /// `chat:leave`: closes the room; the partner gets `partner_left`, the leaver `left`.
    pub async fn leave(&self, user: &UserId) -> Result<(), ChatError> {
        let (room, partner, _, _) = self.sides(user, false)?;
        self.close(
            &room,
            vec![
                (partner, CloseReason::PartnerLeft),
                (user.clone(), CloseReason::Left),
            ],
        )
        .await;
        Ok(())
    }

    /// `chat:clear`: deletes the room's files; the partner gets `chat:cleared`.
    pub async fn clear(&self, user: &UserId) -> Result<u64, ChatError> {
        let (room, partner, _, _) = self.sides(user, false)?;
        let deleted = self.inner.sessions.delete_room_files(&room.room_id).await?;
        self.deliver(&partner, Outgoing::Cleared);
        Ok(deleted)
    }

    /// The user's socket dropped: leave the queue, and if in a chat, the room waits
    /// `reconnect_grace` for them (the partner gets `partner:disconnected`).
    pub async fn user_disconnected(&self, user: &UserId) {
        match self.inner.shared.cancel_search(user).await {
            Ok(true) => {
                self.set_searching(user, false).await;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not take a dropped user out of the queue"),
        }
        let waiting = {
            let mut state = self.state();
            let generation = state.next_generation();
            state.links.get_mut(user).and_then(|link| {
                link.self_away = Some(generation);
                let (partner, _) = link.sides(user)?;
                Some((partner, link.partner_away, generation))
            })
        };
        let Some((partner, partner_away, generation)) = waiting else {
            return;
        };
        let grace = self.inner.config.reconnect_grace;
        if !partner_away {
            self.deliver(
                &partner,
                Outgoing::PartnerDisconnected {
                    grace_secs: grace.as_secs(),
                },
            );
        }
        let weak = Arc::downgrade(&self.inner);
        let user = user.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(service) = upgrade(&weak) {
                service.grace_expired(&user, generation).await;
            }
        });
    }

    async fn grace_expired(&self, user: &UserId, generation: u64) {
        let link = {
            let mut state = self.state();
            let current = state
                .links
                .get(user)
                .is_some_and(|link| link.self_away == Some(generation));
            if current {
                state.links.remove(user)
            } else {
                None
            }
        };
        let Some(link) = link else { return };
        // Back on another node in time: that node holds the chat now.
        let back_elsewhere = matches!(self.inner.sessions.get(user).await, Ok(Some(session)) if session.socket_id.is_some());
        if back_elsewhere {
            return;
        }
        let notices = link
            .room
            .partner_of(user)
            .map(|(partner, _)| vec![(partner.clone(), CloseReason::PartnerDisconnected)])
            .unwrap_or_default();
        self.close(&link.room, notices).await;
    }

    /// The user has a live socket (again): a room waiting for them goes on, and the partner
    /// gets `partner:reconnected`, whichever node the user came back to. Returns their room.
    pub async fn user_connected(&self, user: &UserId) -> Option<RoomId> {
        let known = {
            let mut state = self.state();
            state.links.get_mut(user).map(|link| {
                let was_away = link.self_away.take().is_some();
                (
                    link.room_id().clone(),
                    link.sides(user)
                        .map(|(partner, _)| partner)
                        .filter(|_| was_away),
                )
            })
        };
        if let Some((room_id, partner)) = known {
            if let Some(partner) = partner {
                self.deliver(&partner, Outgoing::PartnerReconnected);
            }
            return Some(room_id);
        }
        // Came back to another node than the one that knew the chat.
        let room = self.inner.shared.room_of(user).await.ok().flatten()?;
        let partner = room.partner_of(user).map(|(partner, _)| partner.clone())?;
        let room_id = room.room_id.clone();
        self.state().links.insert(user.clone(), Link::new(room));
        self.deliver(&partner, Outgoing::PartnerReconnected);
        Some(room_id)
    }

    /// The user's session is gone: leave the queue and close the room (the partner gets
    /// `session_expired` or `partner_left`).
    pub async fn session_ended(&self, user: &UserId, end: SessionEnd) {
        if let Err(error) = self.inner.shared.cancel_search(user).await {
            tracing::warn!(%error, "could not take an ended session out of the queue");
        }
        let local = self.state().links.remove(user).map(|link| link.room);
        let room = match local {
            Some(room) => Some(room),
            None => self.inner.shared.room_of(user).await.ok().flatten(),
        };
        if let Some(room) = room {
            let reason = match end {
                SessionEnd::Expired => CloseReason::SessionExpired,
                SessionEnd::Deleted => CloseReason::PartnerLeft,
            };
            let notices = room
                .partner_of(user)
                .map(|(partner, _)| vec![(partner.clone(), reason)])
                .unwrap_or_default();
            self.close(&room, notices).await;
        }
        self.changed();
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

    /// `webrtc:offer`: relays the offer and starts the call timer on this node.
    pub fn offer(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let offer = webrtc::validate_description(payload.get("offer"), SdpRole::Offer)?;
        let kind = webrtc::parse_call_kind(payload.get("type"))?;
        let (room, partner, own, _) = self.sides(user, true)?;
        let timer = {
            let mut state = self.state();
            let generation = state.next_generation();
            let link = state
                .links
                .get_mut(user)
                .filter(|link| link.room_id() == &room.room_id)
                .ok_or_else(ChatError::not_in_chat)?;
            // An offer during an answered call renegotiates it: no new timer.
            let renegotiation = link.call.as_ref().is_some_and(|call| call.answered);
            (!renegotiation).then(|| {
                link.call = Some(Call {
                    caller: user.clone(),
                    answered: false,
                    timer: Some(generation),
                });
                generation
            })
        };
        self.deliver(
            &partner,
            Outgoing::Offer {
                offer,
                kind,
                from: user.clone(),
                from_username: own,
                timestamp: Timestamp::now(),
            },
        );
        if let Some(generation) = timer {
            let weak = Arc::downgrade(&self.inner);
            let timeout = self.inner.config.call_timeout;
            let caller = user.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(service) = upgrade(&weak) {
                    service.call_timer_fired(&caller, generation);
                }
            });
        }
        Ok(())
    }

    fn call_timer_fired(&self, caller: &UserId, generation: u64) {
        let fired = {
            let mut state = self.state();
            let Some(link) = state.links.get_mut(caller) else {
                return;
            };
            match &link.call {
                Some(call) if call.timer == Some(generation) && !call.answered => {
                    link.call = None;
                    link.sides(caller)
                }
                _ => None,
            }
        };
        let Some((partner, own)) = fired else { return };
        for to in [caller, &partner] {
            self.deliver(
                to,
                Outgoing::CallTimeout {
                    from: caller.clone(),
                    from_username: own.clone(),
                },
            );
        }
    }

    /// `webrtc:answer`: relays the answer and stops the call timer.
    pub fn answer(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let answer = webrtc::validate_description(payload.get("answer"), SdpRole::Answer)?;
        let (_, partner, own, _) = self.sides(user, true)?;
        if let Some(call) = self
            .state()
            .links
            .get_mut(user)
            .and_then(|link| link.call.as_mut())
            .filter(|call| &call.caller != user)
        {
            call.answered = true;
        }
        self.deliver(
            &partner,
            Outgoing::Answer {
                answer,
                from: user.clone(),
                from_username: own,
            },
        );
        Ok(())
    }

    /// `webrtc:ice-candidate`: relays one candidate.
    pub fn candidate(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let candidate = webrtc::validate_candidate(payload.get("candidate"))?;
        let (_, partner, _, _) = self.sides(user, true)?;
        self.deliver(
            &partner,
            Outgoing::Candidate {
                candidate,
                from: user.clone(),
            },
        );
        Ok(())
    }

    /// `webrtc:call-end` (`reject` false) or `webrtc:call-reject` (`reject` true): relays it and
    /// stops the call timer.
    pub fn end_call(&self, user: &UserId, reject: bool) -> Result<(), ChatError> {
        let (_, partner, own, _) = self.sides(user, true)?;
        if let Some(link) = self.state().links.get_mut(user) {
            link.call = None;
        }
        let (from, from_username) = (user.clone(), own);
        let event = if reject {
            Outgoing::CallRejected {
                from,
                from_username,
            }
        } else {
            Outgoing::CallEnded {
                from,
                from_username,
            }
        };
        self.deliver(&partner, event);
        Ok(())
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<ChatService> {
    weak.upgrade().map(|inner| ChatService { inner })
}
