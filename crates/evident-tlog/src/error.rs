//! The one error type of the crate.
//!
//! Tamper evidence (a proof, root or signature that does not check out) is kept apart from bad input
//! (text that is not in the format it claims to be) and from a hash source that cannot answer.

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A proof was well formed but does not lead to the claimed root (tamper evidence).
    #[error("proof mismatch: {0}")]
    ProofMismatch(&'static str),
    /// Two roots that must be equal are not (tamper evidence).
    #[error("root mismatch: the recomputed root differs from the claimed one")]
    RootMismatch,
    /// A signature by a known key does not verify (tamper evidence).
    #[error("bad signature by {0}")]
    BadSignature(String),
    /// A note carries no signature by any key the verifier knows.
    #[error("note has no signature by a known key")]
    NoKnownSignature,
    /// A checkpoint names another log than the one expected.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    WrongOrigin { expected: String, found: String },
    /// Sizes or indices that cannot go together (index beyond the tree, a tree that shrinks).
    #[error("invalid position: {0}")]
    InvalidPosition(String),
    /// Text or bytes that are not in the format they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// An entry too large for a C2SP entry bundle (64 KiB - 1).
    #[error("entry of {0} bytes exceeds the 65535-byte limit")]
    EntryTooLarge(usize),
    /// The hash source does not hold a hash the computation needs (operational, not tampering).
    #[error("hash unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Malformed { what, reason: reason.into() }
    }

    /// True when the error is evidence of tampering or forgery rather than bad input or an outage.
    pub fn is_tamper_evidence(&self) -> bool {
        matches!(
            self,
            Error::ProofMismatch(_)
                | Error::RootMismatch
                | Error::BadSignature(_)
                | Error::WrongOrigin { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
