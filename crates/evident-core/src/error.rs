//! The crate's one error type.
//!
//! Tamper evidence ([`Error::Integrity`]) is kept apart from operational failures
//! ([`Error::Unavailable`], [`Error::Overloaded`]) and from the caller's mistakes
//! ([`Error::InvalidArgument`], [`Error::NotFound`], [`Error::Conflict`]).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Stored data does not match what the log committed to: a proof, root, signature or
    /// commitment does not check out. Never retried; reported.
    #[error("integrity failure: {0}")]
    Integrity(String),
    /// The same (source, id) was stored before with different content.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The ingest queue is full; retry after the given time.
    #[error("overloaded, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Personal data that cannot be read: its subject was erased, or the key does not open it.
    #[error("personal data unavailable: {0}")]
    Sealed(String),
    /// Storage failed or is unreachable; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The engine is stopping and takes no more work.
    #[error("engine is shutting down")]
    ShuttingDown,
}

impl From<evident_tlog::Error> for Error {
    fn from(err: evident_tlog::Error) -> Error {
        match err {
            evident_tlog::Error::Unavailable(what) => Error::Unavailable(what),
            evident_tlog::Error::InvalidPosition(what) => Error::InvalidArgument(what),
            other if other.is_tamper_evidence() => Error::Integrity(other.to_string()),
            other => Error::Integrity(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<evident_wire::entry::Mismatch> for Error {
    fn from(err: evident_wire::entry::Mismatch) -> Error {
        Error::Integrity(err.0)
    }
}
