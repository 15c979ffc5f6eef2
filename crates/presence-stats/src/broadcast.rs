//! Coalesced `realtime:stats`: at most one per interval, only when something changed, and
//! within one interval of a change.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{PublicUser, Stats, Timestamp};
use chat_storage::SessionStore;
use tokio::sync::Notify;
use tokio::time::Instant;

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
}

/// The broadcast loop's handle; dropping it stops the loop.
pub struct StatsBroadcaster {
    trigger: StatsTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl StatsBroadcaster {
    /// Starts the loop on the current runtime. Besides pokes, it looks again every
    /// `refresh` (changes on other nodes, the active-users window moving).
    pub fn spawn(
        store: Arc<dyn SessionStore>,
        sink: Arc<dyn StatsSink>,
        interval: Duration,
        refresh: Duration,
    ) -> Self {
        let trigger = StatsTrigger::default();
        let notify = trigger.notify.clone();
        let task = tokio::spawn(run(store, sink, notify, interval, refresh));
        Self { trigger, task }
    }

    /// A trigger to poke on changes.
    pub fn trigger(&self) -> StatsTrigger {
        self.trigger.clone()
    }
}

impl Drop for StatsBroadcaster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    store: Arc<dyn SessionStore>,
    sink: Arc<dyn StatsSink>,
    notify: Arc<Notify>,
    interval: Duration,
    refresh: Duration,
) {
    let mut last: Option<RealtimeStats> = None;
    let mut last_sent: Option<Instant> = None;
    loop {
        // Wait for a change, or for the periodic look.
        let _ = tokio::time::timeout(refresh, notify.notified()).await;
        if let Some(sent) = last_sent {
            let next_allowed = sent + interval;
            if Instant::now() < next_allowed {
                tokio::time::sleep_until(next_allowed).await;
            }
        }
        let now = Timestamp::now();
        let stats = match store.stats(now).await {
            Ok(stats) => stats,
            Err(error) => {
                tracing::warn!(%error, "stats unavailable");
                continue;
            }
        };
        let online_users = match store.online_users(ONLINE_USERS_IN_SNAPSHOT, None).await {
            Ok(page) => page.users,
            Err(error) => {
                tracing::warn!(%error, "online users unavailable");
                continue;
            }
        };
        let snapshot = RealtimeStats {
            stats,
            online_users,
            timestamp: now,
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
