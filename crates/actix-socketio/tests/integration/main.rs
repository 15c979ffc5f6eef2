//! Integration tests over real sockets: a real actix `HttpServer` on 127.0.0.1:0 with a test
//! handler, a WebSocket client (tokio-tungstenite) and a raw HTTP/1.1 client for polling.
//! Every wait is bounded by a timeout; nothing sleeps and hopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// This run serves WebSockets under actix-ws (`HttpServer`); `tests/takeover.rs` runs the
/// same tests with the takeover upgrade service.
const TAKEOVER: bool = false;

mod engine;
mod engine_io;
mod helpers;
mod hostile;
mod limits;
mod socketio;
