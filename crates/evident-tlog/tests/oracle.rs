//! The fast tree checked against a naive recursive RFC 6962 implementation, and property tests:
//! every proof verifies, every single-bit change to a proof, root, index or size is rejected, and
//! any two sizes of one log are consistent.

use std::sync::OnceLock;

use evident_tlog::*;
use proptest::prelude::*;

const MAX_SIZE: u64 = 4_100;

/// One log shared by all cases (building it per case would dominate the run time).
fn log() -> &'static (MemoryTree, Vec<Hash>) {
    static LOG: OnceLock<(MemoryTree, Vec<Hash>)> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut tree = MemoryTree::new();
        let mut leaves = Vec::new();
        for i in 0..MAX_SIZE {
            let entry = format!("oracle entry {i}");
            leaves.push(leaf_hash(entry.as_bytes()));
            tree.append(entry.as_bytes());
        }
        (tree, leaves)
    })
}

/// RFC 6962 §2.1: MTH(D[n]), literally.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n);
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k: usize = 1;
    while k.checked_mul(2).is_some_and(|double| double < n) {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1.1: PATH(m, D[n]), literally.
fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        let mut path = naive_path(m, &leaves[..k]);
        path.push(naive_root(&leaves[k..]));
        path
    } else {
        let mut path = naive_path(m - k, &leaves[k..]);
        path.push(naive_root(&leaves[..k]));
        path
    }
}

/// RFC 6962 §2.1.2: SUBPROOF(m, D[n], b), literally.
fn naive_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![naive_root(leaves)] };
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        let mut proof = naive_subproof(m, &leaves[..k], whole);
        proof.push(naive_root(&leaves[k..]));
        proof
    } else {
        let mut proof = naive_subproof(m - k, &leaves[k..], false);
        proof.push(naive_root(&leaves[..k]));
        proof
    }
}

/// Which side each element of PATH(m, D[n]) hashes in from, leaf upwards: all a verifier can
/// know about a proof whose hashes are opaque.
fn path_shape(m: u64, n: u64) -> Vec<bool> {
    if n <= 1 {
        return Vec::new();
    }
    let k = largest_power_of_two_below(n as usize) as u64;
    let (mut shape, from_right) =
        if m < k { (path_shape(m, k), true) } else { (path_shape(m - k, n - k), false) };
    shape.push(from_right);
    shape
}

/// The same for SUBPROOF(m, D[n], b): per element, whether it is hashed into both roots or only
/// the new one, and from which side; plus whether the old root itself starts the walk.
fn subproof_shape(m: u64, n: u64, whole: bool) -> Vec<u8> {
    if m == n {
        return if whole { vec![0] } else { vec![1] };
    }
    let k = largest_power_of_two_below(n as usize) as u64;
    let (mut shape, tag) =
        if m <= k { (subproof_shape(m, k, whole), 2) } else { (subproof_shape(m - k, n - k, false), 3) };
    shape.push(tag);
    shape
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

#[test]
fn every_root_up_to_300_matches_the_oracle() {
    let (tree, leaves) = log();
    for size in 0..=300 {
        assert_eq!(tree.root_at(TreeSize(size as u64)).unwrap(), naive_root(&leaves[..size]), "size {size}");
    }
}

#[test]
fn every_proof_in_small_trees_matches_the_oracle() {
    let (tree, leaves) = log();
    for size in 1..=40usize {
        for index in 0..size {
            let proof = tree.inclusion_proof(LeafIndex(index as u64), TreeSize(size as u64)).unwrap();
            assert_eq!(proof, naive_path(index, &leaves[..size]), "inclusion {index} in {size}");
        }
        for old in 1..=size {
            let proof = tree.consistency_proof(TreeSize(old as u64), TreeSize(size as u64)).unwrap();
            assert_eq!(proof, naive_subproof(old, &leaves[..size], true), "consistency {old} -> {size}");
        }
    }
}

#[test]
fn frontier_stores_what_the_tree_stores_and_resumes_from_storage() {
    let (tree, leaves) = log();
    let mut frontier = Frontier::new();
    let mut stored = Vec::new();
    for (i, leaf) in leaves.iter().enumerate().take(1_000) {
        frontier.append(*leaf, |node, hash| stored.push((node, hash)));
        assert_eq!(frontier.root(), tree.root_at(TreeSize(i as u64 + 1)).unwrap());
    }
    // Exactly the complete subtrees of a 1000-leaf tree, each with the tree's hash.
    assert_eq!(stored.len(), 1000 + 500 + 250 + 125 + 62 + 31 + 15 + 7 + 3 + 1);
    for (node, hash) in &stored {
        assert_eq!(tree.read_hashes(&[*node]).unwrap(), vec![*hash]);
    }
    // Resuming from storage at any size continues the same tree.
    for start in [0u64, 1, 2, 3, 255, 256, 999] {
        let mut resumed = Frontier::load(TreeSize(start), tree).unwrap();
        for leaf in &leaves[start as usize..1_000] {
            resumed.append(*leaf, |_, _| {});
        }
        assert_eq!(resumed, frontier, "resumed at {start}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify_and_every_bit_flip_is_rejected(
        size in 1..=MAX_SIZE, index_seed in any::<u64>(), bit_seed in any::<usize>()
    ) {
        let (tree, leaves) = log();
        let index = index_seed % size;
        let (leaf, size_t, index_t) = (leaves[index as usize], TreeSize(size), LeafIndex(index));
        let root = tree.root_at(size_t).unwrap();
        let proof = tree.inclusion_proof(index_t, size_t).unwrap();
        prop_assert_eq!(&proof, &naive_path(index as usize, &leaves[..size as usize]));
        prop_assert!(verify_inclusion(&leaf, index_t, size_t, &proof, &root).is_ok());

        for at in 0..proof.len() {
            for bit in [bit_seed % 256, (bit_seed / 256) % 256] {
                let mut bad = proof.clone();
                bad[at] = flip(&bad[at], bit);
                prop_assert!(verify_inclusion(&leaf, index_t, size_t, &bad, &root).is_err());
            }
        }
        prop_assert!(verify_inclusion(&leaf, index_t, size_t, &proof, &flip(&root, bit_seed % 256)).is_err());
        prop_assert!(verify_inclusion(&flip(&leaf, bit_seed % 256), index_t, size_t, &proof, &root).is_err());
        // A flipped index is always rejected. A flipped size is rejected unless the RFC 9162 walk
        // for the other size takes exactly the same turns (e.g. leaf 3 of sizes 19 and 18: the
        // last proof hash stands for leaves 16..19 or 16..18, and hashes are opaque). No verifier
        // can tell those apart from the proof alone; it is the signed checkpoint that binds a root
        // to its size, and flipping a bit of a signed checkpoint or receipt is rejected (below).
        for bit in 0..64 {
            let other_index = LeafIndex(index ^ (1 << bit));
            prop_assert!(verify_inclusion(&leaf, other_index, size_t, &proof, &root).is_err(), "index bit {}", bit);
            let other = size ^ (1 << bit);
            let indistinguishable = index < other && path_shape(index, other) == path_shape(index, size);
            let verdict = verify_inclusion(&leaf, index_t, TreeSize(other), &proof, &root);
            prop_assert_eq!(verdict.is_ok(), indistinguishable, "size bit {}", bit);
        }
        // Short, over-long and reordered proofs.
        if let Some((_, short)) = proof.split_last() {
            prop_assert!(verify_inclusion(&leaf, index_t, size_t, short, &root).is_err());
        }
        let mut long = proof.clone();
        long.push(root);
        prop_assert!(verify_inclusion(&leaf, index_t, size_t, &long, &root).is_err());
        if proof.len() >= 2 && proof[0] != proof[1] {
            let mut swapped = proof.clone();
            swapped.swap(0, 1);
            prop_assert!(verify_inclusion(&leaf, index_t, size_t, &swapped, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_every_bit_flip_is_rejected(
        new in 1..=MAX_SIZE, old_seed in any::<u64>(), bit_seed in any::<usize>()
    ) {
        let (tree, leaves) = log();
        let old = old_seed % new + 1;
        let (old_t, new_t) = (TreeSize(old), TreeSize(new));
        let (old_root, new_root) = (tree.root_at(old_t).unwrap(), tree.root_at(new_t).unwrap());
        let proof = tree.consistency_proof(old_t, new_t).unwrap();
        prop_assert_eq!(&proof, &naive_subproof(old as usize, &leaves[..new as usize], true));
        prop_assert!(verify_consistency(old_t, new_t, &old_root, &new_root, &proof).is_ok());

        for at in 0..proof.len() {
            let mut bad = proof.clone();
            bad[at] = flip(&bad[at], bit_seed % 256);
            prop_assert!(verify_consistency(old_t, new_t, &old_root, &new_root, &bad).is_err());
        }
        let bit = bit_seed % 256;
        prop_assert!(verify_consistency(old_t, new_t, &flip(&old_root, bit), &new_root, &proof).is_err());
        prop_assert!(verify_consistency(old_t, new_t, &old_root, &flip(&new_root, bit), &proof).is_err());
        // As for inclusion: a flipped size passes only when its walk is indistinguishable.
        let shape = subproof_shape(old, new, true);
        for bit in 0..64 {
            let (other_old, other_new) = (old ^ (1 << bit), new ^ (1 << bit));
            let verdict = verify_consistency(TreeSize(other_old), new_t, &old_root, &new_root, &proof);
            let indistinguishable = other_old != 0 && other_old < new && subproof_shape(other_old, new, true) == shape;
            prop_assert_eq!(verdict.is_ok(), indistinguishable, "old bit {}", bit);
            let verdict = verify_consistency(old_t, TreeSize(other_new), &old_root, &new_root, &proof);
            let indistinguishable = old < other_new && subproof_shape(old, other_new, true) == shape;
            prop_assert_eq!(verdict.is_ok(), indistinguishable, "new bit {}", bit);
        }
        if let Some((_, short)) = proof.split_last() {
            prop_assert!(verify_consistency(old_t, new_t, &old_root, &new_root, short).is_err());
        }
        let mut long = proof.clone();
        long.push(new_root);
        prop_assert!(verify_consistency(old_t, new_t, &old_root, &new_root, &long).is_err());
        if proof.len() >= 2 && proof[0] != proof[1] {
            let mut swapped = proof.clone();
            swapped.swap(0, 1);
            prop_assert!(verify_consistency(old_t, new_t, &old_root, &new_root, &swapped).is_err());
        }
    }

    #[test]
    fn tiles_written_by_growth_are_exactly_the_tree_tiles(cuts in proptest::collection::vec(1..=MAX_SIZE, 1..6)) {
        let (tree, _) = log();
        let mut sizes = cuts;
        sizes.sort();
        let mut written = std::collections::BTreeSet::new();
        let mut last = TreeSize(0);
        for size in sizes.iter().map(|s| TreeSize(*s)) {
            for tile in tiles_for_growth(last, size) {
                // Each written tile is readable from the tree at that size.
                prop_assert!(tree.tile(tile).is_ok());
                written.insert(tile);
            }
            last = size;
        }
        // Every full tile of the final tree was written at some growth, and so was each partial
        // tile of the final size.
        let mut hashes_at_level = last.0;
        let mut level = 0u8;
        while hashes_at_level > 0 {
            for index in 0..hashes_at_level / 256 {
                let full = TileId { level, index, width: 256 };
                prop_assert!(written.contains(&full));
            }
            if !hashes_at_level.is_multiple_of(256) {
                let partial = TileId { level, index: hashes_at_level / 256, width: (hashes_at_level % 256) as u16 };
                prop_assert!(written.contains(&partial));
            }
            hashes_at_level /= 256;
            level += 1;
        }
    }

    #[test]
    fn tile_paths_round_trip(level in 0u8..64, index in any::<u64>(), width in 1u16..=256) {
        let tile = TileId { level, index, width };
        let leaf_bits = 8 * (level as u32 + 1);
        let exists = leaf_bits > 64 || (leaf_bits == 64 && index == 0) || (leaf_bits < 64 && index < 1u64 << (64 - leaf_bits));
        match TilePath::parse(&tile.path()) {
            Ok(parsed) => prop_assert!(exists && parsed == TilePath::Hashes(tile)),
            Err(err) => prop_assert!(!exists && err.to_string().contains("beyond any log")),
        }
        let bundle = BundleId { index: index >> 8, width };
        prop_assert_eq!(TilePath::parse(&bundle.path()).unwrap(), TilePath::Entries(bundle));
        prop_assert!(bundle.leaf_range().end > bundle.leaf_range().start);
    }
}
