//! The stores on Redis as it is deployed, each topology started here from `redis-server`,
//! `redis-cli` and `openssl`: a three-master Redis Cluster really shards (every master holds
//! part of the data, none most of it, and the bus uses only shard channels), Sentinel's
//! failover loses no session and the store follows the new primary without a restart, and a
//! TLS-only server is reached over TLS only.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_domain::{
    FileId, FileType, ProfileField, RoomId, SearchFilters, Searcher, Timestamp, Username,
};
use chat_storage::redis::{RedisCluster, RedisTarget};
use chat_storage::{
    ChatStore, Cluster, FailoverStore, FileMeta, RedisStore, RoomRecord, SessionPatch,
    SessionStore, StorageMode, StoredFile,
};
use chat_testkit::{require_redis_cluster, require_sentinel_redis, require_tls_redis};

use common::{config, eventually, user_seen};

/// Sessions, searchers, rooms, files and rate counters of a few hundred users, written
/// through `store`.
async fn a_few_hundred_users(store: &RedisStore) {
    let mut previous = None;
    for index in 0..300 {
        let user = user_seen(Duration::ZERO);
        store.create(&user).await.unwrap();
        let online = SessionPatch {
            is_online: Some(true),
            ..SessionPatch::default()
        };
        store.update(&user.id, online).await.unwrap();
        store
            .hit_rate_limit(&format!("ip:10.0.0.{index}"), 100, Duration::from_secs(60))
            .await
            .unwrap();
        let Some(partner) = previous.take() else {
            previous = Some(user);
            continue;
        };
        let partner: chat_domain::GuestUser = partner;
        let room = RoomRecord {
            room_id: RoomId::generate(),
            members: [
                (partner.id.clone(), partner.username.clone()),
                (user.id.clone(), user.username.clone()),
            ],
        };
        store.open_room(&room).await.unwrap();
        let meta = FileMeta {
            file_id: FileId::generate(),
            room_id: room.room_id.clone(),
            uploader: user.id.clone(),
            filename: "a.txt".into(),
            file_type: FileType::Document,
            mime: "text/plain".into(),
            size: 5,
            duration: None,
            expires_at: Timestamp::now().plus(Duration::from_secs(60)),
        };
        store
            .put_file(StoredFile {
                meta,
                bytes: Bytes::from_static(b"hello"),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_redis_cluster_holds_the_data_on_every_shard_and_the_bus_on_shard_channels() {
    let Some(cluster) = require_redis_cluster(3) else {
        return;
    };
    let settings = config();
    let store = RedisStore::connect(&cluster.url(), settings.clone())
        .await
        .unwrap();
    a_few_hundred_users(&store).await;
    let waiting = user_seen(Duration::ZERO);
    store.create(&waiting).await.unwrap();
    let searcher = Searcher {
        user: waiting.public(),
        filters: SearchFilters::default(),
        avoid: None,
        blocked: Vec::new(),
    };
    assert_eq!(store.search(&searcher).await.unwrap(), None);

    let sizes: Vec<u64> = cluster
        .ports()
        .iter()
        .map(|port| cluster.dbsize(*port).unwrap())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert!(total > 1000, "{sizes:?}");
    for size in &sizes {
        assert!(*size > 0, "every master holds data: {sizes:?}");
        assert!(
            *size * 100 <= total * 60,
            "no master holds more than 60% of the keys: {sizes:?}"
        );
    }

    // Two nodes of a deployment on the cluster: their inboxes are shard channels, and a
    // message published by one reaches the other.
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let failover = FailoverStore::connect(&cluster.url(), settings.clone())
            .await
            .unwrap();
        let (node, inbox) = RedisCluster::join(&cluster.url(), Arc::new(failover), name.into())
            .await
            .unwrap();
        eventually("the subscription", || async { node.bus_health().up }).await;
        nodes.push((node, inbox));
    }
    nodes[0].0.publish("node-b", "hello".into()).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(5), nodes[1].1.recv()).await;
    assert_eq!(received.ok().flatten().as_deref(), Some("hello"));
    let mut shard_channels = Vec::new();
    for port in cluster.ports() {
        let classic = cluster.command(*port, &["PUBSUB", "CHANNELS"]).unwrap();
        assert_eq!(classic.trim(), "", "no classic pub/sub channel on {port}");
        let sharded = cluster
            .command(*port, &["PUBSUB", "SHARDCHANNELS"])
            .unwrap();
        shard_channels.extend(sharded.lines().map(str::to_owned));
    }
    for node in ["node-a", "node-b"] {
        let channel = store.node_channel(node);
        assert!(
            shard_channels.contains(&channel),
            "{channel} in {shard_channels:?}"
        );
    }
    for (node, _) in &nodes {
        node.shutdown().await;
    }
}

/// Searchers in pairs on filters nobody else matches: every one is paired with its own
/// partner, whatever the number of incompatible searchers waiting.
#[tokio::test]
async fn searchers_on_distinct_filters_all_pair_on_a_cluster() {
    let Some(cluster) = require_redis_cluster(3) else {
        return;
    };
    let store = RedisStore::connect(&cluster.url(), config()).await.unwrap();
    let pairs = 500;
    let mut expected = std::collections::HashMap::new();
    let mut firsts = Vec::new();
    for pair in 0..pairs {
        let language = ProfileField::parse("language", &format!("l{pair}")).unwrap();
        let mut members = Vec::new();
        for _ in 0..2 {
            let mut user = user_seen(Duration::ZERO);
            user.language = Some(language.clone());
            store.create(&user).await.unwrap();
            members.push(Searcher {
                user: user.public(),
                filters: SearchFilters {
                    language: Some(language.clone()),
                    ..SearchFilters::default()
                },
                avoid: None,
                blocked: Vec::new(),
            });
        }
        expected.insert(members[1].user.id.clone(), members[0].user.id.clone());
        firsts.push(members.remove(0));
        firsts.push(members.remove(0));
    }
    // Every first member waits, then every second one comes and finds exactly its own.
    for searcher in firsts.iter().step_by(2) {
        assert_eq!(store.search(searcher).await.unwrap(), None);
    }
    for searcher in firsts.iter().skip(1).step_by(2) {
        let partner = store
            .search(searcher)
            .await
            .unwrap()
            .map(|found| found.user.id);
        assert_eq!(partner.as_ref(), expected.get(&searcher.user.id));
    }
}

#[tokio::test]
async fn sentinel_failover_loses_no_session_and_the_store_follows_the_new_primary() {
    let Some(mut sentinel) = require_sentinel_redis() else {
        return;
    };
    let store = FailoverStore::connect(&sentinel.url(), config())
        .await
        .unwrap();
    assert_eq!(store.health().mode, StorageMode::Redis);
    let mut created = Vec::new();
    for _ in 0..50 {
        let user = user_seen(Duration::ZERO);
        store.create(&user).await.unwrap();
        created.push(user);
    }
    sentinel.kill_primary();
    let promoted = sentinel.wait_for_failover(Duration::from_secs(30)).unwrap();
    assert_eq!(promoted, sentinel.replica_port());
    eventually("the store on the new primary", || async {
        store.health().mode == StorageMode::Redis && store.redis().ping().await.is_ok()
    })
    .await;
    for user in &created {
        eventually("a session created before the failover", || async {
            store.redis().get(&user.id).await.ok().flatten().as_ref() == Some(user)
        })
        .await;
    }
    let later = user_seen(Duration::ZERO);
    store.create(&later).await.unwrap();
    let stored = sentinel
        .command(promoted, &["DBSIZE"])
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
    assert!(stored > 50, "the new primary holds the sessions: {stored}");
    assert_eq!(store.get(&later.id).await.unwrap(), Some(later));
    store.shutdown().await;
}

#[tokio::test]
async fn a_tls_only_server_is_reached_over_tls_only() {
    let Some(server) = require_tls_redis() else {
        return;
    };
    let tls = RedisTarget::new(server.url()).with_tls_ca_file(server.ca_file());
    let store = RedisStore::connect(tls, config()).await.unwrap();
    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    assert_eq!(store.get(&user.id).await.unwrap().as_ref(), Some(&user));
    // Plaintext never connects: no silent downgrade, no pretending to be up.
    assert!(
        RedisStore::connect(server.plain_url(), config())
            .await
            .is_err()
    );
    // Without the private CA the certificate is not trusted (the system roots do not know
    // it).
    assert!(RedisStore::connect(server.url(), config()).await.is_err());
    let named = Username::parse("Renamed_1").unwrap();
    let renamed = SessionPatch {
        username: Some(named.clone()),
        ..SessionPatch::default()
    };
    let updated = store.update(&user.id, renamed).await.unwrap();
    assert_eq!(updated.map(|user| user.username), Some(named));
}
