//! Live statistics over a memory store: sessions come and go, the broadcaster turns the pokes
//! into at most one snapshot per interval (only when something changed), the presence tracker
//! tells who went stale, and the sweeper removes expired sessions.
//!
//! Run it with `cargo run -p chat-presence-stats --example live_stats` (about 3 seconds).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{GuestUser, Profile, Timestamp};
use chat_presence_stats::{
    PresenceTracker, RealtimeStats, StatsBroadcaster, StatsSink, spawn_expiry_sweeper,
};
use chat_storage::{MemoryStore, SessionPatch, SessionStore, StoreConfig};

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
    let store = Arc::new(MemoryStore::new(StoreConfig {
        session_ttl: Duration::from_secs(2),
        ..StoreConfig::default()
    }));
    let broadcaster = StatsBroadcaster::spawn(
        store.clone(),
        Arc::new(Printer),
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    let stats = broadcaster.trigger();
    let presence = PresenceTracker::new(Duration::from_millis(500));
    let _sweeper = spawn_expiry_sweeper(store.clone(), Duration::from_millis(250), |expired| {
        println!("swept {} expired session(s)", expired.len());
    });

    // Ten users arrive at once: the pokes coalesce into one snapshot.
    for _ in 0..10 {
        let user = GuestUser::new(Profile::default(), Timestamp::now());
        store.create(&user).await?;
        let online = SessionPatch {
            is_online: Some(true),
            touch: Some(Timestamp::now()),
            ..SessionPatch::default()
        };
        store.update(&user.id, online).await?;
        presence.connected(&user.id);
        stats.poke();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!(
        "stale after 0.5 s without activity: {} user(s)",
        presence.newly_stale().len()
    );

    // Nobody touches their session: after the 2 s TTL the sweeper removes them all.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    stats.poke();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
