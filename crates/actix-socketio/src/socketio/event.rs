//! One client EVENT as handed to [`Handler::event`](crate::Handler::event), and the
//! acknowledgement the client may be waiting for.

use std::sync::Weak;

use bytes::Bytes;
use engineioxide_core::Str;
use serde::Serialize;
use serde_json::Value;

use crate::{
    error::EmitError,
    socketio::packet::{ArgsTuple, EncodedPacket, ack_packet},
};

/// Where an [`AckSender`] queues its answer: the connection of the socket, whatever the type
/// of its state.
pub(crate) trait PacketSink: Send + Sync {
    /// Queues a packet within the connection's bound.
    fn push_encoded(&self, packet: &EncodedPacket) -> Result<(), EmitError>;
}

/// A client event.
#[derive(Debug)]
pub struct Event {
    /// The event name (the first element of the packet's array).
    pub name: String,
    /// The arguments after the name, as JSON.
    pub args: Vec<Value>,
    /// Binary attachments of a BINARY_EVENT, in order; the arguments hold
    /// `{"_placeholder":true,"num":i}` where `attachments[i]` belongs. Empty otherwise.
    pub attachments: Vec<Bytes>,
    /// Present when the client asked for an acknowledgement.
    pub ack: Option<AckSender>,
}

/// Answers one client acknowledgement. Consumed by sending; dropping it sends nothing.
pub struct AckSender {
    conn: Weak<dyn PacketSink>,
    nsp: Str,
    id: i64,
}

impl std::fmt::Debug for AckSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckSender")
            .field("nsp", &self.nsp)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AckSender {
    pub(crate) fn new(conn: Weak<dyn PacketSink>, nsp: Str, id: i64) -> Self {
        Self { conn, nsp, id }
    }

    /// Acknowledges with one argument, `[data]` (a tuple is spread into several).
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let packet = ack_packet(self.nsp.clone(), self.id, data, Vec::new())?;
        self.push(&packet)
    }

    /// Acknowledges with exactly these arguments (none for an empty slice).
    pub fn send_args(self, args: &[Value]) -> Result<(), EmitError> {
        let packet = ack_packet(self.nsp.clone(), self.id, &ArgsTuple(args), Vec::new())?;
        self.push(&packet)
    }

    /// Acknowledges with these arguments and binary attachments, referenced from the arguments
    /// by `{"_placeholder":true,"num":i}` objects (a BINARY_ACK).
    pub fn send_with_attachments(
        self,
        args: &[Value],
        attachments: Vec<Bytes>,
    ) -> Result<(), EmitError> {
        let packet = ack_packet(self.nsp.clone(), self.id, &ArgsTuple(args), attachments)?;
        self.push(&packet)
    }

    fn push(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        let conn = self.conn.upgrade().ok_or(EmitError::Disconnected)?;
        conn.push_encoded(packet)
    }
}
