//! The chat's shared state through the failover store: Redis while it answers, this node's
//! memory during an outage. Room records are mirrored in memory, and a room unknown to Redis
//! is looked up in memory too (rooms opened during an outage stay served after it).

use async_trait::async_trait;
use chat_domain::{RoomId, Searcher, UserId};

use crate::StoreResult;
use crate::chat::{ChatStore, RoomRecord};
use crate::failover::FailoverStore;

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
}

#[async_trait]
impl ChatStore for FailoverStore {
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>> {
        match self
            .on_redis(async |redis| redis.search(searcher).await)
            .await?
        {
            Some(partner) => Ok(partner),
            None => self.shared.memory.search(searcher).await,
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
        self.shared.memory.open_room(room).await?;
        self.on_redis(async |redis| redis.open_room(room).await)
            .await
            .map(drop)
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>> {
        match self.on_redis(async |redis| redis.room(id).await).await? {
            Some(Some(room)) => Ok(Some(room)),
            _ => self.shared.memory.room(id).await,
        }
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>> {
        match self
            .on_redis(async |redis| redis.room_of(user).await)
            .await?
        {
            Some(Some(room)) => Ok(Some(room)),
            _ => self.shared.memory.room_of(user).await,
        }
    }

    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        let in_memory = self.shared.memory.close_room(room).await?;
        match self
            .on_redis(async |redis| redis.close_room(room).await)
            .await?
        {
            // Redis decides between nodes; a room opened during an outage is only in memory.
            Some(closed) => Ok(closed || in_memory),
            None => Ok(in_memory),
        }
    }

    async fn set_user_node(&self, user: &UserId, node: &str) -> StoreResult<()> {
        self.on_redis(async |redis| redis.set_user_node(user, node).await)
            .await
            .map(drop)
    }

    async fn clear_user_node(&self, user: &UserId, node: &str) -> StoreResult<()> {
        self.on_redis(async |redis| redis.clear_user_node(user, node).await)
            .await
            .map(drop)
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        Ok(self
            .on_redis(async |redis| redis.user_node(user).await)
            .await?
            .flatten())
    }

    async fn publish(&self, node: &str, payload: String) -> StoreResult<()> {
        self.on_redis(async |redis| redis.publish(node, payload).await)
            .await
            .map(drop)
    }
}
