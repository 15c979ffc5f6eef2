//! [`ChatService`]: matching, rooms, messages, receipts, grace and calls, tied to the store
//! and to a [`Delivery`].
//!
//! One `std::sync::Mutex` guards the queue and the rooms; it is never held across an
//! `.await`. Each method decides under the lock, then does its I/O (store writes, deliveries)
//! after releasing it.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chat_domain::webrtc::{self, SdpRole};
use chat_domain::{
    ChatBody, ChatPayload, DomainError, FileInfo, FileType, Message, MessageContent, MessageId, MessageStatus, MessageType, RoomId,
    Timestamp, UserId,
};
use chat_storage::{SessionPatch, SessionStore};
use serde_json::Value;

use crate::delivery::{CloseReason, Delivery, FileUrls, Outgoing};
use crate::error::ChatError;
use crate::matching::{SearchFilters, SearchQueue, Searcher};
use crate::rooms::{Call, Room, Rooms};

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
        Self { call_timeout: Duration::from_secs(30), reconnect_grace: Duration::from_secs(10) }
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

/// The chat of one process. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    config: ChatConfig,
    store: Arc<dyn SessionStore>,
    delivery: Arc<dyn Delivery>,
    urls: Arc<dyn FileUrls>,
    on_change: Box<dyn Fn() + Send + Sync>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: SearchQueue,
    rooms: Rooms,
}

impl ChatService {
    /// A chat over `store` delivering through `delivery`; `on_change` is called whenever the
    /// counters of the service may have changed (searching, chatting).
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn SessionStore>,
        delivery: Arc<dyn Delivery>,
        urls: Arc<dyn FileUrls>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let inner = Inner { config, store, delivery, urls, on_change: Box::new(on_change), state: Mutex::new(State::default()) };
        Self { inner: Arc::new(inner) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue or rooms half-updated in a way
        // worse than refusing all service, so a poisoned lock is taken over.
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn deliver(&self, to: &UserId, event: Outgoing) {
        self.inner.delivery.deliver(to, event);
    }

    /// Number of users searching on this process.
    pub fn searching_count(&self) -> usize {
        self.state().queue.len()
    }

    /// Number of open rooms on this process.
    pub fn room_count(&self) -> usize {
        self.state().rooms.len()
    }

    /// The room `user` is in, if any.
    pub fn room_of(&self, user: &UserId) -> Option<RoomId> {
        self.state().rooms.of_user(user).map(|room| room.id.clone())
    }

    /// Whether `viewer` is a member of the open room `room`.
    pub fn is_member(&self, room: &RoomId, viewer: &UserId) -> bool {
        self.state().rooms.get(room).is_some_and(|room| room.member(viewer).is_some())
    }

    /// `match:search`: queue `user`, or pair them with the oldest compatible searcher.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn search(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        self.search_avoiding(user, filters, None).await
    }

    async fn search_avoiding(&self, user: &UserId, filters: SearchFilters, avoid: Option<UserId>) -> Result<(), ChatError> {
        if self.state().rooms.of_user(user).is_some() {
            return Err(DomainError::invalid("Already in a chat: use match:next or chat:leave").into());
        }
        let profile = self.inner.store.get(user).await?.ok_or_else(|| DomainError::NotFound("Guest session not found".into()))?;
        let mut me = profile.public();
        me.is_searching = true;
        let paired = {
            let mut state = self.state();
            if state.rooms.of_user(user).is_some() {
                return Err(DomainError::invalid("Already in a chat: use match:next or chat:leave").into());
            }
            let partner = state.queue.search(Searcher { user: me.clone(), filters, avoid });
            partner.map(|partner| {
                let room_id = state.rooms.open(
                    (partner.user.id.clone(), partner.user.username.clone()),
                    (me.id.clone(), me.username.clone()),
                );
                (room_id, partner.user)
            })
        };
        self.deliver(user, Outgoing::Searching);
        let Some((room_id, mut partner)) = paired else {
            self.set_flags(user, SessionPatch { is_searching: Some(true), ..SessionPatch::default() }).await;
            (self.inner.on_change)();
            return Ok(());
        };
        for (who, other) in [(user, &partner.id), (&partner.id, user)] {
            let patch = SessionPatch { is_searching: Some(false), chat: Some(Some(other.clone())), ..SessionPatch::default() };
            self.set_flags(who, patch).await;
        }
        for view in [&mut me, &mut partner] {
            view.is_searching = false;
            view.in_chat = true;
        }
        tracing::debug!(room_id = %room_id, "matched");
        self.deliver(&partner.id, Outgoing::Found { room_id: room_id.clone(), partner: me.clone(), initiator: true });
        self.deliver(&me.id, Outgoing::Found { room_id, partner, initiator: false });
        (self.inner.on_change)();
        Ok(())
    }

    /// `match:cancel`: leave the queue (answered with `match:cancelled` either way).
    pub async fn cancel(&self, user: &UserId) {
        let was_searching = self.state().queue.remove(user);
        if was_searching {
            self.set_flags(user, SessionPatch { is_searching: Some(false), ..SessionPatch::default() }).await;
            (self.inner.on_change)();
        }
        self.deliver(user, Outgoing::Cancelled);
    }

    /// `match:next`: leave the current chat (the partner gets `room:closed`, `partner_left`)
    /// and search again, not paired with that partner while anyone else fits.
    pub async fn next(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        let closed = {
            let mut state = self.state();
            let room_id = state.rooms.of_user(user).map(|room| room.id.clone());
            room_id.and_then(|room_id| state.rooms.close(&room_id))
        };
        let avoid = match closed {
            Some(room) => {
                let partner = room.partner_of(user).map(|member| member.id.clone());
                if let Some(partner) = &partner {
                    self.deliver(partner, Outgoing::RoomClosed { room_id: room.id.clone(), reason: CloseReason::PartnerLeft });
                }
                self.after_close(&room).await;
                partner
            }
            None => None,
        };
        self.search_avoiding(user, filters, avoid).await
    }

    /// `chat:message`: relays a message to the partner and returns what the sender's ack says.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn send_message(&self, user: &UserId, payload: ChatPayload) -> Result<SentMessage, ChatError> {
        let (room_id, sender_name, recipient) = {
            let state = self.state();
            let room = state.rooms.of_user(user).ok_or_else(ChatError::not_in_chat)?;
            let (me, partner) = (room.member(user), room.partner_of(user));
            let (Some(me), Some(partner)) = (me, partner) else { return Err(ChatError::not_in_chat()) };
            if !partner.connected {
                return Err(ChatError::PartnerUnavailable);
            }
            (room.id.clone(), me.username.clone(), partner.id.clone())
        };
        let (kind, content) = match payload.body {
            ChatBody::Text(text) => (MessageType::Text, MessageContent::Text(text)),
            ChatBody::File(file_id) => (MessageType::File, self.file_content(&room_id, &file_id, &recipient, false).await?),
            ChatBody::Voice(file_id) => (MessageType::Voice, self.file_content(&room_id, &file_id, &recipient, true).await?),
        };
        let timestamp = Timestamp::now();
        let id = MessageId::generate(timestamp);
        {
            let mut state = self.state();
            // The room may have closed while the file was looked up.
            let room = state.rooms.of_user_mut(user).filter(|room| room.id == room_id).ok_or_else(ChatError::not_in_chat)?;
            room.expect_receipt(id.clone(), user.clone(), recipient.clone());
        }
        let message = Message {
            id: id.clone(),
            room_id,
            sender_id: user.clone(),
            sender_username: sender_name,
            kind,
            content,
            timestamp,
            status: MessageStatus::Delivered,
        };
        self.deliver(&recipient, Outgoing::Message(Box::new(message)));
        self.deliver(user, Outgoing::Sent { id: id.clone(), client_id: payload.client_id.clone(), timestamp });
        Ok(SentMessage { id, client_id: payload.client_id, timestamp })
    }

    async fn file_content(&self, room: &RoomId, file: &chat_domain::FileId, viewer: &UserId, voice: bool) -> Result<MessageContent, ChatError> {
        let not_here = || DomainError::Forbidden("file does not belong to this chat".into());
        let meta = self.inner.store.file_meta(file).await?.ok_or_else(not_here)?;
        if &meta.room_id != room {
            return Err(not_here().into());
        }
        if voice != (meta.file_type == FileType::Voice) {
            let expected = if voice { "a voice message needs a voice upload" } else { "a voice upload must be sent as a voice message" };
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
        let sender = self.state().rooms.of_user_mut(recipient).and_then(|room| room.confirm_receipt(id, recipient));
        match sender {
            Some(sender) => {
                self.deliver(&sender, Outgoing::Delivered { id: id.clone(), delivered_at: Timestamp::now() });
                true
            }
            None => false,
        }
    }

    /// `chat:typing`.
    pub fn typing(&self, user: &UserId, is_typing: bool) -> Result<(), ChatError> {
        let partner = self.connected_partner(user)?;
        if let Some(partner) = partner {
            self.deliver(&partner, Outgoing::Typing { from: user.clone(), is_typing });
        }
        Ok(())
    }

    /// The partner of `user` if connected (`None` while the room waits for them).
    fn connected_partner(&self, user: &UserId) -> Result<Option<UserId>, ChatError> {
        let state = self.state();
        let room = state.rooms.of_user(user).ok_or_else(ChatError::not_in_chat)?;
        Ok(room.partner_of(user).filter(|partner| partner.connected).map(|partner| partner.id.clone()))
    }

    /// `chat:leave`: closes the room; the partner gets `partner_left`, the leaver `left`.
    pub async fn leave(&self, user: &UserId) -> Result<(), ChatError> {
        let room = {
            let mut state = self.state();
            let room_id = state.rooms.of_user(user).map(|room| room.id.clone()).ok_or_else(ChatError::not_in_chat)?;
            state.rooms.close(&room_id)
        };
        if let Some(room) = room {
            if let Some(partner) = room.partner_of(user) {
                self.deliver(&partner.id, Outgoing::RoomClosed { room_id: room.id.clone(), reason: CloseReason::PartnerLeft });
            }
            self.deliver(user, Outgoing::RoomClosed { room_id: room.id.clone(), reason: CloseReason::Left });
            self.after_close(&room).await;
        }
        Ok(())
    }

    /// `chat:clear`: deletes the room's files; the partner gets `chat:cleared`.
    pub async fn clear(&self, user: &UserId) -> Result<u64, ChatError> {
        let (room_id, partner) = {
            let state = self.state();
            let room = state.rooms.of_user(user).ok_or_else(ChatError::not_in_chat)?;
            (room.id.clone(), room.partner_of(user).map(|member| member.id.clone()))
        };
        let deleted = self.inner.store.delete_room_files(&room_id).await?;
        if let Some(partner) = partner {
            self.deliver(&partner, Outgoing::Cleared);
        }
        Ok(deleted)
    }

    /// The user's socket dropped: leave the queue, and if in a chat, the room waits
    /// `reconnect_grace` for them (the partner gets `partner:disconnected`).
    pub async fn user_disconnected(&self, user: &UserId) {
        let (was_searching, waiting) = {
            let mut state = self.state();
            let was_searching = state.queue.remove(user);
            let generation = state.rooms.next_generation();
            let waiting = state.rooms.of_user_mut(user).and_then(|room| {
                let member = room.member_mut(user)?;
                member.connected = false;
                room.grace_generation = generation;
                let partner = room.partner_of(user).filter(|partner| partner.connected).map(|partner| partner.id.clone());
                Some((room.id.clone(), partner, generation))
            });
            (was_searching, waiting)
        };
        if was_searching {
            self.set_flags(user, SessionPatch { is_searching: Some(false), ..SessionPatch::default() }).await;
            (self.inner.on_change)();
        }
        let Some((room_id, partner, generation)) = waiting else { return };
        let grace = self.inner.config.reconnect_grace;
        if let Some(partner) = partner {
            self.deliver(&partner, Outgoing::PartnerDisconnected { grace_secs: grace.as_secs() });
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(service) = upgrade(&weak) {
                service.grace_expired(&room_id, generation).await;
            }
        });
    }

    async fn grace_expired(&self, room_id: &RoomId, generation: u64) {
        let room = {
            let mut state = self.state();
            let expired = state
                .rooms
                .get(room_id)
                .is_some_and(|room| room.grace_generation == generation && room.members.iter().any(|member| !member.connected));
            if expired { state.rooms.close(room_id) } else { None }
        };
        let Some(room) = room else { return };
        for member in room.members.iter().filter(|member| member.connected) {
            self.deliver(&member.id, Outgoing::RoomClosed { room_id: room.id.clone(), reason: CloseReason::PartnerDisconnected });
        }
        self.after_close(&room).await;
    }

    /// The user has a live socket again: a room waiting for them goes on, and the partner
    /// gets `partner:reconnected`. Returns the room they are back in.
    pub fn user_connected(&self, user: &UserId) -> Option<RoomId> {
        let (room_id, partner) = {
            let mut state = self.state();
            let room = state.rooms.of_user_mut(user)?;
            let member = room.member_mut(user)?;
            let was_away = !member.connected;
            member.connected = true;
            let partner = room.partner_of(user).filter(|partner| was_away && partner.connected).map(|partner| partner.id.clone());
            (room.id.clone(), partner)
        };
        if let Some(partner) = partner {
            self.deliver(&partner, Outgoing::PartnerReconnected);
        }
        Some(room_id)
    }

    /// The user's session is gone: leave the queue and close the room (the partner gets
    /// `session_expired` or `partner_left`).
    pub async fn session_ended(&self, user: &UserId, end: SessionEnd) {
        let room = {
            let mut state = self.state();
            state.queue.remove(user);
            let room_id = state.rooms.of_user(user).map(|room| room.id.clone());
            room_id.and_then(|room_id| state.rooms.close(&room_id))
        };
        if let Some(room) = room {
            let reason = match end {
                SessionEnd::Expired => CloseReason::SessionExpired,
                SessionEnd::Deleted => CloseReason::PartnerLeft,
            };
            if let Some(partner) = room.partner_of(user) {
                self.deliver(&partner.id, Outgoing::RoomClosed { room_id: room.id.clone(), reason });
            }
            self.after_close(&room).await;
        }
        (self.inner.on_change)();
    }

    /// Cleans up after a room closed: flags of both members, the room's files.
    async fn after_close(&self, room: &Room) {
        for member in &room.members {
            self.set_flags(&member.id, SessionPatch { chat: Some(None), ..SessionPatch::default() }).await;
        }
        if let Err(error) = self.inner.store.delete_room_files(&room.id).await {
            tracing::warn!(%error, room_id = %room.id, "could not delete the files of a closed room");
        }
        (self.inner.on_change)();
    }

    async fn set_flags(&self, user: &UserId, patch: SessionPatch) {
        if let Err(error) = self.inner.store.update(user, patch).await {
            tracing::warn!(%error, user_id = %user, "could not update session flags");
        }
    }

    /// `webrtc:offer`: relays the offer and starts the call timer.
    pub fn offer(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let offer = webrtc::validate_description(payload.get("offer"), SdpRole::Offer)?;
        let kind = webrtc::parse_call_kind(payload.get("type"))?;
        let (room_id, partner, username, timer) = {
            let mut state = self.state();
            let generation = state.rooms.next_generation();
            let room = state.rooms.of_user_mut(user).ok_or_else(ChatError::not_in_chat)?;
            let (partner, username) = connected_pair(room, user)?;
            // An offer during an answered call renegotiates it: no new timer.
            let renegotiation = room.call.as_ref().is_some_and(|call| call.answered);
            let timer = (!renegotiation).then(|| {
                room.call = Some(Call { caller: user.clone(), kind, answered: false, generation });
                generation
            });
            (room.id.clone(), partner, username, timer)
        };
        let event = Outgoing::Offer { offer, kind: kind.as_str(), from: user.clone(), from_username: username, timestamp: Timestamp::now() };
        self.deliver(&partner, event);
        if let Some(generation) = timer {
            let weak = Arc::downgrade(&self.inner);
            let timeout = self.inner.config.call_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(service) = upgrade(&weak) {
                    service.call_timer_fired(&room_id, generation);
                }
            });
        }
        Ok(())
    }

    fn call_timer_fired(&self, room_id: &RoomId, generation: u64) {
        let fired = {
            let mut state = self.state();
            let Some(room) = state.rooms.of_room_mut(room_id) else { return };
            match &room.call {
                Some(call) if call.generation == generation && !call.answered => {
                    let caller = call.caller.clone();
                    room.call = None;
                    let username = room.member(&caller).map(|member| member.username.clone());
                    username.map(|username| (caller, username, room.members.clone()))
                }
                _ => None,
            }
        };
        let Some((caller, username, members)) = fired else { return };
        for member in members {
            self.deliver(&member.id, Outgoing::CallTimeout { from: caller.clone(), from_username: username.clone() });
        }
    }

    /// `webrtc:answer`: relays the answer and stops the call timer.
    pub fn answer(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let answer = webrtc::validate_description(payload.get("answer"), SdpRole::Answer)?;
        let (partner, username) = {
            let mut state = self.state();
            let room = state.rooms.of_user_mut(user).ok_or_else(ChatError::not_in_chat)?;
            let pair = connected_pair(room, user)?;
            if let Some(call) = room.call.as_mut().filter(|call| &call.caller != user) {
                call.answered = true;
            }
            pair
        };
        self.deliver(&partner, Outgoing::Answer { answer, from: user.clone(), from_username: username });
        Ok(())
    }

    /// `webrtc:ice-candidate`: relays one candidate.
    pub fn candidate(&self, user: &UserId, payload: &Value) -> Result<(), ChatError> {
        let candidate = webrtc::validate_candidate(payload.get("candidate"))?;
        let (partner, _) = {
            let mut state = self.state();
            let room = state.rooms.of_user_mut(user).ok_or_else(ChatError::not_in_chat)?;
            connected_pair(room, user)?
        };
        self.deliver(&partner, Outgoing::Candidate { candidate, from: user.clone() });
        Ok(())
    }

    /// `webrtc:call-end` (`reject` false) or `webrtc:call-reject` (`reject` true): relays it and
    /// stops the call timer.
    pub fn end_call(&self, user: &UserId, reject: bool) -> Result<(), ChatError> {
        let (partner, username) = {
            let mut state = self.state();
            let room = state.rooms.of_user_mut(user).ok_or_else(ChatError::not_in_chat)?;
            room.call = None;
            connected_pair(room, user)?
        };
        let (from, from_username) = (user.clone(), username);
        let event = if reject { Outgoing::CallRejected { from, from_username } } else { Outgoing::CallEnded { from, from_username } };
        self.deliver(&partner, event);
        Ok(())
    }
}

/// The connected partner of `user` in `room`, and `user`'s name.
fn connected_pair(room: &Room, user: &UserId) -> Result<(UserId, chat_domain::Username), ChatError> {
    let me = room.member(user).ok_or_else(ChatError::not_in_chat)?;
    let partner = room.partner_of(user).ok_or_else(ChatError::not_in_chat)?;
    if !partner.connected {
        return Err(ChatError::PartnerUnavailable);
    }
    Ok((partner.id.clone(), me.username.clone()))
}

fn upgrade(weak: &Weak<Inner>) -> Option<ChatService> {
    weak.upgrade().map(|inner| ChatService { inner })
}
