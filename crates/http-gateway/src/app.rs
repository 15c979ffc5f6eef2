//! Start-up: build the state, bind the listener (port 0 works), run until told to stop.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_socketio::{SocketIo, takeover};
use actix_web::dev::AppConfig;
use actix_web::{App, Scope, web};
use chat_signaling::Membership;
use chat_storage::redis::{RedisCluster, RedisObserver};
use chat_storage::{
    ChatStore, FailoverStore, MemoryStore, ModerationStore, SessionStore, StorageError,
    StorageMode, StoreConfig,
};

use crate::admin::AdminListener;
use crate::auth::TokenService;
use crate::files::FileSigner;
use crate::metrics::Metrics;
use crate::moderation::Moderation;
use crate::openapi::{self, OpenApiJson};
use crate::realtime::{ChatHandler, Hub};
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;

/// The stores one node works over (sessions, shared chat state, moderation) and, with Redis,
/// its place in the cluster.
type Stores<C> = (
    Arc<dyn SessionStore>,
    Arc<dyn ChatStore>,
    Arc<dyn ModerationStore>,
    C,
);

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("could not bind {address}: {source}")]
    Bind {
        /// What was asked for.
        address: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The storage could not be set up.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// `admin.port` is set without an `admin.token` of at least 32 bytes.
    #[error("admin.token: required with admin.port, at least 32 bytes")]
    AdminToken,
}

/// The gateway's services without a listener, to mount into any actix-web `App`: the REST
/// routes, `GET /api/openapi.json`, the Socket.IO endpoint and the web client, sharing one
/// state. [`Application`] serves one on its own listener; another service can mount one next
/// to its own routes, at the root ([`Gateway::configure`]) or under a path
/// ([`Gateway::build_under`] and [`Gateway::scope`]).
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
/// use chat_http_gateway::{Gateway, Settings};
///
/// # async fn run() -> std::io::Result<()> {
/// let gateway = Gateway::build_under(Settings::default(), "/chat").await.map_err(std::io::Error::other)?;
/// let mounted = gateway.clone();
/// let server = HttpServer::new(move || App::new().service(mounted.scope()).route("/", web::get().to(|| async { "home" })))
///     .disable_signals()
///     .bind(("127.0.0.1", 8080))?
///     .run();
/// let handle = server.handle();
/// let serving = actix_web::rt::spawn(server);
/// tokio::signal::ctrl_c().await?;
/// gateway.shutdown().await; // before the listener closes: polling clients still fetch `server:shutdown`
/// handle.stop(true).await;
/// serving.await.map_err(std::io::Error::other)??;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Gateway {
    state: AppState,
    socket_io: SocketIo<ChatHandler>,
    path_prefix: String,
    openapi: OpenApiJson,
    /// This node in the deployment (with Redis): its bus subscription and the directory.
    cluster: Option<Arc<RedisCluster>>,
}

impl Gateway {
    /// Builds the storage, the realtime hub and the Socket.IO server, for mounting at the root
    /// of an app. Needs a Tokio runtime (actix-web's is one): background tasks start here.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        Self::build_under(settings, "").await
    }

    /// Like [`Gateway::build`], for mounting under `path_prefix` (e.g. `/chat`): signed file
    /// URLs and the OpenAPI document carry the prefix, and clients connect Socket.IO with
    /// `path: "/chat/socket.io/"`.
    pub async fn build_under(settings: Settings, path_prefix: &str) -> Result<Self, StartError> {
        let path_prefix = normalize_prefix(path_prefix);
        let store_config = StoreConfig {
            session_ttl: settings.session_ttl(),
            key_prefix: if settings.redis.key_prefix.is_empty() {
                "chat:".into()
            } else {
                settings.redis.key_prefix.clone()
            },
            files: settings.file_limits(),
        };
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        // First: the Redis store and the cluster report to it from the start.
        let metrics = Arc::new(Metrics::new());
        let (store, shared, moderation, cluster): Stores<_> = match settings.redis_target() {
            Some(target) => {
                let observer: Arc<dyn RedisObserver> = metrics.clone();
                let failover =
                    FailoverStore::connect_observed(&target, store_config, Some(observer));
                let failover = Arc::new(failover.await?);
                let (cluster, inbox) =
                    RedisCluster::join(&target, failover.clone(), node_id).await?;
                let cluster = Arc::new(cluster);
                let membership = Membership {
                    cluster: cluster.clone(),
                    inbox,
                    node_timeout: Duration::from_secs(settings.cluster.node_timeout_secs),
                    observer: Some(metrics.clone()),
                };
                (
                    failover.clone(),
                    failover.clone(),
                    failover,
                    Some((membership, cluster)),
                )
            }
            None => {
                let memory = Arc::new(MemoryStore::new(store_config));
                (memory.clone(), memory.clone(), memory, None)
            }
        };
        let (membership, cluster) = cluster.unzip();
        let secret = match &settings.auth.jwt_secret {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "auth.jwt_secret is not set: using a random secret for this process only; tokens will not survive a restart \
                     and will not work on other nodes. Set CHAT__AUTH__JWT_SECRET (or JWT_SECRET) in production"
                );
                random_secret()
            }
        };
        let tokens = TokenService::new(&secret, settings.session_ttl());
        let signer = FileSigner::new(&secret, Duration::from_secs(settings.files.url_ttl_secs))
            .under(&path_prefix);
        let hub = Hub::start(
            &settings,
            store.clone(),
            shared,
            signer.clone(),
            metrics.clone(),
            membership,
            moderation.clone(),
        );
        let moderation = Arc::new(Moderation::new(
            moderation,
            &secret,
            settings.moderation.clone(),
            settings.session_ttl(),
        ));
        let state = AppState {
            settings: Arc::new(settings),
            store,
            tokens,
            metrics,
            signer,
            hub,
            moderation,
            draining: Arc::default(),
        };
        let socket_io = SocketIo::new(
            socket_io_config(&state.settings),
            ChatHandler::new(state.clone()),
        );
        let openapi = OpenApiJson::new(&path_prefix);
        Ok(Self {
            state,
            socket_io,
            path_prefix,
            openapi,
            cluster,
        })
    }

    /// Mounts every service on `config`, relative to where `config` is mounted. Unknown paths
    /// are left to the app; [`routes::not_found`] answers them in the contract's shape.
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        config.app_data(web::Data::new(self.state.clone()));
        self.socket_io.configure(config);
        openapi::configure(config, self.openapi.clone());
        routes::configure(config);
    }

    /// A scope at the gateway's path prefix holding every service, with the contract's 404
    /// for unknown paths under it.
    pub fn scope(&self) -> Scope {
        web::scope(&self.path_prefix)
            .configure(|config| self.configure(config))
            .default_service(web::to(routes::not_found))
    }

    /// The path prefix the gateway was built for (`""` at the root).
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Where sessions are stored right now.
    pub fn storage_mode(&self) -> StorageMode {
        self.state.store.health().mode
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Tells every connected client `server:shutdown` and closes the sockets, waiting at most
    /// `server.shutdown_grace_secs` for the transports to drain; then stops the realtime
    /// background work (sweeps, stats, chat timers, the bus) and waits for it. Call it once,
    /// before stopping the `HttpServer`: a long-polling client needs one more request to
    /// receive the news.
    pub async fn shutdown(&self) {
        self.state.hub.announce_shutdown();
        let grace = Duration::from_secs(self.state.settings.server.shutdown_grace_secs);
        // A transport that does not drain in time is cut.
        let _ = tokio::time::timeout(grace, self.socket_io.close_all()).await;
        self.state.hub.shutdown().await;
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await;
        }
    }
}

/// `""`, or `/` and the segments without a trailing slash.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// A built application: bound, not yet serving. This is what `chat-server` runs.
///
/// ```
/// use std::io::{Read, Write};
///
/// use chat_http_gateway::{Application, Settings};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut settings = Settings::default();
/// settings.server.port = 0; // a free port
/// settings.server.workers = 1;
/// let application = Application::build(settings).await?;
/// let address = application.address();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let serving = tokio::spawn(application.run_until_stopped(async {
///     let _ = stopped.await;
/// }));
///
/// let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
///     let mut stream = std::net::TcpStream::connect(address)?;
///     stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     stream.read_to_string(&mut answer)?;
///     Ok(answer)
/// })
/// .await??;
/// assert!(answer.starts_with("HTTP/1.1 200"));
///
/// let _ = stop.send(()); // what SIGTERM does in chat-server
/// serving.await??;
/// # Ok(())
/// # }
/// ```
pub struct Application {
    address: SocketAddr,
    listener: TcpListener,
    /// The admin API's listener, when `admin.port` is set.
    admin: Option<AdminListener>,
    gateway: Gateway,
}

impl Application {
    /// Builds the storage and state and binds the listener, and the admin API's when
    /// `admin.port` is set.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        // Bound first: a refused admin setting stops the start before any storage is set up.
        let admin = AdminListener::bind(&settings).await?;
        let gateway = Gateway::build(settings).await?;
        let listener = bind(&address).await.map_err(|source| StartError::Bind {
            address: address.clone(),
            source,
        })?;
        let address = listener
            .local_addr()
            .map_err(|source| StartError::Bind { address, source })?;
        Ok(Self {
            address,
            listener,
            admin,
            gateway,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The admin API's bound address, when `admin.port` is set.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::address)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Where sessions are stored right now.
    pub fn storage_mode(&self) -> StorageMode {
        self.gateway.storage_mode()
    }

    /// The shared state (for embedding and tests).
    pub fn state(&self) -> &AppState {
        self.gateway.state()
    }

    /// Serves until `shutdown` completes (the admin API too, when it is on), then stops
    /// accepting, tells clients, drains and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let settings = &self.gateway.state.settings;
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            workers => workers,
        };
        let grace = settings.server.shutdown_grace_secs;
        let gateway = self.gateway.clone();
        let make_app = move || {
            let gateway = gateway.clone();
            map_config(
                App::new()
                    .wrap_fn(crate::logging::request_span)
                    .configure(move |config| gateway.configure(config))
                    .default_service(web::to(routes::not_found))
                    .into_factory()
                    .map_err(|error| error.error_response()),
                |_| AppConfig::default(),
            )
        };
        let request_timeout = Duration::from_millis(settings.server.client_request_timeout_ms);
        let disconnect_timeout =
            Duration::from_millis(settings.server.client_disconnect_timeout_ms);
        // Like `HttpServer`, but WebSocket upgrades go to `takeover::upgrade_service`, which
        // hands each accepted WebSocket's TCP stream to its connection task instead of
        // keeping actix-http's HTTP/1 dispatcher (and its buffers) under it.
        let builder = Server::build();
        let stopping = builder.graceful_shutdown_signal();
        let server = builder
            .workers(workers)
            .disable_signals()
            .shutdown_timeout(grace)
            .listen("chat-server", self.listener, move || {
                let stopping = stopping.clone();
                HttpService::build()
                    .tcp_nodelay(true)
                    // Slow clients: a request head trickled in slower than this is cut with
                    // a 408.
                    .client_request_timeout(request_timeout)
                    .client_disconnect_timeout(disconnect_timeout)
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .upgrade(takeover::upgrade_service(make_app.clone()))
                    .finish(make_app())
                    .tcp()
            })?
            .run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        let admin = match self.admin {
            Some(admin) => {
                let server = admin.serve(self.gateway.state.clone())?;
                Some((server.handle(), tokio::spawn(server)))
            }
            None => None,
        };
        shutdown.await;
        tracing::info!("shutting down: telling clients, draining, then closing the listener");
        // Clients are told and closed first: a long-polling client needs one more request to
        // receive `server:shutdown`, which a stopped server would no longer accept.
        self.gateway.shutdown().await;
        handle.stop(true).await;
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            task.await.map_err(std::io::Error::other)??;
        }
        server_task.await.map_err(std::io::Error::other)?
    }
}

/// Connections the kernel queues for `accept` (std's `bind` asks for 128): a burst of
/// connects beyond the queue has its SYNs dropped and retried after 1, 3, 7 s by the clients.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `address` (host:port, first resolved address) with [`LISTEN_BACKLOG`].
pub(crate) async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let resolved = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let socket = if resolved.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(resolved)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

fn socket_io_config(settings: &Settings) -> actix_socketio::Config {
    actix_socketio::Config {
        ping_interval: Duration::from_millis(settings.presence.ping_interval_ms),
        ping_timeout: Duration::from_millis(settings.presence.ping_timeout_ms),
        max_payload: settings.limits.max_payload_bytes,
        connect_timeout: Duration::from_millis(settings.limits.connect_timeout_ms),
        outbound_queue: settings.limits.outbound_queue_frames,
        ..actix_socketio::Config::default()
    }
}

/// 32 random bytes from the OS (two v4 UUIDs), for a per-process token secret.
fn random_secret() -> Vec<u8> {
    [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat()
}
