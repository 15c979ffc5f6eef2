//! The chat itself, without sockets: matching strangers, relaying messages with delivery
//! receipts, typing, leaving and clearing, reconnect grace, files in messages, and WebRTC
//! signaling with the server-side call timer.
//!
//! Modules:
//! - [`delivery`]: [`Outgoing`] events and the [`Delivery`] interface ("deliver this event to
//!   user X") the transport implements — one process or many nodes behind Redis.
//! - [`links`]: what this node knows of its users' chats: room, partner away, call, receipts
//!   pending (pure, no I/O).
//! - [`service`]: [`ChatService`], which ties them to the shared [`chat_storage::ChatStore`]
//!   (queue, rooms), the session store, the delivery and timers.
//! - [`error`]: the errors of chat actions, [`ChatError`].
//!
//! Across nodes: the queue and the room records are shared through the store; everything
//! per message stays on the nodes. An event for a user is handled on the node holding their
//! socket ([`ChatService::receive`]), which updates that user's link before the socket sees
//! it, so each node knows its users' chats from the events they receive.
//!
//! Invariant: every public method of [`ChatService`] takes the sender from the caller (the
//! authenticated socket), never from a payload; events only ever reach the current partner.

pub mod delivery;
pub mod error;
pub mod links;
pub mod service;

pub use chat_domain::SearchFilters;
pub use delivery::{CloseReason, Delivery, FileUrls, Outgoing};
pub use error::ChatError;
pub use service::{ChatConfig, ChatService, SentMessage, SessionEnd};
