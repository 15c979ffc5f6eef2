//! Storage errors.

use std::fmt;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(RedisError),
    /// Redis could not be reached in time when connecting.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// A session changed concurrently so often that an update could not be applied.
    #[error("too much contention on {0}")]
    Contention(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The Redis URL or an option cannot be honoured (a scheme, a missing Sentinel service, an
    /// unreadable CA file…): the reason, never the URL.
    #[error("redis configuration: {0}")]
    Config(String),
    /// A file was not stored: it would pass one of the [`crate::FileLimits`]. Nothing was
    /// written.
    #[error("file refused: {0}")]
    FileRefused(FileRefusal),
}

/// Which bound a refused file would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRefusal {
    /// The room's live files would hold more than [`crate::FileLimits::max_room_bytes`].
    RoomFull {
        /// The bound, in bytes.
        limit: u64,
    },
    /// This process's memory would hold more file bytes than
    /// [`crate::FileLimits::max_memory_bytes`].
    MemoryFull {
        /// The bound, in bytes.
        limit: u64,
    },
}

impl fmt::Display for FileRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RoomFull { limit } => {
                write!(formatter, "the room's files would pass {limit} bytes")
            }
            Self::MemoryFull { limit } => {
                write!(
                    formatter,
                    "this node's files in memory would pass {limit} bytes"
                )
            }
        }
    }
}

impl StorageError {
    /// Whether the error means Redis is unreachable or misbehaving (as opposed to bad data),
    /// so that a fallback store should answer instead.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Redis(error) => error.is_outage(),
            Self::Unavailable(_) => true,
            Self::Contention(_) | Self::Corrupt(_) | Self::Config(_) | Self::FileRefused(_) => {
                false
            }
        }
    }
}

/// An error of the Redis client, without the client's types: what kind of error it is and
/// what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisError {
    kind: &'static str,
    message: String,
    outage: bool,
}

impl RedisError {
    /// The client's name for the kind of error (`"IO Error"`, `"Timeout Error"`, `"Invalid
    /// Argument"`…).
    pub fn kind(&self) -> &str {
        self.kind
    }

    /// What the client or Redis said.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether it means Redis is unreachable or misbehaving rather than a bad request (an
    /// invalid argument, an unparsable answer or URL).
    pub fn is_outage(&self) -> bool {
        self.outage
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RedisError {}

/// Converts an error of `fred` (crate-internal, so that `fred` stays out of the public API).
#[cfg(feature = "redis")]
pub(crate) fn redis(error: fred::error::Error) -> StorageError {
    use fred::error::ErrorKind;
    let outage = !matches!(
        error.kind(),
        ErrorKind::InvalidArgument | ErrorKind::Parse | ErrorKind::Url
    );
    StorageError::Redis(RedisError {
        kind: error.kind().to_str(),
        message: error.details().to_string(),
        outage,
    })
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn a_redis_error_keeps_the_message_and_the_outage_judgement() {
        use fred::error::{Error, ErrorKind};
        let io = redis(Error::new(ErrorKind::IO, "connection refused"));
        assert_eq!(io.to_string(), "redis: IO Error: connection refused");
        assert!(io.is_outage());
        let url = redis(Error::new(ErrorKind::Url, "bad scheme"));
        assert!(!url.is_outage());
        let StorageError::Redis(inner) = url else {
            panic!("a Redis error")
        };
        assert_eq!((inner.kind(), inner.message()), ("Url Error", "bad scheme"));
    }
}
