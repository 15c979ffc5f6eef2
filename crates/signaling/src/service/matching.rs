//! Matching: `match:search`, `match:cancel`, `match:next`. Pairing is the shared store's job
//! (atomic across nodes); the service opens the room, sets both users' flags and tells both
//! sides, the searcher first.
//!
//! A pairing awaits the store between taking the partner out of the queue and telling both
//! sides, and either side may act meanwhile. So it completes on both sides or on neither:
//! - the searcher, and a popped partner on this node, carry a pairing marker: a second
//!   search while it is set is refused, a drop is noted and the room, once open, waits for
//!   the dropped user as after any drop (reconnect grace);
//! - a popped partner on another node is checked in the store after the room is open (no
//!   socket: the room waits for them here), and its own node refuses the `match:found` if the
//!   partner cancelled meanwhile or is in another room: the room closes and the searcher
//!   hears `partner_left` after its `match:found`;
//! - a search by a user whose match is being made (here, or elsewhere after their queue entry
//!   was taken) is refused with `invalid_input`: their `match:found` follows; a cancel then
//!   comes too late for a searcher (`match:cancelled`, then `match:found`), but a popped
//!   partner who cancels refuses the `match:found` in flight.

use chat_domain::{DomainError, PublicUser, RoomId, SearchFilters, Searcher, UserId};
use chat_storage::{RoomRecord, SessionPatch};
use tokio::time::Instant;

use super::{ChatService, Observed, Pairing, out_of_chat};
use crate::delivery::{CloseReason, Outgoing};
use crate::error::ChatError;

impl ChatService {
    /// `match:search`: queue `user`, or pair them with the oldest compatible searcher (not
    /// the one they last skipped or were skipped by, until their next pairing).
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn search(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        self.search_avoiding(user, filters, None).await
    }

    /// `match:cancel`: leave the queue (answered with `match:cancelled` either way). If a
    /// search on another node took `user` out of the queue just before, that match is
    /// refused when it arrives.
    pub async fn cancel(&self, user: &UserId) -> Result<(), ChatError> {
        let was_waiting = self.state().waiting.remove(user);
        if self.inner.shared.cancel_search(user).await? {
            self.set_searching(user, false).await;
        } else if was_waiting {
            self.moved_on(user);
        }
        self.deliver(user, Outgoing::Cancelled);
        Ok(())
    }

    /// `match:next`: leave the current chat (the partner gets `room:closed`, `partner_left`)
    /// and search again; neither is paired with the other on their next pairing.
    pub async fn next(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        let link = self.state().unlink(user);
        let avoid = match link {
            Some(link) => {
                let partner = link
                    .room
                    .partner_of(user)
                    .map(|(partner, _)| partner.clone());
                let notices = partner
                    .iter()
                    .map(|partner| (partner.clone(), CloseReason::PartnerSkipped))
                    .collect();
                if let Some(partner) = &partner {
                    self.state().avoid.insert(user.clone(), partner.clone());
                }
                self.close(&link.room, notices).await;
                partner
            }
            None => None,
        };
        self.search_avoiding(user, filters, avoid).await
    }

    /// `user` was taken out of the queue by another search, and moved on before hearing of
    /// it: the `match:found` in flight is refused.
    fn moved_on(&self, user: &UserId) {
        self.state().moved_on.insert(user.clone(), Instant::now());
    }

    /// Searches for `user`, never pairing them with `avoid` (or, without one, the partner
    /// of their last `match:next`). Refused while they are in a chat or their match is being
    /// made.
    async fn search_avoiding(
        &self,
        user: &UserId,
        filters: SearchFilters,
        avoid: Option<UserId>,
    ) -> Result<(), ChatError> {
        let (token, was_waiting, avoid) = {
            let mut state = self.state();
            if state.links.contains_key(user) {
                return Err(DomainError::invalid(
                    "Already in a chat: use match:next or chat:leave",
                )
                .into());
            }
            if state.pairing.contains_key(user) {
                return Err(being_matched());
            }
            let token = state.next_generation();
            state
                .pairing
                .insert(user.clone(), Pairing { token, away: false });
            let avoid = avoid.or_else(|| state.avoid.get(user).cloned());
            (token, state.waiting.remove(user), avoid)
        };
        let result = self
            .search_marked(user, filters, avoid, token, was_waiting)
            .await;
        self.take_pairing(user, token);
        result
    }

    /// The search of [`ChatService::search_avoiding`] once `user` carries the pairing marker
    /// `token`.
    async fn search_marked(
        &self,
        user: &UserId,
        filters: SearchFilters,
        avoid: Option<UserId>,
        token: u64,
        was_waiting: bool,
    ) -> Result<(), ChatError> {
        // A search that replaces a queued one: if the queued one is gone, another search
        // took it and its match is being made.
        if was_waiting && !self.inner.shared.cancel_search(user).await? {
            // Still taken: a drop meanwhile must find them as waiting for that match:found.
            self.state().waiting.insert(user.clone());
            return Err(being_matched());
        }
        let (me, blocked) = self.searcher_view(user).await?;
        let searcher = Searcher {
            user: me,
            filters,
            avoid,
            blocked,
        };
        // Before the search: a search of someone else may pair this user the moment they
        // are queued, and its `match:found` must come after `match:searching`.
        self.deliver(user, Outgoing::Searching);
        let partner = self.inner.shared.search(&searcher).await?;
        let Some(partner) = partner else {
            if self.take_pairing(user, token).is_some_and(|away| away) {
                // Dropped during the search: out of the queue again, as any dropped user.
                self.inner.shared.cancel_search(user).await?;
                return Ok(());
            }
            {
                let mut state = self.state();
                if state.links.contains_key(user) {
                    // Queued, and already paired by another search meanwhile: not waiting.
                    return Ok(());
                }
                state.waiting.insert(user.clone());
            }
            // Unless another node's search paired them meanwhile (its flags are newer).
            let searching = SessionPatch {
                is_searching: Some(true),
                unless_in_chat: true,
                ..SessionPatch::default()
            };
            self.set_flags(user, searching).await;
            self.changed();
            return Ok(());
        };
        self.pair(searcher.user, partner.user, token).await
    }

    /// Takes `user`'s pairing marker if it is still `token`'s; returns whether they dropped
    /// meanwhile.
    fn take_pairing(&self, user: &UserId, token: u64) -> Option<bool> {
        let mut state = self.state();
        match state.pairing.get(user) {
            Some(pairing) if pairing.token == token => {
                state.pairing.remove(user).map(|pairing| pairing.away)
            }
            _ => None,
        }
    }

    /// What others see of `user` while they search.
    async fn searcher_view(&self, user: &UserId) -> Result<(PublicUser, Vec<UserId>), ChatError> {
        // The profile and who this user may never meet, in one round trip.
        let blocked = async {
            match &self.inner.blocks {
                Some(blocks) => blocks.blocked(user).await,
                None => Ok(Vec::new()),
            }
        };
        let (profile, blocked) = tokio::join!(self.inner.sessions.get(user), blocked);
        let profile =
            profile?.ok_or_else(|| DomainError::NotFound("Guest session not found".into()))?;
        let mut me = profile.public();
        me.is_searching = true;
        Ok((me, blocked?))
    }

    /// Opens a room for the searcher `me` (pairing marker `token`) and the `partner` the
    /// queue gave them, and tells both; a side that dropped meanwhile is waited for.
    async fn pair(
        &self,
        mut me: PublicUser,
        mut partner: PublicUser,
        token: u64,
    ) -> Result<(), ChatError> {
        // A popped partner on this node carries a marker too (unless a search of their own
        // carries one, which makes them move on).
        let partner_token = {
            let mut state = self.state();
            let local = self.inner.delivery.is_local(&partner.id);
            (local && !state.pairing.contains_key(&partner.id)).then(|| {
                let partner_token = state.next_generation();
                state.pairing.insert(
                    partner.id.clone(),
                    Pairing {
                        token: partner_token,
                        away: false,
                    },
                );
                partner_token
            })
        };
        // The one who waited longer sends the offer.
        let room = RoomRecord {
            room_id: RoomId::generate(),
            members: [
                (partner.id.clone(), partner.username.clone()),
                (me.id.clone(), me.username.clone()),
            ],
        };
        let opened = self.open_room(&room, &me.id, &partner.id).await;
        let partner_away = match partner_token {
            Some(partner_token) => {
                let away = self.take_pairing(&partner.id, partner_token) == Some(true);
                away || !self.inner.delivery.is_local(&partner.id)
            }
            None if opened.is_ok() && !self.inner.delivery.is_local(&partner.id) => {
                self.socket_gone(&partner.id).await
            }
            None => false,
        };
        opened?;
        let me_away =
            self.take_pairing(&me.id, token) == Some(true) || !self.inner.delivery.is_local(&me.id);
        for view in [&mut me, &mut partner] {
            view.is_searching = false;
            view.in_chat = true;
        }
        tracing::debug!(room_id = %room.room_id, "matched");
        let (user, partner_id) = (me.id.clone(), partner.id.clone());
        let refused = self.announce_match(room.room_id.clone(), me, partner);
        self.changed();
        if let Some(refused_by) = refused {
            let notices = room
                .partner_of(&refused_by)
                .map(|(other, _)| vec![(other.clone(), CloseReason::PartnerLeft)])
                .unwrap_or_default();
            self.close(&room, notices).await;
            return Ok(());
        }
        for (away, dropped) in [(me_away, &user), (partner_away, &partner_id)] {
            if away {
                self.wait_for_dropped(dropped, room.clone());
            }
        }
        Ok(())
    }

    /// Whether `user`'s session has no socket (on any node) any more.
    async fn socket_gone(&self, user: &UserId) -> bool {
        match self.inner.sessions.get(user).await {
            Ok(session) => session.is_none_or(|session| session.socket_id.is_none()),
            Err(error) => {
                tracing::warn!(%error, "could not check a new partner's socket");
                false
            }
        }
    }

    /// Records `room` and both members' flags; if the room cannot be recorded, neither is in
    /// a chat after all.
    async fn open_room(
        &self,
        room: &RoomRecord,
        user: &UserId,
        partner: &UserId,
    ) -> Result<(), ChatError> {
        // The room record and both sessions' flags are independent writes: one round trip
        // for the three of them (they travel together to the store).
        let in_chat_with = |other: &UserId| SessionPatch {
            is_searching: Some(false),
            chat: Some(Some(other.clone())),
            ..SessionPatch::default()
        };
        let (opened, (), ()) = tokio::join!(
            self.inner.shared.open_room(room),
            self.set_flags(user, in_chat_with(partner)),
            self.set_flags(partner, in_chat_with(user)),
        );
        if let Err(error) = opened {
            tokio::join!(
                self.set_flags(user, out_of_chat()),
                self.set_flags(partner, out_of_chat()),
            );
            return Err(error.into());
        }
        Ok(())
    }

    /// Tells the searcher `me` and their `partner` of their new room. Returns the member on
    /// this node who refused it (see [`Observed::Refuse`]): they were not told, the other
    /// was (the caller closes the room).
    fn announce_match(
        &self,
        room_id: RoomId,
        me: PublicUser,
        partner: PublicUser,
    ) -> Option<UserId> {
        let (user, partner_id) = (me.id.clone(), partner.id.clone());
        let (partner_name, my_name) = (partner.username.clone(), me.username.clone());
        let to_partner = Outgoing::Found {
            room_id: room_id.clone(),
            partner: me,
            initiator: true,
            own_username: partner_name,
        };
        let to_me = Outgoing::Found {
            room_id,
            partner,
            initiator: false,
            own_username: my_name,
        };
        // Both sides' links exist before either side hears of the match, and the searcher hears
        // first: a partner who answers at once never reaches a user whose node does not know
        // the room yet, nor gets ahead of the searcher's own match:found.
        let mut refused = None;
        let sides = [(&user, to_me), (&partner_id, to_partner)].map(|(to, event)| {
            let local = self.inner.delivery.is_local(to);
            if local && let Observed::Refuse(_) = self.observe(to, &event) {
                refused = Some(to.clone());
                return None;
            }
            Some((to, event, local))
        });
        for (to, event, local) in sides.into_iter().flatten() {
            self.hand_over(to, event, local);
        }
        refused
    }
}

/// A search while this user's match is being made (`match:found` follows).
fn being_matched() -> ChatError {
    DomainError::invalid("A match is being made: wait for match:found").into()
}
