//! Coalesced `realtime:stats`: at most one per interval, only when something changed, and
//! within one interval of a change.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{PublicUser, Stats, Timestamp};
use chat_storage::SessionStore;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How many online users a snapshot carries.
pub const ONLINE_USERS_IN_SNAPSHOT: usize = 50;

/// What `realtime:stats` carries.
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeStats {
    /// The counters.
    pub stats: Stats,
    /// At most 50 online users, public views only.
    pub online_users: Vec<PublicUser>,
    /// When the snapshot was taken.
    pub timestamp: Timestamp,
}

/// Receives each snapshot to send to every socket. Implementations encode it once.
pub trait StatsSink: Send + Sync + 'static {
    /// Sends `snapshot` to everyone connected to this process.
    fn broadcast(&self, snapshot: &RealtimeStats);
}

/// Tells the broadcaster that the counters may have changed. Cheap, never blocks.
#[derive(Clone, Debug, Default)]
pub struct StatsTrigger {
    notify: Arc<Notify>,
}

impl StatsTrigger {
    /// Something changed: a snapshot follows within one interval.
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Whether a poke is pending, consuming it (pokes coalesce into one).
    #[cfg(test)]
    pub(crate) async fn take_poke(&self) -> bool {
        tokio::time::timeout(Duration::ZERO, self.notify.notified())
            .await
            .is_ok()
    }
}

/// The broadcast loop, built with [`StatsBroadcaster::new`] and run with
/// [`StatsBroadcaster::run`] until its shutdown token is cancelled.
pub struct StatsBroadcaster {
    store: Arc<dyn SessionStore>,
    sink: Arc<dyn StatsSink>,
    trigger: StatsTrigger,
    interval: Duration,
    refresh: Duration,
}

impl StatsBroadcaster {
    /// A loop that sends at most one snapshot per `interval` to `sink`. Besides pokes, it
    /// looks again every `refresh` (changes on other nodes, the active-users window moving).
    pub fn new(
        store: Arc<dyn SessionStore>,
        sink: Arc<dyn StatsSink>,
        interval: Duration,
        refresh: Duration,
    ) -> Self {
        Self {
            store,
            sink,
            trigger: StatsTrigger::default(),
            interval,
            refresh,
        }
    }

    /// A trigger to poke on changes; it stays valid (and cheap) after the loop stopped.
    pub fn trigger(&self) -> StatsTrigger {
        self.trigger.clone()
    }

    /// Runs the loop until `shutdown` is cancelled. Spawn it (on a
    /// [`TaskTracker`](tokio_util::task::TaskTracker), say) and await it on shutdown; a
    /// snapshot being taken when the token is cancelled is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            store,
            sink,
            trigger,
            interval,
            refresh,
        } = self;
        let mut last: Option<RealtimeStats> = None;
        let mut last_sent: Option<Instant> = None;
        loop {
            // Wait for a change, or for the periodic look.
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tokio::time::timeout(refresh, trigger.notify.notified()) => {}
            }
            if let Some(next_allowed) = last_sent
                .map(|sent| sent + interval)
                .filter(|next_allowed| Instant::now() < *next_allowed)
            {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(next_allowed) => {}
                }
            }
            let Some(snapshot) = take_snapshot(store.as_ref()).await else {
                continue;
            };
            let changed = last.as_ref().is_none_or(|previous| {
                previous.stats != snapshot.stats
                    || !same_users(&previous.online_users, &snapshot.online_users)
            });
            if changed {
                sink.broadcast(&snapshot);
                last_sent = Some(Instant::now());
                last = Some(snapshot);
            }
        }
    }
}

/// The counters and the first online users now; `None` (logged) when the store fails.
async fn take_snapshot(store: &dyn SessionStore) -> Option<RealtimeStats> {
    let now = Timestamp::now();
    let stats = match store.stats(now).await {
        Ok(stats) => stats,
        Err(error) => {
            tracing::warn!(%error, "stats unavailable");
            return None;
        }
    };
    let online_users = match store.online_users(ONLINE_USERS_IN_SNAPSHOT, None).await {
        Ok(page) => page.users,
        Err(error) => {
            tracing::warn!(%error, "online users unavailable");
            return None;
        }
    };
    Some(RealtimeStats {
        stats,
        online_users,
        timestamp: now,
    })
}

/// Compares two lists ignoring `lastSeen`, which moves with every heartbeat.
fn same_users(left: &[PublicUser], right: &[PublicUser]) -> bool {
    left.len() == right.len()
        && left.iter().zip(right).all(|(a, b)| {
            a.id == b.id
                && a.username == b.username
                && a.is_online == b.is_online
                && a.is_searching == b.is_searching
                && a.in_chat == b.in_chat
                && a.gender == b.gender
                && a.language == b.language
                && a.location == b.location
        })
}
