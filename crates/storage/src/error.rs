//! Storage errors.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Redis could not be reached in time when connecting.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// A session changed concurrently so often that an update could not be applied.
    #[error("too much contention on {0}")]
    Contention(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Whether the error means Redis is unreachable or misbehaving (as opposed to bad data),
    /// so that a fallback store should answer instead.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Redis(error) => !matches!(
                error.kind(),
                fred::error::ErrorKind::InvalidArgument
                    | fred::error::ErrorKind::Parse
                    | fred::error::ErrorKind::Url
            ),
            Self::Unavailable(_) => true,
            Self::Contention(_) | Self::Corrupt(_) => false,
        }
    }
}
