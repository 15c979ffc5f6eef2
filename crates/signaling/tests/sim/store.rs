//! The shared session store as the nodes see it: the one `MemoryStore` of the run, playing
//! a Redis that answers (`health()` says so), because a node refuses to relay to other
//! nodes while its store says Redis is away.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{FileId, GuestUser, RoomId, Stats, Timestamp, UserId};
use chat_storage::{
    FileMeta, Health, MemoryStore, OnlinePage, RateDecision, SessionPatch, SessionStore,
    StorageMode, StoreResult, StoredFile,
};

/// [`MemoryStore`] behind a Redis health.
pub struct SharedStore(pub Arc<MemoryStore>);

#[async_trait]
impl SessionStore for SharedStore {
    fn health(&self) -> Health {
        Health {
            mode: StorageMode::Redis,
            redis_up: true,
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.0.create(user).await
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        self.0.get(id).await
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        self.0.update(id, patch).await
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        self.0.delete(id).await
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        self.0.sweep_expired(now).await
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        self.0.stats(now).await
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        self.0.online_users(limit, cursor).await
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        self.0.hit_rate_limit(key, limit, window).await
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        self.0.put_file(file).await
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        self.0.file_meta(id).await
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        self.0.get_file(id).await
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        self.0.delete_room_files(room).await
    }
}
