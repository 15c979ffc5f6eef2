//! Domain types of the random-chat service: everything the wire contract names, with the
//! validation that makes invalid values unrepresentable past the edge. No I/O, no runtime.
//!
//! Modules:
//! - [`time`]: [`Timestamp`], unix milliseconds serialized as RFC 3339 in UTC.
//! - [`ids`]: [`UserId`], [`SessionId`], [`RoomId`], [`MessageId`], [`FileId`].
//! - [`username`]: [`Username`] parsing and the `AdjectiveAnimal1234` generator.
//! - [`user`]: [`GuestUser`] (the owner's view), [`PublicUser`] (what others see), [`Profile`].
//! - [`message`]: [`Message`] and the validation of chat payloads.
//! - [`file`]: [`FileInfo`] and [`FileType`] judged from content.
//! - [`search`]: [`SearchFilters`], [`Searcher`] and the in-process [`SearchQueue`].
//! - [`webrtc`]: SDP and ICE candidate validation.
//! - [`stats`]: the service-wide counters, [`Stats`].
//! - [`error`]: [`DomainError`], the one error enum the gateway maps onto the contract's codes.

pub mod error;
pub mod file;
pub mod ids;
pub mod message;
pub mod search;
pub mod stats;
pub mod time;
pub mod user;
pub mod username;
pub mod webrtc;

pub use error::{DomainError, ErrorCode};
pub use file::{FileInfo, FileType};
pub use ids::{FileId, MessageId, RoomId, SessionId, UserId};
pub use message::{ChatBody, ChatPayload, Message, MessageContent, MessageStatus, MessageType};
pub use search::{SearchFilters, SearchQueue, Searcher};
pub use stats::Stats;
pub use time::Timestamp;
pub use user::{GuestUser, Profile, ProfileField, ProfileUpdate, PublicUser};
pub use username::Username;
