//! [`FailoverStore`]: Redis while it answers, this node's memory while it does not.
//!
//! In Redis mode every call goes to Redis, and what a write leaves in Redis (and each session
//! read) is mirrored into a [`MemoryStore`], so this node's sessions survive an outage. The
//! first outage error switches to memory mode at once and the same call is answered from
//! memory: callers never see an error because Redis went away. Writes made in memory mode are
//! marked (`dirty.rs`). A background task probes Redis with backoff (and at once when the
//! pool reconnects) and, once it answers, writes the marks back (see `recovery.rs`) before
//! switching to Redis mode again.
//!
//! # Who is the authority
//!
//! While Redis is up it alone answers: the memory copy is never consulted, only kept in step
//! (a session or room Redis no longer has is dropped from memory when a read finds it gone).
//! Memory answers only in memory mode. At recovery this node writes back only what it did in
//! memory mode, and never lets an older copy win over what other nodes wrote meanwhile:
//!
//! - a session it **created** is written unless Redis holds a copy active later (a later
//!   `lastSeen`);
//! - a session it **changed** is written only if Redis still holds it (or Redis lost its data),
//!   and only if Redis's copy was not active later: a session deleted through another node
//!   is never brought back, one kept active through another node is never rolled back;
//! - a session it **deleted** or saw **expire** is deleted from Redis only if Redis's copy was
//!   not active after the copy that went (one kept alive elsewhere stays);
//! - files it stored are written if absent; rooms whose files it deleted lose them in Redis;
//! - rooms it **closed** are closed in Redis too; rooms it **opened** are written unless a
//!   member is in another open room there by then (such a room stays this node's own: only
//!   closing it still answers `true` once);
//! - searchers left in its queue go back to the end of the shared queue, unless they are
//!   queued or in a room there already;
//! - only if Redis lost its data (its epoch marker changed) are the other live sessions and
//!   files of its memory written too, where Redis lacks them.
//!
//! Files: in Redis mode the room bound is Redis's (counted across nodes), and the memory
//! copy of a file is made only while this node's files in memory stay within
//! [`FileLimits::max_memory_bytes`](crate::FileLimits::max_memory_bytes): past it the upload
//! still succeeds, but only Redis holds the file (an outage then cannot serve it, nor can a
//! write-back after Redis lost its data restore it). In memory mode uploads are bounded by
//! memory's own room and memory bounds, refused past them like on a memory store.
//!
//! Known limits: in memory mode only sessions this node created, changed or read are known;
//! stats and the online list cover those sessions only. A searcher put back into the shared
//! queue is paired by the next compatible newcomer, not with another waiting searcher.

mod chat;
mod dirty;
mod recovery;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{FileId, GuestUser, RoomId, Stats, Timestamp, UserId};
use dirty::Dirty;
use tokio::sync::{Notify, RwLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{
    FileMeta, Health, MemoryStore, OnlinePage, RateDecision, RedisStore, SessionPatch,
    SessionStore, StorageError, StorageMode, StoreConfig, StoreResult, StoredFile,
};

/// How long [`FailoverStore::connect`] waits for Redis before starting in memory mode.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// A store that serves from Redis and falls back to this node's memory during outages.
pub struct FailoverStore {
    shared: Arc<Shared>,
    /// Cancelled on [`FailoverStore::shutdown`] and on drop; stops the background tasks.
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for FailoverStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FailoverStore")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

/// What the store and its background task share.
struct Shared {
    redis: RedisStore,
    memory: MemoryStore,
    redis_mode: AtomicBool,
    /// Held shared by every write served from memory, exclusively by the last step of a
    /// write-back, so no memory write can slip between that step and the switch to Redis.
    gate: RwLock<()>,
    dirty: Mutex<Dirty>,
    /// Wakes the background task when the store falls back to memory.
    fell_back: Notify,
    /// The data epoch of Redis last seen (see [`RedisStore::epoch`]); `None` before the first.
    epoch: Mutex<Option<String>>,
    /// Rooms opened during an outage that could not be written back (a member was in another
    /// room by then): only this node knows them, so only its memory can close them.
    local_rooms: Mutex<HashSet<RoomId>>,
}

impl FailoverStore {
    /// Connects to the Redis at `target` (anything [`RedisStore::connect`] takes). Succeeds
    /// even when Redis is down (only a target that cannot be used fails): the store then
    /// starts in memory mode and keeps trying. Must be called within a Tokio runtime.
    pub async fn connect(
        target: impl Into<crate::redis::RedisTarget>,
        config: StoreConfig,
    ) -> StoreResult<Self> {
        Self::connect_observed(target, config, None).await
    }

    /// [`FailoverStore::connect`], its Redis side telling `observer` of every command (see
    /// [`RedisStore::observed_by`]).
    pub async fn connect_observed(
        target: impl Into<crate::redis::RedisTarget>,
        config: StoreConfig,
        observer: Option<Arc<dyn crate::redis::RedisObserver>>,
    ) -> StoreResult<Self> {
        let mut redis = RedisStore::connect_lazily(target, config.clone())?;
        if let Some(observer) = observer {
            redis = redis.observed_by(observer);
        }
        let up = redis.wait_connected(CONNECT_WAIT).await;
        if !up {
            tracing::warn!("Redis unreachable at start; serving from memory until it answers");
        }
        let store = Self::from_parts(redis, MemoryStore::new(config), up);
        if up && let Ok(epoch) = store.shared.redis.epoch().await {
            store.shared.remember_epoch(epoch);
        }
        Ok(store)
    }

    /// Wraps existing stores; `redis_up` says which mode to start in. Spawns the task that
    /// probes Redis and writes memory back after an outage (stopped by [`FailoverStore::shutdown`] or when the store is dropped).
    pub fn from_parts(redis: RedisStore, memory: MemoryStore, redis_up: bool) -> Self {
        let shared = Arc::new(Shared {
            redis,
            memory,
            redis_mode: AtomicBool::new(redis_up),
            gate: RwLock::new(()),
            dirty: Mutex::default(),
            fell_back: Notify::new(),
            epoch: Mutex::default(),
            local_rooms: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        recovery::spawn(&shared, &stop, &tasks);
        tasks.close();
        Self {
            shared,
            stop,
            tasks,
        }
    }

    /// Stops the background tasks (probing Redis, writing memory back; a write-back under way
    /// finishes first), closes the Redis connections and waits for all of it. Call it last:
    /// afterwards Redis calls fail and the store no longer switches modes.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }

    /// The memory side (this node's copy of its sessions).
    pub fn memory(&self) -> &MemoryStore {
        &self.shared.memory
    }

    /// The Redis side.
    pub fn redis(&self) -> &RedisStore {
        &self.shared.redis
    }
}

impl Shared {
    fn redis_mode(&self) -> bool {
        self.redis_mode.load(Ordering::SeqCst)
    }

    /// Switches to memory mode if `error` is an outage; gives the error back otherwise.
    fn fall_back(&self, error: StorageError) -> StoreResult<()> {
        if !error.is_outage() {
            return Err(error);
        }
        if self.redis_mode.swap(false, Ordering::SeqCst) {
            tracing::warn!(%error, "Redis unavailable; serving from this node's memory");
            self.fell_back.notify_one();
        }
        Ok(())
    }

    fn dirty(&self) -> MutexGuard<'_, Dirty> {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn known_epoch(&self) -> Option<String> {
        self.epoch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn remember_epoch(&self, epoch: String) {
        *self.epoch.lock().unwrap_or_else(PoisonError::into_inner) = Some(epoch);
    }

    fn local_rooms(&self) -> MutexGuard<'_, HashSet<RoomId>> {
        self.local_rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a write on memory in memory mode and marks what it touched, or returns `None` if
    /// the store went back to Redis mode meanwhile (the caller then retries on Redis).
    async fn write_in_memory<T>(
        &self,
        write: impl AsyncFnOnce(&MemoryStore) -> StoreResult<T>,
        mark: impl FnOnce(&mut Dirty, &T),
    ) -> Option<StoreResult<T>> {
        let _gate = self.gate.read().await;
        if self.redis_mode() {
            return None;
        }
        let result = write(&self.memory).await;
        if let Ok(value) = &result {
            mark(&mut self.dirty(), value);
        }
        Some(result)
    }
}

/// Serves a read from Redis in Redis mode (then runs the optional `$mirror` on a reference to
/// the value), from memory otherwise or on an outage.
macro_rules! serve_read {
    ($shared:expr, |$store:ident| $call:expr $(, |$value:ident| $mirror:expr)?) => {{
        let shared = &$shared;
        if shared.redis_mode() {
            let $store = &shared.redis;
            match $call.await {
                Ok(value) => {
                    $(
                        let $value = &value;
                        $mirror;
                    )?
                    return Ok(value);
                }
                Err(error) => shared.fall_back(error)?,
            }
        }
        let $store = &shared.memory;
        $call.await
    }};
}

/// Serves a write: on Redis (then `$mirror` on the value) in Redis mode, on memory in memory
/// mode or on an outage (then `$mark`, a closure of the dirty marks and the value).
macro_rules! serve_write {
    ($shared:expr, |$store:ident| $call:expr, |$value:ident| $mirror:expr, $mark:expr) => {{
        let shared = &$shared;
        loop {
            if shared.redis_mode() {
                let $store = &shared.redis;
                match $call.await {
                    Ok($value) => {
                        $mirror;
                        return Ok($value);
                    }
                    Err(error) => shared.fall_back(error)?,
                }
            }
            let written = shared
                .write_in_memory(async |$store: &MemoryStore| $call.await, $mark)
                .await;
            if let Some(result) = written {
                return result;
            }
        }
    }};
}

#[async_trait]
impl SessionStore for FailoverStore {
    fn health(&self) -> Health {
        let mode = if self.shared.redis_mode() {
            StorageMode::Redis
        } else {
            StorageMode::Memory
        };
        Health {
            mode,
            redis_up: self.shared.redis.is_connected(),
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        let memory = &self.shared.memory;
        serve_write!(
            self.shared,
            |store| store.create(user),
            |_created| memory.put_session(user.clone()),
            |dirty, _| dirty.created(&user.id)
        )
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let memory = &self.shared.memory;
        serve_read!(self.shared, |store| store.get(id), |found| match found {
            Some(user) => memory.put_session(user.clone()),
            // Gone from Redis (deleted or expired through another node): a copy kept here
            // could only come back wrongly after a later outage.
            None => memory.forget_session(id),
        })
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        let memory = &self.shared.memory;
        serve_write!(
            self.shared,
            |store| store.update(id, patch.clone()),
            // Only a copy this node holds is refreshed: an update that finishes after a
            // concurrent delete (a disconnect racing `DELETE /api/guest/me`) must not leave a
            // copy behind until its expiry. Copies are made on create and on read.
            |updated| match &updated {
                Some(user) => memory.refresh_session(user.clone()),
                None => memory.forget_session(id),
            },
            // Only a session memory holds is changed; an id it does not know (created through
            // another node) is not marked, so the write-back never deletes it from Redis.
            |dirty, updated: &Option<GuestUser>| if updated.is_some() {
                dirty.changed(id)
            }
        )
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let memory = &self.shared.memory;
        serve_write!(
            self.shared,
            |store| store.delete(id),
            |_deleted| memory.forget_session(id),
            |dirty, deleted: &Option<GuestUser>| if let Some(user) = deleted {
                dirty.removed(user)
            }
        )
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        let shared = &self.shared;
        loop {
            // In Redis mode Redis reports the expired ids; memory just drops its copies.
            if shared.redis_mode() {
                match shared.redis.sweep_expired(now).await {
                    Ok(expired) => {
                        shared.memory.sweep_expired_sessions(now);
                        return Ok(expired);
                    }
                    Err(error) => shared.fall_back(error)?,
                }
            }
            let swept = shared
                .write_in_memory(
                    async |memory: &MemoryStore| Ok(memory.sweep_expired_sessions(now)),
                    |dirty, expired: &Vec<GuestUser>| {
                        for user in expired {
                            dirty.removed(user);
                        }
                    },
                )
                .await;
            if let Some(result) = swept {
                return result.map(|expired| expired.into_iter().map(|user| user.id).collect());
            }
        }
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        serve_read!(self.shared, |store| store.stats(now))
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        serve_read!(self.shared, |store| store.online_users(limit, cursor))
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        serve_read!(self.shared, |store| store
            .hit_rate_limit(key, limit, window))
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        let memory = &self.shared.memory;
        serve_write!(
            self.shared,
            |store| store.put_file(file.clone()),
            // The copy for an outage only while this node's memory stays within its bound:
            // past it Redis alone holds the file (see the module docs).
            |_stored| if !memory.put_file_copy(file.clone()) {
                tracing::debug!(file_id = %file.meta.file_id, "no memory copy of a file: this node's memory bound is reached");
            },
            |dirty, _| {
                dirty.files.insert(file.meta.file_id.clone());
            }
        )
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        serve_read!(self.shared, |store| store.file_meta(id))
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        serve_read!(self.shared, |store| store.get_file(id))
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        let memory = &self.shared.memory;
        serve_write!(
            self.shared,
            |store| store.delete_room_files(room),
            |_deleted| memory.delete_room_files(room).await?,
            |dirty, _| {
                dirty.room_files.insert(room.clone());
            }
        )
    }
}

// After the macros above, which it uses.
mod moderation;
