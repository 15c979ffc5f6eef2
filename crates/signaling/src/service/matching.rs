//! Matching: `match:search`, `match:cancel`, `match:next`. Pairing is the shared store's job
//! (atomic across nodes); the service opens the room, sets both users' flags and tells both
//! sides, the searcher first.

use chat_domain::{DomainError, PublicUser, RoomId, SearchFilters, Searcher, UserId};
use chat_storage::{RoomRecord, SessionPatch};

use super::{ChatService, out_of_chat};
use crate::delivery::{CloseReason, Outgoing};
use crate::error::ChatError;

impl ChatService {
    /// `match:search`: queue `user`, or pair them with the oldest compatible searcher.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn search(&self, user: &UserId, filters: SearchFilters) -> Result<(), ChatError> {
        self.search_avoiding(user, filters, None).await
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

    /// Searches for `user`, pairing them with someone other than `avoid` while anyone else
    /// fits.
    async fn search_avoiding(
        &self,
        user: &UserId,
        filters: SearchFilters,
        avoid: Option<UserId>,
    ) -> Result<(), ChatError> {
        if self.state().links.contains_key(user) {
            return Err(
                DomainError::invalid("Already in a chat: use match:next or chat:leave").into(),
            );
        }
        let me = self.searcher_view(user).await?;
        let searcher = Searcher {
            user: me,
            filters,
            avoid,
        };
        let partner = self.inner.shared.search(&searcher).await?;
        self.deliver(user, Outgoing::Searching);
        let Some(partner) = partner else {
            self.set_searching(user, true).await;
            return Ok(());
        };
        self.pair(searcher.user, partner.user).await
    }

    /// What others see of `user` while they search.
    async fn searcher_view(&self, user: &UserId) -> Result<PublicUser, ChatError> {
        let profile = self
            .inner
            .sessions
            .get(user)
            .await?
            .ok_or_else(|| DomainError::NotFound("Guest session not found".into()))?;
        let mut me = profile.public();
        me.is_searching = true;
        Ok(me)
    }

    /// Opens a room for the searcher `me` and the `partner` the queue gave them, and tells
    /// both.
    async fn pair(&self, mut me: PublicUser, mut partner: PublicUser) -> Result<(), ChatError> {
        // The one who waited longer sends the offer.
        let room = RoomRecord {
            room_id: RoomId::generate(),
            members: [
                (partner.id.clone(), partner.username.clone()),
                (me.id.clone(), me.username.clone()),
            ],
        };
        self.open_room(&room, &me.id, &partner.id).await?;
        for view in [&mut me, &mut partner] {
            view.is_searching = false;
            view.in_chat = true;
        }
        tracing::debug!(room_id = %room.room_id, "matched");
        self.announce_match(room.room_id, me, partner);
        self.changed();
        Ok(())
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

    /// Tells the searcher `me` and their `partner` of their new room.
    fn announce_match(&self, room_id: RoomId, me: PublicUser, partner: PublicUser) {
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
        let local = [(&user, &to_me), (&partner_id, &to_partner)].map(|(to, event)| {
            let local = self.inner.delivery.is_local(to);
            if local {
                self.observe(to, event);
            }
            local
        });
        for ((to, event), local) in [(&user, to_me), (&partner_id, to_partner)]
            .into_iter()
            .zip(local)
        {
            self.hand_over(to, event, local);
        }
    }
}
