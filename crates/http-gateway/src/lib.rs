//! The edge of the random-chat service: actix-web REST routes, JWT authentication, client
//! addresses behind proxies, rate limits, and the contract's error shape.
//!
//! Modules:
//! - [`settings`]: the [`Settings`] struct every deployment configures.
//! - [`admin`]: the operator's API (reports, bans, disconnect, drain, metrics) on a listener
//!   of its own, behind `admin.token`.
//! - [`app`]: [`Application`]: build (binds, port 0 works), then `run_until_stopped`; and
//!   [`Gateway`], the same services to mount into another actix-web app.
//! - [`routes`]: the REST routes of the contract.
//! - [`auth`]: tokens and the [`auth::AuthUser`] extractor.
//! - [`error`]: [`ApiError`], the one mapping onto the contract's codes.
//! - [`client_ip`]: the client's address, believing `X-Forwarded-For` only from trusted proxies.
//! - [`body`]: body reading with hard limits.
//! - [`files`]: uploads into the current chat and signed download URLs.
//! - [`realtime`]: the Socket.IO handler, the socket registry, deliveries and broadcasts.
//! - [`metrics`]: Prometheus counters.
//! - [`openapi`]: the OpenAPI 3.1 document of the REST API, served at `/api/openapi.json`.
//! - [`state`]: [`AppState`], shared by every handler.
//! - [`web`]: the web client's page and assets, embedded, served at `/` with a strict CSP.
//!
//! To run the service on its own listener use [`Application`] (what `chat-server` does); to
//! mount it into another actix-web app, at the root or under a path, use [`Gateway`]
//! (`examples/embed.rs`).

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod client_ip;
pub mod error;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod moderation;
pub mod openapi;
pub mod realtime;
pub mod routes;
pub mod settings;
pub mod state;
pub mod web;

pub use app::{Application, Gateway, StartError};
pub use error::ApiError;
pub use settings::Settings;
pub use state::AppState;
