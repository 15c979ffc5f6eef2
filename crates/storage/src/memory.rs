//! [`MemoryStore`]: every session, index, counter and file in this process.
//!
//! Each table sits behind its own `std::sync::Mutex`, taken only for short synchronous work
//! and never held across an `.await`. Counters are kept up to date on every write, so
//! [`SessionStore::stats`] costs no scan of the sessions.

mod chat;
mod files;
mod moderation;
mod rate;
mod sessions;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{FileId, GuestUser, RoomId, Stats, Timestamp, UserId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    FileMeta, Health, OnlinePage, RateDecision, SessionPatch, SessionStore, StorageError,
    StorageMode, StoreConfig, StoreResult, StoredFile,
};
use chat::ChatTables;
use files::Files;
use rate::RateWindows;
use sessions::Sessions;

/// A store that keeps everything in this process. Always available; lost on restart.
#[derive(Debug)]
pub struct MemoryStore {
    config: StoreConfig,
    sessions: Mutex<Sessions>,
    files: Mutex<Files>,
    rate_windows: Mutex<RateWindows>,
    chat: Mutex<ChatTables>,
    moderation: Mutex<moderation::ModerationTables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            sessions: Mutex::default(),
            files: Mutex::default(),
            rate_windows: Mutex::default(),
            chat: Mutex::default(),
            moderation: Mutex::default(),
        }
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Inserts or replaces a session as it is (no liveness check), with its indexes. The
    /// failover store mirrors what Redis holds through this.
    pub fn put_session(&self, user: GuestUser) {
        lock(&self.sessions).put(user, self.config.session_ttl);
    }

    /// Replaces the copy of a session this store already holds (the failover store mirrors
    /// Redis writes through this); a session it does not hold is left out, so a write that
    /// finishes after the session's delete cannot bring its copy back.
    pub fn refresh_session(&self, user: GuestUser) {
        lock(&self.sessions).refresh(user, self.config.session_ttl);
    }

    /// Removes a session without reporting it; the failover store drops deleted sessions'
    /// mirrors with it.
    pub fn forget_session(&self, id: &UserId) {
        lock(&self.sessions).remove(id, self.config.session_ttl);
    }

    /// Clones of every session still live at `now` (used to write them back to Redis).
    pub fn live_sessions(&self, now: Timestamp) -> Vec<GuestUser> {
        lock(&self.sessions).live_users(now, self.config.session_ttl)
    }

    /// Removes the sessions that expire at or before `now` and returns them (what
    /// [`SessionStore::sweep_expired`] reports by id); the failover store remembers their last
    /// activity.
    pub fn sweep_expired_sessions(&self, now: Timestamp) -> Vec<GuestUser> {
        let expired = lock(&self.sessions).sweep(now, self.config.session_ttl);
        self.drop_expired_files(now);
        expired
    }

    /// Keeps a copy of a file another store accepted (the failover store's copy of what it
    /// wrote to Redis) if this store's files stay within [`crate::FileLimits::max_memory_bytes`];
    /// the room bound is that store's to keep. Returns whether the copy was made.
    pub fn put_file_copy(&self, file: StoredFile) -> bool {
        lock(&self.files).put_copy(file, self.config.files.max_memory_bytes, Timestamp::now())
    }

    /// The bytes of the files this store holds (expired ones until they are dropped).
    pub fn file_bytes(&self) -> u64 {
        lock(&self.files).bytes()
    }

    /// Every file not yet expired at `now`; the bytes are shared, not copied.
    pub fn live_files(&self, now: Timestamp) -> Vec<StoredFile> {
        lock(&self.files).live(now)
    }

    /// Drops expired files and ended rate-limit windows. Sessions are left alone: their expiry
    /// must be reported through [`SessionStore::sweep_expired`] so their sockets get told.
    pub fn drop_expired_files(&self, now: Timestamp) {
        lock(&self.files).sweep(now);
        lock(&self.rate_windows).sweep(tokio::time::Instant::now());
    }

    /// Spawns a task that calls [`MemoryStore::drop_expired_files`] every `every` until `stop`
    /// is cancelled (or the store has been dropped); await the handle to know it ended. Must
    /// be called within a Tokio runtime.
    pub fn spawn_cleanup(
        self: &Arc<Self>,
        every: Duration,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let store: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let Some(store) = store.upgrade() else {
                    return;
                };
                store.drop_expired_files(Timestamp::now());
            }
        })
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn health(&self) -> Health {
        Health {
            mode: StorageMode::Memory,
            redis_up: false,
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.put_session(user.clone());
        Ok(())
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let sessions = lock(&self.sessions);
        Ok(sessions
            .live(id, Timestamp::now(), self.config.session_ttl)
            .cloned())
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        let ttl = self.config.session_ttl;
        let mut sessions = lock(&self.sessions);
        let Some(mut user) = sessions.live(id, Timestamp::now(), ttl).cloned() else {
            return Ok(None);
        };
        if patch.applies_to(&user) {
            patch.apply(&mut user);
            sessions.put(user.clone(), ttl);
        }
        Ok(Some(user))
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let ttl = self.config.session_ttl;
        let removed = lock(&self.sessions).remove(id, ttl);
        // An expired session that was not swept yet is removed but reported as absent.
        Ok(removed.filter(|user| sessions::expiry(user, ttl) > Timestamp::now()))
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        let expired = self.sweep_expired_sessions(now);
        Ok(expired.into_iter().map(|user| user.id).collect())
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        Ok(lock(&self.sessions).stats(now))
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        let sessions = lock(&self.sessions);
        Ok(sessions.online_page(
            limit.max(1),
            cursor,
            Timestamp::now(),
            self.config.session_ttl,
        ))
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        Ok(lock(&self.rate_windows).hit(key, limit, window, tokio::time::Instant::now()))
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        lock(&self.files)
            .put(file, self.config.files, Timestamp::now())
            .map_err(StorageError::FileRefused)
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        Ok(lock(&self.files)
            .get(id, Timestamp::now())
            .map(|file| file.meta.clone()))
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        Ok(lock(&self.files).get(id, Timestamp::now()).cloned())
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        Ok(lock(&self.files).delete_room(room, Timestamp::now()))
    }
}

/// Locks a table; a panic elsewhere while it was held leaves data that is still consistent
/// enough to serve, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl crate::ChatStore for MemoryStore {
    async fn search(
        &self,
        searcher: &chat_domain::Searcher,
    ) -> StoreResult<Option<chat_domain::Searcher>> {
        // Searchers whose session's TTL ran out (before the sweep ended it) are never
        // paired: they leave the queue as the search meets them.
        let (now, ttl) = (Timestamp::now(), self.config.session_ttl);
        let sessions = lock(&self.sessions);
        let mut chat = lock(&self.chat);
        Ok(chat.queue.search_among_live(searcher.clone(), |queued| {
            sessions.ran_out(&queued.user.id, now, ttl)
        }))
    }

    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool> {
        Ok(lock(&self.chat).queue.remove(user))
    }

    async fn open_room(&self, room: &crate::RoomRecord) -> StoreResult<()> {
        lock(&self.chat).open(room.clone());
        Ok(())
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<crate::RoomRecord>> {
        Ok(lock(&self.chat).room(id))
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<crate::RoomRecord>> {
        Ok(lock(&self.chat).room_of(user))
    }

    async fn close_room(&self, room: &crate::RoomRecord) -> StoreResult<bool> {
        Ok(lock(&self.chat).close(&room.room_id))
    }
}

impl MemoryStore {
    /// Every open room this process knows (for the failover write-back).
    pub fn open_rooms(&self) -> Vec<crate::RoomRecord> {
        lock(&self.chat).rooms()
    }

    /// Clones of the searchers waiting in this process's queue, oldest first (the failover
    /// store puts them back into the shared queue when Redis returns).
    pub fn queued_searchers(&self) -> Vec<chat_domain::Searcher> {
        lock(&self.chat).queue.searchers().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use chat_domain::FileType;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_windows_follow_tokio_time() {
        let store = MemoryStore::new(StoreConfig::default());
        let window = Duration::from_secs(60);
        assert!(store.hit_rate_limit("ip", 1, window).await.unwrap().allowed);
        let denied = store.hit_rate_limit("ip", 1, window).await.unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, window);
        tokio::time::advance(window).await;
        assert!(store.hit_rate_limit("ip", 1, window).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn a_mirror_that_raced_the_delete_does_not_bring_the_session_back() {
        let store = MemoryStore::new(StoreConfig::default());
        let user = GuestUser::new(chat_domain::Profile::default(), Timestamp::now());
        let other = GuestUser::new(chat_domain::Profile::default(), Timestamp::now());
        store.put_session(user.clone());
        store.put_session(other.clone());
        store.forget_session(&user.id);
        // A write that started before the delete finishes after it.
        store.refresh_session(user.clone());
        assert_eq!(store.get(&user.id).await.unwrap(), None);
        assert_eq!(store.stats(Timestamp::now()).await.unwrap().total_users, 1);
        // A session still held takes the new copy.
        let mut touched = other.clone();
        touched.last_seen = Timestamp::now().plus(Duration::from_secs(1));
        store.refresh_session(touched.clone());
        assert_eq!(store.get(&other.id).await.unwrap(), Some(touched));
    }

    #[tokio::test]
    async fn cleanup_drops_expired_files_and_ends_when_stopped() {
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let meta = FileMeta {
            file_id: FileId::generate(),
            room_id: RoomId::generate(),
            uploader: UserId::generate(),
            filename: "a.txt".into(),
            file_type: FileType::Document,
            mime: "text/plain".into(),
            size: 1,
            duration: None,
            expires_at: Timestamp::now().minus(Duration::from_secs(1)),
        };
        store
            .put_file(StoredFile {
                meta,
                bytes: Bytes::from_static(b"a"),
            })
            .await
            .unwrap();
        // Seen from the epoch, the expired file is still stored until the cleanup drops it.
        assert_eq!(store.live_files(Timestamp::from_millis(0)).len(), 1);
        let stop = CancellationToken::new();
        let cleanup = store.spawn_cleanup(Duration::from_millis(10), stop.clone());
        tokio::time::timeout(Duration::from_secs(5), async {
            while !store.live_files(Timestamp::from_millis(0)).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the cleanup drops the file");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), cleanup)
            .await
            .expect("the task ends")
            .unwrap();
        // Without a stop, the task ends with the store.
        let cleanup = store.spawn_cleanup(Duration::from_millis(10), CancellationToken::new());
        drop(store);
        tokio::time::timeout(Duration::from_secs(5), cleanup)
            .await
            .expect("the task ends")
            .unwrap();
    }
}
