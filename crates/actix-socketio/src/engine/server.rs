//! [`Engine`]: the state shared by every connection of one Engine.IO server, and
//! [`Protocol`], what the layer on top of it implements (the Socket.IO layer, or the adapter
//! of a plain [`EngineHandler`](crate::EngineHandler)).
//!
//! The engine is generic over its protocol: every hook is called statically, and the only
//! boxed future per handler call is the one the connection's task keeps in flight.

use std::{future::Future, sync::Arc, time::Duration};

use actix_web::HttpRequest;
use bytes::Bytes;
use engineioxide_core::{Packet as EnginePacket, Sid, Str};
use tokio::{sync::Notify, time::Instant};
use tokio_util::task::TaskTracker;

use crate::{
    config::Config,
    engine::{
        conn::{Conn, ConnData, Transport, WorkFuture},
        reason::DisconnectReason,
        request::StoredRequest,
    },
    registry::Registry,
};

/// A message packet from the client, as the transport decoded it.
pub(crate) enum Incoming {
    /// A text message (`4…`), without the packet type.
    Text(Str),
    /// A binary message: a WebSocket binary frame, or `b<base64>` on polling.
    Binary(Bytes),
}

/// The layer on top of Engine.IO: what it keeps per connection, and the hooks the transports
/// and the connection's task call. Message packets are handled synchronously, in the reading
/// transport; anything that calls the application is queued as [`ConnData::Work`] and run by
/// the connection's task, one call at a time.
pub(crate) trait Protocol: Send + Sync + Sized + 'static {
    /// What the layer keeps in each connection.
    type Data: ConnData<Work: Send + 'static, Locked: Send + 'static> + Send + Sync + 'static;

    /// Admission of a new connection (a handshake), before anything is allocated for it;
    /// awaited by the request's handler (so not `Send`).
    fn allow_handshake(&self, request: &HttpRequest) -> impl Future<Output = bool>;

    /// The layer's data of a new connection.
    fn conn_data(&self) -> Self::Data;

    /// How long a new connection may go without the layer being established
    /// ([`ConnData::established`]) before it is closed; `None` for no limit.
    fn establish_timeout(config: &Config) -> Option<Duration>;

    /// A new connection, before its first packet is read.
    fn opened(&self, conn: &Arc<Conn<Self::Data>>);

    /// One message packet from the client; `Err` closes the connection for that reason.
    fn message(
        &self,
        conn: &Arc<Conn<Self::Data>>,
        message: Incoming,
    ) -> Result<(), DisconnectReason>;

    /// Starts a queued call, on the connection's task.
    fn start(
        engine: &Arc<Engine<Self>>,
        conn: &Arc<Conn<Self::Data>>,
        work: <Self::Data as ConnData>::Work,
    ) -> WorkFuture;

    /// Whether a call still queued when the connection closed runs before
    /// [`Protocol::closed`].
    fn runs_after_close(work: &<Self::Data as ConnData>::Work) -> bool;

    /// A ping was just queued (once per ping interval).
    fn heartbeat(conn: &Conn<Self::Data>, now: Instant);

    /// The server is shutting down: the last packets before the connection closes.
    fn shutdown(conn: &Conn<Self::Data>);

    /// The connection is gone, after its queued calls ran: the last calls to the application.
    fn closed(
        engine: &Arc<Engine<Self>>,
        conn: &Arc<Conn<Self::Data>>,
        reason: DisconnectReason,
    ) -> impl Future<Output = ()> + Send;
}

/// State shared by every connection of one server.
pub(crate) struct Engine<P: Protocol> {
    pub(crate) config: Config,
    pub(crate) protocol: P,
    pub(crate) sessions: Registry<Arc<Conn<P::Data>>>,
    sessions_empty: Notify,
    /// Every connection's task, and the tasks that write a closing WebSocket's last frames: a
    /// connection leaves [`Engine::sessions`] when its end begins, its task ends after the
    /// protocol's last calls ([`Protocol::closed`]) returned.
    pub(crate) tasks: TaskTracker,
}

impl<P: Protocol> Engine<P> {
    pub(crate) fn new(config: Config, protocol: P) -> Self {
        Self {
            config,
            protocol,
            sessions: Registry::new(),
            sessions_empty: Notify::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// A new connection for `request`, registered with the server.
    pub(crate) fn open_conn(
        &self,
        request: &HttpRequest,
        transport: Transport,
    ) -> Arc<Conn<P::Data>> {
        let conn = Arc::new(Conn::new(
            StoredRequest::capture(request),
            transport,
            self.protocol.conn_data(),
            self.config.outbound_queue,
            self.config.ping_interval,
        ));
        self.protocol.opened(&conn);
        self.sessions.insert(conn.sid, Arc::clone(&conn));
        tracing::debug!(sid = %conn.sid, ?transport, "connection opened");
        conn
    }

    pub(crate) fn remove_session(&self, sid: &Sid) {
        if self.sessions.remove(sid).is_some() && self.sessions.len() == 0 {
            self.sessions_empty.notify_waiters();
        }
    }

    /// Handles one Engine.IO packet from the client; `Err` means the connection must close.
    pub(crate) fn ingest(
        &self,
        conn: &Arc<Conn<P::Data>>,
        packet: EnginePacket,
    ) -> Result<(), DisconnectReason> {
        match packet {
            EnginePacket::Close => Err(DisconnectReason::TransportClose),
            EnginePacket::Pong => {
                conn.pong(self.config.ping_interval);
                Ok(())
            }
            EnginePacket::Message(data) => self.protocol.message(conn, Incoming::Text(data)),
            EnginePacket::Binary(data) | EnginePacket::BinaryV3(data) => {
                self.protocol.message(conn, Incoming::Binary(data))
            }
            // Pings, probes, upgrades and noops mean nothing on an established transport.
            _ => Ok(()),
        }
    }

    /// Graceful shutdown: every connection gets the protocol's last packets and closes after
    /// them; resolves once all are gone and their tasks ended (the protocol's last calls
    /// returned, the last WebSocket frames written), or after the ping timeout.
    pub(crate) fn close_all(engine: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let engine = Arc::clone(engine);
        async move {
            for conn in engine.sessions.collect(|_| true) {
                P::shutdown(&conn);
                conn.close(DisconnectReason::ServerShutdown);
            }
            // Closed for good: from now on `wait` resolves whenever no task is left, which is
            // what a later `close_all` waits for as well.
            engine.tasks.close();
            let deadline = Instant::now() + engine.config.ping_timeout;
            let drained = async {
                loop {
                    let emptied = engine.sessions_empty.notified();
                    if engine.sessions.len() == 0 {
                        break;
                    }
                    emptied.await;
                }
                // A connection leaves the registry as its end begins: its task still runs the
                // handler's last calls.
                engine.tasks.wait().await;
            };
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!(
                    remaining = engine.sessions.len(),
                    tasks = engine.tasks.len(),
                    "connections still open after the shutdown grace"
                );
            }
        }
    }
}
