//! In-memory files, their per-room index and their expiry order.

use std::collections::{BTreeSet, HashMap, HashSet};

use chat_domain::{FileId, RoomId, Timestamp};

use crate::StoredFile;

/// Files by id. Invariant: `rooms` and `expiries` hold exactly the entries of `files`.
#[derive(Debug, Default)]
pub(super) struct Files {
    files: HashMap<FileId, StoredFile>,
    rooms: HashMap<RoomId, HashSet<FileId>>,
    expiries: BTreeSet<(Timestamp, FileId)>,
}

impl Files {
    /// Stores (or replaces) a file.
    pub(super) fn put(&mut self, file: StoredFile) {
        let id = file.meta.file_id.clone();
        self.remove(&id);
        self.rooms
            .entry(file.meta.room_id.clone())
            .or_default()
            .insert(id.clone());
        self.expiries.insert((file.meta.expires_at, id.clone()));
        self.files.insert(id, file);
    }

    /// The file of `id` unless it expired at or before `now`.
    pub(super) fn get(&self, id: &FileId, now: Timestamp) -> Option<&StoredFile> {
        self.files.get(id).filter(|file| file.meta.expires_at > now)
    }

    /// Deletes every file of `room`; counts those that had not expired yet.
    pub(super) fn delete_room(&mut self, room: &RoomId, now: Timestamp) -> u64 {
        let ids = self.rooms.remove(room).unwrap_or_default();
        let mut deleted = 0;
        for id in ids {
            if self
                .remove(&id)
                .is_some_and(|file| file.meta.expires_at > now)
            {
                deleted += 1;
            }
        }
        deleted
    }

    /// Drops the files that expired at or before `now`.
    pub(super) fn sweep(&mut self, now: Timestamp) {
        while let Some((expires_at, id)) = self.expiries.first().cloned() {
            if expires_at > now {
                break;
            }
            if self.remove(&id).is_none() {
                self.expiries.remove(&(expires_at, id));
            }
        }
    }

    /// Clones of the files that have not expired (the bytes are shared, not copied).
    pub(super) fn live(&self, now: Timestamp) -> Vec<StoredFile> {
        self.files
            .values()
            .filter(|file| file.meta.expires_at > now)
            .cloned()
            .collect()
    }

    fn remove(&mut self, id: &FileId) -> Option<StoredFile> {
        let file = self.files.remove(id)?;
        self.expiries.remove(&(file.meta.expires_at, id.clone()));
        if let Some(room) = self.rooms.get_mut(&file.meta.room_id) {
            room.remove(id);
            if room.is_empty() {
                self.rooms.remove(&file.meta.room_id);
            }
        }
        Some(file)
    }
}
