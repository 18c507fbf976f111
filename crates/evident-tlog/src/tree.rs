//! Append-only trees: the in-memory [`MemoryTree`] and the [`Frontier`] that a stored log uses to
//! integrate new leaves.
//!
//! Both store only hashes of complete subtrees ([`NodeId`]), never a hash that would change when
//! the tree grows; roots of other sizes are folded from them on demand, so the root of any past
//! size stays available.

use crate::error::{Error, Result};
use crate::hash::{Hash, LeafIndex, NodeId, TreeSize, leaf_hash, node_hash};
use crate::proof::{self, HashSource};
use crate::tile::{TILE_WIDTH, TileId};

/// A whole log's tree in memory: every complete subtree hash, level by level.
///
/// Memory is about 64 bytes per leaf (32 for the leaf hash, 32 for the interior nodes above it).
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of `NodeId { level: l, index: i }`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    pub fn size(&self) -> TreeSize {
        TreeSize(self.levels.first().map_or(0, |leaves| leaves.len() as u64))
    }

    /// Appends one entry, hashing it as a leaf.
    pub fn append(&mut self, entry: &[u8]) -> LeafIndex {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash and stores every subtree it completes.
    pub fn append_leaf_hash(&mut self, hash: Hash) -> LeafIndex {
        let index = LeafIndex(self.size().0);
        let mut level = 0;
        let mut hash = hash;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(hash);
            if nodes.len() % 2 == 1 {
                break;
            }
            hash = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            level += 1;
        }
        index
    }

    /// The root hash at the current size.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).expect("the current size is always present")
    }

    /// The root hash at any size up to the current one.
    pub fn root_at(&self, size: TreeSize) -> Result<Hash> {
        self.check_size(size)?;
        proof::tree_hash(size, self)
    }

    pub fn inclusion_proof(&self, index: LeafIndex, size: TreeSize) -> Result<Vec<Hash>> {
        self.check_size(size)?;
        proof::inclusion_proof(index, size, self)
    }

    pub fn consistency_proof(&self, old: TreeSize, new: TreeSize) -> Result<Vec<Hash>> {
        self.check_size(new)?;
        proof::consistency_proof(old, new, self)
    }

    /// The bytes of a tile (full or partial), if the tree is big enough to hold it.
    pub fn tile(&self, tile: TileId) -> Result<Vec<u8>> {
        let level = tile.level as usize * 8;
        let start = tile.index as usize * TILE_WIDTH as usize;
        let hashes = self
            .levels
            .get(level)
            .and_then(|nodes| nodes.get(start..start + tile.width as usize))
            .ok_or_else(|| {
            Error::InvalidPosition(format!("tile {} is beyond tree size {}", tile.path(), self.size()))
        })?;
        Ok(hashes.iter().flat_map(|hash| hash.0).collect())
    }

    fn check_size(&self, size: TreeSize) -> Result<()> {
        if size > self.size() {
            return Err(Error::InvalidPosition(format!(
                "tree size {size} is beyond the current size {}",
                self.size()
            )));
        }
        Ok(())
    }
}

impl HashSource for MemoryTree {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        nodes
            .iter()
            .map(|node| {
                self.levels
                    .get(node.level as usize)
                    .and_then(|hashes| hashes.get(node.index as usize))
                    .copied()
                    .ok_or_else(|| Error::Unavailable(format!("no hash for {node:?}")))
            })
            .collect()
    }
}

/// The right edge of a tree (RFC 9162's "compact range" from 0): one complete-subtree hash per set
/// bit of the size. It is all that is needed to append leaves and compute the new root, so a log
/// kept in storage integrates a batch by reading `log2(size)` hashes, not the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// The subtrees of the right edge, largest (leftmost) first.
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Reads the right edge of the tree of `size` leaves from a hash source.
    pub fn load(size: TreeSize, source: &impl HashSource) -> Result<Frontier> {
        let mut ids = Vec::new();
        proof::range_nodes(0, size.0, &mut ids);
        let hashes = source.read_hashes(&ids)?;
        if hashes.len() != ids.len() {
            return Err(Error::Unavailable("hash source answered the wrong number of hashes".into()));
        }
        Ok(Frontier { size: size.0, nodes: ids.into_iter().zip(hashes).collect() })
    }

    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends a leaf hash; `store` is called with every complete subtree that becomes final
    /// (the leaf itself first, then each parent it completes), which is exactly what a log must
    /// persist for the new size.
    pub fn append(&mut self, hash: Hash, mut store: impl FnMut(NodeId, Hash)) -> LeafIndex {
        let index = self.size;
        let mut node = NodeId::new(0, index);
        let mut hash = hash;
        store(node, hash);
        while let Some(&(left_id, left_hash)) = self.nodes.last() {
            if left_id.level != node.level {
                break;
            }
            self.nodes.pop();
            hash = node_hash(&left_hash, &hash);
            node = NodeId::new(node.level + 1, left_id.index >> 1);
            store(node, hash);
        }
        self.nodes.push((node, hash));
        self.size += 1;
        LeafIndex(index)
    }

    /// The root hash of the tree at the frontier's size.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.nodes.iter().map(|(_, hash)| *hash).collect();
        match hashes.split_last() {
            None => crate::hash::empty_root(),
            Some((last, rest)) => rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}
