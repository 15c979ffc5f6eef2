//! Storage errors.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
