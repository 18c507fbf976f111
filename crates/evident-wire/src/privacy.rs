//! Requests and answers of the privacy endpoints (`/v1/subjects/{subject}/erasure`, and later
//! holds, retention and reports), as the server sends them and clients read them.

use serde::{Deserialize, Serialize};

/// `POST /v1/subjects/{subject}/erasure`: why, and under which request (a ticket, a case number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why the subject is erased (GDPR Art. 17 ground, say); 1 to 2000 characters.
    pub reason: String,
    /// The request it answers (ticket or case number); 1 to 256 characters.
    pub reference: String,
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    pub subject: String,
    /// Whether the subject had a data key that was destroyed now (`false`: nothing was left to
    /// erase, e.g. a repeated request; the erasure is recorded all the same).
    pub key_destroyed: bool,
    /// The `evident.privacy.erased` event that records it.
    pub event_id: String,
    pub index: u64,
    /// RFC 3339.
    pub erased_at: String,
    /// How long other nodes may still use a cached copy of the key, in seconds.
    pub cache_bound_secs: u64,
}
