//! What goes into the sequencer for each event ([`Prepared`]) and what comes out
//! ([`Outcome`], [`Receipt`]). The engine takes and answers them; the inbox carries them between
//! nodes. Public as `crate::engine::{Outcome, Receipt}`.

use std::sync::Arc;

use evident_tlog::Hash;
use uuid::Uuid;

use crate::store::{NewDataKey, NewEntry};

/// What the engine answers for an accepted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub event_id: Uuid,
    pub index: u64,
    /// The size of the checkpoint that covers the event.
    pub tree_size: u64,
    pub checkpoint: Arc<String>,
    /// Non-fatal notes from validation (a dropped traceparent, a masked card number).
    pub warnings: Vec<String>,
}

/// The outcome of one submitted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Newly stored.
    Stored(Receipt),
    /// Stored before with the same content; the original event id and index.
    Duplicate(Receipt),
    /// Stored before with different content: nothing was stored.
    Conflict { existing_event_id: Uuid, existing_index: u64 },
    /// Not stored; the reason names the problem.
    Rejected(String),
}

/// An event ready to be sequenced.
pub(crate) struct Prepared {
    pub(crate) event_id: [u8; 16],
    pub(crate) source: String,
    pub(crate) producer_id: String,
    /// The idempotency digest's stored form (`privacy/idempotency.rs`).
    pub(crate) idempotency: Vec<u8>,
    pub(crate) leaf_hash: Hash,
    pub(crate) entry: NewEntry,
    pub(crate) new_key: Option<NewDataKey>,
    pub(crate) warnings: Vec<String>,
    /// The personal part in clear, for subscribers.
    pub(crate) personal: Option<Vec<u8>>,
}
