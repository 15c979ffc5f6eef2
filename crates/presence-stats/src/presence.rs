//! The activity of this process's connected users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chat_domain::UserId;
use tokio::time::Instant;

/// How often a user's activity is written to the store at most (their TTL slides then).
pub const STORE_TOUCH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Activity {
    last_activity: Instant,
    last_store_touch: Instant,
    stale: bool,
}

/// Tracks when each connected user of this process was last active.
#[derive(Debug)]
pub struct PresenceTracker {
    stale_after: Duration,
    users: Mutex<HashMap<UserId, Activity>>,
}

/// What a recorded activity asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityOutcome {
    /// Write the activity to the store now (slides the TTL, sets `lastSeen`).
    pub touch_store: bool,
    /// The user was shown offline for staleness: mark them online again.
    pub back_from_stale: bool,
}

impl PresenceTracker {
    /// A tracker that calls users stale after `stale_after` without activity.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// How long without activity makes a user stale.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Activity>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A user's socket connected (counts as activity, already written by the caller).
    pub fn connected(&self, user: &UserId) {
        let now = Instant::now();
        self.users().insert(
            user.clone(),
            Activity {
                last_activity: now,
                last_store_touch: now,
                stale: false,
            },
        );
    }

    /// A user's socket is gone.
    pub fn disconnected(&self, user: &UserId) {
        self.users().remove(user);
    }

    /// Records activity; `force` (a heartbeat) always asks for a store write.
    pub fn record(&self, user: &UserId, force: bool) -> ActivityOutcome {
        let now = Instant::now();
        let mut users = self.users();
        let Some(activity) = users.get_mut(user) else {
            return ActivityOutcome {
                touch_store: force,
                back_from_stale: false,
            };
        };
        activity.last_activity = now;
        let back_from_stale = std::mem::replace(&mut activity.stale, false);
        let touch_store = force
            || back_from_stale
            || now.duration_since(activity.last_store_touch) >= STORE_TOUCH_EVERY;
        if touch_store {
            activity.last_store_touch = now;
        }
        ActivityOutcome {
            touch_store,
            back_from_stale,
        }
    }

    /// Users inactive for `stale_after` that were not yet reported; each is reported once
    /// until it is active again.
    pub fn newly_stale(&self) -> Vec<UserId> {
        let now = Instant::now();
        let mut users = self.users();
        users
            .iter_mut()
            .filter(|(_, activity)| {
                !activity.stale && now.duration_since(activity.last_activity) >= self.stale_after
            })
            .map(|(user, activity)| {
                activity.stale = true;
                user.clone()
            })
            .collect()
    }

    /// Number of tracked users.
    pub fn len(&self) -> usize {
        self.users().len()
    }

    /// Whether no user is tracked.
    pub fn is_empty(&self) -> bool {
        self.users().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn users_go_stale_once_and_come_back_with_activity() {
        let tracker = PresenceTracker::new(Duration::from_secs(90));
        let user = UserId::generate();
        tracker.connected(&user);
        assert_eq!(
            tracker.record(&user, false),
            ActivityOutcome {
                touch_store: false,
                back_from_stale: false
            }
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            tracker.record(&user, false).touch_store,
            "throttled touches resume after 5 s"
        );
        assert!(
            tracker.record(&user, true).touch_store,
            "heartbeats always touch"
        );
        assert!(tracker.newly_stale().is_empty());
        tokio::time::advance(Duration::from_secs(91)).await;
        assert_eq!(tracker.newly_stale(), vec![user.clone()]);
        assert!(tracker.newly_stale().is_empty(), "reported once");
        assert_eq!(
            tracker.record(&user, false),
            ActivityOutcome {
                touch_store: true,
                back_from_stale: true
            }
        );
        tracker.disconnected(&user);
        assert!(tracker.is_empty());
    }
}
