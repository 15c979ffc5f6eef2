//! The one error enum of the domain, and the contract's error codes.

use std::fmt;

/// The error codes of the contract (`error.code` in REST bodies, acks and `error` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: a field is missing, of the wrong type or out of range.
    InvalidInput,
    /// 401: no credentials were given.
    AuthRequired,
    /// 401: the token is malformed, tampered with or of another algorithm.
    InvalidToken,
    /// 401: the token's `exp` has passed.
    TokenExpired,
    /// 404: the token's session no longer exists.
    SessionNotFound,
    /// 403: the caller may not see or do this.
    Forbidden,
    /// 404: no such resource.
    NotFound,
    /// 413: the body or payload is over its limit.
    TooLarge,
    /// 415: the content type is not accepted.
    UnsupportedType,
    /// 429: too many requests or events; retry later.
    RateLimited,
    /// The event needs a chat and the user is in none.
    NotInChat,
    /// 503: storage is unreachable and no fallback could answer.
    Unavailable,
    /// 403: this user, device or address is banned (see the moderation rules).
    Banned,
    /// 503: this node is draining: it takes no new sessions or sockets.
    Draining,
    /// 500: a bug or an unexpected backend failure.
    Internal,
}

impl ErrorCode {
    /// The snake_case code clients match on.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::AuthRequired => "auth_required",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::SessionNotFound => "session_not_found",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::TooLarge => "too_large",
            Self::UnsupportedType => "unsupported_type",
            Self::RateLimited => "rate_limited",
            Self::NotInChat => "not_in_chat",
            Self::Unavailable => "unavailable",
            Self::Banned => "banned",
            Self::Draining => "draining",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What can be wrong with a user's input or request, independent of the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field is invalid; the text says which and why.
    #[error("{0}")]
    InvalidInput(String),
    /// A payload is over its limit; the text says which.
    #[error("{0}")]
    TooLarge(String),
    /// A content type is not accepted.
    #[error("{0}")]
    UnsupportedType(String),
    /// The action needs a chat and the user is in none.
    #[error("Not in a chat")]
    NotInChat,
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist (or is not the caller's to see).
    #[error("{0}")]
    NotFound(String),
    /// Too many requests; retry after the given number of seconds.
    #[error("Too many requests, retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// The contract's code for this error.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidInput(_) => ErrorCode::InvalidInput,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::UnsupportedType(_) => ErrorCode::UnsupportedType,
            Self::NotInChat => ErrorCode::NotInChat,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }
}
