//! Witness cosignatures of a tenant's checkpoints (c2sp.org/tlog-cosignature), kept in the store's
//! service state `witness/cosigned/<tenant>`: the most recent cosigned checkpoints (at most
//! [`KEEP`]), each as the log's signed note followed by every cosignature line collected for it.
//!
//! Read by the checkpoint path, receipts and exports, which carry the cosignatures their
//! checkpoint has; written by the server's witness client. A crash between a witness's answer and
//! the write loses nothing for good: the witness answers the same size again (old size equal to
//! the checkpoint's) with a fresh cosignature.

use std::sync::Mutex;

use evident_tlog::Checkpoint;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::TenantId;

/// How many cosigned checkpoints a tenant keeps (older receipts need not be cosigned again).
pub const KEEP: usize = 16;

/// Writers on one node take turns (one witness client per node; on a shared store only the node
/// that leads a tenant submits its checkpoints).
static WRITE: Mutex<()> = Mutex::new(());

fn state_name(tenant: &TenantId) -> String {
    format!("witness/cosigned/{tenant}")
}

/// The text of a signed note (up to and including the blank line).
fn note_text(note: &str) -> Option<&str> {
    note.rfind("\n\n").map(|split| &note[..split + 2])
}

impl Engine {
    /// The stored cosigned checkpoints of a tenant, oldest first.
    pub fn cosigned_checkpoints(&self, tenant: &TenantId) -> Result<Vec<String>> {
        match self.store().get_state(&state_name(tenant))? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|err| Error::Integrity(format!("{}: {err}", state_name(tenant)))),
        }
    }

    /// Adds a witness's cosignature lines to the stored copy of `signed` (the log's checkpoint
    /// note), durably; keeps the newest [`KEEP`] checkpoints by tree size.
    pub fn add_cosignatures(&self, tenant: &TenantId, signed: &str, lines: &str) -> Result<()> {
        let text = note_text(signed).ok_or_else(|| Error::InvalidArgument("not a signed note".into()))?;
        let size = |note: &str| {
            note_text(note).and_then(|text| Checkpoint::parse(&text[..text.len() - 1]).ok()).map(|c| c.size)
        };
        let _turn = WRITE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut stored = self.cosigned_checkpoints(tenant)?;
        let merged = match stored.iter_mut().find(|note| note_text(note) == Some(text)) {
            Some(note) => {
                *note = evident_tlog::add_signature_lines(note, lines)?;
                false
            }
            None => {
                stored.push(evident_tlog::add_signature_lines(signed, lines)?);
                true
            }
        };
        if merged {
            stored.sort_by_key(|note| size(note));
            let excess = stored.len().saturating_sub(KEEP);
            stored.drain(..excess);
        }
        let bytes = serde_json::to_vec(&stored).expect("strings serialise");
        self.store().put_state(&state_name(tenant), &bytes)
    }

    /// `note` with the cosignature lines stored for its checkpoint text, if any.
    pub fn with_cosignatures(&self, tenant: &TenantId, note: &str) -> Result<String> {
        let Some(text) = note_text(note) else { return Ok(note.to_owned()) };
        let stored = self.cosigned_checkpoints(tenant)?;
        match stored.iter().find(|cosigned| note_text(cosigned) == Some(text)) {
            Some(cosigned) => Ok(evident_tlog::add_signature_lines(note, &cosigned[text.len()..])?),
            None => Ok(note.to_owned()),
        }
    }

    /// The newest stored cosigned checkpoint of at least `min_size` entries, with its size.
    pub fn cosigned_covering(&self, tenant: &TenantId, min_size: u64) -> Result<Option<(u64, String)>> {
        let stored = self.cosigned_checkpoints(tenant)?;
        Ok(stored.into_iter().rev().find_map(|note| {
            let text = note_text(&note)?;
            let checkpoint = Checkpoint::parse(&text[..text.len() - 1]).ok()?;
            (checkpoint.size.0 >= min_size).then_some((checkpoint.size.0, note))
        }))
    }
}
