//! What only the Redis store promises beyond the contract: several nodes sharing one Redis,
//! keys confined to the prefix, quick errors while Redis is down and recovery when it returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_domain::{RoomId, Timestamp, UserId};
use chat_storage::{RedisStore, SessionPatch, SessionStore};
use chat_testkit::require_redis;
use fred::prelude::{Builder, ClientLike, Config};
use fred::types::CustomCommand;

use common::{TTL, config, eventually, shared_redis, user_seen};

#[tokio::test]
async fn two_nodes_sweep_each_expired_id_exactly_once() {
    let Some(server) = shared_redis() else {
        return;
    };
    let shared = config();
    let first = RedisStore::connect(&server.url(), shared.clone())
        .await
        .unwrap();
    let second = RedisStore::connect(&server.url(), shared).await.unwrap();
    let mut expired = BTreeSet::new();
    for _ in 0..300 {
        let user = user_seen(TTL + Duration::from_secs(5));
        first.create(&user).await.unwrap();
        expired.insert(user.id);
    }
    let now = Timestamp::now();
    let (left, right) = tokio::join!(first.sweep_expired(now), second.sweep_expired(now));
    let (left, right) = (left.unwrap(), right.unwrap());
    let union: BTreeSet<UserId> = left.iter().chain(&right).cloned().collect();
    assert_eq!(
        left.len() + right.len(),
        expired.len(),
        "an id went to both nodes"
    );
    assert_eq!(union, expired);
}

#[tokio::test]
async fn every_key_is_under_the_prefix() {
    let Some(server) = require_redis() else {
        return;
    };
    let settings = config();
    let store = RedisStore::connect(&server.url(), settings.clone())
        .await
        .unwrap();
    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    store
        .update(
            &user.id,
            SessionPatch {
                is_online: Some(true),
                is_searching: Some(true),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    store
        .hit_rate_limit("ip:1", 5, Duration::from_secs(60))
        .await
        .unwrap();
    store.stats(Timestamp::now()).await.unwrap();
    store.delete_room_files(&RoomId::generate()).await.unwrap();

    let client = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let keys: Vec<String> = client
        .custom(CustomCommand::new_static("KEYS", None, false), vec!["*"])
        .await
        .unwrap();
    assert!(keys.len() >= 5, "{keys:?}");
    assert!(
        keys.iter().all(|key| key.starts_with(&settings.key_prefix)),
        "{keys:?}"
    );
}

#[tokio::test]
async fn fails_fast_while_down_and_works_again_after_a_restart() {
    let Some(mut server) = require_redis() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), config()).await.unwrap();
    assert!(store.health().redis_up);
    store.create(&user_seen(Duration::ZERO)).await.unwrap();

    server.kill();
    let started = Instant::now();
    assert!(store.create(&user_seen(Duration::ZERO)).await.is_err());
    assert!(store.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "errors took {:?}",
        started.elapsed()
    );
    eventually("health to say down", || async { !store.health().redis_up }).await;

    server.restart().unwrap();
    let user = user_seen(Duration::ZERO);
    eventually("the store to work again", || async {
        store.create(&user).await.is_ok()
    })
    .await;
    assert_eq!(store.get(&user.id).await.unwrap(), Some(user));
    assert!(store.health().redis_up);
}

#[tokio::test]
async fn connect_fails_when_nothing_listens() {
    let Some(mut server) = require_redis() else {
        return;
    };
    server.kill();
    let started = Instant::now();
    assert!(RedisStore::connect(&server.url(), config()).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(RedisStore::connect("not a url", config()).await.is_err());
}
