//! C2SP tlog-tiles (c2sp.org/tlog-tiles): tile coordinates and paths, which tiles a growth
//! writes, reading hashes out of tiles, and entry bundles.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of complete subtrees at tree level `8L`;
//! the levels in between are recomputed from them. Only height 8 exists in C2SP, so it is a
//! constant here, not a parameter.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::hash::{Hash, NodeId, TreeSize, node_hash};
use crate::proof::HashSource;

/// Tree levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile (and entries in a full bundle).
pub const TILE_WIDTH: u16 = 256;
/// The largest entry an entry bundle can carry (its length prefix is a big-endian u16).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// A tile of hashes: level, index within the level and width (1 to 256; below 256 it is partial).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

/// An entry bundle: the entries of one level-0 tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    pub index: u64,
    pub width: u16,
}

/// What a path under `tile/` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TilePath {
    Hashes(TileId),
    Entries(BundleId),
}

impl TileId {
    /// The path relative to the log's prefix, e.g. `tile/0/x001/x234/067.p/5`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, index_and_width(self.index, self.width))
    }

    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The tile at a tree of `size` leaves that holds `node` (or, for a node between tile levels,
    /// the hashes it is computed from), with the width that tree has for it.
    ///
    /// Fails when the node is not inside the tree.
    pub fn containing(node: NodeId, size: TreeSize) -> Result<TileId> {
        if node.level as u32 >= 64 || node.end() > size.0 || node.end() == 0 {
            return Err(Error::InvalidPosition(format!("node {node:?} is not in a tree of size {size}")));
        }
        let level = node.level as u32 / TILE_HEIGHT;
        let within = node.level as u32 % TILE_HEIGHT;
        let first = node.index << within; // index at tree level 8 * level
        let index = first >> TILE_HEIGHT;
        let hashes_at_level = size.0 >> (level * TILE_HEIGHT);
        let width = (hashes_at_level - (index << TILE_HEIGHT)).min(TILE_WIDTH as u64) as u16;
        Ok(TileId { level: level as u8, index, width })
    }

    /// Reads the hash of `node` out of this tile's bytes, hashing the run of tile hashes below it
    /// when the node sits between tile levels.
    pub fn hash_of(&self, data: &[u8], node: NodeId) -> Result<Hash> {
        if data.len() != self.width as usize * Hash::LEN {
            return Err(Error::malformed(
                "tile",
                format!(
                    "{} bytes for width {}, want {}",
                    data.len(),
                    self.width,
                    self.width as usize * Hash::LEN
                ),
            ));
        }
        let within = node.level as u32 % TILE_HEIGHT;
        let first = node.index << within;
        if node.level as u32 / TILE_HEIGHT != self.level as u32 || first >> TILE_HEIGHT != self.index {
            return Err(Error::InvalidPosition(format!("node {node:?} is not in tile {}", self.path())));
        }
        let offset = (first & (TILE_WIDTH as u64 - 1)) as usize;
        let count = 1usize << within;
        if offset + count > self.width as usize {
            return Err(Error::InvalidPosition(format!(
                "node {node:?} is beyond the width of tile {}",
                self.path()
            )));
        }
        let mut hashes: Vec<Hash> = data[offset * Hash::LEN..(offset + count) * Hash::LEN]
            .chunks_exact(Hash::LEN)
            .map(|chunk| Hash::from_slice(chunk).expect("chunks are 32 bytes"))
            .collect();
        while hashes.len() > 1 {
            hashes = hashes.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
        }
        Ok(hashes[0])
    }
}

impl BundleId {
    /// The path relative to the log's prefix, e.g. `tile/entries/x001/234.p/7`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}", index_and_width(self.index, self.width))
    }

    /// The leaf indices whose entries this bundle holds.
    pub fn leaf_range(&self) -> std::ops::Range<u64> {
        let start = self.index << TILE_HEIGHT;
        start..start + self.width as u64
    }
}

fn index_and_width(index: u64, width: u16) -> String {
    let mut groups = vec![index % 1000];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut out = String::new();
    for (i, group) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            let _ = write!(out, "x{group:03}/");
        } else {
            let _ = write!(out, "{group:03}");
        }
    }
    if width < TILE_WIDTH {
        let _ = write!(out, ".p/{width}");
    }
    out
}

impl TilePath {
    /// Parses a path relative to a log's prefix, strictly per c2sp.org/tlog-tiles.
    pub fn parse(path: &str) -> Result<TilePath> {
        let bad = |reason: String| Error::malformed("tile path", format!("{path:?}: {reason}"));
        let rest = path.strip_prefix("tile/").ok_or_else(|| bad("does not start with tile/".into()))?;
        let (head, rest) = rest.split_once('/').ok_or_else(|| bad("no tile index".into()))?;
        let level = if head == "entries" {
            None
        } else {
            Some(parse_decimal(head, 63).map_err(|e| bad(format!("level {e}")))? as u8)
        };
        let mut elements: Vec<&str> = rest.split('/').collect();
        let mut width = TILE_WIDTH;
        if let Some(index_end) = elements.iter().position(|e| e.ends_with(".p")) {
            if index_end + 2 != elements.len() {
                return Err(bad(".p must be followed by exactly one width element".into()));
            }
            let w = elements.pop().expect("checked length");
            width = parse_decimal(w, TILE_WIDTH as u64 - 1).map_err(|e| bad(format!("width {e}")))? as u16;
            if width == 0 {
                return Err(bad("width 0".into()));
            }
            let last = elements.last_mut().expect("checked length");
            *last = last.strip_suffix(".p").expect("found above");
        }
        let mut index: u64 = 0;
        for (i, element) in elements.iter().enumerate() {
            let is_last = i + 1 == elements.len();
            let digits = match (is_last, element.strip_prefix('x')) {
                (false, Some(digits)) => digits,
                (false, None) => return Err(bad(format!("element {element:?} must start with x"))),
                (true, Some(_)) => {
                    return Err(bad(format!("last element {element:?} must not start with x")));
                }
                (true, None) => element,
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("element {element:?} is not three digits")));
            }
            if i == 0 && !is_last && digits == "000" {
                return Err(bad("leading zero group".into()));
            }
            let group: u64 = digits.parse().expect("three digits");
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(group))
                .ok_or_else(|| bad("index overflows".into()))?;
        }
        // A tile whose first leaf lies past 2^64 cannot belong to any log (its leaf range would
        // overflow), so its path names nothing.
        let leaf_bits = 8 * (level.unwrap_or(0) as u32 + 1);
        if leaf_bits < 64 && index >= 1u64 << (64 - leaf_bits) || leaf_bits == 64 && index > 0 {
            return Err(bad("index is beyond any log".into()));
        }
        Ok(match level {
            Some(level) => TilePath::Hashes(TileId { level, index, width }),
            None => TilePath::Entries(BundleId { index, width }),
        })
    }
}

/// A decimal with no leading zeros, at most `max`.
fn parse_decimal(text: &str, max: u64) -> std::result::Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(format!("{text:?} has a leading zero"));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{text:?} is above {max}")),
    }
}

/// The tiles that change when a log grows from `old` to `new` leaves: every tile that becomes
/// full, and at each level the partial tile of the new size (as Go's `tlog.NewTiles` lists them).
/// A log writes exactly these when it publishes a checkpoint at `new`.
pub fn tiles_for_growth(old: TreeSize, new: TreeSize) -> Vec<TileId> {
    let mut tiles = Vec::new();
    let mut level = 0u32;
    while level < 8 && new.0 >> (level * TILE_HEIGHT) > 0 {
        let old_n = old.0 >> (level * TILE_HEIGHT);
        let new_n = new.0 >> (level * TILE_HEIGHT);
        if old_n != new_n {
            for index in (old_n >> TILE_HEIGHT)..(new_n >> TILE_HEIGHT) {
                tiles.push(TileId { level: level as u8, index, width: TILE_WIDTH });
            }
            let index = new_n >> TILE_HEIGHT;
            let width = (new_n - (index << TILE_HEIGHT)) as u16;
            if width > 0 {
                tiles.push(TileId { level: level as u8, index, width });
            }
        }
        level += 1;
    }
    tiles
}

/// The entry bundles that change when a log grows from `old` to `new` leaves.
pub fn bundles_for_growth(old: TreeSize, new: TreeSize) -> Vec<BundleId> {
    tiles_for_growth(old, new)
        .into_iter()
        .filter(|tile| tile.level == 0)
        .map(|tile| BundleId { index: tile.index, width: tile.width })
        .collect()
}

/// Appends one entry to an entry bundle: a big-endian u16 length, then the bytes.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<()> {
    if entry.len() > MAX_ENTRY_LEN {
        return Err(Error::EntryTooLarge(entry.len()));
    }
    bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries; trailing or truncated bytes are an error.
pub fn parse_bundle(mut data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut entries = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            return Err(Error::malformed(
                "entry bundle",
                format!("a lone byte after entry {}", entries.len()),
            ));
        }
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        if data.len() < 2 + len {
            return Err(Error::malformed(
                "entry bundle",
                format!("entry {} claims {len} bytes, {} remain", entries.len(), data.len() - 2),
            ));
        }
        entries.push(&data[2..2 + len]);
        data = &data[2 + len..];
        if entries.len() > TILE_WIDTH as usize {
            return Err(Error::malformed("entry bundle", "more than 256 entries"));
        }
    }
    Ok(entries)
}

/// Reads tiles from wherever a log keeps them.
///
/// Contract: one byte string per requested tile, in order, each exactly `width * 32` bytes (the
/// full tile may be answered for a partial request only if the caller is told via its width;
/// here it may not). A missing tile is [`Error::Unavailable`].
pub trait TileReader {
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>>;
}

/// A [`HashSource`] over the tiles of a tree of a known size: what a client following a tiled log,
/// or a store that keeps only tiles, proves from.
pub struct TileHashSource<R> {
    reader: R,
    size: TreeSize,
}

impl<R: TileReader> TileHashSource<R> {
    pub fn new(reader: R, size: TreeSize) -> TileHashSource<R> {
        TileHashSource { reader, size }
    }
}

impl<R: TileReader> HashSource for TileHashSource<R> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>> {
        let placed: Vec<TileId> =
            nodes.iter().map(|node| TileId::containing(*node, self.size)).collect::<Result<_>>()?;
        let mut wanted = placed.clone();
        wanted.sort();
        wanted.dedup();
        let data = self.reader.read_tiles(&wanted)?;
        if data.len() != wanted.len() {
            return Err(Error::Unavailable("tile reader answered the wrong number of tiles".into()));
        }
        nodes
            .iter()
            .zip(&placed)
            .map(|(node, tile)| {
                let at = wanted.binary_search(tile).expect("every placed tile is wanted");
                tile.hash_of(&data[at], *node)
            })
            .collect()
    }
}
