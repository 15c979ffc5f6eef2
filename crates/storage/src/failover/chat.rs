//! The chat's shared state through the failover store: Redis while it answers, this node's
//! memory during an outage. Redis alone answers while it is up: the memory copy of a room
//! (mirrored when this node opens it) only serves while Redis is away, and a room Redis says
//! is gone is dropped from memory. What memory mode changed (queue, rooms) is written back at
//! recovery (`recovery.rs`).

use async_trait::async_trait;
use chat_domain::{RoomId, Searcher, UserId};

use crate::StoreResult;
use crate::chat::{ChatStore, RoomRecord};
use crate::failover::FailoverStore;
use crate::memory::MemoryStore;

impl FailoverStore {
    /// Runs `call` on Redis in Redis mode; `None` in memory mode or on an outage (the caller
    /// then serves from memory).
    pub(crate) async fn on_redis<T>(
        &self,
        call: impl AsyncFnOnce(&crate::RedisStore) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        if !self.shared.redis_mode() {
            return Ok(None);
        }
        match call(&self.shared.redis).await {
            Ok(value) => Ok(Some(value)),
            Err(error) => self.shared.fall_back(error).map(|()| None),
        }
    }

    /// Drops memory's copy of `room` after Redis said it is closed (unless it is one of this
    /// node's own rooms, which Redis never knew).
    async fn forget_closed_room(&self, room: Option<RoomRecord>) -> StoreResult<()> {
        if let Some(room) = room
            && !self.shared.local_rooms().contains(&room.room_id)
        {
            self.shared.memory.close_room(&room).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ChatStore for FailoverStore {
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>> {
        loop {
            if let Some(partner) = self
                .on_redis(async |redis| redis.search(searcher).await)
                .await?
            {
                return Ok(partner);
            }
            // Searchers queued here go back to the shared queue at recovery.
            let searched = self
                .shared
                .write_in_memory(
                    async |memory: &MemoryStore| memory.search(searcher).await,
                    |_, _| (),
                )
                .await;
            if let Some(result) = searched {
                return result;
            }
        }
    }

    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool> {
        let in_memory = self.shared.memory.cancel_search(user).await?;
        let in_redis = self
            .on_redis(async |redis| redis.cancel_search(user).await)
            .await?
            .unwrap_or(false);
        Ok(in_memory || in_redis)
    }

    async fn open_room(&self, room: &RoomRecord) -> StoreResult<()> {
        loop {
            if let Some(()) = self
                .on_redis(async |redis| redis.open_room(room).await)
                .await?
            {
                // A copy for an outage to come.
                return self.shared.memory.open_room(room).await;
            }
            let opened = self
                .shared
                .write_in_memory(
                    async |memory: &MemoryStore| memory.open_room(room).await,
                    |dirty, ()| {
                        dirty.opened_rooms.insert(room.room_id.clone());
                    },
                )
                .await;
            if let Some(result) = opened {
                return result;
            }
        }
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>> {
        match self.on_redis(async |redis| redis.room(id).await).await? {
            Some(Some(room)) => Ok(Some(room)),
            Some(None) => {
                self.forget_closed_room(self.shared.memory.room(id).await?)
                    .await?;
                Ok(None)
            }
            None => self.shared.memory.room(id).await,
        }
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>> {
        match self
            .on_redis(async |redis| redis.room_of(user).await)
            .await?
        {
            Some(Some(room)) => Ok(Some(room)),
            Some(None) => {
                self.forget_closed_room(self.shared.memory.room_of(user).await?)
                    .await?;
                Ok(None)
            }
            None => self.shared.memory.room_of(user).await,
        }
    }

    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        loop {
            if let Some(closed) = self
                .on_redis(async |redis| redis.close_room(room).await)
                .await?
            {
                let in_memory = self.shared.memory.close_room(room).await?;
                // Redis decides between nodes; a room of this node's own (opened during an
                // outage, not written back) is known to its memory only.
                let local = self.shared.local_rooms().remove(&room.room_id);
                return Ok(closed || (local && in_memory));
            }
            let closed = self
                .shared
                .write_in_memory(
                    async |memory: &MemoryStore| memory.close_room(room).await,
                    // Closed in Redis too at recovery, whether or not memory knew it.
                    |dirty, _| {
                        dirty
                            .closed_rooms
                            .insert(room.room_id.clone(), room.clone());
                    },
                )
                .await;
            if let Some(result) = closed {
                return result;
            }
        }
    }
}
