//! What this node knows of the chats of its own users: for each, their room, whether the
//! partner is away, the call they are in, and the messages to them awaiting a receipt.
//! Pure, no I/O.

use std::collections::VecDeque;

use chat_domain::{MessageId, RoomId, UserId, Username};
use chat_storage::RoomRecord;

/// How many unconfirmed messages a user's link remembers for receipts; older ones lose theirs.
pub const MAX_PENDING_RECEIPTS: usize = 512;

/// The call a user takes part in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Who sent the offer.
    pub caller: UserId,
    /// Whether the callee answered (the timer is stopped).
    pub answered: bool,
    /// The caller's timer, when it runs on this node.
    pub timer: Option<u64>,
}

/// One local user's view of their room.
#[derive(Debug, Clone)]
pub struct Link {
    /// The room and its members.
    pub room: RoomRecord,
    /// The partner's socket dropped and the room waits for it.
    pub partner_away: bool,
    /// This user's socket dropped: the grace timer with this number runs.
    pub self_away: Option<u64>,
    /// The current call.
    pub call: Option<Call>,
    /// Whether this user's socket was handed the room's `match:found` (a link made for a
    /// user who dropped while their match was being made was not).
    pub announced: bool,
    /// Messages to this user not yet confirmed: (id, sender), oldest first.
    pending: VecDeque<(MessageId, UserId)>,
}

impl Link {
    /// A fresh link into `room`.
    pub fn new(room: RoomRecord) -> Self {
        Self {
            room,
            partner_away: false,
            self_away: None,
            call: None,
            announced: false,
            pending: VecDeque::new(),
        }
    }

    /// The room's id.
    pub fn room_id(&self) -> &RoomId {
        &self.room.room_id
    }

    /// The partner of `user` (the link's owner) and the owner's own name.
    pub fn sides(&self, user: &UserId) -> Option<(UserId, Username)> {
        let partner = self.room.partner_of(user)?;
        let own = self
            .room
            .members
            .iter()
            .find(|(member, _)| member == user)?;
        Some((partner.0.clone(), own.1.clone()))
    }

    /// Remembers a message to this user until they confirm it.
    pub fn expect_receipt(&mut self, id: MessageId, sender: UserId) {
        if self.pending.len() >= MAX_PENDING_RECEIPTS {
            self.pending.pop_front();
        }
        self.pending.push_back((id, sender));
    }

    /// Takes the pending message `id`; returns its sender. A second confirmation returns `None`.
    pub fn confirm_receipt(&mut self, id: &MessageId) -> Option<UserId> {
        let index = self
            .pending
            .iter()
            .rposition(|(pending, _)| pending == id)?;
        self.pending.remove(index).map(|(_, sender)| sender)
    }
}

#[cfg(test)]
mod tests {
    use chat_domain::Timestamp;

    use super::*;

    fn link() -> (Link, UserId, UserId) {
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let room = RoomRecord {
            room_id: RoomId::generate(),
            members: [
                (alice.clone(), Username::generate()),
                (bob.clone(), Username::generate()),
            ],
        };
        (Link::new(room), alice, bob)
    }

    #[test]
    fn sides_name_the_partner_and_the_owner() {
        let (link, alice, bob) = link();
        assert_eq!(
            link.sides(&alice).map(|(partner, _)| partner),
            Some(bob.clone())
        );
        assert_eq!(link.sides(&bob).map(|(partner, _)| partner), Some(alice));
        assert_eq!(link.sides(&UserId::generate()), None);
    }

    #[test]
    fn receipts_are_confirmed_once_and_bounded() {
        let (mut link, alice, _) = link();
        let first = MessageId::generate(Timestamp::from_millis(0));
        link.expect_receipt(first.clone(), alice.clone());
        assert_eq!(link.confirm_receipt(&first), Some(alice.clone()));
        assert_eq!(link.confirm_receipt(&first), None);
        link.expect_receipt(first.clone(), alice.clone());
        for index in 0..MAX_PENDING_RECEIPTS {
            link.expect_receipt(
                MessageId::generate(Timestamp::from_millis(index as i64 + 1)),
                alice.clone(),
            );
        }
        assert_eq!(link.pending.len(), MAX_PENDING_RECEIPTS);
        assert_eq!(
            link.confirm_receipt(&first),
            None,
            "the oldest was forgotten"
        );
    }
}
