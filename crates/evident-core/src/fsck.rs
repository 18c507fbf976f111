//! `fsck`: re-verifies a whole log from storage, trusting nothing stored but the signing key.
//!
//! Every entry is hashed again and compared with the leaf hash its full level-0 tile holds, so the
//! first bad index is named; every full tile and the head's partial tiles above level 0 are
//! recomputed and compared (the head's level-0 partial tile is not stored but read as the leaf
//! hashes of its entries, `store::keeps_tile`: a changed entry there is caught by the roots of the
//! checkpoints past it, the first one kept after it naming the index); every stored checkpoint's
//! (the kept history and the head, `LogStore::checkpoints`; the engine keeps them at a bounded
//! rate, so their number grows with entries and time, not with commits)
//! signature is checked (on all cores, while the entries are scanned) and its root compared with
//! the root of the one frontier folded forward over the entries, taken at its size (which also
//! proves each pair of successive checkpoints consistent: both are prefixes of the one recomputed
//! tree); entries missing below the head or present above it are reported.
//! Rolling back a whole store consistently is not detectable here; witnesses (`verify --watch`)
//! catch that.

use std::fmt;

use evident_tlog::{
    Checkpoint, Frontier, Hash, NodeId, TILE_HEIGHT, TILE_WIDTH, TileId, TreeSize, Verifier, leaf_hash,
};

use crate::error::Result;
use crate::log::TileEdges;
use crate::store::{LogHead, LogStore, TenantId};

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

/// Verifies one tenant's log. The checkpoints' signatures are verified on every core while this
/// thread scans the entries, folding one frontier forward and comparing its root at each
/// checkpoint's size (so each checkpoint costs one signature check and one root, not a rebuild).
pub fn check_log(
    store: &dyn LogStore,
    tenant: &TenantId,
    origin: &str,
    verifiers: &[Verifier],
) -> Result<Report> {
    let mut report = Report { tenant: tenant.to_string(), ..Report::default() };
    let head = store.head(tenant)?;
    report.size = head.as_ref().map_or(0, |h| h.size.0);
    let stored = store.checkpoints(tenant)?;
    let claimed = claimed_checkpoints(&stored);
    let (scan, signatures) = std::thread::scope(|scope| {
        let verifying = verify_in_parallel(scope, &stored, verifiers, origin);
        let scan = scan_entries(store, tenant, report.size, &claimed, &mut report);
        let signatures: Vec<Option<String>> =
            verifying.into_iter().flat_map(|thread| thread.join().expect("verifier thread")).collect();
        (scan, signatures)
    });
    report.checkpoints_checked = stored.len() as u64;
    signatures.iter().flatten().for_each(|problem| report.problem(None, problem.clone()));
    // Only checkpoints whose signature holds count from here on (a forged one is reported above).
    let verified: std::collections::HashSet<u64> =
        stored.iter().zip(&signatures).filter(|(_, p)| p.is_none()).map(|(s, _)| s.size.0).collect();
    let scan = scan?;
    for (size, at) in scan.mismatched_roots {
        if verified.contains(&size) {
            report.problem(Some(at), format!("checkpoint at size {size} does not match the entries"));
        }
    }
    for size in scan.beyond_entries.into_iter().filter(|size| verified.contains(size)) {
        report.problem(None, format!("checkpoint at size {size} is beyond the entries"));
    }
    if let Some(head) = &head {
        check_head(head, verified.iter().max().copied(), verifiers, origin, &mut report);
    }
    Ok(report)
}

/// The size and root each stored checkpoint claims, read from its note text without checking
/// the signature (done in parallel); sorted by size, those that do not parse or name another
/// size left out (their signature check reports them).
fn claimed_checkpoints(stored: &[LogHead]) -> Vec<(u64, Hash)> {
    let mut claimed: Vec<(u64, Hash)> = stored
        .iter()
        .filter_map(|head| {
            let (body, _) = head.checkpoint.split_once("\n\n")?;
            let checkpoint = Checkpoint::parse(&format!("{body}\n")).ok()?;
            (checkpoint.size == head.size).then_some((head.size.0, checkpoint.root))
        })
        .collect();
    claimed.sort_unstable_by_key(|(size, _)| *size);
    claimed
}

/// Opens every stored checkpoint (signature, origin, strict parse) on as many threads as there
/// are cores; each thread answers, in order, `None` for a checkpoint that verifies or why not.
fn verify_in_parallel<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    stored: &'scope [LogHead],
    verifiers: &'scope [Verifier],
    origin: &'scope str,
) -> Vec<std::thread::ScopedJoinHandle<'scope, Vec<Option<String>>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = stored.len().div_ceil(threads).max(1);
    stored
        .chunks(chunk)
        .map(|part| {
            scope.spawn(move || {
                part.iter()
                    .map(|head| match Checkpoint::open(&head.checkpoint, verifiers, origin) {
                        Ok((checkpoint, _)) if checkpoint.size == head.size => None,
                        Ok((checkpoint, _)) => Some(format!(
                            "checkpoint stored for size {} is signed for size {}",
                            head.size, checkpoint.size
                        )),
                        Err(err) => Some(format!("checkpoint for size {} does not verify: {err}", head.size)),
                    })
                    .collect()
            })
        })
        .collect()
}

/// The head: its signature, and that no kept checkpoint is beyond it.
fn check_head(
    head: &LogHead,
    last_published: Option<u64>,
    verifiers: &[Verifier],
    origin: &str,
    report: &mut Report,
) {
    match Checkpoint::open(&head.checkpoint, verifiers, origin) {
        Ok((signed, _)) if signed.size == head.size => {}
        Ok((signed, _)) => report.problem(
            None,
            format!("the head checkpoint is for size {}, the head says {}", signed.size, head.size),
        ),
        Err(err) => report.problem(None, format!("the head checkpoint does not verify: {err}")),
    }
    if let Some(last) = last_published
        && last > head.size.0
    {
        report.problem(
            None,
            format!(
                "log was rolled back: head is at size {}, a checkpoint was published at {last}",
                head.size
            ),
        );
    }
}

/// What the scan found that waits for the signature checks.
struct Scan {
    /// (checkpoint size, last index) of each checkpoint whose root differs from the entries'.
    mismatched_roots: Vec<(u64, u64)>,
    /// Sizes of checkpoints beyond the last entry.
    beyond_entries: Vec<u64>,
}

/// Entries, leaf hashes against level-0 tiles, full and partial tiles, and the root at every
/// claimed checkpoint size, in one pass over the entries.
fn scan_entries(
    store: &dyn LogStore,
    tenant: &TenantId,
    head_size: u64,
    claimed: &[(u64, Hash)],
    report: &mut Report,
) -> Result<Scan> {
    let mut scan = Scan { mismatched_roots: Vec::new(), beyond_entries: Vec::new() };
    let mut frontier = Frontier::new();
    let mut edges = TileEdges::default();
    let mut next_checkpoint = claimed.iter().peekable();
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
                return Ok(scan); // the tree cannot be recomputed past a gap
            }
            let hash = leaf_hash(&item.entry);
            check_leaf(store, tenant, head_size, expected, &hash, &mut level0, report);
            let mut full_tiles = Vec::new();
            frontier.append(hash, |node: NodeId, hash| full_tiles.extend(edges.push(node, hash)));
            for (tile, hashes) in full_tiles {
                check_tile(store, tenant, tile, &hashes, expected, report)?;
            }
            expected += 1;
            report.entries_checked += 1;
            if next_checkpoint.peek().is_some_and(|(size, _)| *size == expected) {
                let root = frontier.root();
                while let Some((size, claimed_root)) = next_checkpoint.next_if(|(size, _)| *size == expected)
                {
                    if root != *claimed_root {
                        scan.mismatched_roots.push((*size, expected - 1));
                    }
                }
            }
        }
    }
    if finish_scan(store, tenant, head_size, expected, beyond, &edges, &frontier, report)? {
        scan.beyond_entries = next_checkpoint.map(|(size, _)| *size).collect();
    }
    Ok(scan)
}

/// The level-0 tile's hash of each entry names the first bad index precisely. Entries of the
/// head's partial tile have no stored leaf hash to compare with (the store derives that tile from
/// them); the checkpoints' roots check them.
fn check_leaf(
    store: &dyn LogStore,
    tenant: &TenantId,
    head_size: u64,
    index: u64,
    hash: &Hash,
    level0: &mut Option<(u64, Vec<u8>)>,
    report: &mut Report,
) {
    let tile_index = index / TILE_WIDTH as u64;
    if level0.as_ref().is_none_or(|(n, _)| *n != tile_index) {
        let width = ((head_size - tile_index * 256).min(256)) as u16;
        if width < TILE_WIDTH {
            return;
        }
        let tile = TileId { level: 0, index: tile_index, width };
        *level0 = store.read_tiles(tenant, &[tile]).ok().map(|mut t| (tile_index, t.remove(0)));
    }
    let offset = (index % TILE_WIDTH as u64) as usize * 32;
    match level0 {
        Some((_, data)) if data[offset..offset + 32] == hash.0 => {}
        Some(_) => report.problem(Some(index), "entry does not hash to the leaf hash its tile holds"),
        None => report.problem(Some(index), "its level-0 tile is missing"),
    }
}

/// After the last entry: entries beyond the head, truncation, the head's partial tiles above
/// level 0. False when the log is truncated (nothing past that can be checked).
#[allow(clippy::too_many_arguments)]
fn finish_scan(
    store: &dyn LogStore,
    tenant: &TenantId,
    head_size: u64,
    expected: u64,
    beyond: Option<(u64, u64)>,
    edges: &TileEdges,
    frontier: &Frontier,
    report: &mut Report,
) -> Result<bool> {
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
        return Ok(false);
    }
    for (level, hashes) in edges.levels().skip(1) {
        if !hashes.is_empty() {
            let index = head_size >> (TILE_HEIGHT * (level as u32 + 1));
            let tile = TileId { level: level as u8, index, width: hashes.len() as u16 };
            check_tile(store, tenant, tile, hashes, head_size - 1, report)?;
        }
    }
    if head_size > 0 && TreeSize(head_size) != frontier.size() {
        report.problem(None, "head size does not match the entries");
    }
    Ok(true)
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
