//! Schemas of the domain types the REST API carries, described here because the domain
//! crate does not depend on utoipa. Each mirror lists exactly the fields its domain type
//! serializes (checked by a test); patterns say what the server hands out, and the
//! `…Input` variants what it accepts (values are trimmed before they are checked).

use serde::Deserialize;
use utoipa::ToSchema;

/// A guest user's id: `guest_` followed by a lowercase hyphenated UUID.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^guest_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "guest_6f1e8e1a-4e3b-4bd4-9b7c-8f3f3f3f3f3f"
)]
pub struct UserId(pub String);

/// An uploaded file's id: `file_` followed by a lowercase hyphenated UUID.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^file_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "file_0b8f2f6c-5a4e-4c1d-9a57-3f0e4c2d1b6a"
)]
pub struct FileId(pub String);

/// An instant: RFC 3339 in UTC with milliseconds, as JavaScript's `toISOString()` writes.
#[derive(Deserialize, ToSchema)]
#[schema(format = DateTime, example = "2026-11-23T18:55:09.123Z")]
pub struct Timestamp(pub String);

/// A display name: 3 to 24 ASCII letters, digits, `_` or `-` (generated ones look like
/// `CoolPanda1234`).
#[derive(Deserialize, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{3,24}$", example = "CoolPanda1234")]
pub struct Username(pub String);

/// A chosen username as sent: after trimming white space, 3 to 24 ASCII letters, digits,
/// `_` or `-`.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[A-Za-z0-9_-]{3,24}[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$",
    example = "CoolPanda1234"
)]
pub struct UsernameInput(pub String);

/// Free text (`gender`, `language`, `location`, `deviceId`): 1 to 64 characters, no
/// control characters, no white space at either end.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000](?:[^\\u0000-\\u001f\\u007f-\\u009f]{0,62}[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000])?$",
    example = "en"
)]
pub struct ProfileField(pub String);

/// A free-text field as sent: after trimming white space, 1 to 64 characters with no
/// control characters.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000](?:[^\\u0000-\\u001f\\u007f-\\u009f]{0,62}[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000])?[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$",
    example = "en"
)]
pub struct ProfileFieldInput(pub String);

/// A guest user as its owner sees it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuestUser {
    /// The user's id.
    pub id: UserId,
    /// The session's id (a UUID).
    #[schema(format = "uuid")]
    pub session_id: String,
    /// Display name.
    pub username: Username,
    /// A socket is connected and the user has not said otherwise.
    pub is_online: bool,
    /// In the matching queue.
    pub is_searching: bool,
    /// In a chat.
    pub in_chat: bool,
    /// The partner's id while in a chat.
    #[schema(required = true)]
    pub connected_user: Option<UserId>,
    /// The live socket's id.
    #[schema(required = true)]
    pub socket_id: Option<String>,
    /// Free-text location.
    #[schema(required = true)]
    pub location: Option<ProfileField>,
    /// Free-text gender.
    #[schema(required = true)]
    pub gender: Option<ProfileField>,
    /// Free-text language.
    #[schema(required = true)]
    pub language: Option<ProfileField>,
    /// The client's device id.
    #[schema(required = true)]
    pub device_id: Option<ProfileField>,
    /// Last activity.
    pub last_seen: Timestamp,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the live socket connected.
    #[schema(required = true)]
    pub connected_at: Option<Timestamp>,
}

/// What others may see of a user: never its session, socket, device or address.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicUser {
    /// The user's id.
    pub id: UserId,
    /// Display name.
    pub username: Username,
    /// Online flag.
    pub is_online: bool,
    /// Searching flag.
    pub is_searching: bool,
    /// In-chat flag.
    pub in_chat: bool,
    /// Free-text location.
    #[schema(required = true)]
    pub location: Option<ProfileField>,
    /// Free-text gender.
    #[schema(required = true)]
    pub gender: Option<ProfileField>,
    /// Free-text language.
    #[schema(required = true)]
    pub language: Option<ProfileField>,
    /// Last activity.
    pub last_seen: Timestamp,
}

/// The service-wide counters (over every node sharing one Redis).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stats {
    /// Live sessions.
    pub total_users: u64,
    /// Users with a connected socket.
    pub online_users: u64,
    /// Users active in the last five minutes.
    pub active_users: u64,
    /// Users searching for a partner.
    pub available_users: u64,
    /// Chat pairs: users in a chat / 2.
    pub connected_users: u64,
    /// Users in a chat.
    pub users_in_chat: u64,
}

/// The kind of an uploaded file, judged from its bytes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// PNG, JPEG, GIF, WebP, BMP.
    Image,
    /// MP4/QuickTime, video WebM.
    Video,
    /// MP3, Ogg, WAV, FLAC, M4A, audio WebM.
    Audio,
    /// Audio uploaded as a voice note (with a duration).
    Voice,
    /// PDF, ZIP-based documents, UTF-8 text.
    Document,
}

/// An uploaded file, as its uploader sees it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileInfo {
    /// The file's id.
    pub file_id: FileId,
    /// The sanitized original name.
    pub filename: String,
    /// The type judged from the bytes.
    pub file_type: FileType,
    /// Size in bytes.
    pub file_size: u64,
    /// A relative URL signed for the uploader, valid `FILES__URL_TTL_SECS`:
    /// `/api/files/{fileId}?u=…&e=…&s=…`.
    pub file_url: String,
    /// Voice notes only: length in seconds.
    #[schema(value_type = f64, required = false, exclusive_minimum = 0.0, maximum = 3600.0)]
    pub duration: Option<f64>,
    /// When the file is deleted at the latest.
    pub expires_at: Timestamp,
}

/// Every REST error: `{"error": {"code", "message"}}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Error {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code clients match on, and a human message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// The contract's code.
    pub code: ErrorCode,
    /// Human text; for the 401/404 codes of the contract, its exact message.
    pub message: String,
    /// `banned` only: when the ban ends (RFC 3339).
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// The codes of REST errors (each operation lists the ones it answers).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field is missing, of the wrong type or out of range.
    InvalidInput,
    /// 400: the action needs a chat and the user is in none.
    NotInChat,
    /// 401 "Authentication required".
    AuthRequired,
    /// 401 "Invalid token".
    InvalidToken,
    /// 401 "Token has expired".
    TokenExpired,
    /// 403: the caller may not see or do this.
    Forbidden,
    /// 404 "Guest session not found".
    SessionNotFound,
    /// 404: no such resource or route.
    NotFound,
    /// 405: a known path with another method.
    MethodNotAllowed,
    /// 413: the body is over its limit.
    TooLarge,
    /// 415: the content type is not accepted.
    UnsupportedType,
    /// 429: too many requests; see `Retry-After`.
    RateLimited,
    /// 500: a bug or an unexpected failure.
    Internal,
    /// 503: storage is unreachable and no fallback could answer.
    Unavailable,
    /// 403 "You are banned" (with `until`).
    Banned,
    /// 503: this node is draining; retry on another.
    Draining,
}
