//! [`SessionLifecycle`]: what each step of a session's life writes to the store and whether
//! the live statistics move.
//!
//! A session is created, its socket connects (online, socket attached), every event is
//! activity (the TTL slides; a user shown offline for staleness is back online), the socket
//! disconnects (offline, socket detached), and in the end the session is deleted, expires
//! (see [`crate::sweeper`]) or moves to another node (replaced). Each method does the store
//! writes of its step and pokes the [`StatsBroadcaster`](crate::StatsBroadcaster) when the
//! counters may have changed; callers only translate between their transport and these calls.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{GuestUser, ProfileUpdate, Timestamp, UserId};
use chat_storage::{SessionPatch, SessionStore, StoreResult};

use crate::broadcast::StatsTrigger;
use crate::presence::{ActivityOutcome, PresenceTracker};

/// The session lifecycle of one process: the store writes and the stats pokes of each step.
/// Cheap to clone; clones share the tracker.
#[derive(Clone)]
pub struct SessionLifecycle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) tracker: PresenceTracker,
    pub(crate) stats: StatsTrigger,
}

/// A socket's session, now online with the socket attached.
#[derive(Debug)]
pub struct Connected {
    /// The session as written.
    pub user: GuestUser,
    /// The counters moved: announce it once the socket has been told.
    pub change: StatsChange,
}

/// A change to the counters that has not been announced yet. Dropping it, or
/// [`StatsChange::announce`], asks the broadcaster for a snapshot. Steps whose events the
/// caller still has to deliver (`connection:established`, a partner told that the user is
/// away) return one, so the snapshot never overtakes those events.
#[derive(Debug)]
#[must_use = "dropping it announces the change at once; hold it until the events are delivered"]
pub struct StatsChange {
    stats: StatsTrigger,
}

impl StatsChange {
    /// Announces the change: a snapshot follows within one interval.
    pub fn announce(self) {}
}

impl Drop for StatsChange {
    fn drop(&mut self) {
        self.stats.poke();
    }
}

impl SessionLifecycle {
    /// A lifecycle over `store` that calls connected users stale after `stale_after` without
    /// activity, and pokes `stats` on changes.
    pub fn new(store: Arc<dyn SessionStore>, stale_after: Duration, stats: StatsTrigger) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                tracker: PresenceTracker::new(stale_after),
                stats,
            }),
        }
    }

    /// A callback for other services whose changes move the counters (the chat's searching
    /// and in-chat flags): each call asks for a snapshot.
    pub fn on_change(&self) -> impl Fn() + Send + Sync + 'static {
        let stats = self.inner.stats.clone();
        move || stats.poke()
    }

    fn change(&self) -> StatsChange {
        StatsChange {
            stats: self.inner.stats.clone(),
        }
    }

    /// Stores a new session (`POST /api/guest`); the counters move.
    pub async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.inner.store.create(user).await?;
        self.inner.stats.poke();
        Ok(())
    }

    /// An authenticated request outside the socket is activity: slides the session's TTL and
    /// sets `lastSeen`. Returns the live session (`None`: gone).
    pub async fn request_activity(&self, user: &UserId) -> StoreResult<Option<GuestUser>> {
        let patch = SessionPatch {
            touch: Some(Timestamp::now()),
            ..SessionPatch::default()
        };
        self.inner.store.update(user, patch).await
    }

    /// Changes profile fields; the online list shows them, so the counters move when the
    /// session is live. Returns the updated session (`None`: gone, nothing written).
    pub async fn update_profile(
        &self,
        user: &UserId,
        update: ProfileUpdate,
    ) -> StoreResult<Option<GuestUser>> {
        let patch = SessionPatch {
            username: update.username,
            gender: update.gender,
            language: update.language,
            location: update.location,
            ..SessionPatch::default()
        };
        let updated = self.inner.store.update(user, patch).await?;
        if updated.is_some() {
            self.inner.stats.poke();
        }
        Ok(updated)
    }

    /// A socket of `user` with id `socket_id` connected: the connection is activity, the user
    /// is online with the socket attached, and tracked for staleness. `None`: the session
    /// vanished since the handshake (nothing is tracked, the counters did not move).
    pub async fn connected(
        &self,
        user: &UserId,
        socket_id: &str,
    ) -> StoreResult<Option<Connected>> {
        self.inner.tracker.connected(user);
        let now = Timestamp::now();
        let patch = SessionPatch {
            touch: Some(now),
            is_online: Some(true),
            socket: Some(Some((socket_id.to_owned(), now))),
            ..SessionPatch::default()
        };
        match self.inner.store.update(user, patch).await {
            Ok(Some(written)) => Ok(Some(Connected {
                user: written,
                change: self.change(),
            })),
            other => {
                self.inner.tracker.disconnected(user);
                other.map(|_| None)
            }
        }
    }

    /// An event from `user`'s socket: the session's TTL slides (in the store at most every
    /// [`STORE_TOUCH_EVERY`](crate::presence::STORE_TOUCH_EVERY), always on a `heartbeat`),
    /// and a user shown offline for staleness is online again (the counters move). A failed
    /// write is logged: activity never fails the event it came with.
    pub async fn activity(&self, user: &UserId, heartbeat: bool) -> ActivityOutcome {
        let outcome = self.inner.tracker.record(user, heartbeat);
        if !outcome.touch_store {
            return outcome;
        }
        let patch = SessionPatch {
            touch: Some(Timestamp::now()),
            is_online: outcome.back_from_stale.then_some(true),
            ..SessionPatch::default()
        };
        if let Err(error) = self.inner.store.update(user, patch).await {
            tracing::warn!(%error, "could not record activity");
        }
        if outcome.back_from_stale {
            self.inner.stats.poke();
        }
        outcome
    }

    /// The user says they are online or not (`presence:online`); the counters move. Returns
    /// the updated session (`None`: gone, nothing written).
    pub async fn set_online(&self, user: &UserId, online: bool) -> StoreResult<Option<GuestUser>> {
        let patch = SessionPatch {
            is_online: Some(online),
            ..SessionPatch::default()
        };
        let updated = self.inner.store.update(user, patch).await?;
        self.inner.stats.poke();
        Ok(updated)
    }

    /// `user`'s socket `socket_id` is gone: no longer tracked, offline with the socket detached
    /// unless the session names another socket by now (a failed write is logged). Announce the
    /// returned change once the chat has been told.
    pub async fn disconnected(&self, user: &UserId, socket_id: &str) -> StatsChange {
        self.inner.tracker.disconnected(user);
        // Only while the session still names this socket: the user may have connected on
        // another node meanwhile, which wrote them online with its socket.
        let patch = SessionPatch {
            is_online: Some(false),
            socket: Some(None),
            only_if_socket: Some(socket_id.to_owned()),
            ..SessionPatch::default()
        };
        if let Err(error) = self.inner.store.update(user, patch).await {
            tracing::warn!(%error, "could not mark a user offline");
        }
        self.change()
    }

    /// `user`'s session ended here (deleted or expired; its socket, if any, was closed by the
    /// caller): it is no longer tracked. The store is left to [`SessionLifecycle::delete`] or
    /// the expiry sweep.
    pub fn ended(&self, user: &UserId) {
        self.inner.tracker.disconnected(user);
    }

    /// `user` connected on another node, which writes their presence: this node no longer
    /// tracks them.
    pub fn replaced(&self, user: &UserId) {
        self.inner.tracker.disconnected(user);
    }

    /// Deletes `user`'s session (`DELETE /api/guest/me`, after [`SessionLifecycle::ended`]);
    /// the counters move. Returns what was deleted.
    pub async fn delete(&self, user: &UserId) -> StoreResult<Option<GuestUser>> {
        self.inner.tracker.disconnected(user);
        let deleted = self.inner.store.delete(user).await?;
        self.inner.stats.poke();
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
