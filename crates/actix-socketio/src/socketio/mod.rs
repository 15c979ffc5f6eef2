//! The Socket.IO v5 layer, on top of the engine: namespaces, sockets, events and acks.
//!
//! Modules, bottom up (each imports only the ones before it, and the engine below):
//! - `packet`: [`EncodedPacket`](crate::EncodedPacket) and the other outgoing packets.
//! - `ack`: acknowledgements the server waits for.
//! - `event`: [`Event`](crate::Event) and [`AckSender`](crate::AckSender).
//! - `socket`: [`Socket`](crate::Socket), and what the layer keeps in each connection.
//! - `handler`: the [`Handler`](crate::Handler) trait an application implements.
//! - `dispatch`: decoding of incoming packets and their dispatch to sockets.
//! - `layer`: the layer as the engine's protocol (CONNECT, handler calls, the end of a
//!   connection).
//! - `server`: [`SocketIo`](crate::SocketIo), the server handle.

pub(crate) mod ack;
pub(crate) mod dispatch;
pub mod event;
pub mod handler;
pub(crate) mod layer;
pub mod packet;
pub mod server;
pub mod socket;
