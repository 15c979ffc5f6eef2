//! Key names. Every key starts with the configured prefix, followed by the `{slot}` hash tag:
//! on Redis Cluster that puts all keys of one deployment into one slot, so the Lua scripts that
//! touch several keys are legal there. (A prefix with its own `{...}` tag works too: the first
//! tag wins, and it is the same for every key.)

use chat_domain::{FileId, RoomId, UserId};

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    base: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            base: format!("{prefix}{{slot}}:"),
        }
    }

    /// The prefix of session keys; a session's key is this followed by its id.
    pub(super) fn session_prefix(&self) -> String {
        format!("{}session:", self.base)
    }

    /// A session, as JSON.
    pub(super) fn session(&self, id: &UserId) -> String {
        format!("{}session:{id}", self.base)
    }

    /// Sorted set: user id scored by expiry (unix ms).
    pub(super) fn expiries(&self) -> String {
        format!("{}sessions:expiry", self.base)
    }

    /// Sorted set: ids of online users, all scored 0 so they sort by id.
    pub(super) fn online(&self) -> String {
        format!("{}sessions:online", self.base)
    }

    /// Set: ids of searching users.
    pub(super) fn searching(&self) -> String {
        format!("{}sessions:searching", self.base)
    }

    /// Set: ids of users in a chat.
    pub(super) fn in_chat(&self) -> String {
        format!("{}sessions:in_chat", self.base)
    }

    /// Sorted set: user id scored by last activity (unix ms).
    pub(super) fn activity(&self) -> String {
        format!("{}sessions:activity", self.base)
    }

    /// The key of a session followed by every index key, in the order the session scripts
    /// expect them.
    pub(super) fn session_and_indexes(&self, id: &UserId) -> Vec<String> {
        let mut keys = vec![self.session(id)];
        keys.extend(self.indexes());
        keys
    }

    /// Every index key: expiries, online, searching, in chat, activity.
    pub(super) fn indexes(&self) -> Vec<String> {
        vec![
            self.expiries(),
            self.online(),
            self.searching(),
            self.in_chat(),
            self.activity(),
        ]
    }

    /// The data epoch marker (a random value; changes when Redis loses its data).
    pub(super) fn epoch(&self) -> String {
        format!("{}epoch", self.base)
    }

    /// A rate-limit counter.
    pub(super) fn rate(&self, key: &str) -> String {
        format!("{}rate:{key}", self.base)
    }

    /// The prefix of file keys: a file's keys are this, its id, and `:bytes` or `:meta`.
    pub(super) fn file_prefix(&self) -> String {
        format!("{}file:", self.base)
    }

    /// A file's content.
    pub(super) fn file_bytes(&self, id: &FileId) -> String {
        format!("{}file:{id}:bytes", self.base)
    }

    /// A file's metadata, as JSON.
    pub(super) fn file_meta(&self, id: &FileId) -> String {
        format!("{}file:{id}:meta", self.base)
    }

    /// Set: ids of a room's files.
    pub(super) fn room_files(&self, room: &RoomId) -> String {
        format!("{}room:{room}:files", self.base)
    }

    /// List: the search queue, oldest first, each entry a JSON searcher.
    pub(super) fn queue(&self) -> String {
        format!("{}chat:queue", self.base)
    }

    /// Hash: user id → that user's entry in the search queue (exactly the list element), so a
    /// user's entry is found without scanning the queue.
    pub(super) fn queue_entries(&self) -> String {
        format!("{}chat:queue:entries", self.base)
    }

    /// A room's record, as JSON.
    pub(super) fn room(&self, room: &RoomId) -> String {
        format!("{}chat:room:{room}", self.base)
    }

    /// The id of the room a user is in.
    pub(super) fn user_room(&self, user: &UserId) -> String {
        format!("{}chat:user_room:{user}", self.base)
    }

    /// The node holding a user's socket.
    pub(super) fn user_node(&self, user: &UserId) -> String {
        format!("{}chat:user_node:{user}", self.base)
    }

    /// The pub/sub channel of a node.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}bus:{node}", self.base)
    }
}
