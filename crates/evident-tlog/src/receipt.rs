//! `c2sp.org/tlog-proof@v1` receipts (c2sp.org/tlog-proof): a signed checkpoint, a leaf index and
//! the inclusion proof that ties one entry to it, verifiable offline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::hash::{Hash, LeafIndex, leaf_hash};
use crate::note::Verifier;
use crate::proof;

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data (never trusted by verification).
    pub extra: Option<Vec<u8>>,
    pub index: LeafIndex,
    /// From the leaf's sibling up to the root's child.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The text form (conventionally stored as `*.tlog-proof`).
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index.0));
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the text form strictly; the checkpoint is kept verbatim and checked by [`Self::verify`].
    pub fn parse(text: &str) -> Result<TlogProof> {
        let bad = |reason: String| Error::malformed("tlog-proof", reason);
        let (head, checkpoint) =
            text.split_once("\n\n").ok_or_else(|| bad("no blank line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("first line is not {HEADER}")));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line".into()))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(BASE64.decode(b64).map_err(|_| bad("extra data is not base64".into()))?);
            line = lines.next().ok_or_else(|| bad("no index line".into()))?;
        }
        let index_text = line
            .strip_prefix("index ")
            .ok_or_else(|| bad(format!("expected an index line, got {line:?}")))?;
        let canonical = !index_text.is_empty()
            && index_text.bytes().all(|b| b.is_ascii_digit())
            && (index_text == "0" || !index_text.starts_with('0'));
        let index = canonical
            .then(|| index_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| bad(format!("index {index_text:?} is not a canonical decimal u64")))?;
        let proof = lines
            .enumerate()
            .map(|(i, line)| {
                Hash::from_base64(line).map_err(|err| bad(format!("proof line {}: {err}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        if proof.len() > 63 {
            return Err(bad(format!("{} proof lines, a tree has at most 63 levels", proof.len())));
        }
        Ok(TlogProof { extra, index: LeafIndex(index), proof, checkpoint: checkpoint.to_owned() })
    }

    /// Verifies that `entry` is the leaf at `index` of the log `origin`, as of a checkpoint signed
    /// by one of `verifiers`. Answers the checkpoint it was proved against.
    pub fn verify(&self, entry: &[u8], verifiers: &[Verifier], origin: &str) -> Result<Checkpoint> {
        let (checkpoint, _note) = Checkpoint::open(&self.checkpoint, verifiers, origin)?;
        proof::verify_inclusion(
            &leaf_hash(entry),
            self.index,
            checkpoint.size,
            &self.proof,
            &checkpoint.root,
        )?;
        Ok(checkpoint)
    }
}
