//! The Socket.IO side of the gateway: the chat's [`actix_socketio::Handler`], the registry of
//! this process's sockets by user, the [`chat_signaling::Delivery`] and
//! [`chat_presence_stats::StatsSink`] over them, and the background sweeps.
//!
//! - [`hub`]: [`Hub`], everything realtime that handlers and REST routes share.
//! - [`registry`]: [`Registry`], user id → live socket, one per session.
//! - [`handler`]: [`ChatHandler`]: connect (auth), events, disconnect.
//! - [`events`]: one function per client event.
//! - [`wire`]: [`chat_signaling::Outgoing`] → wire event name and payload.
//! - [`rate`]: the per-socket token bucket.

pub mod events;
pub mod handler;
pub mod hub;
pub mod rate;
pub mod registry;
pub mod wire;

pub use handler::{ChatHandler, SocketState};
pub use hub::Hub;
pub use registry::Registry;
