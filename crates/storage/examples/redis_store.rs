//! The storage crate alone against a Redis: create a guest session, update it, read the
//! counters and the online list, count rate-limit hits, then delete it.
//!
//! Run it with `cargo run -p chat-storage --example redis_store -- redis://127.0.0.1:6379`
//! (any `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://` URL). Its keys
//! carry the prefix `example:`; the session's are deleted at the end, the rate-limit counter
//! expires with its one-minute window.

use std::error::Error;
use std::time::Duration;

use chat_domain::{GuestUser, Profile, Timestamp};
use chat_storage::{RedisStore, SessionPatch, SessionStore, StoreConfig};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: redis_store REDIS_URL   (e.g. redis://127.0.0.1:6379)");
        std::process::exit(2);
    };
    let config = StoreConfig {
        session_ttl: Duration::from_secs(60),
        key_prefix: "example:".into(),
        ..StoreConfig::default()
    };
    let store = RedisStore::connect(&url, config).await?;
    println!("connected: {:?}", store.health());

    let user = GuestUser::new(
        Profile::from_json(&json!({"username": "Example_1", "language": "en"}))?,
        Timestamp::now(),
    );
    store.create(&user).await?;
    println!("created {} ({})", user.id, user.username);

    let online = SessionPatch {
        touch: Some(Timestamp::now()),
        is_online: Some(true),
        ..SessionPatch::default()
    };
    let updated = store
        .update(&user.id, online)
        .await?
        .ok_or("the session vanished")?;
    println!(
        "online: {}, last seen {}",
        updated.is_online, updated.last_seen
    );

    println!("stats: {:?}", store.stats(Timestamp::now()).await?);
    let page = store.online_users(10, None).await?;
    println!(
        "online list: {} user(s), next cursor {:?}",
        page.users.len(),
        page.next_cursor
    );

    for _ in 0..3 {
        let decision = store
            .hit_rate_limit("example:client", 2, Duration::from_secs(60))
            .await?;
        println!(
            "rate limit: allowed {}, remaining {}",
            decision.allowed, decision.remaining
        );
    }

    store.delete(&user.id).await?;
    println!(
        "deleted; get now answers {:?}",
        store.get(&user.id).await?.map(|user| user.id)
    );
    Ok(())
}
