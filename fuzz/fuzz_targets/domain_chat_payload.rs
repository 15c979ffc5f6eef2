//! `chat:message` payloads: `ChatPayload::from_json` and the text rule.
#![no_main]

use chat_domain::message::MAX_TEXT_CHARS;
use chat_domain::{ChatBody, ChatPayload};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(payload) = ChatPayload::from_json(&value) {
        if let ChatBody::Text(text) = &payload.body {
            let length = text.chars().count();
            assert!(
                (1..=MAX_TEXT_CHARS).contains(&length),
                "{length} characters"
            );
            assert_eq!(text.trim(), text, "text is trimmed");
        }
    }
    let _ = chat_domain::message::parse_text(&value);
});
