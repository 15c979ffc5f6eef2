//! Presence and live statistics, transport-agnostic.
//!
//! Modules:
//! - [`presence`]: [`PresenceTracker`], the activity of this process's users: when to slide a
//!   session's TTL in the store, who has gone stale and must be shown offline.
//! - [`broadcast`]: [`StatsBroadcaster`], which turns "something changed" pokes into at most
//!   one [`RealtimeStats`] per interval, only when the snapshot changed, handed to a
//!   [`StatsSink`] that encodes it once for every socket.
//! - [`sweeper`]: the periodic sweep of expired sessions.
//!
//! # Example
//!
//! A sink receives coalesced snapshots; the tracker says who went stale
//! (`examples/live_stats.rs` runs both with the sweeper):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! use chat_domain::{GuestUser, Profile, Timestamp};
//! use chat_presence_stats::{PresenceTracker, RealtimeStats, StatsBroadcaster, StatsSink};
//! use chat_storage::{MemoryStore, SessionStore, StoreConfig};
//!
//! #[derive(Default)]
//! struct Snapshots(Mutex<Vec<RealtimeStats>>);
//!
//! impl StatsSink for Snapshots {
//!     fn broadcast(&self, snapshot: &RealtimeStats) {
//!         self.0.lock().unwrap().push(snapshot.clone());
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), chat_storage::StorageError> {
//! let store = Arc::new(MemoryStore::new(StoreConfig::default()));
//! let sink = Arc::new(Snapshots::default());
//! let broadcaster = StatsBroadcaster::spawn(store.clone(), sink.clone(), Duration::from_secs(1), Duration::from_secs(5));
//! let presence = PresenceTracker::new(Duration::from_secs(90));
//!
//! for _ in 0..3 {
//!     let user = GuestUser::new(Profile::default(), Timestamp::now());
//!     store.create(&user).await?;
//!     presence.connected(&user.id);
//!     broadcaster.trigger().poke();
//! }
//! tokio::time::sleep(Duration::from_secs(2)).await;
//! let snapshots = sink.0.lock().unwrap().clone();
//! assert_eq!(snapshots.len(), 1, "three pokes, one snapshot");
//! assert_eq!(snapshots[0].stats.total_users, 3);
//!
//! tokio::time::sleep(Duration::from_secs(90)).await;
//! assert_eq!(presence.newly_stale().len(), 3);
//! assert!(presence.newly_stale().is_empty(), "each is reported once");
//! # Ok(())
//! # }
//! ```

pub mod broadcast;
pub mod presence;
pub mod sweeper;

pub use broadcast::{RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger};
pub use presence::PresenceTracker;
pub use sweeper::spawn_expiry_sweeper;
