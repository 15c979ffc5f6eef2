//! [`DisconnectReason`]: why a connection, or a Socket.IO socket on it, is gone.

use std::fmt;

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
    /// The server called [`Socket::disconnect`](crate::Socket::disconnect).
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
