//! The session lifecycle and live statistics, transport-agnostic.
//!
//! The gateway's socket handler and REST routes translate between their wire and these calls;
//! every presence rule (which flags a step writes, when the TTL slides, when a user is shown
//! offline, when the counters move) lives here.
//!
//! Modules:
//! - [`lifecycle`]: [`SessionLifecycle`], one method per step of a session's life (created,
//!   socket connected, activity, online flag, disconnected, ended, replaced, deleted): the
//!   store writes of the step and a poke of the stats when the counters may have changed.
//!   Steps whose events the caller still has to deliver return a [`StatsChange`] to announce
//!   afterwards, so a snapshot never overtakes them.
//! - [`sweeper`]: the lifecycle's background sweeps: connected users gone stale are shown
//!   offline ([`SessionLifecycle::stale_sweeper`]), expired sessions are removed
//!   ([`SessionLifecycle::expiry_sweeper`]).
//! - [`presence`]: [`PresenceTracker`], the activity of this process's connected users: when
//!   to slide a session's TTL in the store, who has gone stale.
//! - [`broadcast`]: [`StatsBroadcaster`], which turns "something changed" pokes into at most
//!   one [`RealtimeStats`] per interval, only when the snapshot changed, handed to a
//!   [`StatsSink`] that encodes it once for every socket.
//!
//! Background work (the broadcaster and both sweeps) comes as futures that run until a
//! [`CancellationToken`](tokio_util::sync::CancellationToken) is cancelled: the caller spawns
//! them, on a [`TaskTracker`](tokio_util::task::TaskTracker) for instance, and cancels and
//! awaits them on shutdown. Nothing is aborted on drop.
//!
//! # Example
//!
//! Three users connect: the pokes coalesce into one snapshot; without activity they are shown
//! offline once (`examples/live_stats.rs` runs the expiry sweep too):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! use chat_domain::{GuestUser, Profile, Timestamp};
//! use chat_presence_stats::{RealtimeStats, SessionLifecycle, StatsBroadcaster, StatsSink};
//! use chat_storage::{MemoryStore, SessionStore, StoreConfig};
//! use tokio_util::sync::CancellationToken;
//! use tokio_util::task::TaskTracker;
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
//! let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreConfig::default()));
//! let sink = Arc::new(Snapshots::default());
//! let broadcaster = StatsBroadcaster::new(store.clone(), sink.clone(), Duration::from_secs(1), Duration::from_secs(5));
//! let lifecycle = SessionLifecycle::new(store.clone(), Duration::from_secs(90), broadcaster.trigger());
//! let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
//! tasks.spawn(broadcaster.run(shutdown.clone()));
//! tasks.spawn(lifecycle.stale_sweeper(shutdown.clone()));
//!
//! for socket in ["a", "b", "c"] {
//!     let user = GuestUser::new(Profile::default(), Timestamp::now());
//!     lifecycle.create(&user).await?;
//!     let connected = lifecycle.connected(&user.id, socket).await?.expect("a live session");
//!     assert!(connected.user.is_online);
//!     connected.change.announce(); // after telling the socket
//! }
//! tokio::time::sleep(Duration::from_secs(2)).await;
//! let snapshots = sink.0.lock().unwrap().clone();
//! assert_eq!(snapshots.len(), 1, "three pokes, one snapshot");
//! assert_eq!(snapshots[0].stats.online_users, 3);
//!
//! tokio::time::sleep(Duration::from_secs(91)).await;
//! assert_eq!(store.stats(Timestamp::now()).await?.online_users, 0, "stale: shown offline");
//!
//! shutdown.cancel();
//! tasks.close();
//! tasks.wait().await;
//! # Ok(())
//! # }
//! ```

pub mod broadcast;
pub mod lifecycle;
pub mod presence;
pub mod sweeper;

pub use broadcast::{RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger};
pub use lifecycle::{Connected, SessionLifecycle, StatsChange};
pub use presence::{ActivityOutcome, PresenceTracker};
