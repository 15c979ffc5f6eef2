//! Each lifecycle rule over a memory store, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_domain::{Profile, ProfileField};
use chat_storage::{MemoryStore, StoreConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::broadcast::{RealtimeStats, StatsBroadcaster, StatsSink};
use crate::presence::STORE_TOUCH_EVERY;

const STALE_AFTER: Duration = Duration::from_secs(90);

struct Fixture {
    store: Arc<dyn SessionStore>,
    stats: StatsTrigger,
    lifecycle: SessionLifecycle,
}

fn fixture() -> Fixture {
    fixture_with(StoreConfig::default())
}

fn fixture_with(config: StoreConfig) -> Fixture {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(config));
    let stats = StatsTrigger::default();
    let lifecycle = SessionLifecycle::new(store.clone(), STALE_AFTER, stats.clone());
    Fixture {
        store,
        stats,
        lifecycle,
    }
}

impl Fixture {
    /// A stored session, with no poke pending.
    async fn session(&self) -> GuestUser {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        self.lifecycle.create(&user).await.unwrap();
        assert!(
            self.stats.take_poke().await,
            "a new session moves the counters"
        );
        user
    }

    /// A session whose socket `socket` connected and was announced, with no poke pending.
    async fn connected(&self, socket: &str) -> GuestUser {
        let user = self.session().await;
        let connected = self.lifecycle.connected(&user.id, socket).await.unwrap();
        connected.unwrap().change.announce();
        assert!(self.stats.take_poke().await);
        user
    }

    async fn stored(&self, user: &UserId) -> GuestUser {
        self.store.get(user).await.unwrap().expect("a live session")
    }

    fn tracked(&self) -> usize {
        self.lifecycle.inner.tracker.len()
    }
}

#[tokio::test(start_paused = true)]
async fn connecting_marks_online_attaches_the_socket_and_announces_afterwards() {
    let fixture = fixture();
    let user = fixture.session().await;
    let before = fixture.stored(&user.id).await;

    let connected = fixture
        .lifecycle
        .connected(&user.id, "socket-1")
        .await
        .unwrap();
    let Connected {
        user: written,
        change,
    } = connected.expect("the session is live");
    assert!(written.is_online);
    assert_eq!(written.socket_id.as_deref(), Some("socket-1"));
    assert!(written.connected_at.is_some());
    assert!(
        written.last_seen >= before.last_seen,
        "connecting is activity"
    );
    assert_eq!(
        fixture.stored(&user.id).await,
        written,
        "written to the store"
    );
    assert_eq!(fixture.tracked(), 1);
    assert!(
        !fixture.stats.take_poke().await,
        "not before the change is announced"
    );
    change.announce();
    assert!(fixture.stats.take_poke().await);
}

#[tokio::test(start_paused = true)]
async fn a_vanished_session_connects_to_nothing() {
    let fixture = fixture();
    let ghost = UserId::generate();
    let connected = fixture
        .lifecycle
        .connected(&ghost, "socket-1")
        .await
        .unwrap();
    assert!(connected.is_none());
    assert_eq!(fixture.tracked(), 0, "not tracked, so never swept");
    assert!(!fixture.stats.take_poke().await);
}

#[tokio::test(start_paused = true)]
async fn activity_slides_the_ttl_at_most_every_few_seconds_and_always_on_heartbeats() {
    let fixture = fixture();
    let user = fixture.connected("socket-1").await;
    let seen = |user: GuestUser| user.last_seen;
    let at_connect = seen(fixture.stored(&user.id).await);

    let outcome = fixture.lifecycle.activity(&user.id, false).await;
    assert!(!outcome.touch_store, "throttled right after connecting");
    std::thread::sleep(Duration::from_millis(2));
    assert!(fixture.lifecycle.activity(&user.id, true).await.touch_store);
    let after_heartbeat = seen(fixture.stored(&user.id).await);
    assert!(after_heartbeat > at_connect, "a heartbeat always writes");

    tokio::time::advance(STORE_TOUCH_EVERY).await;
    std::thread::sleep(Duration::from_millis(2));
    assert!(
        fixture
            .lifecycle
            .activity(&user.id, false)
            .await
            .touch_store
    );
    assert!(seen(fixture.stored(&user.id).await) > after_heartbeat);
    assert!(
        !fixture.stats.take_poke().await,
        "activity alone moves no counter"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_users_go_offline_once_with_one_poke_and_come_back_with_activity() {
    let fixture = fixture();
    let first = fixture.connected("socket-1").await;
    let second = fixture.connected("socket-2").await;

    tokio::time::advance(STALE_AFTER - Duration::from_secs(1)).await;
    assert!(fixture.lifecycle.sweep_stale().await.is_empty());
    assert!(!fixture.stats.take_poke().await);

    tokio::time::advance(Duration::from_secs(1)).await;
    let mut stale = fixture.lifecycle.sweep_stale().await;
    stale.sort_by_key(ToString::to_string);
    let mut expected = vec![first.id.clone(), second.id.clone()];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(stale, expected);
    assert!(!fixture.stored(&first.id).await.is_online);
    assert!(!fixture.stored(&second.id).await.is_online);
    assert!(fixture.stats.take_poke().await, "one poke for the sweep");

    tokio::time::advance(STALE_AFTER).await;
    assert!(
        fixture.lifecycle.sweep_stale().await.is_empty(),
        "reported once"
    );
    assert!(!fixture.stats.take_poke().await);

    let outcome = fixture.lifecycle.activity(&first.id, false).await;
    assert_eq!(
        outcome,
        ActivityOutcome {
            touch_store: true,
            back_from_stale: true
        }
    );
    assert!(fixture.stored(&first.id).await.is_online, "back online");
    assert!(!fixture.stored(&second.id).await.is_online);
    assert!(fixture.stats.take_poke().await);
    assert_eq!(
        fixture.tracked(),
        2,
        "stale users stay tracked while connected"
    );
}

#[tokio::test(start_paused = true)]
async fn the_online_flag_is_the_users_to_set() {
    let fixture = fixture();
    let user = fixture.connected("socket-1").await;
    let updated = fixture.lifecycle.set_online(&user.id, false).await.unwrap();
    assert!(!updated.unwrap().is_online);
    assert!(fixture.stats.take_poke().await);
    let updated = fixture.lifecycle.set_online(&user.id, true).await.unwrap();
    assert!(updated.unwrap().is_online);
    assert!(fixture.stats.take_poke().await);
    let ghost = fixture
        .lifecycle
        .set_online(&UserId::generate(), true)
        .await;
    assert!(
        ghost.unwrap().is_none(),
        "nothing written for a vanished session"
    );
}

#[tokio::test(start_paused = true)]
async fn a_socket_dropping_late_never_marks_offline_the_newer_socket() {
    let fixture = fixture();
    let user = fixture.connected("old-socket").await;
    // The user opened a socket elsewhere (another node) before the old one's drop ran here.
    let newer = fixture
        .lifecycle
        .connected(&user.id, "new-socket")
        .await
        .unwrap();
    newer.unwrap().change.announce();
    fixture
        .lifecycle
        .disconnected(&user.id, "old-socket")
        .await
        .announce();
    let stored = fixture.stored(&user.id).await;
    assert!(stored.is_online, "still online through the newer socket");
    assert_eq!(stored.socket_id.as_deref(), Some("new-socket"));
}

#[tokio::test(start_paused = true)]
async fn disconnecting_marks_offline_detaches_the_socket_and_announces_afterwards() {
    let fixture = fixture();
    let user = fixture.connected("socket-1").await;
    let change = fixture.lifecycle.disconnected(&user.id, "socket-1").await;
    let stored = fixture.stored(&user.id).await;
    assert!(!stored.is_online);
    assert_eq!(stored.socket_id, None);
    assert_eq!(fixture.tracked(), 0);
    assert!(
        !fixture.stats.take_poke().await,
        "not before the chat is told"
    );
    drop(change);
    assert!(fixture.stats.take_poke().await, "dropping announces too");

    tokio::time::advance(STALE_AFTER * 2).await;
    assert!(
        fixture.lifecycle.sweep_stale().await.is_empty(),
        "no longer swept"
    );
}

#[tokio::test(start_paused = true)]
async fn ended_and_replaced_sessions_are_forgotten_without_writes() {
    let fixture = fixture();
    let ended = fixture.connected("socket-1").await;
    let replaced = fixture.connected("socket-2").await;
    fixture.lifecycle.ended(&ended.id);
    fixture.lifecycle.replaced(&replaced.id);
    assert_eq!(fixture.tracked(), 0);
    assert!(!fixture.stats.take_poke().await);
    assert!(
        fixture.stored(&ended.id).await.is_online,
        "the store is left alone"
    );
    assert!(
        fixture.stored(&replaced.id).await.is_online,
        "the other node owns it"
    );
}

#[tokio::test(start_paused = true)]
async fn profile_changes_and_deletion_move_the_counters() {
    let fixture = fixture();
    let user = fixture.connected("socket-1").await;
    let update = ProfileUpdate {
        language: Some(Some(ProfileField::parse("language", "en").unwrap())),
        ..ProfileUpdate::default()
    };
    let updated = fixture
        .lifecycle
        .update_profile(&user.id, update.clone())
        .await;
    assert_eq!(
        updated.unwrap().unwrap().language,
        update.language.clone().flatten()
    );
    assert!(fixture.stats.take_poke().await);
    let ghost = fixture
        .lifecycle
        .update_profile(&UserId::generate(), update)
        .await;
    assert!(ghost.unwrap().is_none());
    assert!(!fixture.stats.take_poke().await, "nothing changed");

    assert!(
        fixture
            .lifecycle
            .request_activity(&user.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!fixture.stats.take_poke().await);

    let deleted = fixture.lifecycle.delete(&user.id).await.unwrap();
    assert_eq!(deleted.map(|user| user.id), Some(user.id.clone()));
    assert!(fixture.store.get(&user.id).await.unwrap().is_none());
    assert_eq!(fixture.tracked(), 0);
    assert!(fixture.stats.take_poke().await);
    assert!(
        fixture
            .lifecycle
            .request_activity(&user.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn the_expiry_sweeper_hands_over_expired_sessions_then_pokes_and_stops_on_shutdown() {
    let ttl = Duration::from_secs(60);
    let fixture = fixture_with(StoreConfig {
        session_ttl: ttl,
        ..StoreConfig::default()
    });
    let live = fixture.connected("socket-1").await;
    let old = GuestUser::new(Profile::default(), Timestamp::now().minus(ttl * 2));
    fixture.lifecycle.create(&old).await.unwrap();
    fixture
        .lifecycle
        .connected(&old.id, "socket-2")
        .await
        .unwrap();
    assert!(fixture.stats.take_poke().await);

    let handed: Arc<Mutex<Vec<UserId>>> = Arc::default();
    let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
    let seen = handed.clone();
    let poked_before_handing = Arc::new(Mutex::new(None));
    let poked = poked_before_handing.clone();
    let stats = fixture.stats.clone();
    tasks.spawn(fixture.lifecycle.expiry_sweeper(
        Duration::from_secs(1),
        shutdown.clone(),
        move |expired| {
            let (seen, poked, stats) = (seen.clone(), poked.clone(), stats.clone());
            async move {
                *poked.lock().unwrap() = Some(stats.take_poke().await);
                seen.lock().unwrap().extend(expired);
            }
        },
    ));
    tasks.close();
    tokio::time::sleep(Duration::from_millis(10)).await;

    assert_eq!(*handed.lock().unwrap(), vec![old.id.clone()]);
    assert_eq!(
        *poked_before_handing.lock().unwrap(),
        Some(false),
        "poked after"
    );
    assert!(fixture.stats.take_poke().await);
    assert_eq!(fixture.tracked(), 1, "the expired user is forgotten");
    assert!(fixture.store.get(&live.id).await.unwrap().is_some());

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handed.lock().unwrap().len(), 1, "each expired id once");
    assert!(
        !fixture.stats.take_poke().await,
        "no poke for an empty sweep"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), tasks.wait())
        .await
        .expect("the sweeper stops on shutdown");
}

#[tokio::test(start_paused = true)]
async fn the_stale_sweeper_runs_every_third_of_the_period_until_shutdown() {
    let fixture = fixture();
    assert_eq!(
        fixture.lifecycle.stale_sweep_every(),
        Duration::from_secs(30)
    );
    let user = fixture.connected("socket-1").await;
    let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
    tasks.spawn(fixture.lifecycle.stale_sweeper(shutdown.clone()));
    tasks.close();

    tokio::time::sleep(STALE_AFTER - Duration::from_secs(1)).await;
    assert!(fixture.stored(&user.id).await.is_online);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(
        !fixture.stored(&user.id).await.is_online,
        "shown offline within a third"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), tasks.wait())
        .await
        .expect("the sweeper stops on shutdown");
}

#[derive(Default)]
struct Snapshots(Mutex<Vec<RealtimeStats>>);

impl StatsSink for Snapshots {
    fn broadcast(&self, snapshot: &RealtimeStats) {
        self.0.lock().unwrap().push(snapshot.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_lifecycle_steps_gives_one_snapshot_and_the_broadcaster_stops_on_shutdown() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreConfig::default()));
    let sink = Arc::new(Snapshots::default());
    let interval = Duration::from_secs(1);
    let broadcaster = StatsBroadcaster::new(
        store.clone(),
        sink.clone(),
        interval,
        Duration::from_secs(3600),
    );
    let lifecycle = SessionLifecycle::new(store, STALE_AFTER, broadcaster.trigger());
    let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
    tasks.spawn(broadcaster.run(shutdown.clone()));
    tasks.close();

    let mut users = Vec::new();
    let sockets = ["a", "b", "c"];
    for socket in sockets {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        lifecycle.create(&user).await.unwrap();
        let connected = lifecycle
            .connected(&user.id, socket)
            .await
            .unwrap()
            .unwrap();
        connected.change.announce();
        users.push(user);
    }
    tokio::time::sleep(interval * 2).await;
    let sent = sink.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one snapshot for the burst");
    assert_eq!(sent[0].stats.online_users, 3);

    for (user, socket) in users.iter().zip(sockets) {
        lifecycle.disconnected(&user.id, socket).await.announce();
    }
    tokio::time::sleep(interval * 2).await;
    let sent = sink.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].stats.online_users, 0);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), tasks.wait())
        .await
        .expect("the broadcaster stops on shutdown");
    lifecycle.on_change()();
}
