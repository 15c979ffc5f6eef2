//! Errors of emitting to a socket and of waiting for an acknowledgement.

/// Why a packet could not be queued for a socket.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The data could not be serialized to JSON.
    #[error("could not encode the packet: {0}")]
    Encode(#[from] serde_json::Error),
    /// The socket or its connection is already gone.
    #[error("the socket is disconnected")]
    Disconnected,
    /// The connection's outbound queue was full: the client is not reading, so the connection
    /// has been closed.
    #[error("the outbound queue is full, the connection was closed")]
    QueueFull,
}

/// Why an acknowledgement requested with [`Socket::emit_with_ack`](crate::Socket::emit_with_ack)
/// did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The client did not answer in time.
    #[error("the acknowledgement timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
}
