//! Domain types of the random-chat service: everything the wire contract names, with the
//! validation that makes invalid values unrepresentable past the edge. No I/O, no runtime.
//!
//! Modules:
//! - [`time`]: [`Timestamp`], unix milliseconds serialized as RFC 3339 in UTC.
//! - [`ids`]: [`UserId`], [`SessionId`], [`RoomId`], [`MessageId`], [`FileId`].
//! - [`username`]: [`Username`] parsing and the `AdjectiveAnimal1234` generator.
//! - [`user`]: [`GuestUser`] (the owner's view), [`PublicUser`] (what others see), [`Profile`].
//! - [`message`]: [`Message`] and the validation of chat payloads.
//! - [`file`](mod@file): [`FileInfo`] and [`FileType`] judged from content.
//! - [`search`]: [`SearchFilters`], [`Searcher`] and the in-process [`SearchQueue`].
//! - [`webrtc`]: [`SessionDescription`] and [`IceCandidate`], checked SDP and ICE candidates.
//! - [`stats`]: the service-wide counters, [`Stats`].
//! - [`error`]: [`DomainError`], the one error enum the gateway maps onto the contract's codes.
//!
//! # Example
//!
//! Parse what a client sends at the edge, then work with values that cannot be invalid
//! (`examples/validate.rs` runs these checks on input you give):
//!
//! ```
//! use chat_domain::{ChatBody, ChatPayload, ErrorCode, GuestUser, Profile, Timestamp, Username};
//! use serde_json::json;
//!
//! // `POST /api/guest`: unknown fields and bad values are refused, each with its contract code.
//! let profile = Profile::from_json(&json!({"username": " Neo_1 ", "language": "en"}))?;
//! let user = GuestUser::new(profile, Timestamp::now());
//! assert_eq!(user.username.as_str(), "Neo_1");
//! assert!(user.id.as_str().starts_with("guest_"));
//! let refused = Profile::from_json(&json!({"isAdmin": true})).unwrap_err();
//! assert_eq!((refused.code(), refused.to_string().as_str()), (ErrorCode::InvalidInput, "unknown field: isAdmin"));
//!
//! // What others see never holds the session, socket or device.
//! let public = serde_json::to_value(user.public())?;
//! assert!(public.get("sessionId").is_none() && public["isOnline"] == false);
//!
//! // A `chat:message` payload: trimmed text of 1 to 2000 characters.
//! let message = ChatPayload::from_json(&json!({"content": "  hi  ", "clientId": "c1"}))?;
//! assert_eq!(message.body, ChatBody::Text("hi".into()));
//! assert!(Username::parse("no spaces").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod file;
pub mod ids;
pub mod message;
pub mod moderation;
pub mod search;
pub mod stats;
pub mod time;
pub mod user;
pub mod username;
pub mod webrtc;

pub use error::{DomainError, ErrorCode};
pub use file::{FileInfo, FileType};
pub use ids::{BanId, FileId, MessageId, ReportId, RoomId, SessionId, UserId};
pub use message::{ChatBody, ChatPayload, Message, MessageContent, MessageStatus, MessageType};
pub use moderation::{Ban, BanSource, Report, ReportReason, ReportRequest};
pub use search::{SearchFilters, SearchQueue, Searcher};
pub use stats::Stats;
pub use time::Timestamp;
pub use user::{GuestUser, Profile, ProfileField, ProfileUpdate, PublicUser};
pub use username::Username;
pub use webrtc::{CallKind, IceCandidate, SdpType, SessionDescription};
