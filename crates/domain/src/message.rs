//! Chat messages and the validation of `chat:message` payloads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::file::FileInfo;
use crate::ids::{FileId, MessageId, RoomId, UserId};
use crate::time::Timestamp;
use crate::username::Username;

/// The longest text message, in Unicode scalar values after trimming.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The longest `clientId` echoed back, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// The kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// Plain text.
    Text,
    /// A file uploaded to the room.
    File,
    /// A voice note uploaded to the room.
    Voice,
}

/// Delivery state of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Routed by the server.
    Sent,
    /// Handed to (or confirmed by) the recipient.
    Delivered,
}

/// A message's content: text, or the description of a file in the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Text content.
    Text(String),
    /// File or voice content.
    File(FileInfo),
}

/// A chat message as the recipient receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `msg_<unix ms>_<random>`.
    pub id: MessageId,
    /// The room it was sent in.
    pub room_id: RoomId,
    /// Always set by the server.
    pub sender_id: UserId,
    /// Always set by the server.
    pub sender_username: Username,
    /// Text, file or voice.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The content.
    pub content: MessageContent,
    /// When the server routed it.
    pub timestamp: Timestamp,
    /// Delivery state.
    pub status: MessageStatus,
}

/// A validated `chat:message` payload from a client. Sender, room and ids are never taken
/// from the payload; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatPayload {
    /// What is sent.
    pub body: ChatBody,
    /// The client's own id for the message, echoed in the ack and `message:sent`.
    pub client_id: Option<String>,
}

/// The body of a [`ChatPayload`].
#[derive(Debug, Clone, PartialEq)]
pub enum ChatBody {
    /// Trimmed text, 1 to 2000 characters.
    Text(String),
    /// A file of the room.
    File(FileId),
    /// A voice note of the room.
    Voice(FileId),
}

impl ChatPayload {
    /// Validates `{type, content, clientId?}`.
    pub fn from_json(value: &Value) -> Result<Self, DomainError> {
        let object = value
            .as_object()
            .ok_or_else(|| DomainError::invalid("message must be an object"))?;
        let client_id = match object.get("clientId") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.len() <= MAX_CLIENT_ID_BYTES => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            Some(_) => {
                return Err(DomainError::invalid(
                    "clientId must be a string of at most 128 bytes",
                ));
            }
        };
        let kind = match object.get("type") {
            None | Some(Value::Null) => MessageType::Text,
            Some(Value::String(text)) => match text.as_str() {
                "text" => MessageType::Text,
                "file" => MessageType::File,
                "voice" => MessageType::Voice,
                _ => return Err(DomainError::invalid("type must be text, file or voice")),
            },
            Some(_) => return Err(DomainError::invalid("type must be text, file or voice")),
        };
        let content = object.get("content").unwrap_or(&Value::Null);
        let body = match kind {
            MessageType::Text => ChatBody::Text(parse_text(content)?),
            MessageType::File => ChatBody::File(parse_file_ref(content)?),
            MessageType::Voice => ChatBody::Voice(parse_file_ref(content)?),
        };
        Ok(Self { body, client_id })
    }
}

/// Validates text content: a string of 1 to 2000 characters after trimming.
pub fn parse_text(content: &Value) -> Result<String, DomainError> {
    let Value::String(text) = content else {
        return Err(DomainError::invalid("content must be a string"));
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid("message must not be empty"));
    }
    // Counting stops early: a megabyte of text is not walked twice.
    if trimmed.chars().nth(MAX_TEXT_CHARS).is_some() {
        return Err(DomainError::TooLarge(format!(
            "message must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(trimmed.to_owned())
}

fn parse_file_ref(content: &Value) -> Result<FileId, DomainError> {
    let file_id = match content {
        Value::Object(object) => object.get("fileId").and_then(Value::as_str),
        Value::String(text) => Some(text.as_str()),
        _ => None,
    };
    file_id
        .and_then(FileId::parse)
        .ok_or_else(|| DomainError::invalid("content.fileId must name an uploaded file"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(input: Value, expected: Result<ChatBody, &str>) {
        let result = ChatPayload::from_json(&input)
            .map(|payload| payload.body)
            .map_err(|error| error.to_string());
        assert_eq!(
            result.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|text| *text),
            "{input}"
        );
    }

    #[test]
    fn text_messages() {
        check(
            json!({"type": "text", "content": "  hi  "}),
            Ok(ChatBody::Text("hi".into())),
        );
        check(
            json!({"content": "no type means text"}),
            Ok(ChatBody::Text("no type means text".into())),
        );
        check(
            json!({"type": "text", "content": "é".repeat(2000)}),
            Ok(ChatBody::Text("é".repeat(2000))),
        );
        check(
            json!({"type": "text", "content": "x".repeat(2001)}),
            Err("message must be at most 2000 characters"),
        );
        check(
            json!({"type": "text", "content": "   "}),
            Err("message must not be empty"),
        );
        check(
            json!({"type": "text", "content": 5}),
            Err("content must be a string"),
        );
        check(
            json!({"type": "html", "content": "x"}),
            Err("type must be text, file or voice"),
        );
        check(json!("just a string"), Err("message must be an object"));
    }

    #[test]
    fn file_messages_name_a_file_id_only() {
        let id = FileId::generate();
        check(
            json!({"type": "file", "content": {"fileId": id.as_str(), "fileUrl": "http://evil"}}),
            Ok(ChatBody::File(id.clone())),
        );
        check(
            json!({"type": "voice", "content": {"fileId": id.as_str(), "duration": 3}}),
            Ok(ChatBody::Voice(id)),
        );
        check(
            json!({"type": "file", "content": {"fileId": "../../etc/passwd"}}),
            Err("content.fileId must name an uploaded file"),
        );
        check(
            json!({"type": "file", "content": "text"}),
            Err("content.fileId must name an uploaded file"),
        );
    }

    #[test]
    fn forged_fields_are_ignored_and_client_id_is_kept() {
        let payload = ChatPayload::from_json(
            &json!({"content": "x", "senderId": "guest_evil", "clientId": "c-1"}),
        );
        assert_eq!(
            payload.ok().and_then(|payload| payload.client_id),
            Some("c-1".into())
        );
        assert!(ChatPayload::from_json(&json!({"content": "x", "clientId": {"a": 1}})).is_err());
    }
}
