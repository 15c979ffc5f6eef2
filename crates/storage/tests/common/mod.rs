//! Shared fixtures of the storage tests: stores under fresh key prefixes, a shared private
//! `redis-server`, users seen some time ago, and a deadline loop for conditions that take time.

#![allow(dead_code)]

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_domain::{GuestUser, Profile, Timestamp};
#[cfg(feature = "redis")]
use chat_storage::{FailoverStore, RedisStore, SessionStore};
use chat_storage::{MemoryStore, StoreConfig};
use chat_testkit::{RedisServer, require_redis};

/// The session TTL of every test store: longer than [`chat_domain::Stats::ACTIVE_WINDOW`], so a
/// live session can be inactive. Tests make sessions expire soon by backdating `last_seen`.
pub const TTL: Duration = Duration::from_secs(600);

/// How long [`eventually`] waits before failing.
const DEADLINE: Duration = Duration::from_secs(10);

/// Settings with a key prefix no other test uses.
pub fn config() -> StoreConfig {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let key_prefix = format!(
        "test:{}:{}:{serial}:",
        std::process::id(),
        Timestamp::now().as_millis()
    );
    StoreConfig {
        session_ttl: TTL,
        key_prefix,
    }
}

/// A fresh user whose last activity was `ago` before now.
pub fn user_seen(ago: Duration) -> GuestUser {
    GuestUser::new(Profile::default(), Timestamp::now().minus(ago))
}

/// Polls `condition` until it holds, failing the test after a deadline.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One private server for every test of this binary; the testkit's guard kills it when the
/// binary exits. `None` when `redis-server` is not installed (outside CI).
pub fn shared_redis() -> Option<&'static RedisServer> {
    static SERVER: OnceLock<Option<RedisServer>> = OnceLock::new();
    SERVER.get_or_init(require_redis).as_ref()
}

/// A memory store (always available).
pub async fn memory_store() -> Option<MemoryStore> {
    Some(MemoryStore::new(config()))
}

#[cfg(feature = "redis")]
/// A Redis store on the shared server under a fresh prefix, or `None` without `redis-server`.
pub async fn redis_store() -> Option<RedisStore> {
    let server = shared_redis()?;
    Some(
        RedisStore::connect(&server.url(), config())
            .await
            .expect("connect to the test redis-server"),
    )
}

#[cfg(feature = "redis")]
/// A failover store on the shared server under a fresh prefix, or `None` without `redis-server`.
pub async fn failover_store() -> Option<FailoverStore> {
    let server = shared_redis()?;
    let store = FailoverStore::connect(&server.url(), config())
        .await
        .expect("a well-formed URL");
    assert_eq!(store.health().mode, chat_storage::StorageMode::Redis);
    Some(store)
}
