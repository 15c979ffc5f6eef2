//! A node dies without a word, three nodes in one process on the in-process cluster and one
//! shared memory store, time paused: the survivors notice within the node timeout, and each
//! of its users is treated as if their socket had dropped (offline, out of the queue, the
//! partner told, the room closed after the grace unless they come back on a live node). Also:
//! the directory after an outage of the shared store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_domain::{Timestamp, UserId};
use chat_signaling::{CloseReason, Outgoing, SearchFilters};
use chat_storage::{SessionPatch, SessionStore};
use common::{Harness, NODE_TIMEOUT, config, text};
use serde_json::json;

/// `user`'s socket on `node` as the gateway writes it at connect: online, socket attached.
async fn online(harness: &Harness, user: &UserId, node: usize) {
    let patch = SessionPatch {
        is_online: Some(true),
        socket: Some(Some((format!("socket-{node}"), Timestamp::now()))),
        ..SessionPatch::default()
    };
    harness.store.update(user, patch).await.unwrap();
}

/// Two users matched on nodes `first` and `second`, both online with a socket.
async fn chatting(harness: &Harness, first: usize, second: usize) -> (UserId, UserId) {
    let (alice, bob, _room) = harness.pair_on(first, second).await;
    online(harness, &alice, first).await;
    online(harness, &bob, second).await;
    (alice, bob)
}

/// Lets time run `step` at a time until `user` got an event `wanted` matches (taking every
/// event of everyone meanwhile); returns how long it took, or `None` after `limit`.
async fn wait_for(
    harness: &Harness,
    user: &UserId,
    wanted: impl Fn(&Outgoing) -> bool,
    limit: Duration,
) -> Option<Duration> {
    let step = Duration::from_millis(100);
    let start = tokio::time::Instant::now();
    while start.elapsed() <= limit {
        harness.settle().await;
        if harness.for_user(user).iter().any(&wanted) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(step).await;
    }
    None
}

fn disconnected(event: &Outgoing) -> bool {
    matches!(event, Outgoing::PartnerDisconnected { .. })
}

fn closed_as_disconnected(event: &Outgoing) -> bool {
    matches!(
        event,
        Outgoing::RoomClosed {
            reason: CloseReason::PartnerDisconnected,
            ..
        }
    )
}

#[tokio::test(start_paused = true)]
async fn the_partner_of_a_crashed_nodes_user_hears_it_then_the_room_closes_after_the_grace() {
    let harness = Harness::with_nodes(3);
    let (alice, bob) = chatting(&harness, 0, 2).await;
    // Some time into the nodes' life, so that the survivors judge others at once.
    tokio::time::sleep(NODE_TIMEOUT).await;
    harness.take();

    harness.crash(2).await;
    let noticed = wait_for(&harness, &alice, disconnected, NODE_TIMEOUT)
        .await
        .expect("partner:disconnected within the node timeout");
    assert!(
        noticed > Duration::from_secs(1),
        "not before the node is silent: {noticed:?}"
    );

    // The dead node's user is offline, their socket detached, as after a drop.
    let session = harness.store.get(&bob).await.unwrap().unwrap();
    assert!(!session.is_online && session.socket_id.is_none());
    let stats = harness.store.stats(Timestamp::now()).await.unwrap();
    assert_eq!(stats.online_users, 1, "only Alice counts online");

    // The room waits the grace, then closes for Alice with `partner_disconnected`, once.
    let grace = config().reconnect_grace;
    let waited = wait_for(&harness, &alice, closed_as_disconnected, grace * 2)
        .await
        .expect("room:closed after the grace");
    assert!(
        waited >= grace - Duration::from_millis(200) && waited <= grace + Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(harness.nodes[0].room_of(&alice).await, None);
    assert_eq!(harness.nodes[0].local_chats(), 0);
    tokio::time::sleep(grace * 2).await;
    harness.settle().await;
    assert!(
        harness.for_user(&alice).is_empty(),
        "nothing more for Alice"
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_nodes_searcher_leaves_the_queue_and_its_users_count_offline() {
    let harness = Harness::with_nodes(3);
    let carol = harness.user_on(2, json!({})).await;
    let dave = harness.user_on(2, json!({})).await;
    online(&harness, &carol, 2).await;
    online(&harness, &dave, 2).await;
    harness.nodes[2]
        .search(&carol, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let stats = harness.store.stats(Timestamp::now()).await.unwrap();
    assert_eq!((stats.online_users, stats.available_users), (2, 1));

    harness.crash(2).await;
    tokio::time::sleep(NODE_TIMEOUT + Duration::from_secs(1)).await;
    harness.settle().await;
    let stats = harness.store.stats(Timestamp::now()).await.unwrap();
    assert_eq!(
        (stats.online_users, stats.available_users),
        (0, 0),
        "{stats:?}"
    );
    for user in [&carol, &dave] {
        let session = harness.store.get(user).await.unwrap().unwrap();
        assert!(!session.is_online && !session.is_searching && session.socket_id.is_none());
    }

    // A newcomer is never paired with the dead node's searcher: they wait.
    let erin = harness.user_on(0, json!({})).await;
    harness.nodes[0]
        .search(&erin, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(
        !events
            .iter()
            .any(|(_, event)| matches!(event, Outgoing::Found { .. })),
        "{events:?}"
    );
    assert_eq!(harness.nodes[0].room_of(&erin).await, None);
    // The next searcher meets Erin.
    let frank = harness.user_on(1, json!({})).await;
    harness.nodes[1]
        .search(&frank, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    assert!(harness.nodes[0].room_of(&erin).await.is_some());
    assert_eq!(
        harness.nodes[0].room_of(&erin).await,
        harness.nodes[1].room_of(&frank).await
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_user_of_a_crashed_node_who_reconnects_within_the_grace_keeps_the_chat() {
    let harness = Harness::with_nodes(3);
    let (alice, bob) = chatting(&harness, 0, 2).await;
    tokio::time::sleep(NODE_TIMEOUT).await;
    harness.take();

    harness.crash(2).await;
    wait_for(&harness, &alice, disconnected, NODE_TIMEOUT)
        .await
        .expect("partner:disconnected");

    // Bob's client reconnects, through the proxy, to node 1.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let room = harness.connect(&bob, 1).await;
    assert!(room.is_some(), "Bob's room waited for him");
    harness.settle().await;
    assert!(
        harness
            .for_user(&alice)
            .iter()
            .any(|event| matches!(event, Outgoing::PartnerReconnected))
    );

    // The grace passes: the room stays, and messages cross both ways.
    tokio::time::sleep(config().reconnect_grace * 2).await;
    harness.settle().await;
    let events = harness.take();
    assert!(
        !events
            .iter()
            .any(|(_, event)| matches!(event, Outgoing::RoomClosed { .. })),
        "{events:?}"
    );
    let hello = harness.nodes[1]
        .send_message(&bob, text("back"))
        .await
        .unwrap();
    let reply = harness.nodes[0]
        .send_message(&alice, text("welcome"))
        .await
        .unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(events.iter().any(|(to, event)| to == &alice
        && matches!(event, Outgoing::Message(message) if message.id == hello.id)));
    assert!(events.iter().any(|(to, event)| to == &bob
        && matches!(event, Outgoing::Message(message) if message.id == reply.id)));
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_user_back_on_a_live_node_before_the_crash_is_noticed_is_left_alone() {
    let harness = Harness::with_nodes(3);
    let (alice, bob) = chatting(&harness, 0, 2).await;
    tokio::time::sleep(NODE_TIMEOUT).await;
    harness.take();

    harness.crash(2).await;
    // Bob's client notices first and reconnects to node 1 at once.
    harness.connect(&bob, 1).await;
    tokio::time::sleep(NODE_TIMEOUT + config().reconnect_grace * 2).await;
    harness.settle().await;
    let events = harness.for_user(&alice);
    assert!(
        !events
            .iter()
            .any(|event| disconnected(event) || matches!(event, Outgoing::RoomClosed { .. })),
        "{events:?}"
    );
    assert!(harness.nodes[1].room_of(&bob).await.is_some());
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_room_waiting_on_a_node_that_crashes_still_closes_after_the_grace() {
    let harness = Harness::with_nodes(3);
    let (alice, bob) = chatting(&harness, 0, 2).await;
    tokio::time::sleep(NODE_TIMEOUT).await;
    harness.take();

    // Bob's socket drops on node 2, whose grace timer then dies with it.
    harness.disconnect(&bob).await;
    harness.settle().await;
    let told = harness.for_user(&alice);
    assert_eq!(
        told.iter().filter(|e| disconnected(e)).count(),
        1,
        "{told:?}"
    );
    assert_eq!(
        harness.network.as_ref().unwrap().held_users("node-2"),
        vec![bob.clone()],
        "node 2 still answers for Bob"
    );
    harness.crash(2).await;
    let limit = NODE_TIMEOUT + config().reconnect_grace * 2;
    let mut told = Vec::new();
    let start = tokio::time::Instant::now();
    while start.elapsed() <= limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        harness.settle().await;
        told.extend(harness.for_user(&alice));
    }
    assert_eq!(
        told.iter().filter(|e| disconnected(e)).count(),
        0,
        "told once: {told:?}"
    );
    assert_eq!(
        told.iter().filter(|e| closed_as_disconnected(e)).count(),
        1,
        "{told:?}"
    );
    assert_eq!(harness.nodes[0].room_of(&alice).await, None);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn users_who_connected_during_an_outage_are_recorded_when_it_ends() {
    let harness = Harness::with_nodes(3);
    tokio::time::sleep(NODE_TIMEOUT).await;
    harness.set_outage(true);
    let carol = harness.user_on(1, json!({})).await;
    online(&harness, &carol, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    harness.set_outage(false);
    // One beat later the directory places Carol on node 1 again.
    tokio::time::sleep(NODE_TIMEOUT / 5 + Duration::from_millis(100)).await;

    let alice = harness.user_on(0, json!({})).await;
    harness.nodes[1]
        .search(&carol, SearchFilters::default())
        .await
        .unwrap();
    harness.nodes[0]
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&carol)
            .iter()
            .any(|event| matches!(event, Outgoing::Found { .. })),
        "Carol hears of her match from node 0"
    );
    let hello = harness.nodes[0]
        .send_message(&alice, text("hi"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&carol)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == hello.id))
    );
    // Nobody was taken for dead meanwhile.
    assert_eq!(harness.nodes[0].live_nodes().await.unwrap().len(), 3);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn live_nodes_lists_the_beating_nodes() {
    let harness = Harness::with_nodes(3);
    let carol = harness.user_on(1, json!({})).await;
    tokio::time::sleep(NODE_TIMEOUT / 5 + Duration::from_millis(100)).await;
    let nodes = harness.nodes[2].live_nodes().await.unwrap();
    let ids: Vec<_> = nodes.iter().map(|node| node.id.as_str()).collect();
    assert_eq!(ids, ["node-0", "node-1", "node-2"]);
    assert_eq!(nodes[1].sockets, 1);
    assert!(nodes.iter().all(|node| node.started_at <= node.last_seen));
    harness.crash(1).await;
    tokio::time::sleep(NODE_TIMEOUT).await;
    let ids: Vec<_> = harness.nodes[0]
        .live_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|node| node.id)
        .collect();
    assert_eq!(ids, ["node-0", "node-2"]);
    let _ = carol;
    harness.shutdown().await;
}
