//! Rooms of two, their pending receipts and their call. Pure, no I/O.

use std::collections::{HashMap, VecDeque};

use chat_domain::webrtc::CallKind;
use chat_domain::{MessageId, RoomId, UserId, Username};

/// How many unconfirmed messages a room remembers for receipts; older ones lose theirs.
pub const MAX_PENDING_RECEIPTS: usize = 512;

/// One side of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub id: UserId,
    /// Their name, for `fromUsername`.
    pub username: Username,
    /// `false` while the room waits for the user's socket to come back.
    pub connected: bool,
}

/// The call of a room, from offer to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Who sent the offer.
    pub caller: UserId,
    /// Audio or video.
    pub kind: CallKind,
    /// Whether the callee answered (the timer is stopped).
    pub answered: bool,
    /// Distinguishes this call's timer from earlier ones.
    pub generation: u64,
}

/// A chat room of two users.
#[derive(Debug, Clone)]
pub struct Room {
    /// The room's id.
    pub id: RoomId,
    /// The two members; the first is the initiator.
    pub members: [Member; 2],
    /// The current call, if any.
    pub call: Option<Call>,
    /// Messages relayed and not yet confirmed: (id, sender, recipient), oldest first.
    pending: VecDeque<(MessageId, UserId, UserId)>,
    /// Bumped on every disconnect, so a grace timer knows whether it is still current.
    pub grace_generation: u64,
}

impl Room {
    /// The member `user` is, if any.
    pub fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|member| &member.id == user)
    }

    /// The member `user` is, mutably.
    pub fn member_mut(&mut self, user: &UserId) -> Option<&mut Member> {
        self.members.iter_mut().find(|member| &member.id == user)
    }

    /// The other member.
    pub fn partner_of(&self, user: &UserId) -> Option<&Member> {
        if &self.members[0].id == user {
            Some(&self.members[1])
        } else if &self.members[1].id == user {
            Some(&self.members[0])
        } else {
            None
        }
    }

    /// Remembers a relayed message until its recipient confirms it.
    pub fn expect_receipt(&mut self, id: MessageId, sender: UserId, recipient: UserId) {
        if self.pending.len() >= MAX_PENDING_RECEIPTS {
            self.pending.pop_front();
        }
        self.pending.push_back((id, sender, recipient));
    }

    /// Takes the pending message `id` if `recipient` is its recipient; returns its sender.
    /// A second confirmation, or one from anyone else, returns `None`.
    pub fn confirm_receipt(&mut self, id: &MessageId, recipient: &UserId) -> Option<UserId> {
        let index = self.pending.iter().rposition(|(pending, _, to)| pending == id && to == recipient)?;
        self.pending.remove(index).map(|(_, sender, _)| sender)
    }
}

/// Every open room of this process, by id and by member.
#[derive(Debug, Default)]
pub struct Rooms {
    by_id: HashMap<RoomId, Room>,
    by_user: HashMap<UserId, RoomId>,
    generation: u64,
}

impl Rooms {
    /// No rooms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of open rooms.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Opens a room for two users who are in none; the first is the initiator.
    pub fn open(&mut self, initiator: (UserId, Username), other: (UserId, Username)) -> RoomId {
        let id = RoomId::generate();
        let member = |(id, username): (UserId, Username)| Member { id, username, connected: true };
        self.by_user.insert(initiator.0.clone(), id.clone());
        self.by_user.insert(other.0.clone(), id.clone());
        let room = Room { id: id.clone(), members: [member(initiator), member(other)], call: None, pending: VecDeque::new(), grace_generation: 0 };
        self.by_id.insert(id.clone(), room);
        id
    }

    /// The room `user` is in.
    pub fn of_user(&self, user: &UserId) -> Option<&Room> {
        self.by_user.get(user).and_then(|id| self.by_id.get(id))
    }

    /// The room `user` is in, mutably.
    pub fn of_user_mut(&mut self, user: &UserId) -> Option<&mut Room> {
        let id = self.by_user.get(user)?;
        self.by_id.get_mut(id)
    }

    /// The room with this id.
    pub fn get(&self, id: &RoomId) -> Option<&Room> {
        self.by_id.get(id)
    }

    /// The room with this id, mutably.
    pub fn of_room_mut(&mut self, id: &RoomId) -> Option<&mut Room> {
        self.by_id.get_mut(id)
    }

    /// Closes a room and forgets its members.
    pub fn close(&mut self, id: &RoomId) -> Option<Room> {
        let room = self.by_id.remove(id)?;
        for member in &room.members {
            self.by_user.remove(&member.id);
        }
        Some(room)
    }

    /// A fresh number for a timer.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use chat_domain::Timestamp;

    use super::*;

    fn pair() -> ((UserId, Username), (UserId, Username)) {
        ((UserId::generate(), Username::generate()), (UserId::generate(), Username::generate()))
    }

    #[test]
    fn rooms_know_their_members() {
        let mut rooms = Rooms::new();
        let (alice, bob) = pair();
        let id = rooms.open(alice.clone(), bob.clone());
        let room = rooms.of_user(&bob.0);
        assert_eq!(room.map(|room| room.id.clone()), Some(id.clone()));
        assert_eq!(room.and_then(|room| room.partner_of(&alice.0)).map(|member| member.id.clone()), Some(bob.0.clone()));
        assert_eq!(room.and_then(|room| room.partner_of(&UserId::generate())), None);
        assert!(rooms.close(&id).is_some());
        assert!(rooms.of_user(&alice.0).is_none() && rooms.is_empty());
    }

    #[test]
    fn receipts_are_confirmed_once_and_only_by_the_recipient() {
        let mut rooms = Rooms::new();
        let (alice, bob) = pair();
        rooms.open(alice.clone(), bob.clone());
        let Some(room) = rooms.of_user_mut(&alice.0) else { return };
        let id = MessageId::generate(Timestamp::now());
        room.expect_receipt(id.clone(), alice.0.clone(), bob.0.clone());
        assert_eq!(room.confirm_receipt(&id, &alice.0), None);
        assert_eq!(room.confirm_receipt(&id, &bob.0), Some(alice.0.clone()));
        assert_eq!(room.confirm_receipt(&id, &bob.0), None);
    }

    #[test]
    fn pending_receipts_are_bounded() {
        let mut rooms = Rooms::new();
        let (alice, bob) = pair();
        rooms.open(alice.clone(), bob.clone());
        let Some(room) = rooms.of_user_mut(&alice.0) else { return };
        let first = MessageId::generate(Timestamp::from_millis(0));
        room.expect_receipt(first.clone(), alice.0.clone(), bob.0.clone());
        for index in 0..MAX_PENDING_RECEIPTS {
            room.expect_receipt(MessageId::generate(Timestamp::from_millis(index as i64 + 1)), alice.0.clone(), bob.0.clone());
        }
        assert_eq!(room.pending.len(), MAX_PENDING_RECEIPTS);
        assert_eq!(room.confirm_receipt(&first, &bob.0), None);
    }
}
