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
//!
//! # Example
//!
//! A transport implements [`Delivery`] (here: every user is on this node, events are kept
//! in a list) and calls [`ChatService`] for each client event; `examples/two_users.rs` goes
//! through a whole chat.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use chat_domain::{FileId, GuestUser, Profile, Timestamp, UserId};
//! use chat_signaling::{ChatConfig, ChatService, Delivery, FileUrls, Outgoing, SearchFilters};
//! use chat_storage::{MemoryStore, SessionStore, StoreConfig};
//!
//! #[derive(Default)]
//! struct Recorder(Mutex<Vec<(UserId, Outgoing)>>);
//!
//! impl Delivery for Recorder {
//!     fn is_local(&self, _to: &UserId) -> bool {
//!         true
//!     }
//!     fn deliver_local(&self, to: &UserId, event: Outgoing) {
//!         self.0.lock().unwrap().push((to.clone(), event));
//!     }
//!     fn forward(&self, _to: &UserId, _event: Outgoing) {}
//! }
//!
//! struct Urls;
//!
//! impl FileUrls for Urls {
//!     fn url_for(&self, file: &FileId, viewer: &UserId) -> String {
//!         format!("/api/files/{file}?u={viewer}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new(StoreConfig::default()));
//! let events = Arc::new(Recorder::default());
//! let chat = ChatService::new(ChatConfig::default(), store.clone(), store.clone(), events.clone(), Arc::new(Urls), || {});
//!
//! let (alice, bob) = (GuestUser::new(Profile::default(), Timestamp::now()), GuestUser::new(Profile::default(), Timestamp::now()));
//! store.create(&alice).await?;
//! store.create(&bob).await?;
//! chat.search(&alice.id, SearchFilters::default()).await?;
//! chat.search(&bob.id, SearchFilters::default()).await?;
//!
//! let found = events.0.lock().unwrap().iter().filter(|(_, event)| matches!(event, Outgoing::Found { .. })).count();
//! assert_eq!(found, 2, "both users are told");
//! assert_eq!(chat.room_of(&alice.id).await, chat.room_of(&bob.id).await);
//! # Ok(())
//! # }
//! ```

pub mod delivery;
pub mod error;
pub mod links;
pub mod service;

pub use chat_domain::SearchFilters;
pub use delivery::{CloseReason, Delivery, FileUrls, Outgoing};
pub use error::ChatError;
pub use service::{ChatConfig, ChatService, SentMessage, SessionEnd};
