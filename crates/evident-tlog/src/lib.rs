//! The verifiable log at the heart of Evident: RFC 6962 / RFC 9162 Merkle trees and proofs, and the
//! C2SP formats that outside verifiers already speak (tlog-tiles, signed-note, tlog-checkpoint,
//! tlog-proof, tlog-cosignature, tlog-witness).
//!
//! Pure: no I/O, no async, no serde. Storage is reached through [`HashSource`] and
//! [`TileReader`]; randomness for keys is supplied by the caller.
//!
//! Words used throughout: *entry* (the bytes logged), *leaf hash*, *leaf index*, *tree size*,
//! *root hash*, *checkpoint*, *inclusion proof*, *consistency proof*, *tile*, *origin*.

mod checkpoint;
mod error;
mod hash;
mod note;
mod proof;
mod receipt;
mod tile;
mod tree;
mod witness;

pub use checkpoint::Checkpoint;
pub use error::{Error, Result};
pub use hash::{Hash, LeafIndex, NodeId, TreeSize, empty_root, leaf_hash, node_hash};
pub use note::{
    ALG_COSIGNATURE_V1, ALG_ED25519, Cosigner, Note, NoteSignature, Signer, Verifier, add_signature_lines,
    is_valid_key_name, key_id, open_note, sign_note,
};
pub use proof::{
    HashSource, consistency_proof, inclusion_proof, range_nodes, root_from_inclusion_proof, tree_hash,
    verify_consistency, verify_inclusion,
};
pub use receipt::TlogProof;
pub use tile::{
    BundleId, MAX_ENTRY_LEN, TILE_HEIGHT, TILE_WIDTH, TileHashSource, TileId, TilePath, TileReader,
    bundles_for_growth, parse_bundle, push_bundle_entry, tiles_for_growth,
};
pub use tree::{Frontier, MemoryTree};
pub use witness::{
    AddCheckpoint, PolicyReport, Refusal, SIZE_CONTENT_TYPE, check_add_checkpoint, cosignature_lines,
    peek_checkpoint, witness_policy,
};
