//! [`RedisCluster`]: the [`Cluster`] of nodes sharing one Redis. Each node subscribes to its
//! own pub/sub channel (`{<prefix>bus:<id>}:inbox`), publishing is `PUBLISH` to the other
//! node's channel (sharded: `SSUBSCRIBE`/`SPUBLISH` on a Redis Cluster, so a message goes to
//! the one shard owning the channel instead of to every shard), and the directory is one key per user holding its node's id, without expiry
//! (cleared when the socket leaves, or by the survivor that claims a dead node).
//!
//! The registry of nodes (keys under the `{<prefix>nodes}` hash tag, so its scripts stay on
//! one slot of a Redis Cluster):
//! - `{<prefix>nodes}:registry`, a hash node id → `{id, startedAt, lastSeen, sockets}` (unix
//!   ms), written by each heartbeat with Redis' own clock (`TIME`), so the nodes' clocks do
//!   not matter; a node that stops gracefully sets its `lastSeen` to 0;
//! - `{<prefix>nodes}:held:<id>`, a set of the users node `id` answers for.
//!
//! Claiming a dead node is one script: if its record is still older than the timeout it is
//! deleted and its held set returned (and deleted), so exactly one survivor gets it.
//!
//! Everything goes through the [`FailoverStore`]: while it serves from memory (Redis is away)
//! the directory knows nobody, publishing is a no-op and heartbeats say
//! [`Heartbeat::Alone`], as on a single node.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{Timestamp, UserId};
use fred::prelude::{KeysInterface, SetsInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use serde::Deserialize;

use crate::bus::{BusOptions, Subscription};
use crate::cluster::{BusHealth, Census, Cluster, Heartbeat, Inbox, NodeRecord};
use crate::redis::RedisTarget;
use crate::{FailoverStore, RedisStore, StorageError, StoreResult};

/// Redis' clock in unix ms, as a Lua local `now`.
const NOW: &str = "local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
";

/// Writes the node's record. KEYS: registry. ARGV: id, started at (ms), sockets. Returns 1
/// when the node had no live record (new, deregistered, or claimed by a survivor).
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{NOW}{}",
        r#"
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local fresh = 1
if previous and cjson.decode(previous).lastSeen > 0 then fresh = 0 end
local record = {id = ARGV[1], startedAt = tonumber(ARGV[2]), lastSeen = now, sockets = tonumber(ARGV[3])}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return fresh
"#
    ))
});

/// Reads the registry. KEYS: registry. Returns Redis' clock (ms), then every record.
static CENSUS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{NOW}{}",
        r#"
local answer = {string.format('%d', now)}
for _, record in ipairs(redis.call('HVALS', KEYS[1])) do table.insert(answer, record) end
return answer
"#
    ))
});

/// Claims a dead node. KEYS: registry, the node's held set. ARGV: id, timeout (ms). Returns
/// nothing when the node is live or claimed already, else `claimed` and its held users.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{NOW}{}",
        r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {} end
if now - cjson.decode(raw).lastSeen < tonumber(ARGV[2]) then return {} end
redis.call('HDEL', KEYS[1], ARGV[1])
local users = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
table.insert(users, 1, 'claimed')
return users
"#
    ))
});

/// Marks the node gone. KEYS: registry. ARGV: id.
static DEREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local record = cjson.decode(raw)
record.lastSeen = 0
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
return 1
"#,
    )
});

/// Deletes a directory entry only if it still names the node. KEYS: entry. ARGV: node.
/// Returns 1 when it deleted.
static CLEAR_ENTRY: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// A node's record as the registry holds it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRecord {
    id: String,
    started_at: i64,
    last_seen: i64,
    sockets: u64,
}

/// The registry's key names under the deployment's prefix.
struct RegistryKeys {
    base: String,
}

impl RegistryKeys {
    /// The registry's keys under the deployment's `{<prefix>nodes}` tag.
    fn new(tag: &str) -> Self {
        Self {
            base: format!("{tag}:"),
        }
    }

    fn registry(&self) -> String {
        format!("{}registry", self.base)
    }

    fn held(&self, node: &str) -> String {
        format!("{}held:{node}", self.base)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// One node of a deployment whose nodes share a Redis.
///
/// Its subscription runs until [`RedisCluster::shutdown`] (or until it is dropped, after which
/// its tasks unsubscribe and close their connection on their own).
pub struct RedisCluster {
    store: Arc<FailoverStore>,
    node_id: String,
    subscription: Subscription,
    keys: RegistryKeys,
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
        target: impl Into<RedisTarget>,
        store: Arc<FailoverStore>,
        node_id: String,
    ) -> StoreResult<(Self, Inbox)> {
        Self::join_with(target, store, node_id, BusOptions::default()).await
    }

    /// [`RedisCluster::join`] with other buffer sizes.
    pub async fn join_with(
        target: impl Into<RedisTarget>,
        store: Arc<FailoverStore>,
        node_id: String,
        options: BusOptions,
    ) -> StoreResult<(Self, Inbox)> {
        let target = target.into();
        let channel = store.redis().node_channel(&node_id);
        let observer = store.redis().observer().cloned();
        let (subscription, inbox) =
            Subscription::start(&target, channel, options, observer).await?;
        let keys = RegistryKeys::new(&store.redis().nodes_tag());
        let cluster = Self {
            store,
            node_id,
            subscription,
            keys,
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

impl RedisCluster {
    /// Records `user` here: held first (so a crash in between leaves no entry unclaimed),
    /// then the entry, then the previous node no longer holds them.
    async fn record_user(&self, redis: &RedisStore, user: &UserId) -> StoreResult<()> {
        let own = self.node_id.as_str();
        let held = redis.pool.sadd(self.keys.held(own), user.as_str());
        let _: i64 = redis.timed("sadd", held).await?;
        let entry = redis
            .pool
            .set(redis.keys.user_node(user), own, None, None, true);
        let previous: Option<String> = redis.timed("set", entry).await?;
        if let Some(previous) = previous.filter(|previous| previous != own) {
            let unheld = redis.pool.srem(self.keys.held(&previous), user.as_str());
            let _: i64 = redis.timed("srem", unheld).await?;
        }
        Ok(())
    }

    /// Deletes `user`'s entry if it names `node`; whether it did.
    async fn clear_entry(redis: &RedisStore, user: &UserId, node: &str) -> StoreResult<bool> {
        let deleted: i64 = redis
            .run(
                &CLEAR_ENTRY,
                vec![redis.keys.user_node(user)],
                vec![Value::from(node)],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn unhold(&self, redis: &RedisStore, user: &UserId) -> StoreResult<()> {
        let unheld = redis
            .pool
            .srem(self.keys.held(&self.node_id), user.as_str());
        let _: i64 = redis.timed("srem", unheld).await?;
        Ok(())
    }
}

fn census_from(answer: &[String], timeout: Duration) -> StoreResult<Census> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("node registry: {what}"));
    let (now, records) = answer.split_first().ok_or_else(|| corrupt("no clock"))?;
    let now: i64 = now.parse().map_err(|_| corrupt("clock"))?;
    let mut census = Census::default();
    for raw in records {
        let record: StoredRecord =
            serde_json::from_str(raw).map_err(|error| corrupt(&error.to_string()))?;
        if record.last_seen > 0 && now - record.last_seen < millis(timeout) {
            census.live.push(NodeRecord {
                id: record.id,
                started_at: Timestamp::from_millis(record.started_at),
                last_seen: Timestamp::from_millis(record.last_seen),
                sockets: record.sockets,
            });
        } else {
            census.dead.push(record.id);
        }
    }
    census
        .live
        .sort_by(|first, second| first.id.cmp(&second.id));
    census.dead.sort();
    Ok(census)
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
            .on_redis(async |redis| self.record_user(redis, user).await)
            .await?
            .ok_or_else(crate::cluster::not_shared)
    }

    async fn clear_user_node(&self, user: &UserId) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| {
                Self::clear_entry(redis, user, &self.node_id).await?;
                self.unhold(redis, user).await
            })
            .await
            .map(drop)
    }

    async fn clear_user_node_held(&self, user: &UserId) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| Self::clear_entry(redis, user, &self.node_id).await)
            .await
            .map(drop)
    }

    async fn drop_held_user(&self, user: &UserId) -> StoreResult<()> {
        self.store
            .on_redis(async |redis| self.unhold(redis, user).await)
            .await
            .map(drop)
    }

    async fn user_node(&self, user: &UserId) -> StoreResult<Option<String>> {
        Ok(self
            .store
            .on_redis(async |redis| {
                let entry = redis
                    .pool
                    .get::<Option<String>, _>(redis.keys.user_node(user));
                redis.timed("get", entry).await
            })
            .await?
            .flatten())
    }

    fn bus_health(&self) -> BusHealth {
        BusHealth {
            up: self.subscription.is_up(),
        }
    }

    async fn heartbeat(&self, started_at: Timestamp, sockets: u64) -> StoreResult<Heartbeat> {
        let args = vec![
            Value::from(self.node_id.as_str()),
            Value::from(started_at.as_millis()),
            Value::from(i64::try_from(sockets).unwrap_or(i64::MAX)),
        ];
        let fresh = self
            .store
            .on_redis(async |redis| {
                redis
                    .run::<i64>(&HEARTBEAT, vec![self.keys.registry()], args)
                    .await
            })
            .await?;
        Ok(match fresh {
            None => Heartbeat::Alone,
            Some(1) => Heartbeat::Registered,
            Some(_) => Heartbeat::Refreshed,
        })
    }

    async fn census(&self, timeout: Duration) -> StoreResult<Option<Census>> {
        let answer = self
            .store
            .on_redis(async |redis| {
                redis
                    .run::<Vec<String>>(&CENSUS, vec![self.keys.registry()], vec![])
                    .await
            })
            .await?;
        answer
            .map(|answer| census_from(&answer, timeout))
            .transpose()
    }

    async fn claim_dead_node(
        &self,
        node: &str,
        timeout: Duration,
    ) -> StoreResult<Option<Vec<UserId>>> {
        if node == self.node_id {
            return Ok(None);
        }
        let keys = vec![self.keys.registry(), self.keys.held(node)];
        let args = vec![Value::from(node), Value::from(millis(timeout))];
        let answer = self
            .store
            .on_redis(async |redis| redis.run::<Vec<String>>(&CLAIM, keys, args).await)
            .await?
            .unwrap_or_default();
        let Some((_claimed, users)) = answer.split_first() else {
            return Ok(None);
        };
        Ok(Some(
            users
                .iter()
                .filter_map(|user| UserId::parse(user))
                .collect(),
        ))
    }

    async fn take_user_from(&self, user: &UserId, node: &str) -> StoreResult<bool> {
        Ok(self
            .store
            .on_redis(async |redis| Self::clear_entry(redis, user, node).await)
            .await?
            .unwrap_or(false))
    }

    async fn deregister(&self) -> StoreResult<()> {
        let args = vec![Value::from(self.node_id.as_str())];
        self.store
            .on_redis(async |redis| {
                redis
                    .run::<i64>(&DEREGISTER, vec![self.keys.registry()], args)
                    .await
            })
            .await
            .map(drop)
    }
}

/// The name of one of the registry's and directory's scripts, for the [`RedisObserver`](super::RedisObserver).
pub(super) fn script_name(script: &Script) -> Option<&'static str> {
    super::observer::find(
        script,
        &[
            (&*HEARTBEAT, "heartbeat"),
            (&*CENSUS, "census"),
            (&*CLAIM, "claim_node"),
            (&*DEREGISTER, "deregister"),
            (&*CLEAR_ENTRY, "clear_entry"),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use fred::prelude::KeysInterface;

    use super::*;
    use crate::StoreConfig;

    const TIMEOUT: Duration = Duration::from_millis(800);

    async fn node(url: &str, config: &StoreConfig, id: &str) -> (RedisCluster, Inbox) {
        let store = FailoverStore::connect(url, config.clone()).await.unwrap();
        RedisCluster::join(url, Arc::new(store), id.to_owned())
            .await
            .unwrap()
    }

    fn sorted(mut users: Vec<UserId>) -> Vec<UserId> {
        users.sort_by(|first, second| first.as_str().cmp(second.as_str()));
        users
    }

    #[tokio::test]
    async fn the_registry_finds_dead_nodes_and_one_survivor_claims_each() {
        let Some(server) = chat_testkit::require_redis() else {
            return;
        };
        let url = server.url();
        let config = StoreConfig {
            key_prefix: "cluster-test:".into(),
            ..StoreConfig::default()
        };
        let (a, _a_inbox) = node(&url, &config, "a").await;
        let (b, _b_inbox) = node(&url, &config, "b").await;
        let (c, _c_inbox) = node(&url, &config, "c").await;
        let started = Timestamp::now();
        assert_eq!(
            a.heartbeat(started, 0).await.unwrap(),
            Heartbeat::Registered
        );
        assert_eq!(a.heartbeat(started, 3).await.unwrap(), Heartbeat::Refreshed);
        b.heartbeat(started, 2).await.unwrap();
        c.heartbeat(started, 0).await.unwrap();

        // Directory entries do not expire; held sets follow the users.
        let (held, away, moved) = (UserId::generate(), UserId::generate(), UserId::generate());
        for user in [&held, &away, &moved] {
            b.set_user_node(user).await.unwrap();
        }
        let entry_ttl: i64 = b
            .store
            .redis()
            .pool
            .ttl(b.store.redis().keys.user_node(&held))
            .await
            .unwrap();
        assert_eq!(entry_ttl, -1, "a directory entry has no expiry");
        b.clear_user_node_held(&away).await.unwrap();
        c.set_user_node(&moved).await.unwrap();
        assert_eq!(b.user_node(&away).await.unwrap(), None);
        assert_eq!(b.user_node(&moved).await.unwrap().as_deref(), Some("c"));

        let census = c.census(TIMEOUT).await.unwrap().unwrap();
        let live: Vec<_> = census.live.iter().map(|node| node.id.as_str()).collect();
        assert_eq!((live, census.dead.len()), (vec!["a", "b", "c"], 0));
        assert_eq!(census.live[0].sockets, 3);
        assert_eq!(census.live[0].started_at.as_millis(), started.as_millis());
        assert_eq!(a.claim_dead_node("b", TIMEOUT).await.unwrap(), None);

        // b falls silent.
        tokio::time::sleep(TIMEOUT + Duration::from_millis(200)).await;
        a.heartbeat(started, 3).await.unwrap();
        c.heartbeat(started, 0).await.unwrap();
        let census = a.census(TIMEOUT).await.unwrap().unwrap();
        assert_eq!(census.dead, vec!["b".to_owned()]);
        let (first, second) = tokio::join!(
            a.claim_dead_node("b", TIMEOUT),
            c.claim_dead_node("b", TIMEOUT)
        );
        let claims: Vec<_> = [first.unwrap(), second.unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(claims.len(), 1, "exactly one survivor claims b");
        assert_eq!(
            sorted(claims[0].clone()),
            sorted(vec![held.clone(), away.clone()])
        );
        assert!(a.census(TIMEOUT).await.unwrap().unwrap().dead.is_empty());
        assert!(!a.take_user_from(&moved, "b").await.unwrap());
        assert!(a.take_user_from(&held, "b").await.unwrap());
        assert_eq!(a.user_node(&held).await.unwrap(), None);

        // A node that stops says so: dead at once; beating again registers it anew.
        c.deregister().await.unwrap();
        assert_eq!(
            a.census(TIMEOUT).await.unwrap().unwrap().dead,
            vec!["c".to_owned()]
        );
        assert_eq!(
            c.heartbeat(started, 0).await.unwrap(),
            Heartbeat::Registered
        );
        for cluster in [&a, &b, &c] {
            cluster.shutdown().await;
        }
    }
}
