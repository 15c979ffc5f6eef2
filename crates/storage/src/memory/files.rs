//! In-memory files, their per-room index and their expiry order, with the bytes they hold
//! counted per room and in all (the bounds of [`FileLimits`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use chat_domain::{FileId, RoomId, Timestamp};

use crate::{FileLimits, FileRefusal, StoredFile};

/// Files by id. Invariant: `rooms` and `expiries` hold exactly the entries of `files`;
/// `room_bytes` is the sum of each room's file sizes and `bytes` the sum of all.
#[derive(Debug, Default)]
pub(super) struct Files {
    files: HashMap<FileId, StoredFile>,
    rooms: HashMap<RoomId, HashSet<FileId>>,
    expiries: BTreeSet<(Timestamp, FileId)>,
    room_bytes: HashMap<RoomId, u64>,
    bytes: u64,
}

impl Files {
    /// Stores (or replaces) a file unless, once the files expired at `now` are dropped, it
    /// would take its room past `limits.max_room_bytes` or all files past
    /// `limits.max_memory_bytes`. A refused file changes nothing.
    pub(super) fn put(
        &mut self,
        file: StoredFile,
        limits: FileLimits,
        now: Timestamp,
    ) -> Result<(), FileRefusal> {
        self.sweep(now);
        let (room_after, total_after) = self.bytes_after(&file);
        if room_after > limits.max_room_bytes {
            return Err(FileRefusal::RoomFull {
                limit: limits.max_room_bytes,
            });
        }
        if total_after > limits.max_memory_bytes {
            return Err(FileRefusal::MemoryFull {
                limit: limits.max_memory_bytes,
            });
        }
        self.insert(file);
        Ok(())
    }

    /// Stores (or replaces) a copy of a file another store accepted, only if all files stay
    /// within `max_memory_bytes` (the room bound is that store's); returns whether it did.
    pub(super) fn put_copy(
        &mut self,
        file: StoredFile,
        max_memory_bytes: u64,
        now: Timestamp,
    ) -> bool {
        self.sweep(now);
        let (_, total_after) = self.bytes_after(&file);
        if total_after > max_memory_bytes {
            // An older copy of the same id (never expected: ids are unique) would be stale.
            self.remove(&file.meta.file_id);
            return false;
        }
        self.insert(file);
        true
    }

    /// The bytes of the file's room and of all files once `file` is stored (replacing the
    /// file of its id, if any).
    fn bytes_after(&self, file: &StoredFile) -> (u64, u64) {
        let size = file.bytes.len() as u64;
        let room = &file.meta.room_id;
        let (mut room_bytes, mut total) =
            (self.room_bytes.get(room).copied().unwrap_or(0), self.bytes);
        if let Some(old) = self.files.get(&file.meta.file_id) {
            let old_size = old.bytes.len() as u64;
            total -= old_size;
            if &old.meta.room_id == room {
                room_bytes -= old_size;
            }
        }
        (room_bytes + size, total + size)
    }

    fn insert(&mut self, file: StoredFile) {
        let id = file.meta.file_id.clone();
        self.remove(&id);
        let size = file.bytes.len() as u64;
        self.rooms
            .entry(file.meta.room_id.clone())
            .or_default()
            .insert(id.clone());
        *self
            .room_bytes
            .entry(file.meta.room_id.clone())
            .or_default() += size;
        self.bytes += size;
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

    /// The bytes of every file held (expired ones too, until a sweep drops them).
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn remove(&mut self, id: &FileId) -> Option<StoredFile> {
        let file = self.files.remove(id)?;
        let size = file.bytes.len() as u64;
        self.bytes -= size;
        self.expiries.remove(&(file.meta.expires_at, id.clone()));
        if let Some(bytes) = self.room_bytes.get_mut(&file.meta.room_id) {
            *bytes -= size;
        }
        if let Some(room) = self.rooms.get_mut(&file.meta.room_id) {
            room.remove(id);
            if room.is_empty() {
                self.rooms.remove(&file.meta.room_id);
            }
        }
        if !self.rooms.contains_key(&file.meta.room_id) {
            self.room_bytes.remove(&file.meta.room_id);
        }
        Some(file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use chat_domain::{FileType, UserId};

    use super::*;
    use crate::FileMeta;

    fn file(room: &RoomId, size: usize, lives: Duration) -> StoredFile {
        StoredFile {
            meta: FileMeta {
                file_id: FileId::generate(),
                room_id: room.clone(),
                uploader: UserId::generate(),
                filename: "a.txt".into(),
                file_type: FileType::Document,
                mime: "text/plain".into(),
                size: size as u64,
                duration: None,
                expires_at: Timestamp::now().plus(lives),
            },
            bytes: Bytes::from(vec![b'a'; size]),
        }
    }

    #[test]
    fn bytes_are_counted_per_room_and_in_all_and_freed_by_every_removal() {
        let limits = FileLimits {
            max_room_bytes: 10,
            max_memory_bytes: 15,
        };
        let (now, hour) = (Timestamp::now(), Duration::from_secs(3600));
        let (room, other) = (RoomId::generate(), RoomId::generate());
        let mut files = Files::default();
        files.put(file(&room, 6, hour), limits, now).unwrap();
        assert_eq!(
            files.put(file(&room, 5, hour), limits, now),
            Err(FileRefusal::RoomFull { limit: 10 })
        );
        files.put(file(&room, 4, hour), limits, now).unwrap();
        files.put(file(&other, 5, hour), limits, now).unwrap();
        assert_eq!(
            files.put(file(&other, 1, hour), limits, now),
            Err(FileRefusal::MemoryFull { limit: 15 })
        );
        assert_eq!(files.bytes(), 15);
        // A copy over the bound is not made; one within it is.
        assert!(!files.put_copy(file(&other, 1, hour), 15, now));
        assert_eq!(files.delete_room(&room, now), 2);
        assert_eq!(files.bytes(), 5);
        assert!(files.put_copy(file(&other, 5, hour), 15, now));
        files
            .put(file(&room, 5, Duration::from_millis(1)), limits, now)
            .unwrap();
        assert_eq!(files.bytes(), 15);
        // Expired files free their room and the memory at the next put.
        let later = now.plus(Duration::from_secs(1));
        files.put(file(&room, 5, hour), limits, later).unwrap();
        assert_eq!(files.bytes(), 15);
        files.sweep(now.plus(hour * 2));
        assert_eq!((files.bytes(), files.room_bytes.len()), (0, 0));
    }
}
