//! Reconnect grace and the end of sessions: a dropped socket leaves the room waiting
//! `reconnect_grace` (its timer on the node the user dropped from); a user back in time, on
//! any node, keeps the chat; a session that ends closes its room.

use chat_domain::{RoomId, UserId};
use chat_storage::RoomRecord;

use super::ChatService;
use crate::delivery::{CloseReason, Outgoing};
use crate::links::Link;

/// How a session ended, for its socket's last word and its partner's `room:closed` reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its TTL ran out.
    Expired,
    /// Its owner deleted it (or an operator disconnected it).
    Deleted,
    /// It was banned: the socket is told `session:banned {until, reason}`, the partner
    /// `partner_banned`.
    Banned {
        /// When the ban ends.
        until: chat_domain::Timestamp,
        /// Why (shown to the banned user).
        reason: String,
    },
}

impl ChatService {
    /// The user's socket dropped: leave the queue, and if in a chat, the room waits
    /// `reconnect_grace` for them (the partner gets `partner:disconnected`). A user whose
    /// match is being made gets the same once the room is open; one taken out of the queue
    /// by another node's search whose room is already open gets it here.
    pub async fn user_disconnected(&self, user: &UserId) {
        let was_waiting = self.state().waiting.remove(user);
        let queued = self.leave_queue(user, "dropped").await;
        let waiting = {
            let mut state = self.state();
            if let Some(pairing) = state.pairing.get_mut(user) {
                // The pairing sees it once its room is open.
                pairing.away = true;
                return;
            }
            let generation = state.next_generation();
            state.links.get_mut(user).map(|link| {
                link.self_away = Some(generation);
                (link.sides(user), link.partner_away, generation)
            })
        };
        match waiting {
            Some((Some((partner, _)), partner_away, generation)) => {
                self.await_return(user, &partner, partner_away, generation);
            }
            Some((None, _, _)) => {}
            // Taken out of the queue by a search elsewhere, whose match:found missed the
            // socket: the room, if already open, waits for them here. (If it is not open
            // yet, the pairing node sees the session without a socket and does the same.)
            None if was_waiting && !queued => self.dropped_while_paired(user).await,
            None => {}
        }
    }

    /// `user` dropped after a search on another node took them out of the queue: if their
    /// room is open and this node holds no link into it, the room waits for them here.
    async fn dropped_while_paired(&self, user: &UserId) {
        let Ok(Some(room)) = self.inner.shared.room_of(user).await else {
            return;
        };
        if self.inner.delivery.is_local(user) {
            return;
        }
        self.wait_for_dropped(user, room);
    }

    /// The room `room` of `user`, who has no socket here, waits for them as after any drop:
    /// a link away, `partner:disconnected` to the partner, the grace timer on this node.
    pub(super) fn wait_for_dropped(&self, user: &UserId, room: RoomRecord) {
        let Some((partner, _)) = room.partner_of(user).cloned() else {
            return;
        };
        let generation = {
            let mut state = self.state();
            if state
                .links
                .get(user)
                .is_some_and(|link| link.room_id() != &room.room_id)
            {
                return;
            }
            let generation = state.next_generation();
            let link = state
                .links
                .entry(user.clone())
                .or_insert_with(|| Link::new(room));
            link.self_away = Some(generation);
            generation
        };
        self.await_return(user, &partner, false, generation);
    }

    /// `user` is away from their room with `partner`: the partner hears it (unless away
    /// too) and the grace timer `generation` starts.
    fn await_return(&self, user: &UserId, partner: &UserId, partner_away: bool, generation: u64) {
        let grace = self.inner.config.reconnect_grace;
        if !partner_away {
            self.deliver(
                partner,
                Outgoing::PartnerDisconnected {
                    grace_secs: grace.as_secs(),
                },
            );
        }
        let user = user.clone();
        self.after(grace, move |service| async move {
            service.grace_expired(&user, generation).await;
        });
    }

    /// The grace timer `generation` of `user` ran out: unless they came back (here or on
    /// another node), the room closes and the partner hears `partner_disconnected`.
    async fn grace_expired(&self, user: &UserId, generation: u64) {
        let link = {
            let mut state = self.state();
            let current = state
                .links
                .get(user)
                .is_some_and(|link| link.self_away == Some(generation));
            if current { state.unlink(user) } else { None }
        };
        let Some(link) = link else { return };
        // The wait here is over, whatever comes next.
        self.unhold_user(user).await;
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
                let announced = std::mem::replace(&mut link.announced, true);
                (
                    link.room.clone(),
                    link.sides(user).map(|(partner, _)| partner),
                    was_away,
                    announced,
                )
            })
        };
        if let Some((room, partner, was_away, announced)) = known {
            let room_id = room.room_id.clone();
            // Back where they dropped from, events for a user away were not observed here
            // (their socket was gone); and a socket replaced from another node whose notice
            // has not arrived missed events too: the room may have closed meanwhile.
            if !self.still_open(user, &room_id).await {
                let mut state = self.state();
                if state
                    .links
                    .get(user)
                    .is_some_and(|link| link.room_id() == &room_id)
                {
                    state.unlink(user);
                }
                return None;
            }
            if !announced && !self.announce_again(user, &room).await {
                return None;
            }
            if let Some(partner) = partner.filter(|_| was_away) {
                self.deliver(&partner, Outgoing::PartnerReconnected);
            }
            return Some(room_id);
        }
        // Came back to another node than the one that knew the chat. Whether their client
        // heard of the room is not known here (its match:found may have died with a node),
        // so it hears it (again) before anything else of the room.
        let room = self.inner.shared.room_of(user).await.ok().flatten()?;
        let partner = room.partner_of(user).map(|(partner, _)| partner.clone())?;
        let room_id = room.room_id.clone();
        let mut link = Link::new(room.clone());
        link.announced = true;
        self.state().links.insert(user.clone(), link);
        if !self.announce_again(user, &room).await {
            return None;
        }
        self.deliver(&partner, Outgoing::PartnerReconnected);
        Some(room_id)
    }

    /// Hands `user`'s socket here the `match:found` of their open `room`, whose link this
    /// node holds, then `partner:disconnected` if the partner has no socket now (the link
    /// marks them away). If the partner's session is gone, the room closes instead (the
    /// partner's end is closing it) and this returns false.
    async fn announce_again(&self, user: &UserId, room: &RoomRecord) -> bool {
        let Some((found, partner_away)) = self.found_of(user, room).await else {
            self.close(room, Vec::new()).await;
            return false;
        };
        let local = self.inner.delivery.is_local(user);
        self.hand_over(user, found, local);
        if partner_away {
            // The room waits for the partner (their grace runs where they dropped).
            if let Some(link) = self.state().links.get_mut(user)
                && link.room_id() == &room.room_id
            {
                link.partner_away = true;
            }
            let grace_secs = self.inner.config.reconnect_grace.as_secs();
            self.hand_over(user, Outgoing::PartnerDisconnected { grace_secs }, local);
        }
        true
    }

    /// The `match:found` of `room` for its member `user`, and whether the partner has no
    /// socket now; `None` when the partner's session is gone (or cannot be read).
    pub(super) async fn found_of(
        &self,
        user: &UserId,
        room: &RoomRecord,
    ) -> Option<(Outgoing, bool)> {
        let (partner, _) = room.partner_of(user)?.clone();
        let (_, own_username) = room
            .members
            .iter()
            .find(|(member, _)| member == user)?
            .clone();
        let session = match self.inner.sessions.get(&partner).await {
            Ok(session) => session?,
            Err(error) => {
                tracing::warn!(%error, "could not read the partner of a room to announce");
                return None;
            }
        };
        let partner_away = session.socket_id.is_none();
        let mut view = session.public();
        view.is_searching = false;
        view.in_chat = true;
        // The one who waited longer, first in the record, sends the offer.
        let initiator = &room.members[0].0 == user;
        let found = Outgoing::Found {
            room_id: room.room_id.clone(),
            partner: view,
            initiator,
            own_username,
        };
        Some((found, partner_away))
    }

    /// Whether `room_id` is still `user`'s open room in the shared store (taken as open when
    /// the store cannot say).
    pub(super) async fn still_open(&self, user: &UserId, room_id: &RoomId) -> bool {
        match self.inner.shared.room_of(user).await {
            Ok(room) => room.is_some_and(|room| &room.room_id == room_id),
            Err(error) => {
                tracing::warn!(%error, "could not check the room of a returning user");
                true
            }
        }
    }

    /// `user`'s session ended on this node (deleted, expired): the other node holding their
    /// socket per the directory, if any, ends it, saying `session:expired` first when it
    /// expired. Call it after ending and releasing a socket here (a newer socket elsewhere,
    /// whose replace has not arrived yet, ends too) and before
    /// [`ChatService::session_ended`]; a no-op on a single node.
    pub async fn end_elsewhere(&self, user: &UserId, end: SessionEnd) {
        if let Some(node) = &self.inner.node {
            node.end_elsewhere(user, end).await;
        }
    }

    /// The user's session is gone: leave the queue and close the room (the partner gets
    /// `session_expired` or `partner_left`).
    pub async fn session_ended(&self, user: &UserId, end: SessionEnd) {
        if let Err(error) = self.inner.shared.cancel_search(user).await {
            tracing::warn!(%error, "could not take an ended session out of the queue");
        }
        let local = self.state().unlink(user).map(|link| link.room);
        self.forget_local(user);
        let room = match local {
            Some(room) => Some(room),
            None => self.inner.shared.room_of(user).await.ok().flatten(),
        };
        if let Some(room) = room {
            let reason = match end {
                SessionEnd::Expired => CloseReason::SessionExpired,
                SessionEnd::Deleted => CloseReason::PartnerLeft,
                SessionEnd::Banned { .. } => CloseReason::PartnerBanned,
            };
            let notices = room
                .partner_of(user)
                .map(|(partner, _)| vec![(partner.clone(), reason)])
                .unwrap_or_default();
            self.close(&room, notices).await;
        }
        self.changed();
    }
}
