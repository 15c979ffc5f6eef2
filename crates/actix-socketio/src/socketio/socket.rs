//! [`Socket`]: one client's connection to one namespace, with its state and emit API; and
//! what the Socket.IO layer keeps in each Engine.IO connection (its sockets, the parser state
//! of binary packets, the queued handler calls).

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use engineioxide_core::{Sid, Str};
use serde::Serialize;
use serde_json::Value;
use socketioxide_core::parser::ParserState;

pub use crate::engine::conn::Transport;
use crate::{
    engine::{
        conn::{Conn, ConnData},
        reason::DisconnectReason,
    },
    error::{AckError, EmitError},
    registry::Registry,
    socketio::{
        ack::{AckGuard, PendingAcks},
        event::{Event, PacketSink},
        packet::{EncodedPacket, disconnect_packet, event_packet},
    },
};

/// An Engine.IO connection carrying Socket.IO sockets.
pub(crate) type SocketConn<S> = Conn<Sockets<S>>;

/// What the Socket.IO layer keeps in each connection, outside its lock.
pub(crate) struct Sockets<S> {
    /// Partial binary packets of the Socket.IO parser, allocated on the first binary packet.
    parser: OnceLock<Box<ParserState>>,
    /// The server-wide socket registry, so sockets can unregister themselves.
    pub(crate) registry: Arc<Registry<Socket<S>>>,
}

impl<S> Sockets<S> {
    pub(crate) fn new(registry: Arc<Registry<Socket<S>>>) -> Self {
        Self {
            parser: OnceLock::new(),
            registry,
        }
    }
}

/// One handler call waiting its turn.
pub(crate) enum Work<S> {
    Connect {
        nsp: Str,
        auth: Option<Value>,
    },
    Event {
        socket: Socket<S>,
        event: Event,
    },
    Disconnected {
        socket: Socket<S>,
        reason: DisconnectReason,
    },
}

impl<S> ConnData for Sockets<S> {
    type Work = Work<S>;
    /// The connection's sockets, one per namespace.
    type Locked = Vec<Socket<S>>;

    fn established(sockets: &Vec<Socket<S>>) -> bool {
        !sockets.is_empty()
    }
}

impl<S: Send + Sync + 'static> SocketConn<S> {
    /// Queues the frames of a packet, closing the connection if the bounded queue would
    /// overflow.
    pub(crate) fn push_packet(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        self.push_frames_bounded(packet.frames(), packet.frame_count())
    }

    pub(crate) fn socket_for(&self, nsp: &str) -> Option<Socket<S>> {
        self.state()
            .layer
            .iter()
            .find(|socket| socket.namespace() == nsp)
            .cloned()
    }

    /// Removes `socket` from this connection; returns how many sockets remain.
    pub(crate) fn remove_socket(&self, socket: &Socket<S>) -> usize {
        let mut state = self.state();
        state.layer.retain(|other| !other.same_as(socket));
        state.layer.len()
    }

    /// The parser state for binary packets, if one was ever needed.
    pub(crate) fn existing_parser(&self) -> Option<&ParserState> {
        self.data.parser.get().map(|state| &**state)
    }

    /// The parser state for binary packets, created on first use.
    pub(crate) fn parser(&self) -> &ParserState {
        self.data.parser.get_or_init(Box::default)
    }
}

impl<S: Send + Sync + 'static> PacketSink for SocketConn<S> {
    fn push_encoded(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        self.push_packet(packet)
    }
}

/// A connected socket: cheap to clone, safe to keep after it disconnected (emits then fail with
/// [`EmitError::Disconnected`]).
pub struct Socket<S> {
    inner: Arc<SocketInner<S>>,
}

struct SocketInner<S> {
    id: Sid,
    nsp: Str,
    state: S,
    conn: Weak<SocketConn<S>>,
    connected: AtomicBool,
    acks: PendingAcks,
}

impl<S> Clone for Socket<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for Socket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.inner.nsp)
            .field("connected", &self.inner.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync + 'static> Socket<S> {
    pub(crate) fn new(id: Sid, nsp: Str, state: S, conn: Weak<SocketConn<S>>) -> Self {
        Self {
            inner: Arc::new(SocketInner {
                id,
                nsp,
                state,
                conn,
                connected: AtomicBool::new(true),
                acks: PendingAcks::default(),
            }),
        }
    }

    /// The Socket.IO socket id (not the Engine.IO session id).
    pub fn id(&self) -> &str {
        self.inner.id.as_str()
    }

    pub(crate) fn sid(&self) -> Sid {
        self.inner.id
    }

    /// The namespace, e.g. `/`.
    pub fn namespace(&self) -> &str {
        &self.inner.nsp
    }

    pub(crate) fn nsp(&self) -> &Str {
        &self.inner.nsp
    }

    /// The state [`Handler::connect`](crate::Handler::connect) returned.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// Whether the socket is still connected.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The transport in use now (polling until an upgrade completes).
    pub fn transport(&self) -> Transport {
        self.inner
            .conn
            .upgrade()
            .map_or(Transport::WebSocket, |conn| conn.transport())
    }

    /// Emits `[event, data]` (a tuple or array `data` is spread into several arguments,
    /// `&[(); 0]` sends none). Encodes once and
    /// queues without waiting; if the client's queue is full the connection is closed and
    /// [`EmitError::QueueFull`] returned.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.ensure_connected()?;
        let packet = event_packet(self.inner.nsp.clone(), event, data, None)?;
        self.emit_encoded(&packet)
    }

    /// Emits an event with JSON arguments and binary attachments, referenced from the arguments
    /// by `{"_placeholder":true,"num":i}` objects.
    pub fn emit_with_attachments(
        &self,
        event: &str,
        args: &[Value],
        attachments: Vec<Bytes>,
    ) -> Result<(), EmitError> {
        self.ensure_connected()?;
        let packet =
            EncodedPacket::event_with_attachments(self.namespace(), event, args, attachments)?;
        self.emit_encoded(&packet)
    }

    /// Queues a packet encoded once for many sockets (see [`EncodedPacket`]); it must have
    /// been encoded for this socket's namespace.
    pub fn emit_encoded(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        self.ensure_connected()?;
        let conn = self.inner.conn.upgrade().ok_or(EmitError::Disconnected)?;
        conn.push_packet(packet)
    }

    /// Emits `[event, data]` asking for an acknowledgement. The returned future resolves to the
    /// client's ack arguments, [`AckError::Timeout`] after `timeout`, or
    /// [`AckError::Disconnected`]; the pending entry is removed in every case, also when the
    /// future is dropped.
    pub fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<Vec<Value>, AckError>> + Send + 'static, EmitError>
    {
        self.ensure_connected()?;
        let (id, receiver) = self.inner.acks.register();
        self.emit_acked(event, data, id)?;
        let socket = self.clone();
        Ok(async move {
            let _guard = AckGuard {
                acks: &socket.inner.acks,
                id,
            };
            match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(args)) => Ok(args),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => Err(AckError::Timeout),
            }
        })
    }

    /// Like [`Socket::emit_with_ack`], but the answer goes to `on_ack` instead of a future:
    /// no task, channel or timer per emit. `on_ack` runs exactly once, from the connection's
    /// own task: with the client's answer, with [`AckError::Disconnected`] when the socket
    /// goes, or with [`AckError::Timeout`] for an answer later than `timeout` (a missing
    /// answer is noticed at the connection's next heartbeat after `timeout`). It must not
    /// block. If the emit itself fails, `on_ack` is dropped uncalled and the error returned.
    pub fn emit_with_ack_callback<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
        on_ack: impl FnOnce(Result<Vec<Value>, AckError>) + Send + 'static,
    ) -> Result<(), EmitError> {
        self.ensure_connected()?;
        let deadline = tokio::time::Instant::now() + timeout;
        let id = self
            .inner
            .acks
            .register_callback(deadline, Box::new(on_ack));
        self.emit_acked(event, data, id)
    }

    /// Emits `[event, data]` with the registered ack `id`; on failure the id is dropped again.
    fn emit_acked<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        id: i64,
    ) -> Result<(), EmitError> {
        let sent = event_packet(self.inner.nsp.clone(), event, data, Some(id))
            .map_err(EmitError::from)
            .and_then(|packet| self.emit_encoded(&packet));
        if sent.is_err() {
            self.inner.acks.remove(id);
        }
        sent
    }

    /// Answers the callbacks of acks past their deadline (called at each heartbeat).
    pub(crate) fn expire_acks(&self, now: tokio::time::Instant) {
        self.inner.acks.expire(now);
    }

    /// Disconnects the socket from the server side: sends DISCONNECT, then closes the
    /// connection if no other namespace is open on it. [`Handler::disconnected`](crate::Handler::disconnected)
    /// follows with [`DisconnectReason::ServerDisconnect`]. Does nothing if already disconnected.
    pub fn disconnect(&self) {
        if !self.mark_disconnected() {
            return;
        }
        let Some(conn) = self.inner.conn.upgrade() else {
            return;
        };
        conn.data.registry.remove(&self.inner.id);
        conn.push_control(disconnect_packet(self.inner.nsp.clone()).frames());
        let remaining = conn.remove_socket(self);
        conn.push_work(Work::Disconnected {
            socket: self.clone(),
            reason: DisconnectReason::ServerDisconnect,
        });
        if remaining == 0 {
            conn.close(DisconnectReason::ServerDisconnect);
        }
    }

    /// Marks the socket disconnected and fails its pending acks; false if it already was.
    pub(crate) fn mark_disconnected(&self) -> bool {
        let was_connected = self.inner.connected.swap(false, Ordering::AcqRel);
        if was_connected {
            self.inner.acks.clear();
        }
        was_connected
    }

    pub(crate) fn resolve_ack(&self, id: i64, args: Vec<Value>) {
        self.inner.acks.resolve(id, args);
    }

    pub(crate) fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn ensure_connected(&self) -> Result<(), EmitError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }
}
