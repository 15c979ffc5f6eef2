//! The integration suite (`tests/integration/`) once more, with the server built like
//! `chat-server`: actix-http with [`actix_socketio::takeover::upgrade_service`], so that every
//! WebSocket test runs on a taken-over TCP stream instead of actix-ws.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// This run serves WebSockets on taken-over streams.
const TAKEOVER: bool = true;

#[path = "integration/engine.rs"]
mod engine;
#[path = "integration/engine_io.rs"]
mod engine_io;
#[path = "integration/helpers.rs"]
mod helpers;
#[path = "integration/hostile.rs"]
mod hostile;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/socketio.rs"]
mod socketio;
#[path = "integration/takeover.rs"]
mod takeover;
