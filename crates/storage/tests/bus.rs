//! What the Redis driver of the bus promises beyond the cluster contract: a node that reads
//! too slowly loses messages (counted and logged) but keeps receiving; the subscription comes
//! back after Redis restarts; shutdown ends it cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_storage::bus::BusOptions;
use chat_storage::redis::RedisCluster;
use chat_storage::{Cluster, FailoverStore, Inbox};
use chat_testkit::{RedisServer, require_redis};

use common::{config, eventually};

/// A node `node_id` on `server` with small buffers, joined once its subscription is live.
async fn node(
    server: &RedisServer,
    prefix: &chat_storage::StoreConfig,
    node_id: &str,
    options: BusOptions,
) -> (RedisCluster, Inbox) {
    let store = FailoverStore::connect(&server.url(), prefix.clone())
        .await
        .unwrap();
    let (cluster, inbox) =
        RedisCluster::join_with(&server.url(), Arc::new(store), node_id.into(), options)
            .await
            .unwrap();
    eventually("the subscription", || async { cluster.bus_health().up }).await;
    (cluster, inbox)
}

/// Receives until nothing arrives for a while.
async fn drain(inbox: &mut Inbox) -> Vec<String> {
    let mut received = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await
    {
        received.push(message);
    }
    received
}

#[tokio::test]
async fn a_node_that_lagged_keeps_receiving() {
    let Some(server) = require_redis() else {
        return;
    };
    let shared = config();
    let small = BusOptions {
        inbox_backlog: 8,
        broadcast_capacity: 16,
    };
    let (slow, mut inbox) = node(&server, &shared, "slow", small).await;
    let (sender, _sender_inbox) = node(&server, &shared, "sender", BusOptions::default()).await;

    // Nobody reads the inbox while thousands of messages arrive: it fills, the forwarder waits
    // on it and fred's broadcast channel overflows.
    const BURST: u64 = 5_000;
    for index in 0..BURST {
        sender.publish("slow", index.to_string()).await.unwrap();
    }
    let burst = drain(&mut inbox).await;
    let lagged = slow.bus_lagged();
    assert!(lagged > 0, "the burst must overflow the subscription");
    assert_eq!(
        burst.len() as u64 + lagged,
        BURST,
        "every message is either received or counted"
    );
    let indexes: Vec<u64> = burst.iter().map(|text| text.parse().unwrap()).collect();
    assert!(indexes.is_sorted(), "what arrives arrives in order");

    // The node is not deaf: later messages arrive, and the bus still says it is up.
    assert!(slow.bus_health().up);
    for text in ["after-1", "after-2"] {
        sender.publish("slow", text.into()).await.unwrap();
    }
    assert_eq!(drain(&mut inbox).await, ["after-1", "after-2"]);
    assert_eq!(slow.bus_lagged(), lagged);

    slow.shutdown().await;
    sender.shutdown().await;
}

#[tokio::test]
async fn the_subscription_comes_back_after_redis_restarts() {
    let Some(mut server) = require_redis() else {
        return;
    };
    let shared = config();
    let (receiver, mut inbox) = node(&server, &shared, "receiver", BusOptions::default()).await;
    let (sender, _sender_inbox) = node(&server, &shared, "sender", BusOptions::default()).await;
    sender.publish("receiver", "before".into()).await.unwrap();
    assert_eq!(inbox.recv().await.as_deref(), Some("before"));

    server.kill();
    eventually("the bus to report the outage", || async {
        !receiver.bus_health().up
    })
    .await;
    server.restart().unwrap();
    eventually("the subscription to be renewed", || async {
        receiver.bus_health().up
    })
    .await;
    // The sender's store fell back to memory during the outage and needs a moment to return.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let _ = sender.publish("receiver", "after".into()).await;
        let received = tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await;
        if matches!(received, Ok(Some(text)) if text == "after") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message got through again"
        );
    }
    receiver.shutdown().await;
    sender.shutdown().await;
}

#[tokio::test]
async fn shutdown_unsubscribes_and_closes_the_inbox() {
    let Some(server) = require_redis() else {
        return;
    };
    let shared = config();
    let (leaving, mut inbox) = node(&server, &shared, "leaving", BusOptions::default()).await;
    let (sender, _sender_inbox) = node(&server, &shared, "sender", BusOptions::default()).await;
    sender.publish("leaving", "queued".into()).await.unwrap();
    eventually("the message to be queued", || async { !inbox.is_empty() }).await;
    tokio::time::timeout(Duration::from_secs(5), leaving.shutdown())
        .await
        .expect("shutdown ends");
    assert!(!leaving.bus_health().up);
    sender.publish("leaving", "dropped".into()).await.unwrap();
    assert_eq!(inbox.recv().await.as_deref(), Some("queued"));
    assert_eq!(inbox.recv().await, None);
    sender.shutdown().await;
}
