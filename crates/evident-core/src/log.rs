//! One tenant's log as the sequencer holds it: the tree's right edge and the rightmost tile of
//! each tile level, enough to integrate a batch and write exactly the tiles that change, without
//! reading the tree. Loaded from storage (and checked against the latest checkpoint) on start.

use evident_tlog::{
    Checkpoint, Frontier, Hash, NodeId, TILE_HEIGHT, TILE_WIDTH, TileHashSource, TileId, TileReader,
    TreeSize, Verifier, tiles_for_growth,
};

use crate::error::{Error, Result};
use crate::store::{LogHead, LogStore, TenantId};

/// Reads a tenant's tiles from a [`LogStore`].
pub struct StoreTiles<'a> {
    pub store: &'a dyn LogStore,
    pub tenant: &'a TenantId,
}

impl TileReader for StoreTiles<'_> {
    fn read_tiles(&self, tiles: &[TileId]) -> evident_tlog::Result<Vec<Vec<u8>>> {
        self.store.read_tiles(self.tenant, tiles).map_err(|err| match err {
            // A tile missing below the head is damage, not an outage.
            Error::NotFound(what) => {
                evident_tlog::Error::Malformed { what: "log", reason: format!("{what} is missing") }
            }
            other => evident_tlog::Error::Unavailable(other.to_string()),
        })
    }
}

/// The rightmost, not yet full tile of each tile level while a tree grows: fed every complete
/// subtree that becomes final (as [`Frontier::append`] reports them), it answers each tile the
/// moment it fills up, and holds the partial ones.
#[derive(Clone, Debug, Default)]
pub struct TileEdges(Vec<Vec<Hash>>);

impl TileEdges {
    /// Records a final complete subtree; answers the full tile it completed, if any.
    pub fn push(&mut self, node: NodeId, hash: Hash) -> Option<(TileId, Vec<Hash>)> {
        if !(node.level as u32).is_multiple_of(TILE_HEIGHT) {
            return None;
        }
        let level = (node.level as u32 / TILE_HEIGHT) as usize;
        if self.0.len() <= level {
            self.0.resize_with(level + 1, Vec::new);
        }
        self.0[level].push(hash);
        if self.0[level].len() < TILE_WIDTH as usize {
            return None;
        }
        let tile = TileId { level: level as u8, index: node.index >> TILE_HEIGHT, width: TILE_WIDTH };
        Some((tile, std::mem::take(&mut self.0[level])))
    }

    /// The hashes of the partial tile at a tile level (empty when there is none).
    pub fn partial(&self, level: usize) -> &[Hash] {
        self.0.get(level).map_or(&[], Vec::as_slice)
    }

    /// Every tile level with its partial hashes.
    pub fn levels(&self) -> impl Iterator<Item = (usize, &[Hash])> {
        self.0.iter().enumerate().map(|(level, hashes)| (level, hashes.as_slice()))
    }
}

/// The in-memory state of one log.
#[derive(Clone, Debug)]
pub struct LogState {
    frontier: Frontier,
    edges: TileEdges,
    /// The latest signed checkpoint (`None` while the log is empty).
    pub checkpoint: Option<String>,
}

/// The result of integrating a batch: the new size and root, and every tile that changed and is
/// kept ([`crate::store::keeps_tile`]: not the level-0 partial tile, read from its entries).
#[derive(Clone, Debug)]
pub struct Integrated {
    pub old_size: TreeSize,
    pub new_size: TreeSize,
    pub root: Hash,
    pub tiles: Vec<(TileId, Vec<u8>)>,
}

/// How many times [`LogState::load`] reads a log that keeps growing under it before it reports
/// the mismatch it saw last.
pub const LOAD_ATTEMPTS: u32 = 5;

impl LogState {
    pub fn empty() -> LogState {
        LogState { frontier: Frontier::new(), edges: TileEdges::default(), checkpoint: None }
    }

    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Loads a log from storage and checks it against its latest checkpoint: the checkpoint's
    /// signature and origin, the root recomputed from the stored tiles, and that no entry lies
    /// beyond the checkpoint (which would be work a crash left half-done). Any mismatch is an
    /// [`Error::Integrity`]: reported, never repaired by guessing.
    ///
    /// On a store other processes write (PostgreSQL nodes), the log may grow between the reads:
    /// a head read just before a commit, then its entries, looks like entries beyond the
    /// checkpoint. So a mismatch is reported only when the head did not move meanwhile; when it
    /// did, the load starts again from the new head, up to [`LOAD_ATTEMPTS`] times.
    pub fn load(
        store: &dyn LogStore,
        tenant: &TenantId,
        origin: &str,
        verifiers: &[Verifier],
    ) -> Result<LogState> {
        let mut head = store.head(tenant)?;
        let mut attempt = 1;
        loop {
            let err = match Self::load_at(store, tenant, origin, verifiers, head.clone()) {
                Err(err @ Error::Integrity(_)) => err,
                other => return other,
            };
            let now = store.head(tenant)?;
            if now == head || attempt == LOAD_ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(%origin, attempt, "the log grew while it loaded; loading it again");
            head = now;
            attempt += 1;
        }
    }

    /// [`LogState::load`] against the head read before it.
    fn load_at(
        store: &dyn LogStore,
        tenant: &TenantId,
        origin: &str,
        verifiers: &[Verifier],
        head: Option<LogHead>,
    ) -> Result<LogState> {
        let Some(LogHead { size, checkpoint }) = head else {
            if !store.entries(tenant, 0, 1)?.is_empty() {
                return Err(Error::Integrity(format!("log {origin} has entries but no checkpoint")));
            }
            return Ok(LogState::empty());
        };
        let (signed, _) = Checkpoint::open(&checkpoint, verifiers, origin)
            .map_err(|err| Error::Integrity(format!("latest checkpoint of {origin}: {err}")))?;
        if signed.size != size {
            return Err(Error::Integrity(format!(
                "latest checkpoint of {origin} is for size {}, the store says {size}",
                signed.size
            )));
        }
        // The entries first: the head's level-0 tile is read from them.
        if !store.entries(tenant, size.0, size.0 + 1)?.is_empty() {
            return Err(Error::Integrity(format!(
                "log {origin} holds entries beyond its checkpoint at size {size}"
            )));
        }
        if store.entries(tenant, size.0 - 1, size.0)?.len() != 1 {
            return Err(Error::Integrity(format!(
                "log {origin} lacks entry {} below its checkpoint",
                size.0 - 1
            )));
        }
        let source = TileHashSource::new(StoreTiles { store, tenant }, size);
        let frontier = Frontier::load(size, &source)?;
        if frontier.root() != signed.root {
            return Err(Error::Integrity(format!(
                "stored tiles of {origin} do not give the checkpoint's root"
            )));
        }
        let mut edges = Vec::new();
        let mut level = 0u32;
        while size.0 >> (level * TILE_HEIGHT) > 0 {
            let hashes_at_level = size.0 >> (level * TILE_HEIGHT);
            let width = (hashes_at_level % TILE_WIDTH as u64) as u16;
            let mut edge = Vec::new();
            if width > 0 {
                let tile = TileId { level: level as u8, index: hashes_at_level / TILE_WIDTH as u64, width };
                let data = match store.read_tiles(tenant, &[tile]) {
                    Ok(mut data) => data.remove(0),
                    Err(Error::NotFound(_)) => {
                        return Err(Error::Integrity(format!(
                            "log {origin} lacks tile {} below its checkpoint",
                            tile.path()
                        )));
                    }
                    Err(other) => return Err(other),
                };
                edge = data.chunks_exact(32).map(|c| Hash::from_slice(c).expect("32 bytes")).collect();
                if edge.len() != width as usize {
                    return Err(Error::Integrity(format!(
                        "tile {} of {origin} has the wrong length",
                        tile.path()
                    )));
                }
            }
            edges.push(edge);
            level += 1;
        }
        Ok(LogState { frontier, edges: TileEdges(edges), checkpoint: Some(checkpoint) })
    }

    /// Appends leaf hashes; answers the new size, the root and the tiles to write (the level-0
    /// partial tile is not built: stores derive it from the entries).
    pub fn integrate(&mut self, leaf_hashes: &[Hash]) -> Integrated {
        let old_size = self.size();
        let mut full_tiles = Vec::new();
        let edges = &mut self.edges;
        for hash in leaf_hashes {
            self.frontier.append(*hash, |node: NodeId, hash| {
                if let Some((tile, hashes)) = edges.push(node, hash) {
                    full_tiles.push((tile, tile_bytes(&hashes)));
                }
            });
        }
        let new_size = self.size();
        let mut tiles = Vec::new();
        for tile in tiles_for_growth(old_size, new_size).into_iter().filter(crate::store::keeps_tile) {
            if tile.is_partial() {
                let edge = self.edges.partial(tile.level as usize);
                debug_assert_eq!(edge.len(), tile.width as usize);
                tiles.push((tile, tile_bytes(edge)));
            } else {
                let at = full_tiles.iter().position(|(t, _)| *t == tile).expect("a full tile was completed");
                tiles.push(full_tiles.swap_remove(at));
            }
        }
        debug_assert!(full_tiles.is_empty());
        Integrated { old_size, new_size, root: self.frontier.root(), tiles }
    }
}

fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

#[cfg(test)]
mod tests {
    use evident_tlog::{MemoryTree, leaf_hash};

    use super::*;

    #[test]
    fn integration_writes_the_tiles_a_memory_tree_has() {
        let mut tree = MemoryTree::new();
        let mut state = LogState::empty();
        let mut written = std::collections::BTreeMap::new();
        for batch in [1usize, 2, 253, 1, 300, 65_000, 700] {
            let hashes: Vec<Hash> = (0..batch)
                .map(|i| {
                    let entry = format!("e{}-{i}", tree.size().0);
                    tree.append(entry.as_bytes());
                    leaf_hash(entry.as_bytes())
                })
                .collect();
            let integrated = state.integrate(&hashes);
            assert_eq!(integrated.root, tree.root());
            assert_eq!(integrated.new_size, tree.size());
            for (tile, bytes) in integrated.tiles {
                assert_eq!(bytes, tree.tile(tile).unwrap(), "{}", tile.path());
                written.insert((tile.level, tile.index), bytes);
            }
        }
        // Every full tile of the final tree was written once it was full.
        let full = written.values().filter(|b| b.len() == 8192).count();
        assert_eq!(full as u64, tree.size().0 / 256 + tree.size().0 / 65_536);
    }
}
