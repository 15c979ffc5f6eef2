//! The contract every [`Cluster`] driver keeps, run against the in-process driver and against
//! Redis: publishing reaches the node's inbox in order, and the directory follows the node
//! that took a user last.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::UserId;
use chat_storage::{Cluster, InProcessNetwork, Inbox};

/// A node of a test: its cluster handle and its inbox.
type Node = (Arc<dyn Cluster>, Inbox);

macro_rules! cluster_suite {
    ($backend:ident, $open:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $check() {
                    if let Some(mut nodes) = $open(3).await {
                        super::$check(&mut nodes).await;
                    }
                }
            )*
        }
    };
}

macro_rules! every_check {
    ($backend:ident, $open:path) => {
        cluster_suite!(
            $backend,
            $open,
            [
                nodes_know_their_ids_and_are_up,
                publish_reaches_the_node_in_order,
                a_node_hears_what_it_sends_itself,
                the_directory_follows_the_last_node,
                a_node_that_lost_the_user_clears_nothing,
            ]
        );
    };
}

every_check!(in_process, crate::cluster::in_process_nodes);
#[cfg(feature = "redis")]
every_check!(redis, crate::cluster::redis_nodes);
#[cfg(feature = "redis")]
every_check!(redis_cluster, crate::cluster::redis_cluster_nodes);

/// `count` nodes `node-0`, `node-1`… of one fresh in-process network.
pub async fn in_process_nodes(count: usize) -> Option<Vec<Node>> {
    let network = InProcessNetwork::default();
    let nodes = (0..count)
        .map(|index| {
            let (cluster, inbox) = network.join(format!("node-{index}"));
            (cluster as Arc<dyn Cluster>, inbox)
        })
        .collect();
    Some(nodes)
}

/// `count` nodes on the shared `redis-server` under one fresh prefix, each with its own store,
/// once their subscriptions are live; `None` without `redis-server`.
#[cfg(feature = "redis")]
pub async fn redis_nodes(count: usize) -> Option<Vec<Node>> {
    let url = crate::common::shared_redis()?.url();
    redis_nodes_at(&url, count).await
}

/// Like [`redis_nodes`], on the shared three-master Redis Cluster (sharded pub/sub).
#[cfg(feature = "redis")]
pub async fn redis_cluster_nodes(count: usize) -> Option<Vec<Node>> {
    let url = crate::common::shared_cluster()?.url();
    redis_nodes_at(&url, count).await
}

#[cfg(feature = "redis")]
async fn redis_nodes_at(url: &str, count: usize) -> Option<Vec<Node>> {
    use chat_storage::FailoverStore;
    use chat_storage::redis::RedisCluster;

    let shared = crate::common::config();
    let mut nodes = Vec::new();
    for index in 0..count {
        let store = FailoverStore::connect(url, shared.clone()).await.unwrap();
        let (cluster, inbox) = RedisCluster::join(url, Arc::new(store), format!("node-{index}"))
            .await
            .unwrap();
        crate::common::eventually("the subscription", || async { cluster.bus_health().up }).await;
        nodes.push((Arc::new(cluster) as Arc<dyn Cluster>, inbox));
    }
    Some(nodes)
}

/// Receives `count` messages, failing after a deadline.
async fn receive(inbox: &mut Inbox, count: usize) -> Vec<String> {
    let mut received = Vec::new();
    while received.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await;
        match next {
            Ok(Some(message)) => received.push(message),
            Ok(None) => panic!("the inbox closed after {} messages", received.len()),
            Err(_) => panic!("only {} of {count} messages arrived", received.len()),
        }
    }
    received
}

/// Whether nothing arrives for a moment.
async fn stays_empty(inbox: &mut Inbox) -> bool {
    tokio::time::timeout(Duration::from_millis(200), inbox.recv())
        .await
        .is_err()
}

async fn nodes_know_their_ids_and_are_up(nodes: &mut [Node]) {
    for (index, (cluster, _)) in nodes.iter().enumerate() {
        assert_eq!(cluster.node_id(), format!("node-{index}"));
        assert!(cluster.bus_health().up);
    }
}

async fn publish_reaches_the_node_in_order(nodes: &mut [Node]) {
    const EACH: usize = 200;
    let (first, third) = (Arc::clone(&nodes[0].0), Arc::clone(&nodes[2].0));
    let publish_all = async |publisher: Arc<dyn Cluster>, name: &str| {
        for index in 0..EACH {
            publisher
                .publish("node-1", format!("{name}:{index}"))
                .await
                .unwrap();
        }
    };
    tokio::join!(publish_all(first, "a"), publish_all(third, "c"));
    let received = receive(&mut nodes[1].1, 2 * EACH).await;
    for name in ["a", "c"] {
        let from: Vec<String> = received
            .iter()
            .filter_map(|message| message.strip_prefix(&format!("{name}:")).map(str::to_owned))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|index| index.to_string()).collect();
        assert_eq!(from, expected, "messages of {name} in publish order");
    }
    assert!(
        stays_empty(&mut nodes[1].1).await,
        "each message arrives once"
    );
    assert!(
        stays_empty(&mut nodes[0].1).await,
        "nothing reaches the other nodes"
    );
    assert!(stays_empty(&mut nodes[2].1).await);
}

async fn a_node_hears_what_it_sends_itself(nodes: &mut [Node]) {
    let (cluster, inbox) = &mut nodes[0];
    cluster.publish("node-0", "to myself".into()).await.unwrap();
    assert_eq!(receive(inbox, 1).await, ["to myself"]);
    cluster.publish("node-9", "to nobody".into()).await.unwrap();
}

async fn the_directory_follows_the_last_node(nodes: &mut [Node]) {
    let (first, second) = (&nodes[0].0, &nodes[1].0);
    let user = UserId::generate();
    assert_eq!(first.user_node(&user).await.unwrap(), None);
    first.set_user_node(&user).await.unwrap();
    for (cluster, _) in nodes.iter() {
        assert_eq!(
            cluster.user_node(&user).await.unwrap().as_deref(),
            Some("node-0")
        );
    }
    second.set_user_node(&user).await.unwrap();
    assert_eq!(
        first.user_node(&user).await.unwrap().as_deref(),
        Some("node-1")
    );
    second.clear_user_node(&user).await.unwrap();
    assert_eq!(first.user_node(&user).await.unwrap(), None);
    // Setting twice and clearing once forgets the user; clearing the unknown does nothing.
    first.set_user_node(&user).await.unwrap();
    first.set_user_node(&user).await.unwrap();
    first.clear_user_node(&user).await.unwrap();
    first.clear_user_node(&user).await.unwrap();
    assert_eq!(second.user_node(&user).await.unwrap(), None);
}

async fn a_node_that_lost_the_user_clears_nothing(nodes: &mut [Node]) {
    let (first, second, third) = (&nodes[0].0, &nodes[1].0, &nodes[2].0);
    let user = UserId::generate();
    let other = UserId::generate();
    first.set_user_node(&user).await.unwrap();
    first.set_user_node(&other).await.unwrap();
    // The user reconnected to the second node before the first noticed its socket was gone.
    second.set_user_node(&user).await.unwrap();
    first.clear_user_node(&user).await.unwrap();
    third.clear_user_node(&user).await.unwrap();
    assert_eq!(
        third.user_node(&user).await.unwrap().as_deref(),
        Some("node-1")
    );
    assert_eq!(
        third.user_node(&other).await.unwrap().as_deref(),
        Some("node-0")
    );
}
