//! The one place where errors become the contract's error shape:
//! `{"error": {"code": "snake_case", "message": "Human text"}}` with its status code.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use chat_domain::{DomainError, ErrorCode};
use chat_storage::StorageError;
use serde_json::json;

/// An error answered to a REST client.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    retry_after_secs: Option<u64>,
    /// When a ban ends (`banned` errors carry it as `until`).
    until: Option<chat_domain::Timestamp>,
}

impl ApiError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            until: None,
        }
    }

    /// 403 `banned` "You are banned", with `until` in the error object.
    pub fn banned(until: chat_domain::Timestamp) -> Self {
        let mut error = Self::new(ErrorCode::Banned, "You are banned");
        error.until = Some(until);
        error
    }

    /// 503 `draining`: this node takes no new sessions or sockets.
    pub fn draining() -> Self {
        Self::new(
            ErrorCode::Draining,
            "This server is draining: retry on another one",
        )
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// 401 `auth_required`.
    pub fn auth_required() -> Self {
        Self::new(ErrorCode::AuthRequired, "Authentication required")
    }

    /// 401 `invalid_token`.
    pub fn invalid_token() -> Self {
        Self::new(ErrorCode::InvalidToken, "Invalid token")
    }

    /// 401 `token_expired`.
    pub fn token_expired() -> Self {
        Self::new(ErrorCode::TokenExpired, "Token has expired")
    }

    /// 404 `session_not_found`.
    pub fn session_not_found() -> Self {
        Self::new(ErrorCode::SessionNotFound, "Guest session not found")
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            ErrorCode::RateLimited,
            "Too many requests, please try again later",
        );
        error.retry_after_secs = Some(retry_after_secs.max(1));
        error
    }

    /// 500 `internal`; the cause is logged, never shown.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "Internal server error")
    }

    /// The contract code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The HTTP status of each contract code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput | ErrorCode::NotInChat => StatusCode::BAD_REQUEST,
        ErrorCode::AuthRequired | ErrorCode::InvalidToken | ErrorCode::TokenExpired => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::SessionNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden | ErrorCode::Banned => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable | ErrorCode::Draining => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(until) = self.until {
            error["until"] = json!(until);
        }
        response.json(json!({ "error": error }))
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::RateLimited { retry_after_secs } => Self::rate_limited(retry_after_secs),
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        tracing::error!(%error, "storage call failed");
        Self::new(
            ErrorCode::Unavailable,
            "Storage is unavailable, please retry",
        )
    }
}
