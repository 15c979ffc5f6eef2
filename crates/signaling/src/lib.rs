//! The chat itself, without sockets: matching strangers, relaying messages with delivery
//! receipts, typing, leaving and clearing, reconnect grace, files in messages, and WebRTC
//! signaling with the server-side call timer, on one node or many.
//!
//! Modules:
//! - [`delivery`]: [`Outgoing`] events and the [`Delivery`] interface ("hand this event to
//!   user X's socket on this node") the transport implements, and [`FileUrls`].
//! - [`links`]: what this node knows of its users' chats: room, partner away, call, receipts
//!   pending (pure, no I/O).
//! - [`service`]: [`ChatService`], which ties them to the shared [`chat_storage::ChatStore`]
//!   (queue, rooms), the session store, the delivery and timers; one file per concern
//!   (matching, relay and [`Receipt`]s, reconnect grace, calls, this node among others).
//! - [`cluster`]: the node-to-node protocol over a [`chat_storage::Cluster`]: the ordered
//!   forwarder of events for users on other nodes, the inbox, the directory claims.
//! - [`error`]: the errors of chat actions, [`ChatError`].
//!
//! Across nodes: the queue and the room records are shared through the store, the bus and
//! the user → node directory through the cluster; everything per message stays on the
//! nodes. An event for a user is handled on the node holding their socket, which updates that
//! user's link before the socket sees it, so each node knows its users' chats from the events
//! they receive. A relay between two users of one node touches neither store nor cluster.
//!
//! Invariants: every public method of [`ChatService`] takes the sender from the caller (the
//! authenticated socket), never from a payload; events only ever reach the current partner.
//! Timers and bus tasks run on the service's task tracker until [`ChatService::shutdown`];
//! nothing holds the service strongly but its owner (tasks and receipts hold it weakly).
//!
//! # Example
//!
//! A transport implements [`Delivery`] (here: every user is on this node, events are kept
//! in a list, receipts confirmed at once as a client's ack would) and calls [`ChatService`]
//! for each client event; `examples/two_users.rs` goes through a whole chat.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use chat_domain::{ChatPayload, FileId, GuestUser, Profile, Timestamp, UserId};
//! use chat_signaling::{ChatConfig, ChatParts, ChatService, Delivery, FileUrls, Outgoing, Receipt, SearchFilters};
//! use chat_storage::{MemoryStore, SessionStore, StoreConfig};
//!
//! #[derive(Default)]
//! struct Recorder {
//!     events: Mutex<Vec<(UserId, Outgoing)>>,
//!     receipts: Mutex<Vec<Receipt>>,
//! }
//!
//! impl Delivery for Recorder {
//!     fn is_local(&self, _to: &UserId) -> bool {
//!         true
//!     }
//!     fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>) {
//!         self.events.lock().unwrap().push((to.clone(), event));
//!         self.receipts.lock().unwrap().extend(receipt);
//!     }
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
//! let parts = ChatParts { sessions: store.clone(), shared: store.clone(), delivery: events.clone(), urls: Arc::new(Urls), cluster: None, blocks: None };
//! let chat = ChatService::new(ChatConfig::default(), parts, || {});
//!
//! let (alice, bob) = (GuestUser::new(Profile::default(), Timestamp::now()), GuestUser::new(Profile::default(), Timestamp::now()));
//! store.create(&alice).await?;
//! store.create(&bob).await?;
//! chat.search(&alice.id, SearchFilters::default()).await?;
//! chat.search(&bob.id, SearchFilters::default()).await?;
//! let found = events.events.lock().unwrap().iter().filter(|(_, event)| matches!(event, Outgoing::Found { .. })).count();
//! assert_eq!(found, 2, "both users are told");
//! assert_eq!(chat.room_of(&alice.id).await, chat.room_of(&bob.id).await);
//!
//! // Bob's client acknowledges Alice's message: she hears of it once.
//! chat.send_message(&alice.id, ChatPayload::from_json(&serde_json::json!({"content": "hi"}))?).await?;
//! let receipt = events.receipts.lock().unwrap().pop().expect("a message comes with its receipt");
//! assert!(receipt.confirm());
//! assert!(events.events.lock().unwrap().iter().any(|(to, event)| to == &alice.id && matches!(event, Outgoing::Delivered { .. })));
//!
//! chat.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod cluster;
pub mod delivery;
pub mod error;
pub mod links;
pub mod service;

pub use chat_domain::SearchFilters;
pub use cluster::{ClusterObserver, DropReason, Membership};
pub use delivery::{CloseReason, Delivery, FileUrls, Outgoing};
pub use error::ChatError;
pub use service::{ChatConfig, ChatParts, ChatService, Receipt, SentMessage, SessionEnd};
