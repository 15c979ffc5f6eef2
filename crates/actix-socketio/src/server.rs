//! [`SocketIo`]: the server handle an application builds, mounts on actix-web and keeps to
//! find sockets, broadcast and shut down.

use std::{future::Future, sync::Arc};

use actix_web::{HttpRequest, web};
use engineioxide_core::Sid;
use socketioxide_core::parser::ParseConfig;
use tokio::{sync::Notify, time::Instant};

use crate::{
    config::Config,
    conn::Conn,
    engine::ErasedEngine,
    handler::{DisconnectReason, Handler},
    packet::{EncodedPacket, disconnect_packet},
    registry::Registry,
    socket::Socket,
    transport,
};

/// State shared by every connection of one server.
pub(crate) struct Shared<H: Handler> {
    pub(crate) config: Config,
    pub(crate) parse_config: ParseConfig,
    pub(crate) handler: H,
    pub(crate) sessions: Registry<Arc<Conn<H::State>>>,
    pub(crate) sockets: Arc<Registry<Socket<H::State>>>,
    /// Set for a plain Engine.IO server ([`EngineIo`](crate::EngineIo)): message packets go to
    /// it undecoded, and no CONNECT is awaited.
    pub(crate) engine: Option<Arc<dyn ErasedEngine>>,
    sessions_empty: Notify,
}

impl<H: Handler> Shared<H> {
    pub(crate) fn new(config: Config, handler: H, engine: Option<Arc<dyn ErasedEngine>>) -> Self {
        let parse_config = ParseConfig {
            max_incoming_binary_buf_size: config.max_payload,
            ..ParseConfig::default()
        };
        Self {
            config,
            parse_config,
            handler,
            sessions: Registry::new(),
            sockets: Arc::new(Registry::new()),
            engine,
            sessions_empty: Notify::new(),
        }
    }

    pub(crate) fn remove_session(&self, sid: &Sid) {
        if self.sessions.remove(sid).is_some() && self.sessions.len() == 0 {
            self.sessions_empty.notify_waiters();
        }
    }

    /// Mounts the endpoint at the configured path, with and without its trailing slash.
    pub(crate) fn mount(shared: &Arc<Self>, cfg: &mut web::ServiceConfig) {
        let path = shared.config.normalized_path();
        let mut paths = vec![path.clone()];
        if path != "/" {
            paths.push(path.trim_end_matches('/').to_owned());
        }
        let shared = Arc::clone(shared);
        cfg.service(
            web::resource(paths).to(move |request: HttpRequest, body: web::Payload| {
                transport::handle(Arc::clone(&shared), request, body)
            }),
        );
    }

    /// See [`SocketIo::close_all`].
    pub(crate) fn close_all(shared: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(shared);
        async move {
            for conn in shared.sessions.collect(|_| true) {
                let sockets = conn.state().sockets.clone();
                for socket in &sockets {
                    conn.push_control(disconnect_packet(socket.nsp().clone()).frames());
                }
                conn.close(DisconnectReason::ServerShutdown);
            }
            let deadline = Instant::now() + shared.config.ping_timeout;
            loop {
                let emptied = shared.sessions_empty.notified();
                if shared.sessions.len() == 0 {
                    break;
                }
                if tokio::time::timeout_at(deadline, emptied).await.is_err() {
                    tracing::warn!(
                        remaining = shared.sessions.len(),
                        "connections still open after the shutdown grace"
                    );
                    break;
                }
            }
        }
    }
}

/// A Socket.IO server: cheap to clone, every clone is the same server.
pub struct SocketIo<H: Handler> {
    shared: Arc<Shared<H>>,
}

impl<H: Handler> Clone for SocketIo<H> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<H: Handler> SocketIo<H> {
    /// A server with `config`, calling `handler` for every socket.
    pub fn new(config: Config, handler: H) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, handler, None)),
        }
    }

    /// The application's handler.
    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Mounts the Engine.IO endpoint (GET, POST, OPTIONS) at the configured path, with and
    /// without its trailing slash: `App::new().configure(|cfg| io.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        Shared::mount(&self.shared, cfg);
    }

    /// The connected socket with this id, on any namespace.
    pub fn socket(&self, id: &str) -> Option<Socket<H::State>> {
        let sid = id.parse::<Sid>().ok()?;
        self.shared.sockets.get(&sid)
    }

    /// How many sockets are connected, over all namespaces.
    pub fn connected_count(&self) -> usize {
        self.shared.sockets.len()
    }

    /// How many Engine.IO connections are open (with or without a socket).
    pub fn connection_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Queues `packet` (encoded once, for namespace `nsp`) on every connected socket of `nsp`;
    /// returns to how many it was queued.
    pub fn broadcast(&self, nsp: &str, packet: &EncodedPacket) -> usize {
        self.shared
            .sockets
            .collect(|socket| socket.namespace() == nsp)
            .iter()
            .filter(|socket| socket.emit_encoded(packet).is_ok())
            .count()
    }

    /// Graceful shutdown: every socket gets a DISCONNECT, then every transport closes and the
    /// handler hears [`DisconnectReason::ServerShutdown`]. Resolves once all connections are
    /// gone, or after the ping timeout for clients that stopped reading.
    ///
    /// Await it before stopping the `HttpServer` (`ServerHandle::stop`): the workers run the
    /// connections, and a long-polling client receives its last packets, then the close, on
    /// its next GET requests, which a stopping server no longer accepts.
    pub fn close_all(&self) -> impl Future<Output = ()> + Send + 'static {
        Shared::close_all(&self.shared)
    }
}
