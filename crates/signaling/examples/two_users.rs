//! Two strangers matched, chatting, calling and leaving, driven through [`ChatService`] in
//! memory: what a transport (the gateway's Socket.IO handler) does, without any socket.
//!
//! Run it with `cargo run -p chat-signaling --example two_users`; every event the chat
//! delivers is printed with the user it is for.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use chat_domain::webrtc::{CallKind, SdpType, SessionDescription};
use chat_domain::{ChatPayload, FileId, GuestUser, Profile, Timestamp, UserId};
use chat_signaling::{
    ChatConfig, ChatParts, ChatService, Delivery, FileUrls, Outgoing, Receipt, SearchFilters,
};
use chat_storage::{MemoryStore, SessionStore, StoreConfig};
use serde_json::json;

/// Prints each event; every user's "socket" is on this node, and every client acknowledges
/// each message it gets at once.
#[derive(Default)]
struct Printer {
    names: Mutex<HashMap<UserId, String>>,
    acks: Mutex<Vec<Receipt>>,
}

impl Delivery for Printer {
    fn is_local(&self, _to: &UserId) -> bool {
        true
    }

    fn deliver_local(&self, to: &UserId, event: Outgoing, receipt: Option<Receipt>) {
        let names = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = names.get(to).map_or("?", String::as_str);
        println!("to {name:>5}: {event:?}");
        // A client's ack arrives later, from its connection: here, once the caller asks.
        self.acks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(receipt);
    }
}

impl Printer {
    /// Every client acknowledges what it got.
    fn ack_all(&self) {
        let receipts = std::mem::take(
            &mut *self
                .acks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for receipt in receipts {
            receipt.confirm();
        }
    }
}

/// Download URLs of files sent in messages (unsigned here).
struct Urls;

impl FileUrls for Urls {
    fn url_for(&self, file: &FileId, viewer: &UserId) -> String {
        format!("/api/files/{file}?u={viewer}")
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let printer = Arc::new(Printer::default());
    let parts = ChatParts {
        sessions: store.clone(),
        shared: store.clone(),
        delivery: printer.clone(),
        urls: Arc::new(Urls),
        // One node: nobody is elsewhere.
        cluster: None,
        blocks: None,
    };
    let chat = ChatService::new(ChatConfig::default(), parts, || {});

    let mut users = Vec::new();
    for profile in [
        json!({"username": "Alice", "language": "en"}),
        json!({"username": "Bob", "language": "EN"}),
    ] {
        let user = GuestUser::new(Profile::from_json(&profile)?, Timestamp::now());
        store.create(&user).await?;
        printer
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user.id.clone(), user.username.to_string());
        users.push(user.id);
    }
    let (alice, bob) = (&users[0], &users[1]);

    println!("-- both search; Bob only for English speakers");
    chat.search(alice, SearchFilters::default()).await?;
    let english = SearchFilters::from_payload(Some(&json!({"filters": {"language": "en"}})))?;
    chat.search(bob, english).await?;

    println!("-- Alice writes, Bob acknowledges");
    let hello =
        ChatPayload::from_json(&json!({"type": "text", "content": "hi!", "clientId": "c1"}))?;
    chat.send_message(alice, hello).await?;
    printer.ack_all();
    chat.typing(bob, true)?;

    println!("-- an audio call, answered, then ended");
    // The gateway parses what clients send before the chat sees it.
    let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
    chat.offer(
        alice,
        SessionDescription::parse(Some(&offer), SdpType::Offer)?,
        CallKind::Audio,
    )?;
    let answer = json!({"type": "answer", "sdp": "v=0\r\n"});
    chat.answer(
        bob,
        SessionDescription::parse(Some(&answer), SdpType::Answer)?,
    )?;
    chat.end_call(alice, false)?;

    println!("-- Bob leaves");
    chat.leave(bob).await?;
    assert_eq!(chat.room_of(alice).await, None);
    chat.shutdown().await;
    Ok(())
}
