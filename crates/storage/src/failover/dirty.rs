//! What a [`FailoverStore`](super::FailoverStore) changed in memory mode, kept so that the
//! write-back after the outage writes exactly that (see the rules in `failover.rs`).

use std::collections::{HashMap, HashSet};

use chat_domain::{FileId, GuestUser, RoomId, Timestamp, UserId};

use crate::chat::RoomRecord;

/// The marks of the writes served from memory since the last write-back.
///
/// A session id is in at most one of `created`, `changed` and `removed`: the latest thing
/// that happened to it decides how it is written back.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    /// Sessions created in memory mode.
    pub(super) created: HashSet<UserId>,
    /// Sessions that existed before the outage and were changed in memory mode.
    pub(super) changed: HashSet<UserId>,
    /// Sessions deleted or expired in memory mode, with the last activity of the copy that
    /// went.
    pub(super) removed: HashMap<UserId, Timestamp>,
    /// Files uploaded in memory mode.
    pub(super) files: HashSet<FileId>,
    /// Rooms whose files were deleted in memory mode.
    pub(super) room_files: HashSet<RoomId>,
    /// Rooms opened in memory mode.
    pub(super) opened_rooms: HashSet<RoomId>,
    /// Rooms closed in memory mode, with their records (closing in Redis needs the members).
    pub(super) closed_rooms: HashMap<RoomId, RoomRecord>,
}

impl Dirty {
    /// `id` was created.
    pub(super) fn created(&mut self, id: &UserId) {
        self.changed.remove(id);
        self.removed.remove(id);
        self.created.insert(id.clone());
    }

    /// `id`, which this node holds a copy of, was changed.
    pub(super) fn changed(&mut self, id: &UserId) {
        if !self.created.contains(id) {
            self.changed.insert(id.clone());
        }
    }

    /// `user` was deleted or expired; `user` is the copy that went.
    pub(super) fn removed(&mut self, user: &GuestUser) {
        self.created.remove(&user.id);
        self.changed.remove(&user.id);
        // Even a session created during the outage gets a tombstone: a write-back that failed
        // half-way may have written it already.
        self.removed.insert(user.id.clone(), user.last_seen);
    }

    /// Puts back the marks of a write-back that failed; marks made since (in `self`) are newer
    /// and win.
    pub(super) fn restore(&mut self, older: Dirty) {
        let marked = |dirty: &Dirty, id: &UserId| {
            dirty.created.contains(id)
                || dirty.changed.contains(id)
                || dirty.removed.contains_key(id)
        };
        for id in older.created {
            if !self.removed.contains_key(&id) {
                self.changed.remove(&id);
                self.created.insert(id);
            }
        }
        for id in older.changed {
            if !marked(self, &id) {
                self.changed.insert(id);
            }
        }
        for (id, last_seen) in older.removed {
            if !marked(self, &id) {
                self.removed.insert(id, last_seen);
            }
        }
        self.files.extend(older.files);
        self.room_files.extend(older.room_files);
        self.opened_rooms.extend(older.opened_rooms);
        for (id, room) in older.closed_rooms {
            self.closed_rooms.entry(id).or_insert(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_domain::Profile;

    use super::*;

    #[test]
    fn the_latest_mark_of_a_session_wins() {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        let mut dirty = Dirty::default();
        dirty.created(&user.id);
        dirty.changed(&user.id);
        assert!(dirty.created.contains(&user.id) && dirty.changed.is_empty());
        dirty.removed(&user);
        assert!(dirty.created.is_empty());
        assert_eq!(dirty.removed.get(&user.id), Some(&user.last_seen));

        // A failed write-back's marks come back under newer ones.
        let mut older = Dirty::default();
        older.changed(&user.id);
        let other = GuestUser::new(Profile::default(), Timestamp::now());
        older.created(&other.id);
        dirty.restore(older);
        assert!(dirty.changed.is_empty(), "the newer removal wins");
        assert!(dirty.created.contains(&other.id));
    }
}
