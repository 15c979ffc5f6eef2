//! The chat itself, without sockets: matching strangers, relaying messages with delivery
//! receipts, typing, leaving and clearing, reconnect grace, files in messages, and WebRTC
//! signaling with the server-side call timer.
//!
//! Modules:
//! - [`delivery`]: [`Outgoing`] events and the [`Delivery`] interface ("deliver this event to
//!   user X") the transport implements — one process or many nodes behind Redis.
//! - [`matching`]: the search queue and filter compatibility (pure, no I/O).
//! - [`rooms`]: rooms, receipts pending, call state (pure, no I/O).
//! - [`service`]: [`ChatService`], which ties the two to the store, the delivery and timers.
//! - [`error`]: [`ChatError`].
//!
//! Invariant: every public method of [`ChatService`] takes the sender from the caller (the
//! authenticated socket), never from a payload; events only ever reach the current partner.

pub mod delivery;
pub mod error;
pub mod matching;
pub mod rooms;
pub mod service;

pub use delivery::{CloseReason, Delivery, FileUrls, Outgoing};
pub use error::ChatError;
pub use matching::SearchFilters;
pub use service::{ChatConfig, ChatService, SentMessage, SessionEnd};
