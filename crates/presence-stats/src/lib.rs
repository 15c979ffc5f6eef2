//! Presence and live statistics, transport-agnostic.
//!
//! Modules:
//! - [`presence`]: [`PresenceTracker`], the activity of this process's users: when to slide a
//!   session's TTL in the store, who has gone stale and must be shown offline.
//! - [`broadcast`]: [`StatsBroadcaster`], which turns "something changed" pokes into at most
//!   one [`RealtimeStats`] per interval, only when the snapshot changed, handed to a
//!   [`StatsSink`] that encodes it once for every socket.
//! - [`sweeper`]: the periodic sweep of expired sessions.

pub mod broadcast;
pub mod presence;
pub mod sweeper;

pub use broadcast::{RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger};
pub use presence::PresenceTracker;
pub use sweeper::spawn_expiry_sweeper;
