//! A plain Engine.IO v4 server: [`EngineIo`], its [`EngineHandler`] and the [`EngineSocket`]
//! handle of one connection.
//!
//! It is the engine itself with the application's handler on top: every transport
//! (long-polling, WebSocket, the upgrade, heartbeats, limits and the bounded outbound queue)
//! is the one [`SocketIo`](crate::SocketIo) is built on. Message packets go to the handler as
//! they are, and there is no connect timeout (there is no CONNECT to wait for).

use std::{
    fmt,
    future::Future,
    sync::{Arc, Weak},
    time::Duration,
};

use actix_web::{HttpRequest, web};
use bytes::Bytes;
use engineioxide_core::Sid;
use tokio::time::Instant;

use crate::{
    config::Config,
    engine::{
        conn::{Conn, ConnData, Transport, WorkFuture, guarded},
        frame::Frame,
        reason::DisconnectReason,
        request::RequestInfo,
        server::{Engine, Incoming, Protocol},
        transport,
    },
    error::EmitError,
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
    conn: Weak<Conn<PlainConn>>,
}

impl fmt::Debug for EngineSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSocket")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl EngineSocket {
    fn new(conn: &Arc<Conn<PlainConn>>) -> Self {
        Self {
            sid: conn.sid,
            conn: Arc::downgrade(conn),
        }
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
            conn.close(DisconnectReason::ServerDisconnect);
        }
    }

    /// The transport in use now (polling until an upgrade completes).
    pub fn transport(&self) -> Transport {
        self.conn
            .upgrade()
            .map_or(Transport::WebSocket, |conn| conn.transport())
    }

    fn push(&self, frame: Frame) -> Result<(), EmitError> {
        self.conn
            .upgrade()
            .ok_or(EmitError::Disconnected)?
            .push_frames_bounded(std::iter::once(frame), 1)
    }
}

/// A plain connection keeps nothing beside the engine's own state.
pub(crate) struct PlainConn;

/// One call to the [`EngineHandler`] waiting its turn.
pub(crate) enum PlainWork {
    /// [`EngineHandler::opened`].
    Opened,
    /// [`EngineHandler::message`].
    Message(EngineMessage),
}

impl ConnData for PlainConn {
    type Work = PlainWork;
    type Locked = ();

    fn established(_locked: &()) -> bool {
        true
    }
}

/// The engine's protocol for an [`EngineHandler`]: message packets are queued for it as they
/// are.
pub(crate) struct Plain<E>(E);

impl<E: EngineHandler> Protocol for Plain<E> {
    type Data = PlainConn;

    fn allow_handshake(&self, _request: &HttpRequest) -> impl Future<Output = bool> {
        std::future::ready(true)
    }

    fn conn_data(&self) -> PlainConn {
        PlainConn
    }

    fn establish_timeout(_config: &Config) -> Option<Duration> {
        None
    }

    fn opened(&self, conn: &Arc<Conn<PlainConn>>) {
        conn.push_work(PlainWork::Opened);
    }

    fn message(
        &self,
        conn: &Arc<Conn<PlainConn>>,
        message: Incoming,
    ) -> Result<(), DisconnectReason> {
        let message = match message {
            Incoming::Text(data) => EngineMessage::Text(data.into()),
            Incoming::Binary(data) => EngineMessage::Binary(data),
        };
        conn.push_work(PlainWork::Message(message));
        Ok(())
    }

    fn start(
        engine: &Arc<Engine<Self>>,
        conn: &Arc<Conn<PlainConn>>,
        work: PlainWork,
    ) -> WorkFuture {
        let engine = Arc::clone(engine);
        let socket = EngineSocket::new(conn);
        match work {
            PlainWork::Opened => {
                let request = conn.request.info();
                Box::pin(guarded(Arc::clone(conn), async move {
                    engine.protocol.0.opened(&socket, &request).await;
                }))
            }
            PlainWork::Message(message) => Box::pin(guarded(Arc::clone(conn), async move {
                engine.protocol.0.message(&socket, message).await;
            })),
        }
    }

    fn runs_after_close(_work: &PlainWork) -> bool {
        true
    }

    fn heartbeat(_conn: &Conn<PlainConn>, _now: Instant) {}

    fn shutdown(_conn: &Conn<PlainConn>) {}

    async fn closed(
        engine: &Arc<Engine<Self>>,
        conn: &Arc<Conn<PlainConn>>,
        reason: DisconnectReason,
    ) {
        let socket = EngineSocket::new(conn);
        guarded(Arc::clone(conn), engine.protocol.0.closed(&socket, reason)).await;
    }
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
    engine: Arc<Engine<Plain<E>>>,
}

impl<E: EngineHandler> Clone for EngineIo<E> {
    fn clone(&self) -> Self {
        Self {
            engine: Arc::clone(&self.engine),
        }
    }
}

impl<E: EngineHandler> EngineIo<E> {
    /// A server with `config` (its `connect_timeout` does not apply), calling `handler` for
    /// every connection.
    pub fn new(config: Config, handler: E) -> Self {
        Self {
            engine: Arc::new(Engine::new(config, Plain(handler))),
        }
    }

    /// The application's handler.
    pub fn handler(&self) -> &E {
        &self.engine.protocol.0
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// Mounts the endpoint (GET, POST, OPTIONS) at the configured path, with and without its
    /// trailing slash.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        transport::mount(&self.engine, cfg);
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.engine.sessions.len()
    }

    /// Graceful shutdown: every connection closes after its queued messages; resolves once all
    /// are gone and the handler's last calls for them (`closed` included) returned, or after
    /// the ping timeout. Await it before stopping the `HttpServer`.
    pub fn close_all(&self) -> impl Future<Output = ()> + Send + 'static {
        Engine::close_all(&self.engine)
    }
}
