//! The application's side of the server: the [`Handler`] trait and what it is given.

use std::{fmt, future::Future, net::SocketAddr};

use actix_web::{HttpRequest, http::header::HeaderMap};
use serde_json::Value;

use crate::{event::Event, socket::Socket};

/// The HTTP request that opened an Engine.IO connection (the polling handshake or the direct
/// WebSocket request). A compact copy is kept for the connection's lifetime and rebuilt for
/// each namespace CONNECT; the WebSocket handshake's own headers (`Sec-WebSocket-*`,
/// `Upgrade`, `Connection`) are left out.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The TCP peer, if known. Behind a proxy this is the proxy.
    pub peer_addr: Option<SocketAddr>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw query string, without the leading `?`.
    pub query: String,
}

/// Refusal of a Socket.IO CONNECT; the string is the `message` of the CONNECT_ERROR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(pub String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// Why a socket is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent a DISCONNECT packet for this namespace (`socket.disconnect()`).
    ClientDisconnect,
    /// The client closed the transport (an Engine.IO close packet, a WebSocket close frame or
    /// the TCP connection going away).
    TransportClose,
    /// The transport failed: an I/O error, an oversized frame or body, or a protocol violation
    /// at the Engine.IO level.
    TransportError,
    /// The client sent a packet that is not valid Engine.IO or Socket.IO.
    ParseError,
    /// The client did not answer a ping within the ping timeout.
    PingTimeout,
    /// The client sent two concurrent long-polling GET requests.
    MultiplePolling,
    /// The client did not read its packets: the outbound queue overflowed.
    QueueFull,
    /// The server called [`Socket::disconnect`].
    ServerDisconnect,
    /// The server is shutting down ([`SocketIo::close_all`](crate::SocketIo::close_all)).
    ServerShutdown,
}

impl DisconnectReason {
    /// Whether packets queued before the close should still be delivered to the client.
    pub(crate) fn flushes(self) -> bool {
        matches!(self, Self::ServerDisconnect | Self::ServerShutdown)
    }

    /// A short stable name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientDisconnect => "client namespace disconnect",
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::ParseError => "parse error",
            Self::PingTimeout => "ping timeout",
            Self::MultiplePolling => "multiple polling requests",
            Self::QueueFull => "outbound queue full",
            Self::ServerDisconnect => "server namespace disconnect",
            Self::ServerShutdown => "server shutting down",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// client address. `false` answers HTTP 429 with
    /// `{"code":4,"message":"Too many handshakes"}`; requests of open sessions are never
    /// asked. Every handshake is admitted by default.
    fn allow_handshake(&self, request: &HttpRequest) -> bool {
        let _ = request;
        true
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
