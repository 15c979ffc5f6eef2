//! Test harness shared by the project's tests and by other teams' CI.
//!
//! Modules:
//! - [`redis`]: [`RedisServer`], a private `redis-server` on a random port of 127.0.0.1 that a
//!   test can kill and restart on the same port, and [`require_redis`], which skips a test when
//!   `redis-server` is missing locally but fails it in CI (`CI=true`).
//!
//! This crate depends on no `chat-*` crate, so any crate's tests may use it.

pub mod redis;

pub use redis::{RedisServer, redis_available, require_redis};
