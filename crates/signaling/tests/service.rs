//! The chat's behaviour, driven without sockets: a recording delivery and the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_domain::{ChatPayload, ErrorCode, FileId, FileType, GuestUser, Profile, RoomId, Timestamp, UserId};
use chat_signaling::{ChatConfig, ChatService, CloseReason, Delivery, FileUrls, Outgoing, SearchFilters, SessionEnd};
use chat_storage::memory::MemoryStore;
use chat_storage::{FileMeta, SessionStore, StoreConfig, StoredFile};
use serde_json::json;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(UserId, Outgoing)>>,
}

impl Delivery for Recorder {
    fn deliver(&self, to: &UserId, event: Outgoing) {
        self.events.lock().unwrap().push((to.clone(), event));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(UserId, Outgoing)> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn for_user(&self, user: &UserId) -> Vec<Outgoing> {
        self.take().into_iter().filter(|(to, _)| to == user).map(|(_, event)| event).collect()
    }
}

struct Urls;

impl FileUrls for Urls {
    fn url_for(&self, file: &FileId, viewer: &UserId) -> String {
        format!("/api/files/{file}?for={viewer}")
    }
}

struct Harness {
    chat: ChatService,
    store: Arc<MemoryStore>,
    recorder: Arc<Recorder>,
}

impl Harness {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let recorder = Arc::new(Recorder::default());
        let config = ChatConfig { call_timeout: Duration::from_secs(30), reconnect_grace: Duration::from_secs(10) };
        let chat = ChatService::new(config, store.clone(), recorder.clone(), Arc::new(Urls), || {});
        Self { chat, store, recorder }
    }

    async fn user(&self, profile: serde_json::Value) -> UserId {
        let user = GuestUser::new(Profile::from_json(&profile).unwrap(), Timestamp::now());
        self.store.create(&user).await.unwrap();
        user.id
    }

    /// Two users matched; returns (initiator, other, room).
    async fn pair(&self) -> (UserId, UserId, RoomId) {
        let alice = self.user(json!({})).await;
        let bob = self.user(json!({})).await;
        self.chat.search(&alice, SearchFilters::default()).await.unwrap();
        self.chat.search(&bob, SearchFilters::default()).await.unwrap();
        let room = self.chat.room_of(&alice).unwrap();
        self.recorder.take();
        (alice, bob, room)
    }
}

fn text(content: &str) -> ChatPayload {
    ChatPayload::from_json(&json!({"type": "text", "content": content, "clientId": "c1"})).unwrap()
}

#[tokio::test]
async fn two_searchers_are_matched_with_exactly_one_initiator() {
    let harness = Harness::new();
    let alice = harness.user(json!({"gender": "female"})).await;
    let bob = harness.user(json!({"gender": "male"})).await;
    harness.chat.search(&alice, SearchFilters::default()).await.unwrap();
    assert_eq!(harness.recorder.for_user(&alice), vec![Outgoing::Searching]);
    assert!(harness.store.get(&alice).await.unwrap().unwrap().is_searching);

    harness.chat.search(&bob, SearchFilters::default()).await.unwrap();
    let events = harness.recorder.take();
    let found: Vec<_> = events
        .iter()
        .filter_map(|(to, event)| match event {
            Outgoing::Found { room_id, partner, initiator } => Some((to.clone(), room_id.clone(), partner.id.clone(), *initiator)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].1, found[1].1, "same room");
    assert_eq!(found.iter().filter(|entry| entry.3).count(), 1, "exactly one initiator");
    assert!(found.iter().any(|(to, _, partner, _)| to == &alice && partner == &bob));
    assert!(found.iter().any(|(to, _, partner, _)| to == &bob && partner == &alice));
    let stored = harness.store.get(&bob).await.unwrap().unwrap();
    assert!(stored.in_chat && !stored.is_searching);
    assert_eq!(stored.connected_user, Some(alice.clone()));
    // Searching again while in a chat is refused.
    assert!(harness.chat.search(&alice, SearchFilters::default()).await.is_err());
}

#[tokio::test]
async fn filters_must_accept_both_ways_and_cancel_leaves_the_queue() {
    let harness = Harness::new();
    let alice = harness.user(json!({"language": "en"})).await;
    let bob = harness.user(json!({"language": "fr"})).await;
    let only_english = SearchFilters::from_payload(Some(&json!({"filters": {"language": "en"}}))).unwrap();
    harness.chat.search(&alice, only_english).await.unwrap();
    harness.chat.search(&bob, SearchFilters::default()).await.unwrap();
    assert_eq!(harness.chat.room_of(&alice), None);
    assert_eq!(harness.chat.searching_count(), 2);
    harness.chat.cancel(&alice).await;
    assert!(harness.recorder.for_user(&alice).contains(&Outgoing::Cancelled));
    assert_eq!(harness.chat.searching_count(), 1);
    assert!(!harness.store.get(&alice).await.unwrap().unwrap().is_searching);
}

#[tokio::test]
async fn messages_are_relayed_with_one_receipt_each() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    let sent = harness.chat.send_message(&alice, text("hello")).await.unwrap();
    assert_eq!(sent.client_id.as_deref(), Some("c1"));
    let events = harness.recorder.take();
    let relayed = events.iter().find_map(|(to, event)| match event {
        Outgoing::Message(message) if to == &bob => Some(message.clone()),
        _ => None,
    });
    let relayed = relayed.expect("bob got the message");
    assert_eq!((relayed.id.clone(), relayed.room_id.clone(), relayed.sender_id.clone()), (sent.id.clone(), room, alice.clone()));
    assert!(events.iter().any(|(to, event)| to == &alice && matches!(event, Outgoing::Sent { id, .. } if id == &sent.id)));

    assert!(!harness.chat.confirm_delivery(&alice, &sent.id), "the sender cannot confirm");
    assert!(harness.chat.confirm_delivery(&bob, &sent.id));
    assert!(!harness.chat.confirm_delivery(&bob, &sent.id), "a second confirmation changes nothing");
    let receipts: Vec<_> = harness.recorder.take().into_iter().filter(|(_, event)| matches!(event, Outgoing::Delivered { .. })).collect();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, alice);

    harness.chat.send_message(&bob, text("hi back")).await.unwrap();
    assert!(harness.recorder.for_user(&alice).iter().any(|event| matches!(event, Outgoing::Message(_))));
}

#[tokio::test]
async fn chat_actions_outside_a_chat_fail_with_not_in_chat() {
    let harness = Harness::new();
    let loner = harness.user(json!({})).await;
    let code = |result: Result<(), chat_signaling::ChatError>| result.err().map(|error| error.code());
    assert_eq!(harness.chat.send_message(&loner, text("x")).await.err().map(|error| error.code()), Some(ErrorCode::NotInChat));
    assert_eq!(code(harness.chat.typing(&loner, true)), Some(ErrorCode::NotInChat));
    assert_eq!(code(harness.chat.leave(&loner).await), Some(ErrorCode::NotInChat));
    let offer = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "video"});
    assert_eq!(code(harness.chat.offer(&loner, &offer)), Some(ErrorCode::NotInChat));
    assert_eq!(code(harness.chat.end_call(&loner, false)), Some(ErrorCode::NotInChat));
    assert!(harness.recorder.take().is_empty(), "nothing reached anyone");
}

#[tokio::test]
async fn typing_leave_and_next() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness.chat.typing(&alice, true).unwrap();
    assert_eq!(harness.recorder.for_user(&bob), vec![Outgoing::Typing { from: alice.clone(), is_typing: true }]);

    harness.chat.leave(&alice).await.unwrap();
    let events = harness.recorder.take();
    assert!(events.contains(&(bob.clone(), Outgoing::RoomClosed { room_id: room.clone(), reason: CloseReason::PartnerLeft })));
    assert!(events.contains(&(alice.clone(), Outgoing::RoomClosed { room_id: room, reason: CloseReason::Left })));
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);

    let (carol, dave, room) = harness.pair().await;
    let erin = harness.user(json!({})).await;
    harness.chat.search(&erin, SearchFilters::default()).await.unwrap();
    harness.recorder.take();
    // Dave skips: Carol is told, Dave is paired with Erin, not with Carol.
    harness.chat.next(&dave, SearchFilters::default()).await.unwrap();
    let events = harness.recorder.take();
    assert!(events.contains(&(carol.clone(), Outgoing::RoomClosed { room_id: room, reason: CloseReason::PartnerLeft })));
    let dave_room = harness.chat.room_of(&dave).unwrap();
    assert_eq!(harness.chat.room_of(&erin), Some(dave_room));
    assert_eq!(harness.chat.room_of(&carol), None);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_times_out_for_both() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let offer = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "audio", "from": "forged"});
    harness.chat.offer(&alice, &offer).unwrap();
    let events = harness.recorder.for_user(&bob);
    assert!(matches!(&events[..], [Outgoing::Offer { from, kind: "audio", .. }] if from == &alice));
    tokio::time::sleep(Duration::from_secs(31)).await;
    let timeouts: Vec<_> = harness.recorder.take().into_iter().filter(|(_, event)| matches!(event, Outgoing::CallTimeout { from, .. } if from == &alice)).collect();
    assert_eq!(timeouts.len(), 2, "both sides are told");
}

#[tokio::test(start_paused = true)]
async fn answered_rejected_ended_or_closed_calls_never_time_out() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let offer = json!({"offer": {"type": "offer", "sdp": "v=0"}, "type": "video"});
    harness.chat.offer(&alice, &offer).unwrap();
    harness.chat.answer(&bob, &json!({"answer": {"type": "answer", "sdp": "v=0"}})).unwrap();
    harness.chat.offer(&bob, &offer).unwrap();
    harness.chat.end_call(&alice, true).unwrap();
    harness.chat.offer(&alice, &offer).unwrap();
    harness.chat.leave(&bob).await.unwrap();
    harness.recorder.take();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(harness.recorder.take().iter().all(|(_, event)| !matches!(event, Outgoing::CallTimeout { .. })));
}

#[tokio::test]
async fn signaling_payloads_are_validated() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    let code = |result: Result<(), chat_signaling::ChatError>| result.err().map(|error| error.code());
    assert_eq!(code(harness.chat.offer(&alice, &json!({"offer": "nope"}))), Some(ErrorCode::InvalidInput));
    assert_eq!(code(harness.chat.answer(&alice, &json!({"answer": {"type": "offer", "sdp": "x"}}))), Some(ErrorCode::InvalidInput));
    let huge = json!({"offer": {"type": "offer", "sdp": "a".repeat(70_000)}});
    assert_eq!(code(harness.chat.offer(&alice, &huge)), Some(ErrorCode::TooLarge));
    assert_eq!(code(harness.chat.candidate(&alice, &json!({"candidate": {"candidate": 5}}))), Some(ErrorCode::InvalidInput));
    harness.chat.candidate(&alice, &json!({"candidate": {"candidate": "candidate:1", "sdpMid": "0", "x": 1}})).unwrap();
    let events = harness.recorder.for_user(&bob);
    assert_eq!(events, vec![Outgoing::Candidate { candidate: json!({"candidate": "candidate:1", "sdpMid": "0"}), from: alice }]);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_who_returns_in_time_keeps_the_chat() {
    let harness = Harness::new();
    let (alice, bob, _) = harness.pair().await;
    harness.chat.user_disconnected(&alice).await;
    assert_eq!(harness.recorder.for_user(&bob), vec![Outgoing::PartnerDisconnected { grace_secs: 10 }]);
    assert!(matches!(harness.chat.send_message(&bob, text("are you there")).await, Err(chat_signaling::ChatError::PartnerUnavailable)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(harness.chat.user_connected(&alice).is_some());
    assert_eq!(harness.recorder.for_user(&bob), vec![Outgoing::PartnerReconnected]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(harness.chat.room_of(&alice).is_some(), "the old grace timer did nothing");
    harness.chat.send_message(&bob, text("welcome back")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_user_who_does_not_return_closes_the_room() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness.chat.user_disconnected(&alice).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let events = harness.recorder.for_user(&bob);
    assert!(events.contains(&Outgoing::RoomClosed { room_id: room, reason: CloseReason::PartnerDisconnected }));
    assert_eq!(harness.chat.room_count(), 0);
    assert!(!harness.store.get(&bob).await.unwrap().unwrap().in_chat);
}

#[tokio::test]
async fn expired_session_closes_the_room_with_its_reason() {
    let harness = Harness::new();
    let (alice, bob, room) = harness.pair().await;
    harness.chat.session_ended(&alice, SessionEnd::Expired).await;
    assert!(harness.recorder.for_user(&bob).contains(&Outgoing::RoomClosed { room_id: room, reason: CloseReason::SessionExpired }));
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
    let as_file = |id: &FileId| ChatPayload::from_json(&json!({"type": "file", "content": {"fileId": id.as_str()}})).unwrap();
    let stolen = harness.chat.send_message(&alice, as_file(&theirs.meta.file_id)).await;
    assert_eq!(stolen.err().map(|error| error.code()), Some(ErrorCode::Forbidden));
    assert!(harness.recorder.for_user(&bob).is_empty());
    harness.chat.send_message(&alice, as_file(&mine.meta.file_id)).await.unwrap();
    let url = harness.recorder.for_user(&bob).into_iter().find_map(|event| match event {
        Outgoing::Message(message) => match message.content {
            chat_domain::MessageContent::File(info) => Some(info.file_url),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(url, Some(format!("/api/files/{}?for={bob}", mine.meta.file_id)), "signed for the recipient");
    harness.chat.leave(&bob).await.unwrap();
    assert_eq!(harness.store.file_meta(&mine.meta.file_id).await.unwrap(), None);
    assert!(harness.store.file_meta(&theirs.meta.file_id).await.unwrap().is_some());
}
