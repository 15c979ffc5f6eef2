//! Two failover stores on one private Redis, as two nodes of one deployment, through outages:
//! Redis alone answers while it is up (a room closed through one node is closed for both), and
//! what a node did during an outage reaches the other one after it, without an older copy
//! ever winning over what the other node wrote.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use chat_domain::{
    FileId, FileType, GuestUser, RoomId, SearchFilters, Searcher, Timestamp, UserId, Username,
};
use chat_storage::{
    ChatStore, FailoverStore, FileMeta, RedisStore, RoomRecord, SessionPatch, SessionStore,
    StorageMode, StoredFile,
};
use chat_testkit::{RedisServer, require_redis};
use fred::prelude::{Builder, ClientLike, Config};
use fred::types::CustomCommand;

use common::{TTL, config, eventually, user_seen};

/// A private server and two nodes on it under one prefix; `None` without `redis-server`.
async fn two_nodes() -> Option<(RedisServer, FailoverStore, FailoverStore)> {
    let server = require_redis()?;
    let shared = config();
    let first = FailoverStore::connect(&server.url(), shared.clone()).await;
    let second = FailoverStore::connect(&server.url(), shared).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.health().mode, StorageMode::Redis);
    assert_eq!(second.health().mode, StorageMode::Redis);
    Some((server, first, second))
}

/// A plain Redis store under the nodes' prefix, to look at what Redis holds.
async fn plain(server: &RedisServer, node: &FailoverStore) -> RedisStore {
    RedisStore::connect(&server.url(), node.redis().config().clone())
        .await
        .unwrap()
}

async fn back_in_redis_mode(node: &FailoverStore) {
    eventually("Redis mode again", || async {
        node.health().mode == StorageMode::Redis
    })
    .await;
}

/// Makes Redis stop answering for `millis` while keeping its data.
async fn pause_redis(server: &RedisServer, millis: u64) {
    let admin = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .build()
        .unwrap();
    admin.init().await.unwrap();
    let _: String = admin
        .custom(
            CustomCommand::new_static("CLIENT", None, false),
            vec!["PAUSE".to_owned(), millis.to_string(), "ALL".to_owned()],
        )
        .await
        .unwrap();
    let _ = admin.quit().await;
}

fn searcher_of(user: &GuestUser) -> Searcher {
    Searcher {
        user: user.public(),
        filters: SearchFilters::default(),
        avoid: None,
        blocked: Vec::new(),
    }
}

fn room_between(first: &GuestUser, second: &GuestUser) -> RoomRecord {
    RoomRecord {
        room_id: RoomId::generate(),
        members: [
            (first.id.clone(), first.username.clone()),
            (second.id.clone(), second.username.clone()),
        ],
    }
}

fn file_in(room: &RoomId) -> StoredFile {
    StoredFile {
        meta: FileMeta {
            file_id: FileId::generate(),
            room_id: room.clone(),
            uploader: UserId::generate(),
            filename: "note.txt".into(),
            file_type: FileType::Document,
            mime: "text/plain".into(),
            size: 2,
            duration: None,
            expires_at: Timestamp::now().plus(Duration::from_secs(600)),
        },
        bytes: Bytes::from_static(b"hi"),
    }
}

fn touch_at(at: Timestamp) -> SessionPatch {
    SessionPatch {
        touch: Some(at),
        ..SessionPatch::default()
    }
}

fn rename(name: &str) -> SessionPatch {
    SessionPatch {
        username: Some(Username::parse(name).unwrap()),
        ..SessionPatch::default()
    }
}

#[tokio::test]
async fn a_room_closed_through_one_node_is_closed_on_every_node() {
    let Some((_server, first, second)) = two_nodes().await else {
        return;
    };
    let (alice, bob) = (user_seen(Duration::ZERO), user_seen(Duration::ZERO));
    let room = room_between(&alice, &bob);
    first.open_room(&room).await.unwrap();
    assert_eq!(
        second.room(&room.room_id).await.unwrap(),
        Some(room.clone())
    );
    assert!(second.close_room(&room).await.unwrap());
    assert_eq!(first.room(&room.room_id).await.unwrap(), None);
    for member in [&alice, &bob] {
        assert_eq!(first.room_of(&member.id).await.unwrap(), None);
    }
    assert!(
        !first.close_room(&room).await.unwrap(),
        "closed once across both nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_node_did_while_redis_was_down_reaches_the_other_node() {
    let Some((mut server, first, second)) = two_nodes().await else {
        return;
    };
    let [alice, bob, carol] = [(); 3].map(|()| user_seen(Duration::ZERO));
    server.kill();

    // Through the second node: a session, a room with a file, a searcher left waiting.
    let created = user_seen(Duration::ZERO);
    second.create(&created).await.unwrap();
    assert_eq!(second.health().mode, StorageMode::Memory);
    let room = room_between(&alice, &bob);
    second.open_room(&room).await.unwrap();
    let file = file_in(&room.room_id);
    second.put_file(file.clone()).await.unwrap();
    assert_eq!(second.search(&searcher_of(&carol)).await.unwrap(), None);

    // Meanwhile the session's client asks the first node, which does not know it yet.
    assert_eq!(first.get(&created.id).await.unwrap(), None);
    let touched = first.update(&created.id, touch_at(Timestamp::now()));
    assert_eq!(touched.await.unwrap(), None);
    assert_eq!(first.health().mode, StorageMode::Memory);

    server.restart().unwrap();
    back_in_redis_mode(&second).await;
    eventually("the first node to find the session", || async {
        first.get(&created.id).await.unwrap().as_ref() == Some(&created)
    })
    .await;
    back_in_redis_mode(&first).await;
    assert_eq!(
        first.get_file(&file.meta.file_id).await.unwrap(),
        Some(file)
    );
    assert_eq!(first.room(&room.room_id).await.unwrap(), Some(room.clone()));
    assert_eq!(first.room_of(&bob.id).await.unwrap(), Some(room));
    let newcomer = user_seen(Duration::ZERO);
    let paired = first.search(&searcher_of(&newcomer)).await.unwrap();
    assert_eq!(
        paired.map(|partner| partner.user.id),
        Some(carol.id.clone()),
        "the searcher queued during the outage is in the shared queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_never_win_over_the_other_node_at_recovery() {
    let Some((server, first, second)) = two_nodes().await else {
        return;
    };
    // The first node holds copies of three sessions; the second node then moves on with each.
    let kept_active = user_seen(Duration::ZERO);
    let deleted_elsewhere = user_seen(Duration::ZERO);
    let about_to_expire = user_seen(TTL - Duration::from_secs(2));
    for user in [&kept_active, &deleted_elsewhere, &about_to_expire] {
        first.create(user).await.unwrap();
    }
    let later = Timestamp::now().plus(Duration::from_secs(5));
    let active = second.update(&kept_active.id, touch_at(later)).await;
    let active = active.unwrap().unwrap();
    let revived = second.update(&about_to_expire.id, touch_at(Timestamp::now()));
    let revived = revived.await.unwrap().unwrap();
    second.delete(&deleted_elsewhere.id).await.unwrap().unwrap();

    // Redis stops answering (its data stays): the first node changes its stale copies, sees one
    // expire, and the second node stores a file.
    pause_redis(&server, 4000).await;
    // A read notices first (a write that timed out could still land once Redis answers).
    let now = Timestamp::now();
    let (left, right) = tokio::join!(first.stats(now), second.stats(now));
    left.unwrap();
    right.unwrap();
    assert_eq!(first.health().mode, StorageMode::Memory);
    assert_eq!(second.health().mode, StorageMode::Memory);
    let renamed = first.update(&kept_active.id, rename("Stale_1")).await;
    assert!(renamed.unwrap().is_some(), "served from memory");
    let file = file_in(&RoomId::generate());
    second.put_file(file.clone()).await.unwrap();
    let again = first.update(&deleted_elsewhere.id, rename("Stale_2")).await;
    assert!(again.unwrap().is_some(), "the copy is still in memory");
    let swept = first
        .sweep_expired(Timestamp::now().plus(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(swept, vec![about_to_expire.id.clone()]);

    back_in_redis_mode(&first).await;
    back_in_redis_mode(&second).await;
    let redis = plain(&server, &first).await;
    assert_eq!(
        redis.get(&kept_active.id).await.unwrap(),
        Some(active),
        "rolled back by a stale copy"
    );
    assert_eq!(
        redis.get(&deleted_elsewhere.id).await.unwrap(),
        None,
        "a session deleted elsewhere came back"
    );
    assert_eq!(
        redis.get(&about_to_expire.id).await.unwrap(),
        Some(revived),
        "a session kept active elsewhere was deleted"
    );
    assert_eq!(
        first.get_file(&file.meta.file_id).await.unwrap(),
        Some(file),
        "a file stored during the outage is served by the other node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_its_data_brings_back_no_session_deleted_elsewhere() {
    let Some((mut server, first, second)) = two_nodes().await else {
        return;
    };
    let (kept, deleted) = (user_seen(Duration::ZERO), user_seen(Duration::ZERO));
    first.create(&kept).await.unwrap();
    first.create(&deleted).await.unwrap();
    second.delete(&deleted.id).await.unwrap().unwrap();
    // The first node reads it and learns it is gone.
    assert_eq!(first.get(&deleted.id).await.unwrap(), None);

    server.kill();
    server.restart().unwrap();
    let redis = plain(&server, &first).await;
    eventually("the first node to restore its sessions", || async {
        redis.get(&kept.id).await.unwrap().is_some()
    })
    .await;
    assert_eq!(first.get(&deleted.id).await.unwrap(), None);
    assert_eq!(redis.get(&deleted.id).await.unwrap(), None);
}
