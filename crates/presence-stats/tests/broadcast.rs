//! The coalescing rules of `realtime:stats`, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_domain::{GuestUser, Profile, Timestamp};
use chat_presence_stats::{RealtimeStats, StatsBroadcaster, StatsSink, StatsTrigger};
use chat_storage::memory::MemoryStore;
use chat_storage::{SessionPatch, SessionStore, StoreConfig};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

#[derive(Default)]
struct Sink {
    sent: Mutex<Vec<(Instant, RealtimeStats)>>,
}

impl StatsSink for Sink {
    fn broadcast(&self, snapshot: &RealtimeStats) {
        self.sent
            .lock()
            .unwrap()
            .push((Instant::now(), snapshot.clone()));
    }
}

impl Sink {
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

/// Runs a broadcaster until the returned guard is dropped.
fn spawn(
    store: Arc<dyn SessionStore>,
    sink: Arc<Sink>,
    interval: Duration,
    refresh: Duration,
) -> (StatsTrigger, DropGuard) {
    let broadcaster = StatsBroadcaster::new(store, sink, interval, refresh);
    let trigger = broadcaster.trigger();
    let shutdown = CancellationToken::new();
    tokio::spawn(broadcaster.run(shutdown.clone()));
    (trigger, shutdown.drop_guard())
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_snapshot_per_interval_and_only_on_change() {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let sink = Arc::new(Sink::default());
    let interval = Duration::from_millis(1000);
    let (trigger, _running) = spawn(
        store.clone(),
        sink.clone(),
        interval,
        Duration::from_secs(3600),
    );

    trigger.poke();
    settle().await;
    assert_eq!(sink.count(), 1, "the first poke is answered at once");

    // A poke with nothing changed sends nothing.
    tokio::time::advance(Duration::from_secs(2)).await;
    trigger.poke();
    settle().await;
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(sink.count(), 1);

    // A burst of changes inside one interval gives one snapshot, within that interval.
    let mut users = Vec::new();
    for _ in 0..5 {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        store.create(&user).await.unwrap();
        store
            .update(
                &user.id,
                SessionPatch {
                    is_online: Some(true),
                    ..SessionPatch::default()
                },
            )
            .await
            .unwrap();
        users.push(user);
        trigger.poke();
        settle().await;
    }
    let count = sink.count();
    assert_eq!(count, 2, "first change goes out at once");
    tokio::time::advance(interval).await;
    settle().await;
    assert_eq!(
        sink.count(),
        3,
        "the rest of the burst follows one interval later"
    );
    let sent = sink.sent.lock().unwrap().clone();
    assert!(
        sent[2].0 - sent[1].0 >= interval,
        "never two inside one interval"
    );
    let last = &sent[2].1;
    assert_eq!(last.stats.online_users, 5);
    assert_eq!(last.online_users.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn at_most_fifty_users_in_a_snapshot() {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    for _ in 0..60 {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        store.create(&user).await.unwrap();
        store
            .update(
                &user.id,
                SessionPatch {
                    is_online: Some(true),
                    ..SessionPatch::default()
                },
            )
            .await
            .unwrap();
    }
    let sink = Arc::new(Sink::default());
    let (trigger, _running) = spawn(
        store,
        sink.clone(),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    trigger.poke();
    settle().await;
    let sent = sink.sent.lock().unwrap().clone();
    assert_eq!(sent[0].1.online_users.len(), 50);
    assert_eq!(sent[0].1.stats.online_users, 60);
}

#[tokio::test(start_paused = true)]
async fn the_loop_ends_when_its_token_is_cancelled() {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let sink = Arc::new(Sink::default());
    let broadcaster = StatsBroadcaster::new(
        store,
        sink.clone(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let trigger = broadcaster.trigger();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(broadcaster.run(shutdown.clone()));
    trigger.poke();
    settle().await;
    assert_eq!(sink.count(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), running)
        .await
        .expect("stops at once")
        .unwrap();
    trigger.poke();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        sink.count(),
        1,
        "nothing after shutdown, and pokes stay harmless"
    );
}
