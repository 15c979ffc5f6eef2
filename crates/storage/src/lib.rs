//! Storage of the random-chat service behind one trait, [`SessionStore`].
//!
//! Modules, the implementations side by side, all passing the same contract suite
//! (`tests/contract.rs`):
//! - [`memory`]: [`MemoryStore`], everything in this process behind short-held mutexes, with
//!   counters kept on every write so stats cost no scan; `spawn_cleanup` drops expired files.
//! - [`redis`]: [`RedisStore`], Redis through a small `fred` pool (standalone, Sentinel or
//!   Cluster URLs), Lua scripts so a session and its indexes change atomically, stats in O(1)
//!   round trips and the online list in O(page); no `KEYS`, no scan of every session.
//! - [`failover`]: [`FailoverStore`], Redis while it answers (the sole authority then), this
//!   node's memory (a mirror kept on every write) while it does not, and what was done in
//!   memory written back when Redis returns, never over newer writes of other nodes.
//! - [`cluster`]: [`Cluster`], the bus between nodes and the user → node directory, with the
//!   in-process driver [`InProcessNetwork`] (several nodes in one process).
//! - [`error`]: [`StorageError`], what any store call can fail with.
//!
//! # Features
//!
//! - `redis` (default): [`redis`] (with `redis::RedisCluster`), [`failover`] and [`bus`], over
//!   `fred`. Without it only the in-memory store and the in-process cluster are compiled, and
//!   `fred` is not a dependency: crates that only code against the traits (the chat logic,
//!   presence) depend on this crate with `default-features = false`.
//!
//! Sessions expire [`StoreConfig::session_ttl`] after their last activity (sliding): an
//! [`SessionStore::update`] whose patch has `touch` set slides the expiry. An expired session
//! is invisible at once; [`SessionStore::sweep_expired`] removes it and reports its id once.
//!
//! # Example
//!
//! Every store is used through the traits; [`MemoryStore`] needs nothing, [`RedisStore`] and
//! [`FailoverStore`] a URL (`examples/redis_store.rs` runs this against a Redis):
//!
//! ```
//! use std::time::Duration;
//!
//! use chat_domain::{GuestUser, Profile, Timestamp};
//! use chat_storage::{MemoryStore, SessionPatch, SessionStore, StoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chat_storage::StorageError> {
//! let store = MemoryStore::new(StoreConfig { session_ttl: Duration::from_secs(60), ..StoreConfig::default() });
//! let user = GuestUser::new(Profile::default(), Timestamp::now());
//! store.create(&user).await?;
//!
//! let online = SessionPatch { is_online: Some(true), ..SessionPatch::default() };
//! assert!(store.update(&user.id, online).await?.is_some_and(|user| user.is_online));
//! assert_eq!(store.stats(Timestamp::now()).await?.online_users, 1);
//!
//! // Sessions slide: nothing is seen past `session_ttl` after the last touch.
//! let later = Timestamp::now().plus(Duration::from_secs(61));
//! assert_eq!(store.sweep_expired(later).await?, vec![user.id.clone()]);
//! assert!(store.get(&user.id).await?.is_none());
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_domain::{
    FileId, FileType, GuestUser, ProfileField, PublicUser, RoomId, Stats, Timestamp, UserId,
    Username,
};

#[cfg(feature = "redis")]
pub mod bus;
pub mod chat;
pub mod cluster;
pub mod error;
#[cfg(feature = "redis")]
pub mod failover;
pub mod memory;
pub mod moderation;
#[cfg(feature = "redis")]
pub mod redis;

pub use chat::{ChatStore, RoomRecord};
pub use cluster::{BusHealth, Cluster, InProcessCluster, InProcessNetwork, Inbox};
pub use error::{FileRefusal, RedisError, StorageError};
#[cfg(feature = "redis")]
pub use failover::FailoverStore;
pub use memory::MemoryStore;
pub use moderation::{ModerationStore, ReportFiled, ReportPage};
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StorageError>;

/// Settings shared by every store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long a session lives after its last activity.
    pub session_ttl: Duration,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// The bounds on uploaded files.
    pub files: FileLimits,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(7200),
            key_prefix: "chat:".into(),
            files: FileLimits::default(),
        }
    }
}

/// The bounds on uploaded files, so that no pair of users can exhaust a store. A file that
/// would pass one is refused with [`StorageError::FileRefused`] and nothing is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// The bytes of one room's live files together (unexpired and not deleted), counted
    /// where the room's files are kept: in Redis across every node, in memory per node.
    pub max_room_bytes: u64,
    /// The bytes of files this process holds in its memory: every file of a
    /// [`MemoryStore`], and the copies the failover store keeps of what it wrote to Redis
    /// (in Redis mode a copy that does not fit is not made; Redis alone holds that file).
    pub max_memory_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_room_bytes: 50 * 1024 * 1024,
            max_memory_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Where data is being served from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageMode {
    /// Redis is the source of truth.
    Redis,
    /// This process's memory is.
    Memory,
}

impl StorageMode {
    /// `"redis"` or `"memory"`, as `/readyz` and the start-up line say it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Memory => "memory",
        }
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Where data is served from now.
    pub mode: StorageMode,
    /// Whether a Redis is configured and answering.
    pub redis_up: bool,
}

/// A change to a stored session. `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// Activity at this instant: sets `lastSeen` and slides the session's expiry.
    pub touch: Option<Timestamp>,
    /// New username.
    pub username: Option<Username>,
    /// New gender (`Some(None)` clears it).
    pub gender: Option<Option<ProfileField>>,
    /// New language (`Some(None)` clears it).
    pub language: Option<Option<ProfileField>>,
    /// New location (`Some(None)` clears it).
    pub location: Option<Option<ProfileField>>,
    /// Online flag.
    pub is_online: Option<bool>,
    /// Searching flag.
    pub is_searching: Option<bool>,
    /// `Some(Some(partner))` enters a chat (`inChat` true, `connectedUser` set);
    /// `Some(None)` leaves it.
    pub chat: Option<Option<UserId>>,
    /// `Some(Some((socket id, connected at)))` attaches a socket; `Some(None)` detaches it.
    pub socket: Option<Option<(String, Timestamp)>>,
    /// When set, the patch applies only while the session's socket is this one, and the
    /// session is returned unchanged otherwise: a socket that drops on one node never marks
    /// offline (or detaches) the newer socket its user opened on another node meanwhile.
    pub only_if_socket: Option<String>,
    /// When set, the patch applies only while the session is in no chat: a search that
    /// queued a user never marks them searching after another node's search has already
    /// paired them.
    pub unless_in_chat: bool,
}

impl SessionPatch {
    /// Whether the patch applies to `user` ([`SessionPatch::only_if_socket`],
    /// [`SessionPatch::unless_in_chat`]).
    pub fn applies_to(&self, user: &GuestUser) -> bool {
        self.only_if_socket
            .as_ref()
            .is_none_or(|socket| user.socket_id.as_ref() == Some(socket))
            && !(self.unless_in_chat && user.in_chat)
    }

    /// Applies the patch to a user in place (whatever [`SessionPatch::only_if_socket`] says:
    /// check [`SessionPatch::applies_to`] first).
    pub fn apply(&self, user: &mut GuestUser) {
        if let Some(now) = self.touch {
            user.last_seen = now;
        }
        if let Some(username) = &self.username {
            user.username = username.clone();
        }
        if let Some(gender) = &self.gender {
            user.gender = gender.clone();
        }
        if let Some(language) = &self.language {
            user.language = language.clone();
        }
        if let Some(location) = &self.location {
            user.location = location.clone();
        }
        if let Some(online) = self.is_online {
            user.is_online = online;
        }
        if let Some(searching) = self.is_searching {
            user.is_searching = searching;
        }
        if let Some(chat) = &self.chat {
            user.in_chat = chat.is_some();
            user.connected_user = chat.clone();
        }
        if let Some(socket) = &self.socket {
            user.socket_id = socket.as_ref().map(|(socket_id, _)| socket_id.clone());
            user.connected_at = socket.as_ref().map(|(_, connected_at)| *connected_at);
        }
    }
}

/// One page of `/api/users/online`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlinePage {
    /// Online users, ordered by id.
    pub users: Vec<PublicUser>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether this hit is allowed.
    pub allowed: bool,
    /// Hits left in the current window.
    pub remaining: u32,
    /// When the window resets (meaningful when not allowed).
    pub retry_after: Duration,
}

/// What is stored about an uploaded file besides its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    /// The file's id.
    pub file_id: FileId,
    /// The room it was uploaded to; only its two members may fetch it.
    pub room_id: RoomId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// Sanitized name.
    pub filename: String,
    /// Judged from the bytes.
    pub file_type: FileType,
    /// The content type it is served with.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// Voice notes: seconds.
    pub duration: Option<f64>,
    /// Deleted at this instant at the latest.
    pub expires_at: Timestamp,
}

/// A file with its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    /// Metadata.
    pub meta: FileMeta,
    /// Content.
    pub bytes: Bytes,
}

/// The storage of guest sessions, their indexes, rate-limit counters and files.
///
/// Implementations never hold a lock across an `.await`, and every method is cancel-safe in
/// the sense that a dropped call leaves the store consistent.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Which mode the store serves from, and whether Redis answers. Cheap, no I/O.
    fn health(&self) -> Health;

    /// Stores a new session; it expires `session_ttl` after `user.last_seen`.
    async fn create(&self, user: &GuestUser) -> StoreResult<()>;

    /// The live session of `id`, or `None` when it never existed or has expired.
    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>>;

    /// Applies `patch` to a live session and returns the updated user (`None`: no such live
    /// session, nothing written). Indexes (online, searching, in chat, activity) follow.
    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>>;

    /// Deletes a session and its index entries; returns what was deleted.
    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>>;

    /// Removes sessions whose expiry is at or before `now` from every index and returns their
    /// ids. With several nodes each expired id is returned to exactly one caller.
    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>>;

    /// The service-wide counters at `now`.
    async fn stats(&self, now: Timestamp) -> StoreResult<Stats>;

    /// A page of online users ordered by id, starting after `cursor`; `limit` is 1 to 100.
    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage>;

    /// Counts one hit against `key` in fixed windows of `window`, allowing `limit` per window.
    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision>;

    /// Stores a file until `file.meta.expires_at` (or until its room's files are deleted).
    /// Refused with [`StorageError::FileRefused`], storing nothing, when the room's live
    /// files would pass [`FileLimits::max_room_bytes`] ([`FileRefusal::RoomFull`]) or, for a
    /// store that holds it in this process's memory, when that memory would pass
    /// [`FileLimits::max_memory_bytes`] ([`FileRefusal::MemoryFull`]). Expired and deleted
    /// files count for neither.
    async fn put_file(&self, file: StoredFile) -> StoreResult<()>;

    /// A file's metadata, without its bytes.
    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>>;

    /// A file with its bytes.
    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>>;

    /// Deletes every file of `room`; returns how many went.
    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64>;
}
