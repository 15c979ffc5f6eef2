//! The Engine.IO v4 layer: connections and their transports, and [`EngineIo`], the plain
//! Engine.IO server that puts an [`EngineHandler`] directly on top of them.
//!
//! Modules, bottom up (each imports only the ones before it):
//! - `reason`, `request`, `frame`: [`DisconnectReason`](crate::DisconnectReason), the stored
//!   handshake request with [`RequestInfo`](crate::RequestInfo), and the frames queued per
//!   connection.
//! - `conn`: one connection's state ([`Transport`](crate::Transport), the outbound and work
//!   queues, heartbeat flags) and the `ConnData` a layer on top keeps in it.
//! - `server`: the `Protocol` trait a layer on top implements, and the `Engine` every
//!   connection of a server shares.
//! - `driver`: the connection's task (handler calls one at a time, heartbeats, the end).
//! - `transport`: the endpoint, HTTP long-polling, WebSocket and the upgrade.
//! - `plain`: [`EngineIo`], [`EngineHandler`], [`EngineSocket`], [`EngineMessage`].

pub(crate) mod conn;
pub(crate) mod driver;
pub(crate) mod frame;
mod plain;
pub(crate) mod reason;
pub(crate) mod request;
pub(crate) mod server;
pub(crate) mod transport;

pub use self::plain::{EngineHandler, EngineIo, EngineMessage, EngineSocket};
