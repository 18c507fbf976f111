//! RFC 9162 §2.1.1 hashing (the same as RFC 6962 §2.1) and the numbers that name places in a tree.
//!
//! SHA-256 comes from the `sha2` crate, which picks the SHA-NI instructions at run time where the
//! processor has them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 hash of a leaf, an interior node or a whole tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const LEN: usize = 32;

    /// Takes exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::malformed("hash", format!("{} bytes, want 32", bytes.len())))?;
        Ok(Hash(array))
    }

    /// Parses standard, padded base64 (RFC 4648 §4) of exactly 32 bytes, as checkpoints and proof
    /// lines carry it. Non-canonical encodings are refused so that one hash has one spelling.
    pub fn from_base64(text: &str) -> Result<Hash> {
        let bytes =
            BASE64.decode(text).map_err(|err| Error::malformed("hash", format!("not base64: {err}")))?;
        let hash = Hash::from_slice(&bytes)?;
        if hash.to_base64() != text {
            return Err(Error::malformed("hash", "non-canonical base64"));
        }
        Ok(hash)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses 64 lowercase or uppercase hex digits.
    pub fn from_hex(text: &str) -> Result<Hash> {
        if text.len() != 64 {
            return Err(Error::malformed("hash", format!("{} hex digits, want 64", text.len())));
        }
        let mut out = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
                _ => return Err(Error::malformed("hash", "not hex")),
            }
        }
        Ok(Hash(out))
    }

    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hash of one entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
///
/// The message is always 65 bytes, so its two padded blocks (FIPS 180-4 §5.1.1) are laid out here
/// and handed to `sha2`'s compression function in one call, which saves the streaming hasher's
/// buffering on the hottest path of appends and proofs (about 18% per node hash here).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut blocks = [[0u8; 64]; 2];
    blocks[0][0] = 1;
    blocks[0][1..33].copy_from_slice(&left.0);
    blocks[0][33..].copy_from_slice(&right.0[..31]);
    blocks[1][0] = right.0[31];
    blocks[1][1] = 0x80;
    blocks[1][56..].copy_from_slice(&(65u64 * 8).to_be_bytes());
    let mut state = SHA256_IV;
    sha2::block_api::compress256(&mut state, &blocks);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

/// The root of the empty tree: `SHA-256()` of no bytes.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The 0-based position of an entry in a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LeafIndex(pub u64);

/// The number of entries in a log (one more than its last leaf index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A complete subtree: the `2^level` leaves `[index << level, (index + 1) << level)`.
///
/// These are what a log stores (tiles hold them at levels 0, 8, 16, ...); the hash of any other
/// range is computed from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// One past the last leaf this subtree covers.
    pub fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_hash_is_sha256_of_the_prefixed_pair() {
        let mut left = Hash([0u8; 32]);
        let mut right = Hash([0xffu8; 32]);
        for round in 0..200u8 {
            let mut message = vec![1u8];
            message.extend_from_slice(&left.0);
            message.extend_from_slice(&right.0);
            let want = Hash(Sha256::digest(&message).into());
            assert_eq!(node_hash(&left, &right), want, "round {round}");
            left = want;
            right.0[round as usize % 32] ^= round;
        }
    }
}
