//! What every handler shares.

use std::sync::Arc;

use chat_storage::SessionStore;

use crate::auth::TokenService;
use crate::files::FileSigner;
use crate::metrics::Metrics;
use crate::moderation::Moderation;
use crate::realtime::Hub;
use crate::settings::Settings;

/// Shared state of the gateway, cloned into every worker (everything inside is shared).
#[derive(Clone)]
pub struct AppState {
    /// Settings, read-only.
    pub settings: Arc<Settings>,
    /// Sessions, indexes and files.
    pub store: Arc<dyn SessionStore>,
    /// Token signing and checking.
    pub tokens: TokenService,
    /// Process counters.
    pub metrics: Arc<Metrics>,
    /// Download URL signing.
    pub signer: FileSigner,
    /// Sockets, chat, presence and stats of this process.
    pub hub: Arc<Hub>,
    /// Reports and bans.
    pub moderation: Arc<Moderation>,
    /// This node is draining: no new sessions or sockets (the admin API's `drain`).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}
