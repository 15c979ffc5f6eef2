//! [`RedisStore`]: sessions, indexes, rate limits and files in Redis, through a small `fred`
//! pool; [`RedisCluster`]: the bus between nodes and the user → node directory.
//!
//! Data model (names and slots in `keys.rs`, every key under the configured prefix, laid out
//! for a sharded Redis Cluster):
//! - sessions are spread over 32 partitions (`keys::PARTITIONS`) by user id; a session is a JSON
//!   string whose key TTL outlives its logical expiry by [`KEY_TTL_GRACE`]; liveness is judged
//!   from `lastSeen + session_ttl`, so an expired session is never served;
//! - each partition has sorted sets of expiries (for the sweep and `total_users`), of online
//!   ids (all score 0, so pages come from `ZRANGEBYLEX`) and of last activity
//!   (`active_users`), and sets of searching and in-chat ids, all changed together with the
//!   session by one Lua script (same slot); counts and pages add up the partitions;
//! - rate limits are counters in fixed windows (`INCR`, `PEXPIRE` on the first hit);
//! - a file is its bytes and its JSON metadata with the same `PX` TTL (one slot per file),
//!   plus a per-room index of its files' expiries and sizes with their sum (the room's slot),
//!   which bounds the room's live bytes across every node (`files.rs`).
//!
//! No path uses `KEYS` or scans every session. A lost connection is retried with exponential
//! backoff, and commands time out after [`COMMAND_TIMEOUT`], so a dead Redis gives errors fast.

mod chat;
mod cluster;
mod files;
mod keys;
mod moderation;
mod observer;
mod records;
mod scripts;
mod store;
mod target;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_domain::{GuestUser, SessionId, Timestamp, UserId};
use fred::prelude::{Builder, ClientLike, KeysInterface, Pool, ReconnectPolicy};
use fred::types::config::UnresponsiveConfig;
use fred::types::scripts::Script;
use fred::types::{CustomCommand, Value};

use crate::{StorageError, StoreConfig, StoreResult, StoredFile};
use futures_util::future::try_join_all;
use keys::{Keys, PARTITIONS};
use scripts::{DELETE_SESSION, EPOCH, WRITE_SESSION};

/// Connections in the pool.
const POOL_SIZE: usize = 3;
/// How long any command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long [`RedisStore::connect`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How much longer than the session a session key lives, so a sweep still finds the data.
pub const KEY_TTL_GRACE: Duration = Duration::from_secs(60);
/// How long creating a session behind Sentinel waits for a replica to confirm it.
pub const REPLICA_WAIT: Duration = Duration::from_millis(250);
/// How many expired sessions one sweep script removes at a time.
const SWEEP_BATCH: usize = 500;

pub use cluster::RedisCluster;
pub use observer::RedisObserver;
pub use target::{RedisTarget, RedisTopology};

/// A store backed by Redis (standalone, Sentinel or Cluster, as the URL says).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    config: StoreConfig,
    keys: Keys,
    topology: RedisTopology,
    /// Told how long each command took, and of bus messages lost (see [`RedisObserver`]).
    observer: Option<Arc<dyn RedisObserver>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisStore")
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Whether [`RedisStore::connect`] can use `target`, checked without connecting (a
    /// configuration check runs it before anything starts). The error never repeats the URL,
    /// which may hold a password.
    pub fn check_url(target: impl Into<RedisTarget>) -> StoreResult<()> {
        target.into().check()
    }

    /// Connects to `target` (a URL in one of the forms of [`RedisTarget`], or the target
    /// itself) and waits until the pool is connected.
    pub async fn connect(target: impl Into<RedisTarget>, config: StoreConfig) -> StoreResult<Self> {
        let store = Self::connect_lazily(target, config)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, store.pool.wait_for_connect()).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(error)) => {
                let _ = store.pool.quit().await;
                Err(crate::error::redis(error))
            }
            Err(_) => {
                let _ = store.pool.quit().await;
                Err(StorageError::Unavailable(format!(
                    "no connection within {CONNECT_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Builds the pool and starts connecting in the background without waiting: commands fail
    /// (after [`COMMAND_TIMEOUT`]) until Redis answers, and the pool keeps retrying. Fails only
    /// on a target that cannot be used. Must be called within a Tokio runtime.
    pub fn connect_lazily(
        target: impl Into<RedisTarget>,
        config: StoreConfig,
    ) -> StoreResult<Self> {
        let target = target.into();
        let mut redis_config = target.config()?;
        // Retry the first connection like any later one instead of giving up.
        redis_config.fail_fast = false;
        let pool = Builder::from_config(redis_config)
            .with_connection_config(|connection| {
                connection.connection_timeout = Duration::from_secs(2);
                connection.internal_command_timeout = Duration::from_secs(2);
                connection.max_command_attempts = 2;
                connection.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(5)),
                    interval: Duration::from_secs(1),
                };
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = COMMAND_TIMEOUT
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(POOL_SIZE)
            .map_err(crate::error::redis)?;
        // Why a connection fails (a TLS handshake, a refused password…) is said once per
        // change, never silently retried: the task ends with the pool.
        if let Some(client) = pool.clients().first() {
            let mut errors = fred::interfaces::EventInterface::error_rx(client);
            tokio::spawn(async move {
                let mut last = String::new();
                while let Ok((error, server)) = errors.recv().await {
                    let shown = error.to_string();
                    if shown != last {
                        let server = server.map(|server| server.to_string()).unwrap_or_default();
                        tracing::warn!(error = %shown, %server, "Redis connection failed; retrying");
                        last = shown;
                    }
                }
            });
        }
        // The connection tasks live as long as the pool; their handle is not needed.
        drop(pool.connect());
        let keys = Keys::new(&config.key_prefix);
        Ok(Self {
            pool,
            config,
            keys,
            topology: target.topology(),
            observer: None,
        })
    }

    /// This store, telling `observer` how long each Redis command takes (and a
    /// [`RedisCluster`] joined through it, the bus messages it loses). Set it at construction,
    /// before the store is shared.
    pub fn observed_by(mut self, observer: Arc<dyn RedisObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The observer given to [`RedisStore::observed_by`], if any.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn RedisObserver>> {
        self.observer.as_ref()
    }

    /// Awaits `call`, one Redis command called `command` (a script's name, or the command's
    /// own in lower case), telling the observer how long it took; maps its error.
    pub(crate) async fn timed<T>(
        &self,
        command: &'static str,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> StoreResult<T> {
        let Some(observer) = &self.observer else {
            return call.await.map_err(crate::error::redis);
        };
        let started = Instant::now();
        let result = call.await;
        observer.command(command, started.elapsed());
        result.map_err(crate::error::redis)
    }

    /// The kind of deployment this store talks to.
    pub fn topology(&self) -> RedisTopology {
        self.topology
    }

    /// Waits up to `timeout` until every connection of the pool is up; returns whether they are.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.pool.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// Sends `PING`; `Ok` when Redis answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let _: String = self.timed("ping", self.pool.next().ping(None)).await?;
        Ok(())
    }

    /// Whether a connection of the pool is up right now (no I/O).
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }

    /// Receivers that get a message whenever a connection of the pool (re)connects. After a
    /// reconnection Redis may have lost its data (a restart without persistence).
    pub fn reconnections(
        &self,
    ) -> Vec<tokio::sync::broadcast::Receiver<fred::types::config::Server>> {
        self.pool
            .clients()
            .iter()
            .map(fred::interfaces::EventInterface::reconnect_rx)
            .collect()
    }

    /// The data epoch: random markers stored once per partition (so on a cluster each shard
    /// holds some). When it differs from the value read earlier, Redis (or one of its shards)
    /// lost its data in between (e.g. a restart without persistence).
    pub async fn epoch(&self) -> StoreResult<String> {
        let fresh = Value::from(SessionId::generate().to_string());
        let markers: Vec<String> = try_join_all((0..PARTITIONS).map(|partition| {
            self.run::<String>(
                &EPOCH,
                vec![self.keys.epoch(partition)],
                vec![fresh.clone()],
            )
        }))
        .await?;
        Ok(markers.join(","))
    }

    /// Writes a session as it is, whether or not it exists (what `create` does). Its expiry
    /// follows from its `last_seen`.
    pub async fn put_session(&self, user: &GuestUser) -> StoreResult<()> {
        self.write_session(user, Condition::Always).await.map(drop)
    }

    /// Writes a session as [`RedisStore::put_session`] does; behind Sentinel, then waits
    /// (up to [`REPLICA_WAIT`]) until a replica has it, so a session the client was given
    /// survives the primary's loss (replication is asynchronous otherwise). A replica that
    /// does not answer in time is logged, and the session is kept all the same.
    pub async fn put_session_replicated(&self, user: &GuestUser) -> StoreResult<()> {
        if self.topology != RedisTopology::Sentinel {
            return self.put_session(user).await;
        }
        // WAIT counts the writes of its own connection: both go through one client.
        let client = self.pool.next();
        self.write_session_on(client, user, Condition::Always)
            .await?;
        let wait = CustomCommand::new_static("WAIT", None, false);
        let args = vec![Value::from(1), Value::from(millis(REPLICA_WAIT))];
        let replicas: i64 = self.timed("wait", client.custom(wait, args)).await?;
        if replicas < 1 {
            tracing::warn!(
                "no replica confirmed a new session within {REPLICA_WAIT:?}: it is lost if the primary fails now"
            );
        }
        Ok(())
    }

    /// Writes a session only if Redis holds none under its id; returns whether it wrote. Used to
    /// restore sessions Redis lost without overwriting newer data written by other nodes.
    pub async fn put_session_if_absent(&self, user: &GuestUser) -> StoreResult<bool> {
        self.write_session(user, Condition::Absent).await
    }

    /// Writes a session unless the stored one was active later (its last activity is after
    /// `user.last_seen`); where none is stored, writes only if `create` is set. Returns whether
    /// it wrote. The failover write-back uses it so that an older copy never rolls back (or
    /// brings back) what other nodes wrote.
    pub(crate) async fn put_session_if_newer(
        &self,
        user: &GuestUser,
        create: bool,
    ) -> StoreResult<bool> {
        let condition = if create {
            Condition::NewerOrAbsent
        } else {
            Condition::NewerAndPresent
        };
        self.write_session(user, condition).await
    }

    /// Deletes a session unless it was active after `last_seen`; returns whether a session was
    /// deleted.
    pub(crate) async fn delete_session_unless_newer(
        &self,
        id: &UserId,
        last_seen: Timestamp,
    ) -> StoreResult<bool> {
        let args = vec![Value::from(id.as_str()), Value::from(last_seen.as_millis())];
        let old: Option<String> = self
            .run(&DELETE_SESSION, self.keys.session_and_indexes(id), args)
            .await?;
        Ok(old.is_some())
    }

    /// Stores a file only if Redis holds none under its id; returns whether it wrote. The
    /// file is indexed under its room (its size counted in the room's budget) without the
    /// room bound: the failover write-back stores what this node accepted already.
    pub async fn put_file_if_absent(&self, file: &StoredFile) -> StoreResult<bool> {
        self.store_file(file, true, None).await
    }

    /// The pub/sub channel of `node` (for a subscriber of the bus).
    pub fn node_channel(&self, node: &str) -> String {
        self.keys.node_channel(node)
    }

    /// The hash tag of the node registry's keys.
    pub(crate) fn nodes_tag(&self) -> String {
        self.keys.nodes()
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Closes the pool's connections.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }

    pub(crate) async fn run<R: fred::types::FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> StoreResult<R> {
        let call = script.evalsha_with_reload(self.pool.next(), keys, args);
        self.timed(observer::script_name(script), call).await
    }

    /// Writes `user` with its index entries if `condition` holds; returns whether it wrote.
    async fn write_session(&self, user: &GuestUser, condition: Condition) -> StoreResult<bool> {
        self.write_session_on(self.pool.next(), user, condition)
            .await
    }

    /// [`RedisStore::write_session`] on one client of the pool.
    async fn write_session_on(
        &self,
        client: &fred::clients::Client,
        user: &GuestUser,
        condition: Condition,
    ) -> StoreResult<bool> {
        let now = Timestamp::now();
        let expires_at = user.last_seen.plus(self.config.session_ttl);
        let key_ttl = (expires_at.as_millis() - now.as_millis()).max(0) + millis(KEY_TTL_GRACE);
        let flag = |set: bool| Value::from(if set { "1" } else { "0" });
        let condition = match condition {
            Condition::Always => "0",
            Condition::Absent => "2",
            Condition::NewerOrAbsent => "3",
            Condition::NewerAndPresent => "4",
        };
        let args = vec![
            Value::from(user.id.as_str()),
            Value::from(records::encode_session(user)?),
            Value::from(condition),
            Value::from(expires_at.as_millis()),
            Value::from(key_ttl),
            flag(user.is_online),
            flag(user.is_searching),
            flag(user.in_chat),
            Value::from(user.last_seen.as_millis()),
        ];
        let keys = self.keys.session_and_indexes(&user.id);
        let call = WRITE_SESSION.evalsha_with_reload(client, keys, args);
        let written: i64 = self.timed("write_session", call).await?;
        Ok(written == 1)
    }

    async fn raw_session(&self, id: &UserId) -> StoreResult<Option<String>> {
        self.timed("get", self.pool.get(self.keys.session(id)))
            .await
    }

    fn is_live(&self, user: &GuestUser, now: Timestamp) -> bool {
        user.last_seen.plus(self.config.session_ttl) > now
    }
}

/// When [`RedisStore::write_session`] may write.
#[derive(Debug, Clone, Copy)]
enum Condition {
    /// Unconditionally.
    Always,
    /// Only if no session is stored under the id.
    Absent,
    /// Unless the stored session was active later than the one written.
    NewerOrAbsent,
    /// Only if a session is stored, and it was not active later than the one written.
    NewerAndPresent,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
