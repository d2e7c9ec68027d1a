//! The store's error type.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The change would break an invariant (e.g. removing a domain that still has accounts).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The batch this call was part of could not be committed; nothing of it was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The data directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The store is shutting down or its writer died.
    #[error("store unavailable: {0}")]
    Unavailable(&'static str),
}
