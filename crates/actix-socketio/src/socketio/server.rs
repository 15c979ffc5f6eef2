//! [`SocketIo`]: the server handle an application builds, mounts on actix-web and keeps to
//! find sockets, broadcast and shut down.

use std::{future::Future, sync::Arc};

use actix_web::web;
use engineioxide_core::Sid;

use crate::{
    config::Config,
    engine::{server::Engine, transport},
    socketio::{
        handler::Handler,
        layer::{SocketEngine, SocketLayer},
        packet::EncodedPacket,
        socket::Socket,
    },
};

/// A Socket.IO server: cheap to clone, every clone is the same server.
pub struct SocketIo<H: Handler> {
    engine: Arc<SocketEngine<H>>,
}

impl<H: Handler> Clone for SocketIo<H> {
    fn clone(&self) -> Self {
        Self {
            engine: Arc::clone(&self.engine),
        }
    }
}

impl<H: Handler> SocketIo<H> {
    /// A server with `config`, calling `handler` for every socket.
    pub fn new(config: Config, handler: H) -> Self {
        let layer = SocketLayer::new(&config, handler);
        Self {
            engine: Arc::new(Engine::new(config, layer)),
        }
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.engine.protocol.handler
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// Mounts the Engine.IO endpoint (GET, POST, OPTIONS) at the configured path, with and
    /// without its trailing slash: `App::new().configure(|cfg| io.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        transport::mount(&self.engine, cfg);
    }

    /// The connected socket with this id, on any namespace.
    pub fn socket(&self, id: &str) -> Option<Socket<H::State>> {
        let sid = id.parse::<Sid>().ok()?;
        self.engine.protocol.sockets.get(&sid)
    }

    /// How many sockets are connected, over all namespaces.
    pub fn connected_count(&self) -> usize {
        self.engine.protocol.sockets.len()
    }

    /// How many Engine.IO connections are open (with or without a socket).
    pub fn connection_count(&self) -> usize {
        self.engine.sessions.len()
    }

    /// Queues `packet` (encoded once, for namespace `nsp`) on every connected socket of `nsp`;
    /// returns to how many it was queued.
    pub fn broadcast(&self, nsp: &str, packet: &EncodedPacket) -> usize {
        self.engine
            .protocol
            .sockets
            .collect(|socket| socket.namespace() == nsp)
            .iter()
            .filter(|socket| socket.emit_encoded(packet).is_ok())
            .count()
    }

    /// Graceful shutdown: every socket gets a DISCONNECT, then every transport closes and the
    /// handler hears
    /// [`DisconnectReason::ServerShutdown`](crate::DisconnectReason::ServerShutdown).
    /// Resolves once all connections are gone and the handler's last calls for them
    /// (`disconnected` included) returned, or after the ping timeout for clients that stopped
    /// reading.
    ///
    /// Await it before stopping the `HttpServer` (`ServerHandle::stop`): the workers run the
    /// connections, and a long-polling client receives its last packets, then the close, on
    /// its next GET requests, which a stopping server no longer accepts.
    pub fn close_all(&self) -> impl Future<Output = ()> + Send + 'static {
        Engine::close_all(&self.engine)
    }
}
