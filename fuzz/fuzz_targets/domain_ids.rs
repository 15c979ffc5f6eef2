//! Every identifier and name a client may send: user, room, file, session and message ids,
//! usernames and profile fields. What parses is what was given.
#![no_main]

use chat_domain::{FileId, MessageId, ProfileField, RoomId, SessionId, UserId, Username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = UserId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Some(id) = RoomId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Some(id) = FileId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Some(id) = MessageId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Some(id) = SessionId::parse(text) {
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
    }
    if let Ok(name) = Username::parse(text) {
        assert_eq!(Username::parse(name.as_str()).ok(), Some(name));
    }
    if let Ok(field) = ProfileField::parse("field", text) {
        assert_eq!(field.as_str(), text.trim());
    }
});
