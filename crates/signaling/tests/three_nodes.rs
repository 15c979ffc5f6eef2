//! Three nodes in one process on the in-process cluster and one shared memory store, going
//! through the whole life of chats whose two users sit on different nodes. Time is paused:
//! timers fire exactly when the test lets them, and [`Harness::settle`] lets the bus tasks
//! carry every event between nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chat_domain::{ErrorCode, MessageId, RoomId, UserId};
use chat_signaling::{ChatError, CloseReason, Outgoing, SearchFilters};
use chat_storage::SessionStore;
use common::{Harness, offer, text};
use serde_json::json;

/// The `match:found` each user got: (room, partner, initiator).
fn found(events: &[(UserId, Outgoing)]) -> HashMap<UserId, (RoomId, UserId, bool)> {
    let mut found = HashMap::new();
    for (to, event) in events {
        if let Outgoing::Found {
            room_id,
            partner,
            initiator,
            ..
        } = event
        {
            let previous = found.insert(
                to.clone(),
                (room_id.clone(), partner.id.clone(), *initiator),
            );
            assert!(previous.is_none(), "{to} was told of two matches");
        }
    }
    found
}

/// The receipts `user` got, by message.
fn delivered(events: &[Outgoing]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|event| match event {
            Outgoing::Delivered { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_cross_node_chat_from_match_to_next() {
    let harness = Harness::with_nodes(3);
    let alice = harness.user_on(0, json!({})).await;
    let bob = harness.user_on(1, json!({})).await;
    let carol = harness.user_on(2, json!({})).await;

    // Match: Alice waits on node 0, Bob searches on node 1.
    harness.nodes[0]
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    harness.nodes[1]
        .search(&bob, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let matches = found(&harness.take());
    assert_eq!(matches.len(), 2);
    let (room, partner, initiator) = matches[&alice].clone();
    assert_eq!(
        (partner, initiator),
        (bob.clone(), true),
        "the one who waited offers"
    );
    assert_eq!(matches[&bob], (room.clone(), alice.clone(), false));
    assert_eq!(harness.nodes[0].room_of(&alice).await, Some(room.clone()));
    assert_eq!(harness.nodes[1].room_of(&bob).await, Some(room.clone()));
    assert_eq!(
        (
            harness.nodes[0].local_chats(),
            harness.nodes[1].local_chats()
        ),
        (1, 1)
    );

    // A message each way; each receipt reaches its sender once, from the ack or from
    // `message:delivered`, whichever comes first.
    let hello = harness.nodes[0]
        .send_message(&alice, text("hello"))
        .await
        .unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(events.iter().any(|(to, event)| to == &bob
        && matches!(event, Outgoing::Message(message) if message.id == hello.id && message.sender_id == alice)));
    assert!(
        events.iter().any(|(to, event)| to == &alice
            && matches!(event, Outgoing::Sent { id, .. } if id == &hello.id))
    );
    assert!(harness.ack(&bob, &hello.id), "Bob's ack is his receipt");
    assert!(
        !harness.nodes[1].confirm_delivery(&bob, &hello.id),
        "once per message"
    );
    harness.settle().await;
    assert_eq!(delivered(&harness.for_user(&alice)), vec![hello.id.clone()]);

    let reply = harness.nodes[1]
        .send_message(&bob, text("hi"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&alice)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == reply.id))
    );
    assert!(
        harness.nodes[0].confirm_delivery(&alice, &reply.id),
        "message:delivered"
    );
    assert!(
        !harness.ack(&alice, &reply.id),
        "the late ack changes nothing"
    );
    harness.settle().await;
    assert_eq!(delivered(&harness.for_user(&bob)), vec![reply.id.clone()]);

    // Typing, both ways.
    harness.nodes[1].typing(&bob, true).unwrap();
    harness.nodes[0].typing(&alice, false).unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(events.contains(&(
        alice.clone(),
        Outgoing::Typing {
            from: bob.clone(),
            is_typing: true
        }
    )));
    assert!(events.contains(&(
        bob.clone(),
        Outgoing::Typing {
            from: alice.clone(),
            is_typing: false
        }
    )));

    // A call from node 0 that Bob never answers: the timer on node 0 tells both.
    offer(
        &harness.nodes[0],
        &alice,
        &json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "audio"}),
    )
    .unwrap();
    harness.settle().await;
    assert!(
        matches!(&harness.for_user(&bob)[..], [Outgoing::Offer { from, .. }] if from == &alice)
    );
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(harness.take().is_empty(), "not before the timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut timed_out: Vec<UserId> = harness
        .take()
        .into_iter()
        .filter(|(_, event)| matches!(event, Outgoing::CallTimeout { from, .. } if from == &alice))
        .map(|(to, _)| to)
        .collect();
    timed_out.sort();
    let mut both = vec![alice.clone(), bob.clone()];
    both.sort();
    assert_eq!(timed_out, both);

    // Alice drops from node 0 and comes back on node 2 within the grace period.
    harness.disconnect(&alice).await;
    harness.settle().await;
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::PartnerDisconnected { grace_secs: 10 }]
    );
    assert!(matches!(
        harness.nodes[1].send_message(&bob, text("there?")).await,
        Err(ChatError::PartnerUnavailable)
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(harness.connect(&alice, 2).await, Some(room.clone()));
    harness.settle().await;
    assert_eq!(harness.for_user(&bob), vec![Outgoing::PartnerReconnected]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(harness.take().is_empty(), "node 0's grace timer stood down");
    assert_eq!(
        harness.nodes[0].local_chats(),
        0,
        "node 0 forgot Alice's chat"
    );
    let back = harness.nodes[2]
        .send_message(&alice, text("back, on node 2"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&bob)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == back.id))
    );
    assert!(harness.ack(&bob, &back.id));
    harness.settle().await;
    assert_eq!(delivered(&harness.for_user(&alice)), vec![back.id]);

    // Bob skips: Alice's room closes, Bob searches again and meets Carol on node 2.
    harness.nodes[1]
        .next(&bob, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(events.contains(&(
        alice.clone(),
        Outgoing::RoomClosed {
            room_id: room.clone(),
            reason: CloseReason::PartnerSkipped
        }
    )));
    assert!(events.contains(&(bob.clone(), Outgoing::Searching)));
    assert_eq!(harness.nodes[2].room_of(&alice).await, None);
    assert!(!harness.store.get(&alice).await.unwrap().unwrap().in_chat);
    harness.nodes[2]
        .search(&carol, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let matches = found(&harness.take());
    assert_eq!(matches[&bob].1, carol);
    assert_eq!(matches[&carol].1, bob);
    assert_eq!(matches[&bob].0, matches[&carol].0);
    assert_ne!(matches[&bob].0, room);
    assert_eq!(
        harness.local_chats(),
        2,
        "Bob's and Carol's links, nothing of Alice"
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_user_who_does_not_come_back_closes_the_room_on_the_other_node() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    harness.disconnect(&alice).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::PartnerDisconnected { grace_secs: 10 }]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::PartnerDisconnected
        }]
    );
    assert_eq!(harness.local_chats(), 0);
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);
    assert_eq!(
        harness.nodes[1]
            .typing(&bob, true)
            .err()
            .map(|error| error.code()),
        Some(ErrorCode::NotInChat)
    );
}

#[tokio::test(start_paused = true)]
async fn a_socket_opened_on_another_node_replaces_the_old_one_and_keeps_the_chat() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    assert_eq!(harness.connect_another_socket(&alice, 2).await, Some(room));
    harness.settle().await;
    assert_eq!(
        harness.replaced(),
        vec![(0, alice.clone())],
        "node 0 closed its socket"
    );
    assert_eq!(harness.nodes[0].local_chats(), 0, "node 0 forgot the chat");
    assert_eq!(harness.for_user(&bob), vec![Outgoing::PartnerReconnected]);
    let sent = harness.nodes[1]
        .send_message(&bob, text("which tab is this?"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness.ack(&alice, &sent.id),
        "the new socket on node 2 got it"
    );
    harness.settle().await;
    assert_eq!(delivered(&harness.for_user(&bob)), vec![sent.id]);
}

#[tokio::test(start_paused = true)]
async fn a_chat_on_one_node_never_touches_the_cluster() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, _) = harness.pair_on(1, 1).await;
    harness.take_cluster_calls();
    for round in 0..10 {
        let sent = harness.nodes[1]
            .send_message(&alice, text(&format!("{round}")))
            .await
            .unwrap();
        assert!(harness.ack(&bob, &sent.id));
        harness.nodes[1].typing(&bob, round % 2 == 0).unwrap();
    }
    harness.settle().await;
    assert_eq!(
        harness.take_cluster_calls(),
        0,
        "no bus or directory call per message"
    );
    assert_eq!(delivered(&harness.for_user(&alice)).len(), 10);
}

#[tokio::test(start_paused = true)]
async fn three_hundred_searchers_on_three_nodes_are_each_paired_once() {
    let harness = Harness::with_nodes(3);
    let mut users = Vec::new();
    for index in 0..300 {
        users.push((index % 3, harness.user_on(index % 3, json!({})).await));
    }
    let searches: Vec<_> = users
        .iter()
        .map(|(node, user)| {
            let (chat, user) = (harness.nodes[*node].clone(), user.clone());
            tokio::spawn(async move { chat.search(&user, SearchFilters::default()).await })
        })
        .collect();
    for search in searches {
        search.await.unwrap().unwrap();
    }
    harness.settle().await;
    let matches = found(&harness.take());
    assert_eq!(matches.len(), 300, "everyone paired");
    for (user, (room, partner, initiator)) in &matches {
        assert_ne!(user, partner);
        let (partner_room, partners_partner, partner_initiator) = &matches[partner];
        assert_eq!(
            (partners_partner, partner_room),
            (user, room),
            "both sides agree"
        );
        assert_ne!(initiator, partner_initiator, "exactly one initiator");
    }
    for (node, user) in &users {
        assert_eq!(
            harness.nodes[*node].room_of(user).await.as_ref(),
            Some(&matches[user].0)
        );
    }
    assert_eq!(harness.local_chats(), 300);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_timers_and_waits_for_the_tasks() {
    let harness = Harness::with_nodes(2);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    offer(
        &harness.nodes[0],
        &alice,
        &json!({"offer": {"type": "offer", "sdp": "v=0"}}),
    )
    .unwrap();
    harness.disconnect(&bob).await;
    harness.settle().await;
    harness.take();
    harness.shutdown().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        harness.take().is_empty(),
        "neither the call timer nor the grace timer fired"
    );
    assert_eq!(
        harness.local_chats(),
        2,
        "nothing closed behind the test's back"
    );
}
