//! A plain Engine.IO v4 server, without the Socket.IO layer: [`EngineIo`], its
//! [`EngineHandler`] and the [`EngineSocket`] handle of one connection.
//!
//! It shares every transport of [`SocketIo`](crate::SocketIo) (long-polling, WebSocket, the
//! upgrade, heartbeats, limits and the bounded outbound queue); only the message packets go to
//! the handler as they are instead of being decoded as Socket.IO packets, and there is no
//! connect timeout (there is no CONNECT to wait for).

use std::{
    fmt,
    future::Future,
    sync::{Arc, Weak},
};

use actix_web::web;
use bytes::Bytes;
use engineioxide_core::Sid;
use serde_json::Value;

use crate::{
    config::Config,
    conn::{Outbound, WorkFuture},
    error::EmitError,
    event::Event,
    handler::{ConnectError, DisconnectReason, Handler, RequestInfo},
    packet::Frame,
    server::Shared,
    socket::{Socket, Transport},
};

/// One Engine.IO message packet: text (`4…`) or binary (a WebSocket binary frame, or `b<base64>`
/// on polling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineMessage {
    /// A text message, without the packet type.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// The application's side of an [`EngineIo`] server. Calls for one connection are made one at a
/// time, in arrival order: `opened`, then every `message`, then `closed` exactly once.
pub trait EngineHandler: Send + Sync + 'static {
    /// A new connection, with the request that opened it.
    fn opened(
        &self,
        socket: &EngineSocket,
        request: &RequestInfo,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, request);
        async {}
    }

    /// A message from the client.
    fn message(
        &self,
        socket: &EngineSocket,
        message: EngineMessage,
    ) -> impl Future<Output = ()> + Send;

    /// The connection is gone, for `reason`.
    fn closed(
        &self,
        socket: &EngineSocket,
        reason: DisconnectReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, reason);
        async {}
    }
}

/// One Engine.IO connection: cheap to clone, safe to keep after it closed (sends then fail with
/// [`EmitError::Disconnected`]).
#[derive(Clone)]
pub struct EngineSocket {
    sid: Sid,
    conn: Weak<dyn Outbound>,
}

impl fmt::Debug for EngineSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSocket")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl EngineSocket {
    pub(crate) fn new(sid: Sid, conn: Weak<dyn Outbound>) -> Self {
        Self { sid, conn }
    }

    /// The Engine.IO session id.
    pub fn id(&self) -> &str {
        self.sid.as_str()
    }

    /// Queues a text message. Like every send, it never waits: if the client's queue is full
    /// the connection is closed and [`EmitError::QueueFull`] returned.
    pub fn send(&self, text: &str) -> Result<(), EmitError> {
        let mut packet = String::with_capacity(1 + text.len());
        packet.push('4');
        packet.push_str(text);
        self.push(Frame::Text(packet.into()))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: Bytes) -> Result<(), EmitError> {
        self.push(Frame::Binary(data))
    }

    /// Queues `message` as it came (text or binary).
    pub fn send_message(&self, message: EngineMessage) -> Result<(), EmitError> {
        match message {
            EngineMessage::Text(text) => self.send(&text),
            EngineMessage::Binary(data) => self.send_binary(data),
        }
    }

    /// Closes the connection after the queued messages: [`EngineHandler::closed`] follows with
    /// [`DisconnectReason::ServerDisconnect`].
    pub fn close(&self) {
        if let Some(conn) = self.conn.upgrade() {
            conn.close_conn(DisconnectReason::ServerDisconnect);
        }
    }

    /// The transport in use now (polling until an upgrade completes).
    pub fn transport(&self) -> Transport {
        self.conn
            .upgrade()
            .map_or(Transport::WebSocket, |conn| conn.current_transport())
    }

    fn push(&self, frame: Frame) -> Result<(), EmitError> {
        self.conn
            .upgrade()
            .ok_or(EmitError::Disconnected)?
            .push_frame(frame)
    }
}

/// The handler's calls as boxed futures, so the transports stay generic over the Socket.IO
/// [`Handler`] only.
pub(crate) trait ErasedEngine: Send + Sync {
    fn opened(&self, socket: EngineSocket, request: RequestInfo) -> WorkFuture;
    fn message(&self, socket: EngineSocket, message: EngineMessage) -> WorkFuture;
    fn closed(&self, socket: EngineSocket, reason: DisconnectReason) -> WorkFuture;
}

struct Erased<E>(Arc<E>);

impl<E: EngineHandler> ErasedEngine for Erased<E> {
    fn opened(&self, socket: EngineSocket, request: RequestInfo) -> WorkFuture {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.opened(&socket, &request).await })
    }

    fn message(&self, socket: EngineSocket, message: EngineMessage) -> WorkFuture {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.message(&socket, message).await })
    }

    fn closed(&self, socket: EngineSocket, reason: DisconnectReason) -> WorkFuture {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.closed(&socket, reason).await })
    }
}

/// The Socket.IO handler slot of an Engine.IO server: never called, since message packets go
/// to the [`EngineHandler`] and no CONNECT is ever decoded.
pub(crate) struct NoSocketIo;

impl Handler for NoSocketIo {
    type State = ();

    fn accepts_namespace(&self, _nsp: &str) -> bool {
        false
    }

    async fn connect(
        &self,
        _socket_id: &str,
        _nsp: &str,
        _auth: Option<Value>,
        _request: &RequestInfo,
    ) -> Result<(), ConnectError> {
        Err(ConnectError("Invalid namespace".to_owned()))
    }

    async fn connected(&self, _socket: &Socket<()>) {}

    async fn event(&self, _socket: &Socket<()>, _event: Event) {}

    async fn disconnected(&self, _socket: &Socket<()>, _reason: DisconnectReason) {}
}

/// A plain Engine.IO server: cheap to clone, every clone is the same server.
///
/// ```no_run
/// use actix_socketio::{Config, EngineHandler, EngineIo, EngineMessage, EngineSocket};
/// use actix_web::{App, HttpServer};
///
/// struct Echo;
///
/// impl EngineHandler for Echo {
///     async fn message(&self, socket: &EngineSocket, message: EngineMessage) {
///         let _ = socket.send_message(message);
///     }
/// }
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let config = Config { path: "/engine.io/".into(), ..Config::default() };
///     let engine = EngineIo::new(config, Echo);
///     let routes = engine.clone();
///     HttpServer::new(move || App::new().configure(|cfg| routes.configure(cfg)))
///         .bind(("127.0.0.1", 3000))?
///         .run()
///         .await
/// }
/// ```
pub struct EngineIo<E: EngineHandler> {
    shared: Arc<Shared<NoSocketIo>>,
    handler: Arc<E>,
}

impl<E: EngineHandler> Clone for EngineIo<E> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            handler: Arc::clone(&self.handler),
        }
    }
}

impl<E: EngineHandler> EngineIo<E> {
    /// A server with `config` (its `connect_timeout` does not apply), calling `handler` for
    /// every connection.
    pub fn new(config: Config, handler: E) -> Self {
        let handler = Arc::new(handler);
        let engine: Arc<dyn ErasedEngine> = Arc::new(Erased(Arc::clone(&handler)));
        Self {
            shared: Arc::new(Shared::new(config, NoSocketIo, Some(engine))),
            handler,
        }
    }

    /// The application's handler.
    pub fn handler(&self) -> &E {
        &self.handler
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Mounts the endpoint (GET, POST, OPTIONS) at the configured path, with and without its
    /// trailing slash.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        Shared::mount(&self.shared, cfg);
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Graceful shutdown: every connection closes after its queued messages; resolves once all
    /// are gone, or after the ping timeout. Await it before stopping the `HttpServer`.
    pub fn close_all(&self) -> impl Future<Output = ()> + Send + 'static {
        Shared::close_all(&self.shared)
    }
}
