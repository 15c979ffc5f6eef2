//! What reaches a user on another node, and what does not: a session ended through any node
//! ends its socket wherever it is, and an event for a partner on a node this one cannot reach
//! (Redis or the bus down) fails for its sender instead of being lost. Three nodes in one
//! process, paused time, as in `three_nodes.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chat_domain::ErrorCode;
use std::time::Duration;

use chat_signaling::{ChatError, CloseReason, DropReason, Outgoing, SessionEnd};
use common::{Harness, answer, candidate, offer, text};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_session_deleted_through_another_node_ends_its_socket_there() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    // `DELETE /api/guest/me` served by node 2, as the gateway runs it.
    harness.nodes[2]
        .end_elsewhere(&alice, SessionEnd::Deleted)
        .await;
    harness.nodes[2]
        .session_ended(&alice, SessionEnd::Deleted)
        .await;
    harness.settle().await;
    assert_eq!(
        harness.ended(),
        vec![(0, alice.clone(), SessionEnd::Deleted)],
        "node 0 ended Alice's socket"
    );
    assert_eq!(harness.nodes[0].local_chats(), 0, "node 0 forgot her chat");
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::PartnerLeft
        }]
    );
    assert_eq!(harness.local_chats(), 0);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_session_expired_on_another_node_says_so_to_its_socket() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    // The expiry sweep handed Alice's id to node 1 (Bob's node).
    harness.nodes[1]
        .end_elsewhere(&alice, SessionEnd::Expired)
        .await;
    harness.nodes[1]
        .session_ended(&alice, SessionEnd::Expired)
        .await;
    harness.settle().await;
    assert_eq!(harness.ended(), vec![(0, alice, SessionEnd::Expired)]);
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::SessionExpired
        }]
    );
    assert_eq!(harness.local_chats(), 0);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_session_ended_on_its_own_node_sends_nothing_to_the_others() {
    let harness = Harness::with_nodes(2);
    let (alice, _bob, _) = harness.pair_on(0, 1).await;
    harness.place(&alice, None).await;
    harness.nodes[0]
        .end_elsewhere(&alice, SessionEnd::Deleted)
        .await;
    harness.settle().await;
    assert!(harness.ended().is_empty(), "no node holds her socket");
    harness.shutdown().await;
}

/// Every relay with an ack from `user` on `node`: its error code, if it failed.
fn relays(harness: &Harness, node: usize, user: &chat_domain::UserId) -> Vec<Option<ErrorCode>> {
    let chat = &harness.nodes[node];
    let sdp = |kind: &str| json!({kind: {"type": kind, "sdp": "v=0"}});
    let candidate_payload = json!({"candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}});
    [
        chat.typing(user, true),
        offer(chat, user, &sdp("offer")),
        answer(chat, user, &sdp("answer")),
        candidate(chat, user, &candidate_payload),
        chat.end_call(user, false),
        chat.end_call(user, true),
    ]
    .into_iter()
    .map(|result| result.err().map(|error| error.code()))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn during_a_redis_outage_events_for_another_node_fail_for_the_sender() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    let (carol, dave, _) = harness.pair_on(2, 2).await;
    harness.gated.set_redis_up(false);

    let sent = harness.nodes[0].send_message(&alice, text("lost?")).await;
    assert!(
        matches!(sent, Err(ChatError::PartnerUnreachable)),
        "{sent:?}"
    );
    let error = sent.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unavailable);
    assert_eq!(error.to_string(), "Connected user is not available");
    assert_eq!(
        relays(&harness, 1, &bob),
        vec![Some(ErrorCode::Unavailable); 6]
    );
    harness.settle().await;
    let events = harness.take();
    assert!(
        !events.iter().any(|(to, _)| to == &alice || to == &bob),
        "nothing was sent, not even `message:sent`: {events:?}"
    );

    // A chat on one node needs no Redis.
    harness.nodes[2]
        .send_message(&carol, text("still here"))
        .await
        .unwrap();
    assert_eq!(relays(&harness, 2, &dave), vec![None; 6]);

    // Redis back: the cross-node chat goes on.
    harness.gated.set_redis_up(true);
    let sent = harness.nodes[0]
        .send_message(&alice, text("back"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&bob)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == sent.id))
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn while_the_bus_is_down_events_for_another_node_fail_for_the_sender() {
    let harness = Harness::with_nodes(2);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    harness.set_outage(true);
    assert_eq!(harness.nodes[0].bus_health().map(|bus| bus.up), Some(false));
    assert!(matches!(
        harness.nodes[0].send_message(&alice, text("lost?")).await,
        Err(ChatError::PartnerUnreachable)
    ));
    assert_eq!(
        relays(&harness, 1, &bob),
        vec![Some(ErrorCode::Unavailable); 6]
    );
    harness.set_outage(false);
    harness.nodes[0]
        .send_message(&alice, text("back"))
        .await
        .unwrap();
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn events_for_a_partner_placed_nowhere_wait_for_their_node_to_record_them() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    harness.take();
    // Bob's entry is gone for a moment, as after Redis came back empty and before his node
    // records its users again (his searchers may already be back in the shared queue).
    harness.nodes[1].release_user(&bob).await;
    let sent = harness.nodes[0]
        .send_message(&alice, text("are you there?"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(harness.for_user(&bob).is_empty(), "nowhere to send it yet");
    harness.nodes[1].claim_user(&bob).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let received = harness.for_user(&bob);
    assert!(
        matches!(received.as_slice(), [Outgoing::Message(message)] if message.id == sent.id),
        "the message waited for Bob's node: {received:?}"
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn events_between_nodes_are_timed_and_those_given_up_counted() {
    let harness = Harness::with_nodes(2);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    let before = harness.watch.delivered.lock().unwrap().len();
    assert!(before >= 1, "match:found went from node 0 to node 1");
    harness.nodes[0]
        .send_message(&alice, text("hello"))
        .await
        .unwrap();
    harness.settle().await;
    let delivered = harness.watch.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), before + 1, "the message, timed on node 1");
    // In one process the two clocks are one: a delivery takes no time at all to a minute.
    assert!(
        delivered
            .iter()
            .all(|latency| *latency < Duration::from_secs(60))
    );
    assert!(harness.watch.dropped.lock().unwrap().is_empty());

    // Bob's node never records him again: the message waits, then is given up and counted.
    harness.nodes[1].release_user(&bob).await;
    harness.nodes[0]
        .send_message(&alice, text("still there?"))
        .await
        .unwrap();
    tokio::time::sleep(chat_signaling::cluster::UNPLACED_WAIT + Duration::from_millis(300)).await;
    assert_eq!(
        *harness.watch.dropped.lock().unwrap(),
        vec![(1, DropReason::Unplaced)]
    );
    harness.shutdown().await;
}
