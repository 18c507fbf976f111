//! `fsck`: re-verifies a whole log from storage, trusting nothing stored but the signing key.
//!
//! Every entry is hashed again and compared with the leaf hash its level-0 tile holds, so the
//! first bad index is named; every full tile is recomputed and compared; every stored checkpoint's
//! signature is checked and its root compared with the tree recomputed from the entries at its
//! size (which also proves each pair of successive checkpoints consistent: both are prefixes of
//! the one recomputed tree); entries missing below the head or present above it are reported.
//! Rolling back a whole store consistently is not detectable here; witnesses (`verify --watch`)
//! catch that.

use std::fmt;

use evident_tlog::{
    Checkpoint, Frontier, Hash, NodeId, TILE_HEIGHT, TILE_WIDTH, TileId, TreeSize, Verifier, leaf_hash,
};

use crate::error::Result;
use crate::log::TileEdges;
use crate::store::{LogStore, TenantId};

/// One problem found, at the first index it concerns where there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub index: Option<u64>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "index {index}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub tenant: String,
    pub size: u64,
    pub entries_checked: u64,
    pub tiles_checked: u64,
    pub checkpoints_checked: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The lowest index any problem concerns.
    pub fn first_bad_index(&self) -> Option<u64> {
        self.problems.iter().filter_map(|p| p.index).min()
    }

    fn problem(&mut self, index: Option<u64>, what: impl Into<String>) {
        const MAX_PROBLEMS: usize = 100;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { index, what: what.into() });
        }
    }
}

const CHUNK: usize = 4096;

/// Verifies one tenant's log.
pub fn check_log(
    store: &dyn LogStore,
    tenant: &TenantId,
    origin: &str,
    verifiers: &[Verifier],
) -> Result<Report> {
    let mut report = Report { tenant: tenant.to_string(), ..Report::default() };
    let head = store.head(tenant)?;
    let head_size = head.as_ref().map_or(0, |h| h.size.0);
    report.size = head_size;

    // Checkpoints: signatures, origin, sizes.
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for stored in store.checkpoints(tenant)? {
        match Checkpoint::open(&stored.checkpoint, verifiers, origin) {
            Ok((checkpoint, _)) if checkpoint.size == stored.size => checkpoints.push(checkpoint),
            Ok((checkpoint, _)) => report.problem(
                None,
                format!("checkpoint stored for size {} is signed for size {}", stored.size, checkpoint.size),
            ),
            Err(err) => {
                report.problem(None, format!("checkpoint for size {} does not verify: {err}", stored.size))
            }
        }
        report.checkpoints_checked += 1;
    }
    if let Some(head) = &head {
        match Checkpoint::open(&head.checkpoint, verifiers, origin) {
            Ok((signed, _)) if signed.size == head.size => {}
            Ok((signed, _)) => report.problem(
                None,
                format!("the head checkpoint is for size {}, the head says {}", signed.size, head.size),
            ),
            Err(err) => report.problem(None, format!("the head checkpoint does not verify: {err}")),
        }
        if !store.checkpoints(tenant)?.iter().any(|c| c.checkpoint == head.checkpoint) {
            report.problem(None, "the head checkpoint is not among the published checkpoints");
        }
        if let Some(last) = checkpoints.last()
            && last.size > head.size
        {
            report.problem(
                None,
                format!(
                    "log was rolled back: head is at size {}, a checkpoint was published at {}",
                    head.size, last.size
                ),
            );
        }
    }

    // Entries, leaf hashes against level-0 tiles, full tiles, roots at every checkpoint size.
    let mut frontier = Frontier::new();
    let mut edges = TileEdges::default();
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut expected = 0u64;
    let mut level0: Option<(u64, Vec<u8>)> = None;
    // Entries beyond the head: how many, and the first one's index.
    let mut beyond: Option<(u64, u64)> = None;
    let mut scan_from = 0u64;
    loop {
        let scanned = store.scan_entries(tenant, scan_from, CHUNK)?;
        let Some(last) = scanned.last() else { break };
        scan_from = last.index + 1;
        for item in scanned {
            if item.index >= head_size {
                let (count, _) = beyond.get_or_insert((0, item.index));
                *count += 1;
                continue;
            }
            if item.index != expected {
                report
                    .problem(Some(expected), format!("entries {expected} to {} are missing", item.index - 1));
                return Ok(report); // the tree cannot be recomputed past a gap
            }
            let hash = leaf_hash(&item.entry);
            // The level-0 tile's hash names the first bad index precisely.
            let tile_index = expected / TILE_WIDTH as u64;
            if level0.as_ref().is_none_or(|(n, _)| *n != tile_index) {
                let width = ((head_size - tile_index * 256).min(256)) as u16;
                let tile = TileId { level: 0, index: tile_index, width };
                level0 = store.read_tiles(tenant, &[tile]).ok().map(|mut t| (tile_index, t.remove(0)));
            }
            let offset = (expected % TILE_WIDTH as u64) as usize * 32;
            match &level0 {
                Some((_, data)) if data[offset..offset + 32] == hash.0 => {}
                Some(_) => {
                    report.problem(Some(expected), "entry does not hash to the leaf hash its tile holds")
                }
                None => report.problem(Some(expected), "its level-0 tile is missing"),
            }
            let mut full_tiles = Vec::new();
            frontier.append(hash, |node: NodeId, hash| full_tiles.extend(edges.push(node, hash)));
            for (tile, hashes) in full_tiles {
                check_tile(store, tenant, tile, &hashes, expected, &mut report)?;
            }
            expected += 1;
            report.entries_checked += 1;
            while let Some(checkpoint) = next_checkpoint.next_if(|c| c.size.0 == expected) {
                if frontier.root() != checkpoint.root {
                    report.problem(
                        Some(expected - 1),
                        format!("checkpoint at size {} does not match the entries", checkpoint.size),
                    );
                }
            }
        }
    }
    if let Some((count, first)) = beyond {
        report.problem(
            Some(first),
            format!(
                "{count} entries beyond the head checkpoint, from index {first} (inserted or half-written)"
            ),
        );
    }
    if expected < head_size {
        report.problem(
            Some(expected),
            format!("entries {expected} to {} are missing (truncated)", head_size - 1),
        );
        return Ok(report);
    }
    // The partial tiles of the head.
    for (level, hashes) in edges.levels() {
        if !hashes.is_empty() {
            let index = head_size >> (TILE_HEIGHT * (level as u32 + 1));
            let tile = TileId { level: level as u8, index, width: hashes.len() as u16 };
            check_tile(store, tenant, tile, hashes, head_size - 1, &mut report)?;
        }
    }
    for checkpoint in next_checkpoint {
        report.problem(None, format!("checkpoint at size {} is beyond the entries", checkpoint.size));
    }
    if head_size > 0 && TreeSize(head_size) != frontier.size() {
        report.problem(None, "head size does not match the entries");
    }
    Ok(report)
}

fn check_tile(
    store: &dyn LogStore,
    tenant: &TenantId,
    tile: TileId,
    hashes: &[Hash],
    at_index: u64,
    report: &mut Report,
) -> Result<()> {
    report.tiles_checked += 1;
    let want: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
    match store.read_tiles(tenant, &[tile]) {
        Ok(data) if data[0] == want => {}
        Ok(_) => {
            report.problem(Some(at_index), format!("tile {} differs from the recomputed one", tile.path()))
        }
        Err(_) => report.problem(Some(at_index), format!("tile {} is missing", tile.path())),
    }
    Ok(())
}
