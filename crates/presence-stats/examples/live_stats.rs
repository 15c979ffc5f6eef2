//! Live statistics over a memory store: sessions come and go through the lifecycle, the
//! broadcaster turns its pokes into at most one snapshot per interval (only when something
//! changed), the stale sweep shows idle users offline and the expiry sweep removes expired
//! sessions. One cancellation token stops all three, and the tracker awaits them.
//!
//! Run it with `cargo run -p chat-presence-stats --example live_stats` (about 3 seconds).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{GuestUser, Profile, Timestamp};
use chat_presence_stats::{RealtimeStats, SessionLifecycle, StatsBroadcaster, StatsSink};
use chat_storage::{MemoryStore, SessionStore, StoreConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Prints each snapshot, where the gateway encodes it once for every socket.
struct Printer;

impl StatsSink for Printer {
    fn broadcast(&self, snapshot: &RealtimeStats) {
        let stats = &snapshot.stats;
        println!(
            "realtime:stats at {}: {} sessions, {} online, {} listed",
            snapshot.timestamp,
            stats.total_users,
            stats.online_users,
            snapshot.online_users.len()
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreConfig {
        session_ttl: Duration::from_secs(2),
        ..StoreConfig::default()
    }));
    let broadcaster = StatsBroadcaster::new(
        store.clone(),
        Arc::new(Printer),
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    // Stale after one second: the stale sweep looks every second.
    let lifecycle =
        SessionLifecycle::new(store.clone(), Duration::from_secs(1), broadcaster.trigger());
    let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
    tasks.spawn(broadcaster.run(shutdown.clone()));
    tasks.spawn(lifecycle.stale_sweeper(shutdown.clone()));
    tasks.spawn(lifecycle.expiry_sweeper(
        Duration::from_millis(250),
        shutdown.clone(),
        |expired| async move {
            println!("swept {} expired session(s)", expired.len());
        },
    ));
    tasks.close();

    // Ten users arrive at once: the pokes coalesce into one snapshot.
    for socket in 0..10 {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        lifecycle.create(&user).await?;
        if let Some(connected) = lifecycle.connected(&user.id, &socket.to_string()).await? {
            // Here the gateway tells the socket `connection:established`.
            connected.change.announce();
        }
    }

    // Nobody is active: after a second they are shown offline, and after the 2 s TTL the
    // expiry sweep removes them all.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    shutdown.cancel();
    tasks.wait().await;
    println!("stopped");
    Ok(())
}
