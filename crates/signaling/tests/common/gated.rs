//! [`Gated`]: the shared `MemoryStore` as the nodes see it, playing a Redis that answers
//! (its health says so until a test takes Redis away), with gates that hold one call of
//! `search` or `open_room` until the test lets it go, to drive interleavings of a pairing
//! deterministically.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{FileId, GuestUser, RoomId, Searcher, Stats, Timestamp, UserId};
use chat_storage::memory::MemoryStore;
use chat_storage::{
    ChatStore, FileMeta, Health, OnlinePage, RateDecision, RoomRecord, SessionPatch, SessionStore,
    StorageMode, StoreResult, StoredFile,
};
use tokio::sync::oneshot;

/// A store call a test can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `ChatStore::search`, held after the queue answered (the partner is already popped).
    Search,
    /// `ChatStore::open_room`, held before the room is written.
    OpenRoom,
}

/// A held call: [`Held::reached`] waits until the call is being held, [`Held::release`] lets
/// it go on.
pub struct Held {
    reached: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl Held {
    /// Waits until the held call has been made (and is waiting).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            reached.await.expect("the held call was made");
        }
    }

    /// Lets the held call go on.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

type Gate = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// The shared store with a settable Redis health and gates.
pub struct Gated {
    inner: Arc<MemoryStore>,
    redis_up: AtomicBool,
    gates: Mutex<HashMap<Step, Gate>>,
}

impl Gated {
    /// `inner` as a store whose Redis answers.
    pub fn new(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            redis_up: AtomicBool::new(true),
            gates: Mutex::default(),
        }
    }

    /// Redis answers (`true`) or is away (`false`), as `health()` reports it.
    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.store(up, Ordering::SeqCst);
    }

    /// Holds the next call of `step`.
    pub fn hold_next(&self, step: Step) -> Held {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.gates
            .lock()
            .unwrap()
            .insert(step, (reached_tx, release_rx));
        Held {
            reached: Some(reached_rx),
            release: Some(release_tx),
        }
    }

    async fn pass(&self, step: Step) {
        let gate = self.gates.lock().unwrap().remove(&step);
        if let Some((reached, release)) = gate {
            let _ = reached.send(());
            let _ = release.await;
        }
    }
}

#[async_trait]
impl ChatStore for Gated {
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>> {
        let found = self.inner.search(searcher).await;
        self.pass(Step::Search).await;
        found
    }

    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool> {
        self.inner.cancel_search(user).await
    }

    async fn open_room(&self, room: &RoomRecord) -> StoreResult<()> {
        self.pass(Step::OpenRoom).await;
        self.inner.open_room(room).await
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>> {
        self.inner.room(id).await
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>> {
        ChatStore::room_of(self.inner.as_ref(), user).await
    }

    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        self.inner.close_room(room).await
    }
}

#[async_trait]
impl SessionStore for Gated {
    fn health(&self) -> Health {
        let redis_up = self.redis_up.load(Ordering::SeqCst);
        Health {
            mode: if redis_up {
                StorageMode::Redis
            } else {
                StorageMode::Memory
            },
            redis_up,
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.inner.create(user).await
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        self.inner.get(id).await
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        self.inner.update(id, patch).await
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        self.inner.delete(id).await
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        self.inner.sweep_expired(now).await
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        self.inner.stats(now).await
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        self.inner.online_users(limit, cursor).await
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        self.inner.hit_rate_limit(key, limit, window).await
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        self.inner.put_file(file).await
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        self.inner.file_meta(id).await
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        self.inner.get_file(id).await
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        self.inner.delete_room_files(room).await
    }
}
