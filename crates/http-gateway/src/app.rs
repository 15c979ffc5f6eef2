//! Start-up: build the state, bind the listener (port 0 works), run until told to stop.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_socketio::SocketIo;
use actix_web::{App, HttpServer, web};
use chat_storage::bus::BusSubscription;
use chat_storage::{ChatStore, FailoverStore, MemoryStore, SessionStore, StorageError, StorageMode, StoreConfig};

use crate::auth::TokenService;
use crate::files::FileSigner;
use crate::realtime::hub::ClusterLink;
use crate::realtime::{ChatHandler, Hub};
use crate::metrics::Metrics;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;

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
}

/// A built application: bound, not yet serving.
pub struct Application {
    address: SocketAddr,
    listener: TcpListener,
    state: AppState,
    socket_io: SocketIo<ChatHandler>,
    /// This node's bus subscription (with Redis), alive as long as the application.
    _subscription: Option<BusSubscription>,
}

impl Application {
    /// Builds the storage and state and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let store_config = StoreConfig {
            session_ttl: settings.session_ttl(),
            key_prefix: if settings.redis.key_prefix.is_empty() { "chat:".into() } else { settings.redis.key_prefix.clone() },
        };
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let (store, shared, cluster): (Arc<dyn SessionStore>, Arc<dyn ChatStore>, _) = match settings.redis_url() {
            Some(url) => {
                let failover = Arc::new(FailoverStore::connect(url, store_config).await?);
                let channel = failover.redis().node_channel(&node_id);
                let (subscription, inbox) = BusSubscription::subscribe(url, channel).await?;
                (failover.clone(), failover, Some((ClusterLink { node_id, inbox }, subscription)))
            }
            None => {
                let memory = Arc::new(MemoryStore::new(store_config));
                (memory.clone(), memory, None)
            }
        };
        let (cluster, subscription) = cluster.unzip();
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
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartError::Bind { address: address.clone(), source })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind { address, source })?;
        let tokens = TokenService::new(&secret, settings.session_ttl());
        let signer = FileSigner::new(&secret, Duration::from_secs(settings.files.url_ttl_secs));
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::start(&settings, store.clone(), shared, signer.clone(), metrics.clone(), cluster);
        let state = AppState { settings: Arc::new(settings), store, tokens, metrics, signer, hub };
        let socket_io = SocketIo::new(socket_io_config(&state.settings), ChatHandler::new(state.clone()));
        Ok(Self { address, listener, state, socket_io, _subscription: subscription })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Where sessions are stored right now.
    pub fn storage_mode(&self) -> StorageMode {
        self.state.store.health().mode
    }

    /// The shared state (for embedding and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, tells clients, drains and
    /// returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let state = self.state.clone();
        let workers = match state.settings.server.workers {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            workers => workers,
        };
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
        let app_state = web::Data::new(state.clone());
        let socket_io = self.socket_io.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|config| socket_io.configure(config))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .workers(workers)
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(grace.as_secs())
        .listen(self.listener)?
        .run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        shutdown.await;
        tracing::info!("shutting down: no new connections, telling clients, draining");
        let stopping = handle.stop(true);
        state.hub.announce_shutdown();
        // Clients are told and disconnected; a transport that does not drain in time is cut.
        let _ = tokio::time::timeout(grace, self.socket_io.close_all()).await;
        stopping.await;
        server_task.await.map_err(std::io::Error::other)?
    }
}

fn socket_io_config(settings: &Settings) -> actix_socketio::Config {
    actix_socketio::Config {
        ping_interval: Duration::from_millis(settings.presence.ping_interval_ms),
        ping_timeout: Duration::from_millis(settings.presence.ping_timeout_ms),
        max_payload: settings.limits.max_payload_bytes,
        ..actix_socketio::Config::default()
    }
}

/// 32 random bytes from the OS (two v4 UUIDs), for a per-process token secret.
fn random_secret() -> Vec<u8> {
    [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat()
}
