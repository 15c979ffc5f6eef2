//! The Socket.IO layer as the engine's [`Protocol`]: message packets are decoded and
//! dispatched to sockets, queued calls go to the application's [`Handler`], and the end of a
//! connection reports every socket on it gone.

use std::{future::Future, sync::Arc, time::Duration};

use actix_web::HttpRequest;
use engineioxide_core::{Sid, Str};
use serde_json::Value;
use socketioxide_core::parser::ParseConfig;
use tokio::time::Instant;

use crate::{
    config::Config,
    engine::{
        conn::{WorkFuture, guarded},
        reason::DisconnectReason,
        server::{Engine, Incoming, Protocol},
    },
    registry::Registry,
    socketio::{
        dispatch,
        handler::{ConnectError, Handler},
        packet::{connect_error_packet, connect_packet, disconnect_packet},
        socket::{Socket, SocketConn, Sockets, Work},
    },
};

/// An Engine.IO server carrying the Socket.IO layer.
pub(crate) type SocketEngine<H> = Engine<SocketLayer<H>>;

/// The Socket.IO layer of one server: the application's handler and every connected socket.
pub(crate) struct SocketLayer<H: Handler> {
    pub(crate) handler: H,
    parse_config: ParseConfig,
    pub(crate) sockets: Arc<Registry<Socket<H::State>>>,
}

impl<H: Handler> SocketLayer<H> {
    pub(crate) fn new(config: &Config, handler: H) -> Self {
        Self {
            handler,
            parse_config: ParseConfig {
                max_incoming_binary_buf_size: config.max_payload,
                ..ParseConfig::default()
            },
            sockets: Arc::new(Registry::new()),
        }
    }
}

impl<H: Handler> Protocol for SocketLayer<H> {
    type Data = Sockets<H::State>;

    fn allow_handshake(&self, request: &HttpRequest) -> impl Future<Output = bool> {
        self.handler.allow_handshake(request)
    }

    fn conn_data(&self) -> Sockets<H::State> {
        Sockets::new(Arc::clone(&self.sockets))
    }

    fn establish_timeout(config: &Config) -> Option<Duration> {
        Some(config.connect_timeout)
    }

    fn opened(&self, _conn: &Arc<SocketConn<H::State>>) {}

    fn message(
        &self,
        conn: &Arc<SocketConn<H::State>>,
        message: Incoming,
    ) -> Result<(), DisconnectReason> {
        dispatch::message(&self.handler, &self.parse_config, conn, message)
    }

    fn start(
        engine: &Arc<SocketEngine<H>>,
        conn: &Arc<SocketConn<H::State>>,
        work: Work<H::State>,
    ) -> WorkFuture {
        let engine = Arc::clone(engine);
        let conn = Arc::clone(conn);
        match work {
            Work::Event { socket, event } => Box::pin(guarded(conn, async move {
                engine.protocol.handler.event(&socket, event).await;
            })),
            Work::Disconnected { socket, reason } => Box::pin(guarded(conn, async move {
                engine.protocol.handler.disconnected(&socket, reason).await;
            })),
            Work::Connect { nsp, auth } => {
                Box::pin(guarded(Arc::clone(&conn), connect(engine, conn, nsp, auth)))
            }
        }
    }

    /// A CONNECT still queued is dropped: its socket would be gone at once.
    fn runs_after_close(work: &Work<H::State>) -> bool {
        !matches!(work, Work::Connect { .. })
    }

    /// Callback acks past their deadline are answered at each heartbeat.
    fn heartbeat(conn: &SocketConn<H::State>, now: Instant) {
        let sockets = conn.state().layer.clone();
        for socket in sockets {
            socket.expire_acks(now);
        }
    }

    /// Every socket gets a DISCONNECT before the connection closes.
    fn shutdown(conn: &SocketConn<H::State>) {
        let sockets = conn.state().layer.clone();
        for socket in &sockets {
            conn.push_control(disconnect_packet(socket.nsp().clone()).frames());
        }
    }

    /// Every socket still connected is reported gone to the handler.
    async fn closed(
        engine: &Arc<SocketEngine<H>>,
        conn: &Arc<SocketConn<H::State>>,
        reason: DisconnectReason,
    ) {
        let sockets = std::mem::take(&mut conn.state().layer);
        for socket in sockets {
            if socket.mark_disconnected() {
                conn.data.registry.remove(&socket.sid());
                let call = engine.protocol.handler.disconnected(&socket, reason);
                guarded(Arc::clone(conn), call).await;
            }
        }
    }
}

/// A Socket.IO CONNECT: asks the handler, then registers the socket and answers.
async fn connect<H: Handler>(
    engine: Arc<SocketEngine<H>>,
    conn: Arc<SocketConn<H::State>>,
    nsp: Str,
    auth: Option<Value>,
) {
    let handler = &engine.protocol.handler;
    if let Some(previous) = conn.socket_for(&nsp) {
        // A second CONNECT to an open namespace replaces the socket, as a reconnect would.
        if previous.mark_disconnected() {
            conn.data.registry.remove(&previous.sid());
            conn.remove_socket(&previous);
            handler
                .disconnected(&previous, DisconnectReason::ClientDisconnect)
                .await;
        }
    }
    let id = Sid::new();
    let request = conn.request.info();
    match handler.connect(id.as_str(), &nsp, auth, &request).await {
        Ok(state) => {
            let socket = Socket::new(id, nsp.clone(), state, Arc::downgrade(&conn));
            conn.state().layer.push(socket.clone());
            conn.data.registry.insert(id, socket.clone());
            conn.push_control(connect_packet(nsp, id).frames());
            tracing::debug!(sid = %conn.sid, socket = %id, nsp = %socket.namespace(), "socket connected");
            conn.yield_to_transport().await;
            handler.connected(&socket).await;
        }
        Err(ConnectError(message)) => {
            conn.push_control(connect_error_packet(nsp, &message).frames());
        }
    }
}
