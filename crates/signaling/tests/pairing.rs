//! A pairing completes on both sides or not at all, and nobody is ever in two rooms, however
//! the two users act while the store is being asked: the shared store's `search` or
//! `open_room` is held (see `common::Gated`) while one of them drops, searches again or
//! cancels. And the two of a `match:next` are not paired again on their next pairing, on
//! either side. Three nodes in one process, paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_domain::{ErrorCode, UserId};
use chat_signaling::{ChatError, CloseReason, Outgoing, SearchFilters};
use chat_storage::SessionStore;
use common::{Harness, Step};
use serde_json::json;
use tokio::task::JoinHandle;

/// `user` searches on `node` in the background (to be held by a gate).
fn search_in_background(
    harness: &Harness,
    node: usize,
    user: &UserId,
) -> JoinHandle<Result<(), ChatError>> {
    let (chat, user) = (harness.nodes[node].clone(), user.clone());
    tokio::spawn(async move { chat.search(&user, SearchFilters::default()).await })
}

/// A user on `node` waiting in the queue.
async fn waiting_on(harness: &Harness, node: usize) -> UserId {
    let user = harness.user_on(node, json!({})).await;
    harness.nodes[node]
        .search(&user, SearchFilters::default())
        .await
        .unwrap();
    user
}

/// The kinds of `events`, for readable assertions.
fn kinds(events: &[Outgoing]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| match event {
            Outgoing::Found { .. } => "found",
            Outgoing::PartnerDisconnected { .. } => "partner_disconnected",
            Outgoing::RoomClosed { .. } => "room_closed",
            Outgoing::Searching => "searching",
            Outgoing::Cancelled => "cancelled",
            _ => "other",
        })
        .collect()
}

/// The room `user` was last told of, with its close reason if it closed.
fn close_reason(events: &[Outgoing]) -> Option<CloseReason> {
    events.iter().rev().find_map(|event| match event {
        Outgoing::RoomClosed { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_waiting_user_who_drops_while_being_paired_is_waited_for() {
    for step in [Step::Search, Step::OpenRoom] {
        let harness = Harness::with_nodes(3);
        let alice = waiting_on(&harness, 0).await;
        let bob = harness.user_on(1, json!({})).await;
        harness.take();
        let mut held = harness.gated.hold_next(step);
        let search = search_in_background(&harness, 1, &bob);
        held.reached().await;
        // Alice was just taken out of the queue; her socket drops before she hears of it.
        harness.disconnect(&alice).await;
        held.release();
        search.await.unwrap().unwrap();
        harness.settle().await;
        assert_eq!(
            kinds(&harness.for_user(&bob)),
            vec!["searching", "found", "partner_disconnected"],
            "{step:?}"
        );
        tokio::time::sleep(Duration::from_secs(11)).await;
        let events = harness.for_user(&bob);
        assert_eq!(
            close_reason(&events),
            Some(CloseReason::PartnerDisconnected),
            "{step:?}: {events:?}"
        );
        assert_eq!(harness.local_chats(), 0, "{step:?}");
        assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);
        harness.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_user_back_in_time_keeps_the_room_made_while_they_were_away() {
    let harness = Harness::with_nodes(3);
    let alice = waiting_on(&harness, 0).await;
    let bob = harness.user_on(1, json!({})).await;
    let mut held = harness.gated.hold_next(Step::OpenRoom);
    let search = search_in_background(&harness, 1, &bob);
    held.reached().await;
    harness.disconnect(&alice).await;
    held.release();
    search.await.unwrap().unwrap();
    harness.settle().await;
    let room = harness.nodes[1].room_of(&bob).await.unwrap();
    assert_eq!(harness.connect(&alice, 2).await, Some(room));
    harness.settle().await;
    harness.take();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(harness.take().is_empty(), "no timer closed the room");
    harness.nodes[1]
        .send_message(&bob, common::text("found you"))
        .await
        .unwrap();
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_searcher_who_drops_while_being_paired_is_waited_for() {
    let harness = Harness::with_nodes(3);
    let alice = waiting_on(&harness, 0).await;
    let bob = harness.user_on(1, json!({})).await;
    harness.take();
    let mut held = harness.gated.hold_next(Step::OpenRoom);
    let search = search_in_background(&harness, 1, &bob);
    held.reached().await;
    harness.disconnect(&bob).await;
    held.release();
    search.await.unwrap().unwrap();
    harness.settle().await;
    assert_eq!(
        kinds(&harness.for_user(&alice)),
        vec!["found", "partner_disconnected"]
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        close_reason(&harness.for_user(&alice)),
        Some(CloseReason::PartnerDisconnected)
    );
    assert_eq!(harness.local_chats(), 0);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_searcher_who_searches_again_while_being_paired_stays_in_one_room() {
    let harness = Harness::with_nodes(3);
    let alice = waiting_on(&harness, 0).await;
    // Carol waits for a partner with a gender, which Alice has not set, and Bob has.
    let carol = harness.user_on(2, json!({})).await;
    let only_x = SearchFilters::from_payload(Some(&json!({"filters": {"gender": "x"}}))).unwrap();
    harness.nodes[2].search(&carol, only_x).await.unwrap();
    let bob = harness.user_on(1, json!({"gender": "x"})).await;
    harness.take();
    let mut held = harness.gated.hold_next(Step::OpenRoom);
    let search = search_in_background(&harness, 1, &bob);
    held.reached().await;
    let again = harness.nodes[1]
        .search(&bob, SearchFilters::default())
        .await;
    assert_eq!(
        again.err().map(|error| error.code()),
        Some(ErrorCode::InvalidInput),
        "refused while the first match is made"
    );
    held.release();
    search.await.unwrap().unwrap();
    harness.settle().await;
    let events = harness.take();
    let found: Vec<&UserId> = events
        .iter()
        .filter(|(_, event)| matches!(event, Outgoing::Found { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(found, vec![&bob, &alice], "one match, told to both");
    assert!(harness.nodes[2].room_of(&carol).await.is_none());
    assert!(
        harness
            .store
            .get(&carol)
            .await
            .unwrap()
            .unwrap()
            .is_searching,
        "Carol still waits"
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiting_user_who_cancels_and_searches_again_while_being_paired_stays_in_one_room() {
    let harness = Harness::with_nodes(3);
    let alice = waiting_on(&harness, 0).await;
    let bob = harness.user_on(1, json!({})).await;
    harness.take();
    let mut held = harness.gated.hold_next(Step::OpenRoom);
    let search = search_in_background(&harness, 1, &bob);
    held.reached().await;
    // Alice was taken out of the queue for Bob; before she hears of it she cancels, then
    // meets Dave.
    harness.nodes[0].cancel(&alice).await.unwrap();
    let dave = waiting_on(&harness, 2).await;
    harness.nodes[0]
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    held.release();
    search.await.unwrap().unwrap();
    harness.settle().await;
    harness.settle().await;
    let events = harness.take();
    let found_for = |user: &UserId| {
        events
            .iter()
            .filter(|(to, event)| to == user && matches!(event, Outgoing::Found { .. }))
            .count()
    };
    assert_eq!(found_for(&alice), 1, "Alice is in one room: {events:?}");
    let room = harness.nodes[0].room_of(&alice).await.unwrap();
    assert_eq!(harness.nodes[2].room_of(&dave).await, Some(room));
    // Bob's room closed at once: Alice had moved on.
    let bob_events: Vec<Outgoing> = events
        .iter()
        .filter(|(to, _)| to == &bob)
        .map(|(_, event)| event.clone())
        .collect();
    assert_eq!(
        kinds(&bob_events),
        vec!["searching", "found", "room_closed"]
    );
    assert_eq!(close_reason(&bob_events), Some(CloseReason::PartnerLeft));
    assert!(harness.nodes[1].room_of(&bob).await.is_none());
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);
    assert_eq!(harness.local_chats(), 2, "Alice's and Dave's links only");
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiting_user_on_the_same_node_who_cancels_while_being_paired_is_not_paired() {
    let harness = Harness::with_nodes(1);
    let alice = waiting_on(&harness, 0).await;
    let bob = harness.user_on(0, json!({})).await;
    harness.take();
    let mut held = harness.gated.hold_next(Step::OpenRoom);
    let search = search_in_background(&harness, 0, &bob);
    held.reached().await;
    harness.nodes[0].cancel(&alice).await.unwrap();
    held.release();
    search.await.unwrap().unwrap();
    harness.settle().await;
    assert_eq!(kinds(&harness.for_user(&alice)), vec!["cancelled"]);
    assert!(harness.nodes[0].room_of(&alice).await.is_none());
    assert!(harness.nodes[0].room_of(&bob).await.is_none());
    assert_eq!(harness.local_chats(), 0);
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_next_neither_side_is_paired_with_the_other_again() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, _) = harness.pair_on(0, 1).await;
    // Bob skips Alice; then he cancels and searches again, and so does she: nobody else is
    // waiting, and they are not paired again.
    harness.nodes[1]
        .next(&bob, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    harness.nodes[1].cancel(&bob).await.unwrap();
    harness.nodes[0]
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    harness.nodes[1]
        .search(&bob, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        !harness
            .take()
            .iter()
            .any(|(_, event)| matches!(event, Outgoing::Found { .. })),
        "Alice and Bob wait for someone new"
    );
    assert_eq!(harness.local_chats(), 0);

    // Someone new: Carol meets Alice (who waited longest). Bob's next pairing is still to
    // come, so Alice, back in the queue, still does not meet him.
    let carol = harness.user_on(2, json!({})).await;
    harness.nodes[2]
        .search(&carol, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    let alice_room = harness.nodes[0].room_of(&alice).await;
    assert!(alice_room.is_some());
    assert_eq!(alice_room, harness.nodes[2].room_of(&carol).await);
    assert!(harness.nodes[1].room_of(&bob).await.is_none());
    harness.nodes[0].leave(&alice).await.unwrap();
    harness.nodes[0]
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    harness.settle().await;
    assert!(harness.nodes[0].room_of(&alice).await.is_none());
    assert!(harness.nodes[1].room_of(&bob).await.is_none());
    harness.shutdown().await;
}
