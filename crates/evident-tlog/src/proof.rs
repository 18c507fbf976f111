//! Tree hashes and proofs over any store of complete-subtree hashes.
//!
//! Generation follows RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF), walked iteratively: each
//! proof element is the hash of a range of leaves, and every range that the recursion can name
//! starts on a multiple of the next power of two at or above its length, so it is the
//! concatenation of a few complete subtrees ([`range_nodes`]) that the store holds.
//!
//! Verification is RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter; the bit walks reject wrong sizes,
//! indices past the tree, and short, over-long or reordered proofs.

use crate::error::{Error, Result};
use crate::hash::{Hash, LeafIndex, NodeId, TreeSize, empty_root, node_hash};

/// Where proofs and roots get their hashes: anything that can look up complete subtrees.
///
/// Contract: `read_hashes` answers one hash per requested node, in the order asked, or fails as a
/// whole. Callers only ask for nodes inside a tree size the source has said it holds. A source
/// that lacks a node answers [`Error::Unavailable`]; it never invents one.
pub trait HashSource {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>>;
}

impl<S: HashSource + ?Sized> HashSource for &S {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        (**self).read_hashes(nodes)
    }
}

/// The complete subtrees that make up leaves `[lo, hi)`, left to right, largest first.
///
/// Precondition: `lo` is a multiple of the smallest power of two `>= hi - lo` (true of the tree
/// itself and of every range the RFC 9162 recursions name), so that folding the hashes from the
/// right gives `MTH(D[lo:hi])`.
pub fn range_nodes(mut lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    while lo < hi {
        let mut level = lo.trailing_zeros().min(63);
        while lo.checked_add(1u64 << level).is_none_or(|end| end > hi) {
            level -= 1;
        }
        out.push(NodeId::new(level as u8, lo >> level));
        lo += 1u64 << level;
    }
}

/// Folds the hashes of a range's complete subtrees (as [`range_nodes`] lists them) into the
/// range's hash.
fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let mut acc = *iter.next().expect("a range has at least one subtree");
    for left in iter {
        acc = node_hash(left, &acc);
    }
    acc
}

/// Reads the nodes of several ranges in one call and folds each into its hash.
fn range_hashes(source: &impl HashSource, ranges: &[(u64, u64)]) -> Result<Vec<Hash>> {
    let mut nodes = Vec::with_capacity(ranges.len() * 2);
    let mut bounds = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let start = nodes.len();
        range_nodes(lo, hi, &mut nodes);
        bounds.push(start..nodes.len());
    }
    let hashes = source.read_hashes(&nodes)?;
    if hashes.len() != nodes.len() {
        return Err(Error::Unavailable(format!(
            "hash source answered {} hashes for {} nodes",
            hashes.len(),
            nodes.len()
        )));
    }
    Ok(bounds.into_iter().map(|range| fold_range(&hashes[range])).collect())
}

/// The root hash of the tree of the first `size` leaves (RFC 9162 §2.1.1 MTH).
pub fn tree_hash(size: TreeSize, source: &impl HashSource) -> Result<Hash> {
    if size.0 == 0 {
        return Ok(empty_root());
    }
    Ok(range_hashes(source, &[(0, size.0)])?[0])
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from the leaf's sibling up to
/// the root's child (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(index: LeafIndex, size: TreeSize, source: &impl HashSource) -> Result<Vec<Hash>> {
    if index.0 >= size.0 {
        return Err(Error::InvalidPosition(format!("leaf index {index} is not below tree size {size}")));
    }
    let (mut lo, mut hi) = (0u64, size.0);
    let mut ranges = Vec::with_capacity(64);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index.0 < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    range_hashes(source, &ranges)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves
/// (RFC 9162 §2.1.4.1). Empty when the sizes are equal; refused from the empty tree, which
/// commits to nothing (as [`verify_consistency`] refuses it).
pub fn consistency_proof(old: TreeSize, new: TreeSize, source: &impl HashSource) -> Result<Vec<Hash>> {
    if old.0 > new.0 {
        return Err(Error::InvalidPosition(format!("old tree size {old} is above new tree size {new}")));
    }
    if old.0 == 0 {
        return Err(Error::InvalidPosition("a consistency proof from the empty tree proves nothing".into()));
    }
    if old.0 == new.0 {
        return Ok(Vec::new());
    }
    let (mut lo, mut hi, mut m) = (0u64, new.0, old.0);
    let mut whole_old_subtree = true;
    let mut ranges = Vec::with_capacity(64);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole_old_subtree {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            m -= k;
            whole_old_subtree = false;
        }
    }
    ranges.reverse();
    range_hashes(source, &ranges)
}

/// Checks an inclusion proof exactly as RFC 9162 §2.1.3.2 says.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<()> {
    if index.0 >= size.0 {
        return Err(Error::InvalidPosition(format!("leaf index {index} is not below tree size {size}")));
    }
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed != *root {
        return Err(Error::RootMismatch);
    }
    Ok(())
}

/// Steps 2 to 5 of RFC 9162 §2.1.3.2 without the final comparison: the root that a proof implies.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
) -> Result<Hash> {
    if index.0 >= size.0 {
        return Err(Error::InvalidPosition(format!("leaf index {index} is not below tree size {size}")));
    }
    let (mut f_n, mut s_n) = (index.0, size.0 - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(Error::ProofMismatch("inclusion proof is longer than the tree is deep"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(Error::ProofMismatch("inclusion proof is shorter than the path to the root"));
    }
    Ok(r)
}

/// Checks a consistency proof exactly as RFC 9162 §2.1.4.2 says, with the two cases the RFC's
/// algorithm leaves to its preconditions: equal sizes need an empty proof and equal roots, and a
/// proof from the empty tree (size 0) is refused, since that tree commits to nothing (the policy of
/// transparency-dev/merkle, whose test data we run).
pub fn verify_consistency(
    old_size: TreeSize,
    new_size: TreeSize,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    if old_size.0 > new_size.0 {
        return Err(Error::InvalidPosition(format!(
            "old tree size {old_size} is above new tree size {new_size}"
        )));
    }
    if old_size.0 == 0 {
        return Err(Error::InvalidPosition("a consistency proof from the empty tree proves nothing".into()));
    }
    if old_size.0 == new_size.0 {
        if !proof.is_empty() {
            return Err(Error::ProofMismatch("consistency proof between equal sizes must be empty"));
        }
        return if old_root == new_root { Ok(()) } else { Err(Error::RootMismatch) };
    }
    // Step 1.
    if proof.is_empty() {
        return Err(Error::ProofMismatch("consistency proof is empty"));
    }
    // Step 2: when the old tree is a complete subtree, its root is the first node of the path.
    let first = old_size.0.is_power_of_two().then_some(old_root);
    let mut path = first.into_iter().chain(proof.iter());
    // Steps 3 and 4.
    let (mut f_n, mut s_n) = (old_size.0 - 1, new_size.0 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let start = *path.next().expect("the path holds at least one node");
    let (mut f_r, mut s_r) = (start, start);
    // Step 6.
    for c in path {
        if s_n == 0 {
            return Err(Error::ProofMismatch("consistency proof is longer than needed"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if s_n != 0 {
        return Err(Error::ProofMismatch("consistency proof is shorter than needed"));
    }
    if f_r != *old_root || s_r != *new_root {
        return Err(Error::RootMismatch);
    }
    Ok(())
}
