//! Errors of chat actions.

use chat_domain::{DomainError, ErrorCode};
use chat_storage::StorageError;

/// Why a chat action failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Bad input or a refused action, in the contract's terms.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The partner's socket is gone and the room is waiting for it to come back.
    #[error("Connected user is not available")]
    PartnerUnavailable,
    /// The partner's socket is on another node, and this node cannot reach the others now
    /// (Redis or this node's bus subscription is down): the event was not sent.
    #[error("Connected user is not available")]
    PartnerUnreachable,
    /// The store failed.
    #[error("storage is unavailable")]
    Storage(#[from] StorageError),
}

impl ChatError {
    /// The contract's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Domain(error) => error.code(),
            Self::PartnerUnavailable | Self::PartnerUnreachable => ErrorCode::Unavailable,
            Self::Storage(_) => ErrorCode::Unavailable,
        }
    }

    /// Shorthand for the `not_in_chat` error.
    pub fn not_in_chat() -> Self {
        Self::Domain(DomainError::NotInChat)
    }
}
