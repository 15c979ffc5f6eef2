//! [`RedisStore`]: sessions, indexes, rate limits and files in Redis, through a small `fred`
//! pool.
//!
//! Data model (names in `keys.rs`, every key under the configured prefix):
//! - a session is a JSON string whose key TTL outlives its logical expiry by [`KEY_TTL_GRACE`];
//!   liveness is judged from `lastSeen + session_ttl`, so an expired session is never served;
//! - sorted sets of expiries (for the sweep and `total_users`), of online ids (all score 0, so
//!   pages come from `ZRANGEBYLEX`) and of last activity (`active_users`); sets of searching
//!   and in-chat ids; all changed together with the session by one Lua script;
//! - rate limits are counters in fixed windows (`INCR`, `PEXPIRE` on the first hit);
//! - a file is its bytes and its JSON metadata with the same `PX` TTL, plus a per-room set of ids.
//!
//! No path uses `KEYS` or scans every session. A lost connection is retried with exponential
//! backoff, and commands time out after [`COMMAND_TIMEOUT`], so a dead Redis gives errors fast.

mod keys;
mod records;
mod scripts;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_domain::{FileId, GuestUser, RoomId, Stats, Timestamp, UserId};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, Pool, ReconnectPolicy};
use fred::types::Value;
use fred::types::config::UnresponsiveConfig;
use fred::types::scripts::Script;

use crate::{
    FileMeta, Health, OnlinePage, RateDecision, SessionPatch, SessionStore, StorageError,
    StorageMode, StoreConfig, StoreResult, StoredFile,
};
use keys::Keys;
use scripts::{
    DELETE_ROOM_FILES, DELETE_SESSION, ONLINE_PAGE, PUT_FILE, RATE_HIT, STATS, SWEEP, WRITE_SESSION,
};

/// Connections in the pool.
const POOL_SIZE: usize = 3;
/// How long any command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long [`RedisStore::connect`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How much longer than the session a session key lives, so a sweep still finds the data.
pub const KEY_TTL_GRACE: Duration = Duration::from_secs(60);
/// How many expired sessions one sweep script removes at a time.
const SWEEP_BATCH: usize = 500;
/// How often an update re-reads a session that changed under it before giving up.
const UPDATE_ATTEMPTS: usize = 8;

/// A store backed by Redis (standalone, Sentinel or Cluster, as the URL says).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    config: StoreConfig,
    keys: Keys,
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
    /// Connects to `url` (`redis://`, `rediss://`, `redis-cluster://`, `redis-sentinel://`, as
    /// `fred`'s `Config::from_url` reads them) and waits until the pool is connected.
    pub async fn connect(url: &str, config: StoreConfig) -> StoreResult<Self> {
        let store = Self::connect_lazily(url, config)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, store.pool.wait_for_connect()).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(error)) => {
                let _ = store.pool.quit().await;
                Err(error.into())
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
    /// on a malformed URL. Must be called within a Tokio runtime.
    pub fn connect_lazily(url: &str, config: StoreConfig) -> StoreResult<Self> {
        let mut redis_config = Config::from_url(url)?;
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
            .build_pool(POOL_SIZE)?;
        // The connection tasks live as long as the pool; their handle is not needed.
        drop(pool.connect());
        let keys = Keys::new(&config.key_prefix);
        Ok(Self { pool, config, keys })
    }

    /// Sends `PING`; `Ok` when Redis answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let _: String = self.pool.next().ping(None).await?;
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

    /// Writes a session as it is, whether or not it exists (used by `create` and to restore
    /// sessions after an outage). Its expiry follows from its `last_seen`.
    pub async fn put_session(&self, user: &GuestUser) -> StoreResult<()> {
        self.write_session(user, None).await.map(drop)
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Closes the pool's connections.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }

    async fn run<R: fred::types::FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> StoreResult<R> {
        Ok(script
            .evalsha_with_reload(self.pool.next(), keys, args)
            .await?)
    }

    /// Writes `user`; with `expected`, only if the stored JSON is still exactly that.
    async fn write_session(&self, user: &GuestUser, expected: Option<&str>) -> StoreResult<bool> {
        let now = Timestamp::now();
        let expires_at = user.last_seen.plus(self.config.session_ttl);
        let key_ttl = (expires_at.as_millis() - now.as_millis()).max(0) + millis(KEY_TTL_GRACE);
        let flag = |set: bool| Value::from(if set { "1" } else { "0" });
        let args = vec![
            Value::from(user.id.as_str()),
            Value::from(records::encode_session(user)?),
            flag(expected.is_some()),
            Value::from(expected.unwrap_or_default()),
            Value::from(expires_at.as_millis()),
            Value::from(key_ttl),
            flag(user.is_online),
            flag(user.is_searching),
            flag(user.in_chat),
            Value::from(user.last_seen.as_millis()),
        ];
        let written: i64 = self
            .run(
                &WRITE_SESSION,
                self.keys.session_and_indexes(&user.id),
                args,
            )
            .await?;
        Ok(written == 1)
    }

    async fn raw_session(&self, id: &UserId) -> StoreResult<Option<String>> {
        Ok(self.pool.get(self.keys.session(id)).await?)
    }

    fn is_live(&self, user: &GuestUser, now: Timestamp) -> bool {
        user.last_seen.plus(self.config.session_ttl) > now
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn health(&self) -> Health {
        Health {
            mode: StorageMode::Redis,
            redis_up: self.is_connected(),
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.put_session(user).await
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let Some(json) = self.raw_session(id).await? else {
            return Ok(None);
        };
        let user = records::decode_session(&json)?;
        Ok(self.is_live(&user, Timestamp::now()).then_some(user))
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        // Optimistic: read, patch here, write only if nobody wrote in between; else retry.
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(json) = self.raw_session(id).await? else {
                return Ok(None);
            };
            let mut user = records::decode_session(&json)?;
            if !self.is_live(&user, Timestamp::now()) {
                return Ok(None);
            }
            patch.apply(&mut user);
            if self.write_session(&user, Some(&json)).await? {
                return Ok(Some(user));
            }
        }
        Err(StorageError::Contention(format!("session {id}")))
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let args = vec![Value::from(id.as_str())];
        let old: Option<String> = self
            .run(&DELETE_SESSION, self.keys.session_and_indexes(id), args)
            .await?;
        let Some(json) = old else {
            return Ok(None);
        };
        let user = records::decode_session(&json)?;
        Ok(self.is_live(&user, Timestamp::now()).then_some(user))
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        let mut expired = Vec::new();
        loop {
            let args = vec![
                Value::from(now.as_millis()),
                Value::from(SWEEP_BATCH as i64),
                Value::from(self.keys.session_prefix()),
            ];
            let batch: Vec<String> = self.run(&SWEEP, self.keys.indexes(), args).await?;
            let full = batch.len() == SWEEP_BATCH;
            expired.extend(batch.iter().filter_map(|id| UserId::parse(id)));
            if !full {
                return Ok(expired);
            }
        }
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        let active_since = now.minus(Stats::ACTIVE_WINDOW);
        let args = vec![
            Value::from(now.as_millis()),
            Value::from(active_since.as_millis()),
        ];
        let counts: Vec<u64> = self.run(&STATS, self.keys.indexes(), args).await?;
        let &[
            total_users,
            online_users,
            active_users,
            available_users,
            users_in_chat,
        ] = counts.as_slice()
        else {
            return Err(StorageError::Corrupt(format!(
                "stats script returned {} values",
                counts.len()
            )));
        };
        Ok(Stats {
            total_users,
            online_users,
            active_users,
            available_users,
            connected_users: users_in_chat / 2,
            users_in_chat,
        })
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        let limit = limit.max(1);
        let start = cursor.map_or_else(|| "-".to_owned(), |cursor| format!("({cursor}"));
        // One more than asked tells whether a next page exists.
        let args = vec![
            Value::from(start),
            Value::from(limit as i64 + 1),
            Value::from(self.keys.session_prefix()),
        ];
        let flat: Vec<Option<String>> = self
            .run(&ONLINE_PAGE, vec![self.keys.online()], args)
            .await?;
        let now = Timestamp::now();
        let scanned: Vec<(String, Option<String>)> = flat
            .chunks(2)
            .map(|pair| {
                (
                    pair[0].clone().unwrap_or_default(),
                    pair.get(1).cloned().flatten(),
                )
            })
            .collect();
        let mut users = Vec::with_capacity(limit);
        for (_, json) in scanned.iter().take(limit) {
            // A session that expired but was not swept yet is skipped, not an error.
            if let Some(json) = json {
                let user = records::decode_session(json)?;
                if self.is_live(&user, now) && user.is_online {
                    users.push(user.public());
                }
            }
        }
        let next_cursor = (scanned.len() > limit).then(|| scanned[limit - 1].0.clone());
        Ok(OnlinePage { users, next_cursor })
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        let window_ms = millis(window).max(1);
        let reply: Vec<i64> = self
            .run(
                &RATE_HIT,
                vec![self.keys.rate(key)],
                vec![Value::from(window_ms)],
            )
            .await?;
        let &[hits, left] = reply.as_slice() else {
            return Err(StorageError::Corrupt(format!(
                "rate script returned {} values",
                reply.len()
            )));
        };
        let hits = u32::try_from(hits).unwrap_or(u32::MAX);
        Ok(RateDecision {
            allowed: hits <= limit,
            remaining: limit.saturating_sub(hits),
            retry_after: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
        })
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        let meta = &file.meta;
        let ttl = (meta.expires_at.as_millis() - Timestamp::now().as_millis()).max(1);
        let keys = vec![
            self.keys.file_bytes(&meta.file_id),
            self.keys.file_meta(&meta.file_id),
            self.keys.room_files(&meta.room_id),
        ];
        let args = vec![
            Value::Bytes(file.bytes.clone()),
            Value::from(records::encode_meta(meta)?),
            Value::from(ttl),
            Value::from(meta.file_id.as_str()),
        ];
        let _: i64 = self.run(&PUT_FILE, keys, args).await?;
        Ok(())
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        let json: Option<Bytes> = self.pool.get(self.keys.file_meta(id)).await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let meta = records::decode_meta(&json)?;
        Ok((meta.expires_at > Timestamp::now()).then_some(meta))
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        let values: Vec<Option<Bytes>> = self
            .pool
            .mget(vec![self.keys.file_meta(id), self.keys.file_bytes(id)])
            .await?;
        let [Some(json), Some(bytes)] =
            <[Option<Bytes>; 2]>::try_from(values).unwrap_or([None, None])
        else {
            return Ok(None);
        };
        let meta = records::decode_meta(&json)?;
        Ok((meta.expires_at > Timestamp::now()).then_some(StoredFile { meta, bytes }))
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        let args = vec![Value::from(self.keys.file_prefix())];
        Ok(self
            .run(&DELETE_ROOM_FILES, vec![self.keys.room_files(room)], args)
            .await?)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
