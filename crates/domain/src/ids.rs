//! Identifiers. Each is a newtype so a room id can never be passed where a user id belongs,
//! and each `parse` accepts only the shape the server itself hands out.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random identifier.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), Uuid::new_v4()))
            }

            /// Accepts `<prefix><uuid>` only.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                // Only the hyphenated lowercase form the server hands out.
                let uuid = Uuid::try_parse(rest).ok()?;
                (uuid.hyphenated().to_string() == rest).then(|| Self(text.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text).ok_or_else(|| format!(concat!("not a ", stringify!($name), ": {}"), text))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A guest user's id: `guest_` followed by a UUID.
    UserId,
    "guest_"
);
string_id!(
    /// A chat room's id: `room_` followed by a UUID.
    RoomId,
    "room_"
);
string_id!(
    /// An uploaded file's id: `file_` followed by a UUID.
    FileId,
    "file_"
);

string_id!(
    /// A user report's id: `report_` followed by a UUID.
    ReportId,
    "report_"
);
string_id!(
    /// A ban's id: `ban_` followed by a UUID.
    BanId,
    "ban_"
);

/// A guest session's id, a bare UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh random session id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a UUID in any of its usual text forms.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(formatter)
    }
}

/// A chat message's id: `msg_<unix ms>_<9 random base-36 characters>`, as the original wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh id stamped with `now`.
    pub fn generate(now: Timestamp) -> Self {
        const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut id = format!("msg_{}_", now.as_millis());
        for _ in 0..9 {
            id.push(char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]));
        }
        Self(id)
    }

    /// Accepts any short printable id; receipts name ids the client was given, and an id that
    /// matches nothing simply changes nothing.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|byte| byte.is_ascii_graphic());
        valid.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_round_trip_and_reject_other_shapes() {
        let id = UserId::generate();
        assert!(id.as_str().starts_with("guest_"));
        assert_eq!(UserId::parse(id.as_str()), Some(id.clone()));
        for bad in [
            "",
            "guest_",
            "guest_123",
            "room_6f1e8e1a-4e3b-4bd4-9b7c-8f3f3f3f3f3f",
            "guest_6F1E8E1A-4E3B-4BD4-9B7C-8F3F3F3F3F3F",
        ] {
            assert_eq!(UserId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_ids_have_the_original_shape() {
        let id = MessageId::generate(Timestamp::from_millis(1_700_000_000_000));
        let rest = id.as_str().strip_prefix("msg_1700000000000_");
        assert!(rest.is_some_and(
            |tail| tail.len() == 9 && tail.bytes().all(|byte| byte.is_ascii_alphanumeric())
        ));
        assert_eq!(MessageId::parse("with space"), None);
        assert_eq!(MessageId::parse(&"x".repeat(65)), None);
    }
}
