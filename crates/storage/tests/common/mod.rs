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
use chat_storage::{FileLimits, MemoryStore, StoreConfig};
use chat_testkit::{
    RedisClusterSet, RedisServer, TlsRedis, require_redis, require_redis_cluster, require_tls_redis,
};

/// The session TTL of every test store: longer than [`chat_domain::Stats::ACTIVE_WINDOW`], so a
/// live session can be inactive. Tests make sessions expire soon by backdating `last_seen`.
pub const TTL: Duration = Duration::from_secs(600);

/// Small file bounds, so the contract's checks reach them with a few small files; every
/// other test's files are far smaller.
pub const FILE_LIMITS: FileLimits = FileLimits {
    max_room_bytes: 1000,
    max_memory_bytes: 3000,
};

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
        files: FILE_LIMITS,
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

/// The test binary's three-master Redis Cluster, started on first use; `None` without the
/// tools (a failure under `CI=true`).
pub fn shared_cluster() -> Option<&'static RedisClusterSet> {
    static CLUSTER: OnceLock<Option<RedisClusterSet>> = OnceLock::new();
    CLUSTER.get_or_init(|| require_redis_cluster(3)).as_ref()
}

/// The test binary's TLS-only server, started on first use; `None` without the tools (a
/// failure under `CI=true`).
pub fn shared_tls() -> Option<&'static TlsRedis> {
    static SERVER: OnceLock<Option<TlsRedis>> = OnceLock::new();
    SERVER.get_or_init(require_tls_redis).as_ref()
}

#[cfg(feature = "redis")]
/// A Redis store on the shared Redis Cluster under a fresh prefix.
pub async fn cluster_store() -> Option<RedisStore> {
    let cluster = shared_cluster()?;
    Some(
        RedisStore::connect(&cluster.url(), config())
            .await
            .expect("connect to the test Redis Cluster"),
    )
}

#[cfg(feature = "redis")]
/// A Redis store on the shared TLS-only server, checked against its private CA.
pub async fn tls_store() -> Option<RedisStore> {
    let server = shared_tls()?;
    let target =
        chat_storage::redis::RedisTarget::new(server.url()).with_tls_ca_file(server.ca_file());
    Some(
        RedisStore::connect(target, config())
            .await
            .expect("connect to the TLS-only test redis-server"),
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
