//! [`RedisCluster`]: the [`Cluster`] of nodes sharing one Redis. Each node subscribes to its
//! own pub/sub channel (`{prefix}node:{id}`), publishing is `PUBLISH` to the other node's
//! channel, and the directory is one key per user holding its node's id for
//! [`USER_NODE_TTL`](super::USER_NODE_TTL) (connected sockets refresh it).
//!
//! The directory and publishing go through the [`FailoverStore`]: while it serves from memory
//! (Redis is away) the directory knows nobody and publishing is a no-op, as on a single node.

use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::UserId;

use crate::bus::{BusOptions, Subscription};
use crate::cluster::{BusHealth, Cluster, Inbox};
use crate::{FailoverStore, StoreResult};

/// One node of a deployment whose nodes share a Redis.
///
/// Its subscription runs until [`RedisCluster::shutdown`] (or until it is dropped, after which
/// its tasks unsubscribe and close their connection on their own).
pub struct RedisCluster {
    store: Arc<FailoverStore>,
    node_id: String,
    subscription: Subscription,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisCluster")
            .field("node_id", &self.node_id)
            .field("bus_health", &self.bus_health())
            .field("bus_lagged", &self.bus_lagged())
            .finish_non_exhaustive()
    }
}

impl RedisCluster {
    /// Joins node `node_id` to the deployment on the Redis at `url` (the URL `store` was
    /// connected with): subscribes to the node's channel and returns its inbox. Waits a moment
    /// for the subscription; if Redis does not answer it keeps trying in the background
    /// ([`Cluster::bus_health`] tells). Fails only on a URL it cannot read.
    pub async fn join(
        url: &str,
        store: Arc<FailoverStore>,
        node_id: String,
    ) -> StoreResult<(Self, Inbox)> {
        Self::join_with(url, store, node_id, BusOptions::default()).await
    }

    /// [`RedisCluster::join`] with other buffer sizes.
    pub async fn join_with(
        url: &str,
        store: Arc<FailoverStore>,
        node_id: String,
        options: BusOptions,
    ) -> StoreResult<(Self, Inbox)> {
        let channel = store.redis().node_channel(&node_id);
        let (subscription, inbox) = Subscription::start(url, channel, options).await?;
        let cluster = Self {
            store,
            node_id,
            subscription,
        };
        Ok((cluster, inbox))
    }

    /// How many messages published to this node were lost so far because it read its inbox
    /// too slowly (each loss is also logged at `warn`).
    pub fn bus_lagged(&self) -> u64 {
        self.subscription.lagged()
    }

    /// The store the directory and publishing go through.
    pub fn store(&self) -> &Arc<FailoverStore> {
        &self.store
    }

    /// Unsubscribes, closes the subscription's connection and waits for its tasks to end. The
    /// inbox closes once what was already queued has been read.
    pub async fn shutdown(&self) {
        self.subscription.shutdown().await;
    }
}

#[async_trait]
impl Cluster for RedisCluster {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn publish(&self, node: &str, payload: String) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| redis.publish_to(node, payload).await)
            .await
            .map(drop)
    }

    async fn set_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| redis.set_node_of(user, &self.node_id).await)
            .await
            .map(drop)
    }

    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| redis.clear_node_of(user, &self.node_id).await)
            .await
            .map(drop)
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        Ok(self
            .store
            .on_redis(async |redis| redis.node_of(user).await)
            .await?
            .flatten())
    }

    fn bus_health(&self) -> BusHealth {
        BusHealth {
            up: self.subscription.is_up(),
        }
    }
}
