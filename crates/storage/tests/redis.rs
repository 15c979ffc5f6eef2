//! What only the Redis store promises beyond the contract: several nodes sharing one Redis,
//! keys confined to the prefix, quick errors while Redis is down and recovery when it returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_domain::{ProfileField, RoomId, SearchFilters, Searcher, Timestamp, UserId};
use chat_storage::{ChatStore, MemoryStore, RedisStore, SessionPatch, SessionStore};
use chat_testkit::require_redis;
use fred::prelude::{Builder, ClientLike, Config};
use fred::types::CustomCommand;

use common::{TTL, config, eventually, shared_redis, user_seen};

/// Two stores on the shared server under one fresh prefix, as two nodes of one deployment.
async fn two_nodes() -> Option<(RedisStore, RedisStore)> {
    let server = shared_redis()?;
    let shared = config();
    let first = RedisStore::connect(&server.url(), shared.clone()).await;
    let second = RedisStore::connect(&server.url(), shared).await;
    Some((first.unwrap(), second.unwrap()))
}

#[tokio::test]
async fn two_nodes_sweep_each_expired_id_exactly_once() {
    let Some((first, second)) = two_nodes().await else {
        return;
    };
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
    // Each key's hash tag holds the prefix (so deployments never share a slot).
    let tagged = format!("{{{}", settings.key_prefix);
    assert!(keys.iter().all(|key| key.starts_with(&tagged)), "{keys:?}");
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

/// A searcher with `gender` on its profile asking for `wanted` (and avoiding `avoid`).
fn searcher(gender: &str, wanted: Option<&str>, avoid: Option<&UserId>) -> Searcher {
    let mut user = user_seen(Duration::ZERO).public();
    user.gender = ProfileField::parse("gender", gender).ok();
    Searcher {
        user,
        filters: SearchFilters {
            gender: wanted.and_then(|wanted| ProfileField::parse("gender", wanted).ok()),
            ..SearchFilters::default()
        },
        avoid: avoid.cloned(),
        blocked: Vec::new(),
    }
}

/// The Redis queue pairs exactly as the in-process one does: oldest compatible first, filters
/// on both sides, never the avoided partner, a repeated search replaces the entry.
#[tokio::test]
async fn the_queue_pairs_like_the_memory_queue() {
    let Some(server) = shared_redis() else {
        return;
    };
    let redis = RedisStore::connect(&server.url(), config()).await.unwrap();
    let memory = MemoryStore::new(config());
    let (f, m, x) = (
        searcher("f", Some("m"), None),
        searcher("m", None, None),
        searcher("x", None, None),
    );
    let picky = searcher("m", Some("f"), Some(&f.user.id));
    let again = Searcher {
        filters: SearchFilters::default(),
        ..f.clone()
    };
    let steps: Vec<(&str, Searcher)> = vec![
        ("search", f.clone()),     // queued
        ("search", x.clone()),     // f wants m: queued
        ("search", again.clone()), // f again, no filter: x waits longer, paired
        ("search", f.clone()),     // queued again (wants m)
        ("search", f.clone()),     // replaces its own entry, still queued
        ("search", picky.clone()), // avoids f, the only fit: queued
        ("search", m.clone()),     // m takes f (f wants m; picky wants a woman)
        ("cancel", m.clone()),     // paired, not queued
        ("cancel", picky.clone()), // gone
        ("search", x.clone()),     // queued
    ];
    for (index, (action, searcher)) in steps.into_iter().enumerate() {
        let (in_redis, in_memory) = match action {
            "search" => (
                redis.search(&searcher).await.unwrap().map(|s| s.user.id),
                memory.search(&searcher).await.unwrap().map(|s| s.user.id),
            ),
            _ => (
                redis
                    .cancel_search(&searcher.user.id)
                    .await
                    .unwrap()
                    .then(|| searcher.user.id.clone()),
                memory
                    .cancel_search(&searcher.user.id)
                    .await
                    .unwrap()
                    .then(|| searcher.user.id.clone()),
            ),
        };
        assert_eq!(in_redis, in_memory, "step {index}: {action}");
    }
    assert!(redis.cancel_search(&x.user.id).await.unwrap());
    assert!(
        !redis.cancel_search(&x.user.id).await.unwrap(),
        "cancelled once"
    );
    assert!(
        !redis.cancel_search(&f.user.id).await.unwrap(),
        "paired, not queued"
    );
}

/// Two nodes searching at once on one Redis: nobody is paired twice or with themselves, and
/// whoever is not paired is still queued.
#[tokio::test]
async fn two_nodes_pair_each_searcher_once() {
    let Some((first, second)) = two_nodes().await else {
        return;
    };
    let searchers: Vec<Searcher> = (0..400)
        .map(|index| searcher(["f", "m"][index % 2], None, None))
        .collect();
    let mut searches = tokio::task::JoinSet::new();
    for (index, searcher) in searchers.iter().cloned().enumerate() {
        let node = if index % 2 == 0 { &first } else { &second }.clone();
        searches.spawn(async move { (searcher.user.id.clone(), node.search(&searcher).await) });
    }
    let outcomes = searches.join_all().await;
    let mut seen = BTreeSet::new();
    let mut queued = Vec::new();
    for (me, partner) in outcomes {
        match partner.unwrap() {
            Some(partner) => {
                assert_ne!(partner.user.id, me);
                assert!(seen.insert(me), "paired twice");
                assert!(seen.insert(partner.user.id), "paired twice");
            }
            None => queued.push(me),
        }
    }
    let mut still_queued = 0;
    for user in &queued {
        if first.cancel_search(user).await.unwrap() {
            still_queued += 1;
        }
    }
    assert_eq!(seen.len() + still_queued, searchers.len());
    assert!(
        still_queued <= 1,
        "{still_queued} left waiting without filters"
    );
}
