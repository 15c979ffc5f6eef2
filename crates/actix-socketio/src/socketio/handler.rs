//! The application's side of the server: the [`Handler`] trait and what it is given.

use std::{fmt, future::Future};

use actix_web::HttpRequest;
use serde_json::Value;

pub use crate::engine::{reason::DisconnectReason, request::RequestInfo};
use crate::socketio::{event::Event, socket::Socket};

/// Refusal of a Socket.IO CONNECT; the string is the `message` of the CONNECT_ERROR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(pub String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// What an application implements to accept sockets and handle their events.
///
/// Calls for the sockets of one Engine.IO connection are made one at a time, in the order the
/// packets arrived, so the events of a socket are handled sequentially. A slow call delays the
/// next events of that connection only; reads, writes and heartbeats go on meanwhile.
pub trait Handler: Send + Sync + 'static {
    /// Per-socket state returned by [`Handler::connect`] and kept inside the [`Socket`].
    type State: Send + Sync + 'static;

    /// Admission of a new Engine.IO connection (a handshake: a polling `GET` or a WebSocket
    /// without `sid`), checked before anything is allocated for it, e.g. a rate limit per
    /// client address kept in a store shared by several servers. `false` answers HTTP 429
    /// with `{"code":4,"message":"Too many handshakes"}`; requests of open sessions are never
    /// asked.
    ///
    /// The future is awaited by the request's own handler, on its worker thread, so it need
    /// not be `Send` and may borrow the request. Every handshake is admitted by default, with
    /// a future that is ready at once.
    fn allow_handshake(&self, request: &HttpRequest) -> impl Future<Output = bool> {
        let _ = request;
        std::future::ready(true)
    }

    /// Whether a namespace exists. Others are refused with `Invalid namespace`.
    fn accepts_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    /// Authenticates a Socket.IO CONNECT to `nsp` with its optional `auth` payload.
    /// `Err` sends a CONNECT_ERROR with that message. The socket does not exist yet: no emits.
    fn connect(
        &self,
        socket_id: &str,
        nsp: &str,
        auth: Option<Value>,
        request: &RequestInfo,
    ) -> impl Future<Output = Result<Self::State, ConnectError>> + Send;

    /// Called right after the CONNECT packet was queued: emits made here arrive after it.
    fn connected(&self, socket: &Socket<Self::State>) -> impl Future<Output = ()> + Send;

    /// One client EVENT, with its arguments (without the event name) and optional ack.
    fn event(&self, socket: &Socket<Self::State>, event: Event) -> impl Future<Output = ()> + Send;

    /// The socket is gone, for `reason`. Called exactly once per connected socket.
    fn disconnected(
        &self,
        socket: &Socket<Self::State>,
        reason: DisconnectReason,
    ) -> impl Future<Output = ()> + Send;
}
