//! Test harness shared by the project's tests and by other teams' CI.
//!
//! Modules:
//! - [`redis`]: [`RedisServer`], a private `redis-server` on a random port of 127.0.0.1 that a
//!   test can kill and restart on the same port, and [`require_redis`], which skips a test when
//!   `redis-server` is missing locally but fails it in CI (`CI=true`).
//! - [`topology`]: real Redis topologies for the storage crate's tests: [`TlsRedis`] (TLS only,
//!   with a throwaway CA), [`SentinelRedis`] (primary, replica and a Sentinel that fails over
//!   after [`SentinelRedis::kill_primary`]) and [`RedisClusterSet`] (a Redis Cluster of
//!   masters), each with a `require_…` function that skips or, under `CI=true`, fails.
//! - [`server`]: [`ChatServer`], the real `chat-server` binary on a free port, ready once it
//!   printed its `listening on` line, stopped with `SIGTERM`.
//!
//! This crate depends on no `chat-*` crate, so any crate's tests may use it, and so may
//! another service's tests that only have the binary.
//!
//! # Example
//!
//! A chat-server on a private Redis (`examples/start_server.rs` does this with any binary):
//!
//! ```no_run
//! use chat_testkit::{ChatServer, require_redis};
//!
//! let Some(redis) = require_redis() else { return Ok(()) };
//! let server = ChatServer::start("target/debug/chat-server", &[], &[("REDIS_URL", redis.url().as_str())])?;
//! assert_eq!(server.storage(), "redis");
//! assert_eq!(server.get("/healthz")?.0, 200);
//! assert!(server.terminate()?.success(), "a clean shutdown exits 0");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A private Redis alone, killed and restarted on the same port:
//!
//! ```
//! let Some(mut redis) = chat_testkit::require_redis() else { return };
//! let port = redis.port();
//! redis.kill();
//! assert!(!redis.is_up());
//! redis.restart().expect("restarts");
//! assert!(redis.is_up() && redis.port() == port);
//! ```

mod process;
pub mod redis;
mod resp;
pub mod server;
pub mod topology;

pub use redis::{RedisServer, redis_available, require_redis};
pub use server::ChatServer;
pub use topology::{
    RedisClusterSet, SentinelRedis, TlsRedis, require_redis_cluster, require_sentinel_redis,
    require_tls_redis, topology_tools_available,
};
