//! Engine.IO v4 and Socket.IO v5 server for actix-web 4, built on `actix-ws` and tokio.
//!
//! Packet encoding and decoding come from `engineioxide-core` (Engine.IO) and
//! `socketioxide-parser-common` (Socket.IO); this crate supplies the transports, the session
//! registry and the socket API. The existing `socket.io-client` 4.x works against it unchanged,
//! over WebSocket, HTTP long-polling and the upgrade from the second to the first.
//!
//! # Layers
//!
//! Engine.IO is the lower layer and Socket.IO sits on top of it; modules import only
//! downward (a unit test, `layers.rs`, checks every `crate::` path against this table):
//!
//! | layer | modules | may import |
//! | --- | --- | --- |
//! | base | [`config`], [`error`], `registry` | nothing of the crate |
//! | engine | [`engine`] (`reason`, `request`, `frame`, `conn`, `server`, `driver`, `transport`, `plain`), [`takeover`] | base, and the engine modules before it |
//! | socketio | `socketio` (`packet`, `ack`, `event`, `socket`, `handler`, `dispatch`, `layer`, `server`), public as [`packet`], [`event`], [`socket`], [`handler`], [`server`] | base, engine, and the socketio modules before it |
//! | entry points | `fuzzing`, the crate root | anything |
//!
//! The engine runs connections, their transports and heartbeats for a *protocol* on top: a
//! crate-private trait with a handshake check, a synchronous hook per message packet, the
//! calls queued per connection, and the end of a connection. Two protocols exist, side by
//! side: the Socket.IO layer ([`SocketIo`]), and the adapter that hands message packets to an
//! [`EngineHandler`] as they are ([`EngineIo`], the plain Engine.IO server). The engine is
//! generic over its protocol, so no hook is a dynamic call.
//!
//! Modules:
//! - [`config`]: [`Config`], timings, limits, path and CORS.
//! - [`error`]: [`EmitError`] and [`AckError`].
//! - `registry` (private): the sharded registries of sessions and sockets.
//! - [`engine`]: [`EngineIo`], a plain Engine.IO server, with its [`EngineHandler`] and
//!   [`EngineSocket`]; privately, the per connection state and its task, the compact copy of
//!   the handshake request, and the HTTP long-polling and WebSocket transports.
//! - [`takeover`]: the upgrade service that serves accepted WebSockets on the TCP stream itself.
//! - [`handler`]: the [`Handler`] trait an application implements, [`RequestInfo`],
//!   [`ConnectError`] and [`DisconnectReason`].
//! - [`event`]: [`Event`], one client event, and [`AckSender`], its acknowledgement.
//! - [`socket`]: [`Socket`], one Socket.IO connection to one namespace, and [`Transport`].
//! - [`packet`]: [`EncodedPacket`], a packet encoded once and sent to many sockets.
//! - [`server`]: [`SocketIo`], the entry point: mounts the routes, finds sockets, broadcasts.
//! - `socketio` (private, its public modules are re-exported above): also pending acks,
//!   incoming packet dispatch, and the layer as the engine's protocol.
//!
//! Invariants:
//! - One task per Engine.IO connection drives heartbeats, the handler calls (one at a time, in
//!   arrival order) and, on WebSocket, the socket reads and writes. HTTP long-polling requests
//!   are served by the request handlers themselves. Every connection's task is tracked, so a
//!   graceful shutdown (`close_all`) ends only after each one ran its last handler calls.
//! - No lock is held across an `.await`; the global registries are sharded and only touched on
//!   connect, disconnect, polling requests and broadcasts, never on each event.
//! - Outgoing packets are encoded once and queued on a bounded per-connection queue without
//!   waiting: a client that stops reading is disconnected instead of growing memory.
//!
//! Deployment notes: enable `TCP_NODELAY` on the accepted sockets at the `HttpServer` level
//! (small Socket.IO frames otherwise wait for Nagle's algorithm); this crate does not own the
//! listener. Mounted on a plain `HttpServer`, WebSockets run through actix-ws under actix-http's
//! HTTP/1 dispatcher (about 24 KiB of buffers per socket); built with actix-http and
//! [`takeover::upgrade_service`], they run on the TCP stream itself with no buffer held while
//! idle and one `write()` per batch of frames.
//!
//! # Example
//!
//! An echo server: every event comes back to its sender under the same name, and acks are
//! answered with the event's arguments (`examples/conformance.rs` is a fuller one).
//!
//! ```no_run
//! use actix_socketio::{Config, ConnectError, DisconnectReason, Event, Handler, RequestInfo, Socket, SocketIo};
//! use actix_web::{App, HttpServer};
//! use serde_json::Value;
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!
//!     async fn connect(&self, _id: &str, _nsp: &str, auth: Option<Value>, _request: &RequestInfo) -> Result<(), ConnectError> {
//!         // Refused sockets get a CONNECT_ERROR with this message.
//!         auth.is_some().then_some(()).ok_or_else(|| ConnectError("Authentication required".into()))
//!     }
//!
//!     async fn connected(&self, socket: &Socket<()>) {
//!         let _ = socket.emit("welcome", &serde_json::json!({"id": socket.id()}));
//!     }
//!
//!     async fn event(&self, socket: &Socket<()>, event: Event) {
//!         match event.ack {
//!             Some(ack) => drop(ack.send_args(&event.args)),
//!             None => drop(socket.emit(&event.name, &event.args)),
//!         }
//!     }
//!
//!     async fn disconnected(&self, _socket: &Socket<()>, _reason: DisconnectReason) {}
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(Config::default(), Echo);
//!     let routes = io.clone();
//!     HttpServer::new(move || App::new().configure(|config| routes.configure(config)))
//!         .bind(("127.0.0.1", 3000))?
//!         .run()
//!         .await?;
//!     io.close_all().await;
//!     Ok(())
//! }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod registry;
mod socketio;
pub mod takeover;

#[cfg(test)]
mod layers;

pub use config::Config;
pub use engine::{EngineHandler, EngineIo, EngineMessage, EngineSocket};
pub use error::{AckError, EmitError};
pub use socketio::{
    event::{self, AckSender, Event},
    handler::{self, ConnectError, DisconnectReason, Handler, RequestInfo},
    packet::{self, EncodedPacket},
    server::{self, SocketIo},
    socket::{self, Socket, Transport},
};
