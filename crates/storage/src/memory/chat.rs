//! The chat's shared state for one process.

use std::collections::HashMap;

use chat_domain::{RoomId, SearchQueue, UserId};

use crate::chat::RoomRecord;

/// The queue and the rooms of one process.
#[derive(Debug, Default)]
pub(crate) struct ChatTables {
    pub(crate) queue: SearchQueue,
    rooms: HashMap<RoomId, RoomRecord>,
    rooms_by_user: HashMap<UserId, RoomId>,
}

impl ChatTables {
    pub(crate) fn open(&mut self, room: RoomRecord) {
        for (member, _) in &room.members {
            self.rooms_by_user
                .insert(member.clone(), room.room_id.clone());
        }
        self.rooms.insert(room.room_id.clone(), room);
    }

    pub(crate) fn room(&self, id: &RoomId) -> Option<RoomRecord> {
        self.rooms.get(id).cloned()
    }

    pub(crate) fn room_of(&self, user: &UserId) -> Option<RoomRecord> {
        self.rooms_by_user.get(user).and_then(|id| self.room(id))
    }

    pub(crate) fn close(&mut self, id: &RoomId) -> bool {
        let Some(room) = self.rooms.remove(id) else {
            return false;
        };
        for (member, _) in &room.members {
            if self.rooms_by_user.get(member) == Some(id) {
                self.rooms_by_user.remove(member);
            }
        }
        true
    }

    /// Every open room (for the failover write-back).
    pub(crate) fn rooms(&self) -> Vec<RoomRecord> {
        self.rooms.values().cloned().collect()
    }
}
