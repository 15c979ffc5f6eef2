//! The chat's behaviour, driven without sockets: the test harness's recording delivery, the
//! memory store and, with several nodes, the in-process cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chat_domain::{ChatPayload, ErrorCode, FileId, FileType, RoomId, Timestamp, UserId};
use chat_signaling::{CloseReason, Outgoing, SearchFilters, SessionEnd};
use chat_storage::{FileMeta, SessionStore, StoredFile};
use common::{Harness, answer, candidate, offer, text};
use serde_json::json;

#[tokio::test]
async fn two_searchers_are_matched_with_exactly_one_initiator() {
    let harness = Harness::new();
    let alice = harness.user(json!({"gender": "female"})).await;
    let bob = harness.user(json!({"gender": "male"})).await;
    harness
        .chat
        .search(&alice, SearchFilters::default())
        .await
        .unwrap();
    assert_eq!(harness.for_user(&alice), vec![Outgoing::Searching]);
    assert!(
        harness
            .store
            .get(&alice)
            .await
            .unwrap()
            .unwrap()
            .is_searching
    );

    harness
        .chat
        .search(&bob, SearchFilters::default())
        .await
        .unwrap();
    let events = harness.take();
    let found: Vec<_> = events
        .iter()
        .filter_map(|(to, event)| match event {
            Outgoing::Found {
                room_id,
                partner,
                initiator,
                ..
            } => Some((to.clone(), room_id.clone(), partner.id.clone(), *initiator)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].1, found[1].1, "same room");
    assert_eq!(
        found.iter().filter(|entry| entry.3).count(),
        1,
        "exactly one initiator"
    );
    assert!(
        found
            .iter()
            .any(|(to, _, partner, _)| to == &alice && partner == &bob)
    );
    assert!(
        found
            .iter()
            .any(|(to, _, partner, _)| to == &bob && partner == &alice)
    );
    let stored = harness.store.get(&bob).await.unwrap().unwrap();
    assert!(stored.in_chat && !stored.is_searching);
    assert_eq!(stored.connected_user, Some(alice.clone()));
    // Searching again while in a chat is refused.
    assert!(
        harness
            .chat
            .search(&alice, SearchFilters::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn filters_must_accept_both_ways_and_cancel_leaves_the_queue() {
    let harness = Harness::new();
    let alice = harness.user(json!({"language": "en"})).await;
    let bob = harness.user(json!({"language": "fr"})).await;
    let only_english =
        SearchFilters::from_payload(Some(&json!({"filters": {"language": "en"}}))).unwrap();
    harness.chat.search(&alice, only_english).await.unwrap();
    harness
        .chat
        .search(&bob, SearchFilters::default())
        .await
        .unwrap();
    assert_eq!(harness.chat.room_of(&alice).await, None);
    assert_eq!(
        harness
            .store
            .stats(Timestamp::now())
            .await
            .unwrap()
            .available_users,
        2
    );
    harness.chat.cancel(&alice).await.unwrap();
    assert!(harness.for_user(&alice).contains(&Outgoing::Cancelled));
    assert_eq!(
        harness
            .store
            .stats(Timestamp::now())
            .await
            .unwrap()
            .available_users,
        1
    );
    assert!(
        !harness
            .store
            .get(&alice)
            .await
            .unwrap()
            .unwrap()
            .is_searching
    );
}

#[tokio::test]
async fn messages_are_relayed_with_one_receipt_each() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    let sent = harness
        .chat
        .send_message(&alice, text("hello"))
        .await
        .unwrap();
    assert_eq!(sent.client_id.as_deref(), Some("c1"));
    let events = harness.take();
    let relayed = events.iter().find_map(|(to, event)| match event {
        Outgoing::Message(message) if to == &bob => Some(message.clone()),
        _ => None,
    });
    let relayed = relayed.expect("bob got the message");
    assert_eq!(
        (
            relayed.id.clone(),
            relayed.room_id.clone(),
            relayed.sender_id.clone()
        ),
        (sent.id.clone(), room, alice.clone())
    );
    assert!(
        events.iter().any(|(to, event)| to == &alice
            && matches!(event, Outgoing::Sent { id, .. } if id == &sent.id))
    );

    assert!(
        !harness.chat.confirm_delivery(&alice, &sent.id),
        "the sender cannot confirm"
    );
    assert!(harness.chat.confirm_delivery(&bob, &sent.id));
    assert!(
        !harness.chat.confirm_delivery(&bob, &sent.id),
        "a second confirmation changes nothing"
    );
    let receipts: Vec<_> = harness
        .take()
        .into_iter()
        .filter(|(_, event)| matches!(event, Outgoing::Delivered { .. }))
        .collect();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, alice);

    harness
        .chat
        .send_message(&bob, text("hi back"))
        .await
        .unwrap();
    assert!(
        harness
            .for_user(&alice)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(_)))
    );
}

#[tokio::test]
async fn chat_actions_outside_a_chat_fail_with_not_in_chat() {
    let harness = Harness::new();
    let loner = harness.user(json!({})).await;
    let code =
        |result: Result<(), chat_signaling::ChatError>| result.err().map(|error| error.code());
    assert_eq!(
        harness
            .chat
            .send_message(&loner, text("x"))
            .await
            .err()
            .map(|error| error.code()),
        Some(ErrorCode::NotInChat)
    );
    assert_eq!(
        code(harness.chat.typing(&loner, true)),
        Some(ErrorCode::NotInChat)
    );
    assert_eq!(
        code(harness.chat.leave(&loner).await),
        Some(ErrorCode::NotInChat)
    );
    let call = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "video"});
    assert_eq!(
        code(offer(&harness.chat, &loner, &call)),
        Some(ErrorCode::NotInChat)
    );
    assert_eq!(
        code(harness.chat.end_call(&loner, false)),
        Some(ErrorCode::NotInChat)
    );
    assert!(harness.take().is_empty(), "nothing reached anyone");
}

#[tokio::test]
async fn typing_leave_and_next() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness.chat.typing(&alice, true).unwrap();
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::Typing {
            from: alice.clone(),
            is_typing: true
        }]
    );

    harness.chat.leave(&alice).await.unwrap();
    let events = harness.take();
    assert!(events.contains(&(
        bob.clone(),
        Outgoing::RoomClosed {
            room_id: room.clone(),
            reason: CloseReason::PartnerLeft
        }
    )));
    assert!(events.contains(&(
        alice.clone(),
        Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::Left
        }
    )));
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);

    let (carol, dave, room) = harness.pair().await;
    let erin = harness.user(json!({})).await;
    harness
        .chat
        .search(&erin, SearchFilters::default())
        .await
        .unwrap();
    harness.take();
    // Dave skips: Carol is told (`partner_left` on the wire), Dave is paired with Erin, not
    // with Carol.
    harness
        .chat
        .next(&dave, SearchFilters::default())
        .await
        .unwrap();
    let events = harness.take();
    assert!(events.contains(&(
        carol.clone(),
        Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::PartnerSkipped
        }
    )));
    let dave_room = harness.chat.room_of(&dave).await.unwrap();
    assert_eq!(harness.chat.room_of(&erin).await, Some(dave_room));
    assert_eq!(harness.chat.room_of(&carol).await, None);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_times_out_for_both() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let call = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "audio", "from": "forged"});
    offer(&harness.chat, &alice, &call).unwrap();
    let events = harness.for_user(&bob);
    assert!(
        matches!(&events[..], [Outgoing::Offer { from, kind: chat_domain::webrtc::CallKind::Audio, .. }] if from == &alice)
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    let timeouts: Vec<_> = harness
        .take()
        .into_iter()
        .filter(|(_, event)| matches!(event, Outgoing::CallTimeout { from, .. } if from == &alice))
        .collect();
    assert_eq!(timeouts.len(), 2, "both sides are told");
}

#[tokio::test(start_paused = true)]
async fn answered_rejected_ended_or_closed_calls_never_time_out() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let call = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "video"});
    offer(&harness.chat, &alice, &call).unwrap();
    answer(
        &harness.chat,
        &bob,
        &json!({"answer": {"type": "answer", "sdp": "v=0"}}),
    )
    .unwrap();
    offer(&harness.chat, &bob, &call).unwrap();
    harness.chat.end_call(&alice, true).unwrap();
    offer(&harness.chat, &alice, &call).unwrap();
    harness.chat.leave(&bob).await.unwrap();
    harness.take();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        harness
            .take()
            .iter()
            .all(|(_, event)| !matches!(event, Outgoing::CallTimeout { .. }))
    );
}

#[tokio::test]
async fn signaling_payloads_are_validated() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let code =
        |result: Result<(), chat_signaling::ChatError>| result.err().map(|error| error.code());
    assert_eq!(
        code(offer(&harness.chat, &alice, &json!({"offer": "nope"}))),
        Some(ErrorCode::InvalidInput)
    );
    assert_eq!(
        code(answer(
            &harness.chat,
            &alice,
            &json!({"answer": {"type": "offer", "sdp": "x"}})
        )),
        Some(ErrorCode::InvalidInput)
    );
    let huge = json!({"offer": {"type": "offer", "sdp": "a".repeat(70_000)}});
    assert_eq!(
        code(offer(&harness.chat, &alice, &huge)),
        Some(ErrorCode::TooLarge)
    );
    assert_eq!(
        code(candidate(
            &harness.chat,
            &alice,
            &json!({"candidate": {"candidate": 5}})
        )),
        Some(ErrorCode::InvalidInput)
    );
    candidate(
        &harness.chat,
        &alice,
        &json!({"candidate": {"candidate": "candidate:1", "sdpMid": "0", "x": 1}}),
    )
    .unwrap();
    let events = harness.for_user(&bob);
    assert_eq!(
        events,
        vec![Outgoing::Candidate {
            candidate: chat_domain::IceCandidate {
                candidate: "candidate:1".into(),
                sdp_mid: Some(Some("0".into())),
                sdp_m_line_index: None,
                username_fragment: None,
            },
            from: alice
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_who_returns_in_time_keeps_the_chat() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    harness.place(&alice, None).await;
    harness.chat.user_disconnected(&alice).await;
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::PartnerDisconnected { grace_secs: 10 }]
    );
    assert!(matches!(
        harness.chat.send_message(&bob, text("are you there")).await,
        Err(chat_signaling::ChatError::PartnerUnavailable)
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    harness.place(&alice, Some(0)).await;
    assert!(harness.chat.user_connected(&alice).await.is_some());
    assert_eq!(harness.for_user(&bob), vec![Outgoing::PartnerReconnected]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        harness.chat.room_of(&alice).await.is_some(),
        "the old grace timer did nothing"
    );
    harness
        .chat
        .send_message(&bob, text("welcome back"))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_who_does_not_return_closes_the_room() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness.disconnect(&alice).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let events = harness.for_user(&bob);
    assert!(events.contains(&Outgoing::RoomClosed {
        room_id: room,
        reason: CloseReason::PartnerDisconnected
    }));
    assert_eq!(harness.chat.local_chats(), 0);
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);
}

#[tokio::test]
async fn expired_session_closes_the_room_with_its_reason() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness
        .chat
        .session_ended(&alice, SessionEnd::Expired)
        .await;
    assert!(harness.for_user(&bob).contains(&Outgoing::RoomClosed {
        room_id: room,
        reason: CloseReason::SessionExpired
    }));
}

#[tokio::test]
async fn files_only_from_the_same_room_and_gone_when_it_closes() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    let (carol, _dave, other_room) = harness.pair().await;
    let upload = |room: &RoomId, uploader: &UserId| StoredFile {
        meta: FileMeta {
            file_id: FileId::generate(),
            room_id: room.clone(),
            uploader: uploader.clone(),
            filename: "a.png".into(),
            file_type: FileType::Image,
            mime: "image/png".into(),
            size: 4,
            duration: None,
            expires_at: Timestamp::now().plus(Duration::from_secs(60)),
        },
        bytes: Bytes::from_static(b"\x89PNG"),
    };
    let mine = upload(&room, &alice);
    let theirs = upload(&other_room, &carol);
    harness.store.put_file(mine.clone()).await.unwrap();
    harness.store.put_file(theirs.clone()).await.unwrap();
    let as_file = |id: &FileId| {
        ChatPayload::from_json(&json!({"type": "file", "content": {"fileId": id.as_str()}}))
            .unwrap()
    };
    let stolen = harness
        .chat
        .send_message(&alice, as_file(&theirs.meta.file_id))
        .await;
    assert_eq!(
        stolen.err().map(|error| error.code()),
        Some(ErrorCode::Forbidden)
    );
    assert!(harness.for_user(&bob).is_empty());
    harness
        .chat
        .send_message(&alice, as_file(&mine.meta.file_id))
        .await
        .unwrap();
    let url = harness
        .for_user(&bob)
        .into_iter()
        .find_map(|event| match event {
            Outgoing::Message(message) => match message.content {
                chat_domain::MessageContent::File(info) => Some(info.file_url),
                _ => None,
            },
            _ => None,
        });
    assert_eq!(
        url,
        Some(format!("/api/files/{}?for={bob}", mine.meta.file_id)),
        "signed for the recipient"
    );
    harness.chat.leave(&bob).await.unwrap();
    assert_eq!(
        harness.store.file_meta(&mine.meta.file_id).await.unwrap(),
        None
    );
    assert!(
        harness
            .store
            .file_meta(&theirs.meta.file_id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn a_whole_chat_across_two_nodes() {
    let harness = Harness::with_nodes(2);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    assert_eq!(harness.nodes[1].room_of(&bob).await, Some(room.clone()));

    let sent = harness.nodes[0]
        .send_message(&alice, text("hello from node 0"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&bob)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == sent.id))
    );
    assert!(
        harness.nodes[1].confirm_delivery(&bob, &sent.id),
        "bob's node knows the pending receipt"
    );
    assert!(!harness.nodes[1].confirm_delivery(&bob, &sent.id));
    harness.settle().await;
    assert_eq!(
        harness
            .take()
            .into_iter()
            .filter(|(to, event)| to == &alice && matches!(event, Outgoing::Delivered { .. }))
            .count(),
        1
    );

    harness.nodes[1].typing(&bob, true).unwrap();
    harness.settle().await;
    assert_eq!(
        harness.for_user(&alice),
        vec![Outgoing::Typing {
            from: bob.clone(),
            is_typing: true
        }]
    );

    // A call offered on node 0 and answered on node 1 never times out.
    let video = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "video"});
    offer(&harness.nodes[0], &alice, &video).unwrap();
    harness.settle().await;
    answer(
        &harness.nodes[1],
        &bob,
        &json!({"answer": {"type": "answer", "sdp": "v=0"}}),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(
        harness
            .take()
            .iter()
            .all(|(_, event)| !matches!(event, Outgoing::CallTimeout { .. }))
    );
    // An unanswered one does, for both.
    harness.nodes[1].end_call(&bob, false).unwrap();
    offer(&harness.nodes[1], &bob, &video).unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let timeouts: Vec<UserId> = harness
        .take()
        .into_iter()
        .filter(|(_, event)| matches!(event, Outgoing::CallTimeout { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(timeouts.len(), 2);
    assert!(timeouts.contains(&alice) && timeouts.contains(&bob));

    harness.nodes[1].leave(&bob).await.unwrap();
    harness.settle().await;
    let events = harness.take();
    assert!(events.contains(&(
        alice.clone(),
        Outgoing::RoomClosed {
            room_id: room.clone(),
            reason: CloseReason::PartnerLeft
        }
    )));
    assert!(events.contains(&(
        bob.clone(),
        Outgoing::RoomClosed {
            room_id: room,
            reason: CloseReason::Left
        }
    )));
    assert_eq!(
        harness.nodes[0].local_chats() + harness.nodes[1].local_chats(),
        0,
        "both nodes forgot the room"
    );
    harness.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reconnecting_to_another_node_within_grace_keeps_the_chat() {
    let harness = Harness::with_nodes(3);
    let (alice, bob, room) = harness.pair_on(0, 1).await;
    harness.disconnect(&alice).await;
    harness.settle().await;
    assert_eq!(
        harness.for_user(&bob),
        vec![Outgoing::PartnerDisconnected { grace_secs: 10 }]
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(harness.connect(&alice, 2).await, Some(room.clone()));
    harness.settle().await;
    assert_eq!(harness.for_user(&bob), vec![Outgoing::PartnerReconnected]);

    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        harness
            .take()
            .iter()
            .all(|(_, event)| !matches!(event, Outgoing::RoomClosed { .. })),
        "node 0's grace timer stood down"
    );
    let sent = harness.nodes[1]
        .send_message(&bob, text("still here?"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(
        harness
            .for_user(&alice)
            .iter()
            .any(|event| matches!(event, Outgoing::Message(message) if message.id == sent.id))
    );
    let reply = harness.nodes[2]
        .send_message(&alice, text("yes, on node 2"))
        .await
        .unwrap();
    harness.settle().await;
    assert!(harness.nodes[1].confirm_delivery(&bob, &reply.id));
    harness.settle().await;
    assert!(
        harness
            .for_user(&alice)
            .iter()
            .any(|event| matches!(event, Outgoing::Delivered { id, .. } if id == &reply.id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_searchers_on_three_nodes_are_each_paired_once() {
    let harness = Harness::with_nodes(3);
    let mut users = Vec::new();
    for index in 0..90 {
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
    // Matches for users on another node travel over the bus: wait for all of them.
    let mut events = Vec::new();
    for _ in 0..500 {
        events.extend(harness.take());
        let found = events
            .iter()
            .filter(|(_, event)| matches!(event, Outgoing::Found { .. }))
            .count();
        if found >= 90 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut partners: HashMap<UserId, UserId> = HashMap::new();
    for (to, event) in events {
        if let Outgoing::Found { partner, .. } = event {
            assert!(
                partners.insert(to.clone(), partner.id.clone()).is_none(),
                "{to} paired twice"
            );
        }
    }
    assert_eq!(partners.len(), 90, "everyone paired");
    for (user, partner) in &partners {
        assert_eq!(partners.get(partner), Some(user), "pairs are symmetric");
        assert_ne!(user, partner);
    }
}

#[tokio::test(start_paused = true)]
async fn both_sides_know_the_room_before_either_hears_of_the_match() {
    for (first, second) in [(0, 0), (0, 1)] {
        let harness = Harness::with_nodes(2);
        let waiter = harness.user_on(first, json!({})).await;
        let searcher = harness.user_on(second, json!({})).await;
        harness.nodes[first]
            .search(&waiter, SearchFilters::default())
            .await
            .unwrap();
        harness.settle().await;
        harness.take();
        harness.nodes[second]
            .search(&searcher, SearchFilters::default())
            .await
            .unwrap();
        harness.settle().await;
        let found: Vec<UserId> = harness
            .take()
            .into_iter()
            .filter(|(_, event)| matches!(event, Outgoing::Found { .. }))
            .map(|(to, _)| to)
            .collect();
        assert_eq!(
            found,
            vec![searcher.clone(), waiter.clone()],
            "the searcher hears first"
        );
        let links = harness.links_at_found();
        assert_eq!(
            links.first(),
            Some(&if first == second { 2 } else { 1 }),
            "links made before the first match:found"
        );
    }
}

/// Whom a user may report: the partner, then the last one for 120 s after the room closed;
/// and once a report is filed, the two are never paired again.
#[tokio::test(start_paused = true)]
async fn the_partner_stays_reportable_for_a_while_and_a_report_blocks_the_pair() {
    use chat_domain::{Report, ReportId, ReportReason};
    use chat_storage::ModerationStore;

    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    assert_eq!(
        harness.chat.partner_to_report(&alice),
        Some((bob.clone(), room.clone()))
    );
    harness.chat.leave(&bob).await.unwrap();
    assert_eq!(
        harness.chat.partner_to_report(&alice),
        Some((bob.clone(), room.clone())),
        "right after the room closed"
    );
    tokio::time::advance(Duration::from_secs(121)).await;
    assert_eq!(
        harness.chat.partner_to_report(&alice),
        None,
        "not after 120 s"
    );
    assert_eq!(
        harness
            .chat
            .partner_to_report(&harness.user(json!({})).await),
        None
    );

    let report = Report {
        id: ReportId::generate(),
        reporter_id: alice.clone(),
        reported_id: bob.clone(),
        reason: ReportReason::Spam,
        details: None,
        room_id: Some(room),
        created_at: Timestamp::now(),
    };
    harness
        .store
        .file_report(&report, "addr:a", Duration::from_secs(3600))
        .await
        .unwrap();
    harness.take();
    for user in [&alice, &bob] {
        harness
            .chat
            .search(user, SearchFilters::default())
            .await
            .unwrap();
    }
    assert!(
        !harness
            .take()
            .iter()
            .any(|(_, event)| matches!(event, Outgoing::Found { .. })),
        "the reported and the reporter wait rather than meet again"
    );
    let carol = harness.user(json!({})).await;
    harness
        .chat
        .search(&carol, SearchFilters::default())
        .await
        .unwrap();
    let found = harness
        .take()
        .iter()
        .filter(|(_, event)| matches!(event, Outgoing::Found { .. }))
        .count();
    assert_eq!(found, 2, "a third user pairs with one of them");
}
