//! The search index, off the acknowledgement path. A commit writes only the log's own data into
//! the main file (the event row, holding its search columns and its targets, with the two unique
//! indexes the commit needs: event id and idempotency key). The secondary indexes (time, actor,
//! subject, type, action, outcome, source, targets) live in a second SQLite file beside it,
//! `<store>-index`, attached to every reader as `ix`. An [`Indexer`] thread follows each log from
//! its watermark (`ix.indexed`: how many of a tenant's entries are indexed), in transactions that
//! write the rows and the new watermark together. It gathers what commits for up to
//! [`Indexer::WINDOW`], so each random-key index page is written once for many events.
//!
//! A search never misses an acknowledged event: in one read transaction it takes the watermark,
//! walks the index for the entries below it and reads the entries at and above it from their
//! rows in the main file, which hold the same columns and targets (the tail, usually the last
//! [`Indexer::WINDOW`]'s commits). Commits past the [`LagBound`] wait for the indexer, so the
//! tail stays short enough to read and a search does not wait for the indexer
//! ([`Indexer::wait_for_search`] does only for an index rebuilt from nothing, or with the bound
//! off); insight and erasure wait
//! until the watermark covers every entry committed before they started ([`Indexer::wait_for`]).
//! The index
//! is derived data: a lost or stale index file is rebuilt from the events (their `targets` column
//! keeps what the index needs, search tokens included, until erasure removes those).
//!
//! The same transactions fold the entries into insight's hourly rollups (`rollup.rs`) and its
//! path table (`paths.rs`), each with a watermark of its own (`ix.rolled`, `ix.pathed`). Level
//! with `ix.indexed`, each moves with it in the same transactions; behind it (an index file from
//! before the table, or rollups from before the hour sets), the indexer folds that table from the
//! stored events a chunk at a time, in transactions that fold a chunk and move its watermark
//! together, between its other work, until it is level. Since folding is not idempotent, rollups
//! without a watermark or ahead of the index are dropped and folded again, and an index ahead of
//! the log is indexed again from nothing. Funnels wait for `ix.pathed` as searches wait for
//! `ix.indexed`; trends and cohorts wait for `ix.rolled`, or, while it is far behind, scan the
//! events.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use evident_core::insight::paths::PathFold;
use evident_core::insight::rollup::Fold;
use evident_core::insight::{Event, Row};
use evident_core::store::IndexProgress;
use evident_core::{Error, Result};
use evident_wire::Micros;
use rusqlite::{Connection, params};

use crate::{TENANT_SHIFT, open_connection, rid, storage};

/// Tables and indexes of the index file (attached as `ix`).
const INDEX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ix.indexed (tid INTEGER PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ix.event_search (
    rid INTEGER PRIMARY KEY, tid INTEGER NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
    action TEXT NOT NULL, outcome TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix.search_time ON event_search (tid, time);
CREATE INDEX IF NOT EXISTS ix.search_actor ON event_search (tid, actor, time);
CREATE INDEX IF NOT EXISTS ix.search_type ON event_search (tid, type, time);
CREATE INDEX IF NOT EXISTS ix.search_action ON event_search (tid, action, time);
CREATE INDEX IF NOT EXISTS ix.search_outcome ON event_search (tid, outcome, time);
CREATE INDEX IF NOT EXISTS ix.search_source ON event_search (tid, source, time);
CREATE TABLE IF NOT EXISTS ix.parts (shift INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ix.part_times (
    tid INTEGER NOT NULL, part INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (tid, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix.rolled (tid INTEGER PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ix.insight_names (
    id INTEGER PRIMARY KEY, tid INTEGER NOT NULL, name TEXT NOT NULL, UNIQUE (tid, name)
);
CREATE TABLE IF NOT EXISTS ix.insight_counts (
    tid INTEGER NOT NULL, dim INTEGER NOT NULL, hour INTEGER NOT NULL, value INTEGER NOT NULL,
    events INTEGER NOT NULL, failures INTEGER NOT NULL,
    PRIMARY KEY (tid, dim, hour, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix.insight_hour_ids (
    tid INTEGER NOT NULL, dim INTEGER NOT NULL, who INTEGER NOT NULL, value INTEGER NOT NULL,
    hour INTEGER NOT NULL, ids BLOB NOT NULL,
    PRIMARY KEY (tid, dim, who, value, hour)
);
CREATE TABLE IF NOT EXISTS ix.pathed (tid INTEGER PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ix.insight_kinds (
    tid INTEGER NOT NULL, id INTEGER NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (tid, id)
) WITHOUT ROWID;
";

/// The index file of the store at `path`.
pub(crate) fn index_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-index", path.display()))
}

/// A connection to the store with the index file attached as `ix` (created, in WAL mode, with
/// its tables, when missing; with the main file's permissions, as SQLite gives its `-wal` and
/// `-shm` files, since it holds search tokens).
pub(crate) fn open_with_index(path: &Path) -> Result<Connection> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777);
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(index_path(path));
    if let Err(err) = created
        && err.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(Error::Unavailable(format!("cannot create the index file: {err}")));
    }
    let connection = open_connection(path)?;
    connection
        .execute("ATTACH DATABASE ?1 AS ix", [index_path(path).display().to_string()])
        .map_err(storage)?;
    connection.query_row("PRAGMA ix.journal_mode = WAL", [], |_| Ok(())).map_err(storage)?;
    connection.execute_batch(INDEX_SCHEMA).map_err(storage)?;
    connection.execute_batch(crate::paths::TABLE).map_err(storage)?;
    Ok(connection)
}

/// The `CREATE TABLE` statement of the index file's table `name`, if the file has that table.
pub(crate) fn table_sql(connection: &Connection, name: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension as _;
    connection
        .query_row("SELECT sql FROM ix.sqlite_master WHERE type = 'table' AND name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()
        .map_err(storage)
}

/// `(type, id)` pairs in the `events.targets` column: per target, the two strings each as a
/// 4-byte little-endian length and its bytes. `None` for no targets.
pub(crate) fn encode_targets(targets: &[(String, String)]) -> Option<Vec<u8>> {
    if targets.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(targets.iter().map(|(t, i)| 8 + t.len() + i.len()).sum());
    for text in targets.iter().flat_map(|(t, i)| [t, i]) {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    Some(out)
}

/// `evident_has_target(targets, type, id)` on `connection`: what a search's target filter is
/// on the entries the index does not hold yet (`events.targets`, NULL for none). It compares
/// the stored bytes in place: a search reads up to twice the lag bound of such rows.
pub(crate) fn add_target_function(connection: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    connection
        .create_scalar_function("evident_has_target", 3, flags, |ctx| {
            let bytes = ctx
                .get_raw(0)
                .as_blob_or_null()
                .map_err(|err| rusqlite::Error::UserFunctionError(err.into()))?;
            let (kind, id) = (ctx.get_raw(1).as_bytes(), ctx.get_raw(2).as_bytes());
            let (Ok(kind), Ok(id)) = (kind, id) else { return Ok(false) };
            // Lengths that run past the end (bytes `encode_targets` did not write) match nothing.
            let mut found = false;
            for pair in target_pairs(bytes.unwrap_or_default()) {
                let Ok(pair) = pair else { return Ok(false) };
                found |= pair == (kind, id);
            }
            Ok(found)
        })
        .map_err(storage)
}

/// The `(type, id)` pairs [`encode_targets`] wrote, as slices of `bytes`; an `Err` item (and
/// nothing after it) where the bytes are not what it writes.
fn target_pairs(bytes: &[u8]) -> impl Iterator<Item = std::result::Result<(&[u8], &[u8]), ()>> {
    fn text<'a>(rest: &mut &'a [u8]) -> std::result::Result<&'a [u8], ()> {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or(())?;
        let len = u32::from_le_bytes(*len) as usize;
        let text = tail.get(..len).ok_or(())?;
        *rest = &tail[len..];
        Ok(text)
    }
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let mut left = rest.take()?;
        if left.is_empty() {
            return None;
        }
        let pair = text(&mut left).and_then(|kind| Ok((kind, text(&mut left)?)));
        if pair.is_ok() {
            rest = Some(left);
        }
        Some(pair)
    })
}

/// The `(type, id)` pairs [`encode_targets`] wrote, as text borrowed from `bytes`; an error item
/// for bytes it did not write.
fn text_pairs(bytes: Option<&[u8]>) -> impl Iterator<Item = Result<(&str, &str)>> {
    let bad = || Error::Integrity("an event's stored targets are malformed".into());
    target_pairs(bytes.unwrap_or_default()).map(move |pair| {
        let (kind, id) = pair.map_err(|()| bad())?;
        Ok((std::str::from_utf8(kind).map_err(|_| bad())?, std::str::from_utf8(id).map_err(|_| bad())?))
    })
}

/// The inverse of [`encode_targets`]; an error for bytes it did not write.
pub(crate) fn decode_targets(bytes: Option<&[u8]>) -> Result<Vec<(String, String)>> {
    text_pairs(bytes).map(|pair| pair.map(|(kind, id)| (kind.to_owned(), id.to_owned()))).collect()
}

/// How many entries the indexer takes per transaction, and per write of insight's folds within
/// one. `EVIDENT_INDEXER_ROUND=N` sets the first (the folds then every N/4, at most 20,000), for
/// tests that need many rounds from a small history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rounds {
    /// Entries per index transaction: big, so that a page of a big index takes many of its rows
    /// (see [`index_range`]).
    entries: u64,
    /// Entries per index transaction while commits keep coming (at most `entries`): a round's
    /// targets and sort are held in memory, and under full ingest the indexer falls behind, so
    /// its rounds were always the biggest (a 10,000,000-event fill peaked at 428 MiB with rounds
    /// of 200,000 against issue 18's 300 MB; 1,500,000 events: 322 MiB, with 50,000: 256 MiB).
    live: u64,
    /// Entries per write of the folds: a fold holds a few hundred bytes per customer it touched.
    fold: u64,
}

impl Rounds {
    const DEFAULT: Rounds = Rounds { entries: 200_000, live: 50_000, fold: 20_000 };

    fn from_env() -> Result<Rounds> {
        let Ok(text) = std::env::var("EVIDENT_INDEXER_ROUND") else { return Ok(Rounds::DEFAULT) };
        match text.trim().parse::<u64>() {
            Ok(entries) if entries > 0 => {
                let live = entries.min(Rounds::DEFAULT.live);
                Ok(Rounds { entries, live, fold: (entries / 4).clamp(1, Rounds::DEFAULT.fold) })
            }
            _ => Err(Error::InvalidArgument(format!(
                "EVIDENT_INDEXER_ROUND is {text:?}: it must be a whole number of entries, at least 1 \
                 (unset it for the default of {})",
                Rounds::DEFAULT.entries
            ))),
        }
    }
}

/// Per tenant: entries committed (as the store last told) and entries indexed.
#[derive(Default)]
struct Progress {
    committed: HashMap<i64, u64>,
    indexed: HashMap<i64, u64>,
    /// Entries folded into insight's rollups (at most `indexed`).
    rolled: HashMap<i64, u64>,
    /// Entries folded into the path table (at most `indexed`).
    pathed: HashMap<i64, u64>,
    /// A reader waits: index now rather than at the end of the window.
    wanted: bool,
    /// Something was committed or waited for since the store opened: until then the indexer
    /// does nothing, so opening a store to check it (`fsck`) writes no index.
    active: bool,
    stop: bool,
    /// The checkpointer holds the indexer between transactions ([`Pauser::hold`]).
    paused: bool,
    /// The indexer is in a transaction (holding a snapshot of the main file).
    busy: bool,
    /// Commits told since the store opened (the indexer takes smaller rounds while it grows).
    commits: u64,
    /// Seconds per entry of the indexer's recent rounds, weighted by their entries (0: none
    /// measured yet): how long a commit past the lag bound waits.
    seconds_per_entry: f64,
    /// Commits that waited for the indexer ([`Indexer::throttle`]), and how long in all.
    throttled: u64,
    throttled_for: Duration,
    /// Why the last pass failed, while it keeps failing.
    failure: Option<String>,
}

impl Progress {
    /// Entries of `tid` committed but not indexed.
    fn behind(&self, tid: i64) -> u64 {
        self.short(tid, &self.indexed)
    }

    /// Entries of `tid` committed but not yet covered by the watermarks `done`.
    fn short(&self, tid: i64, done: &HashMap<i64, u64>) -> u64 {
        let get = |map: &HashMap<i64, u64>| map.get(&tid).copied().unwrap_or(0);
        get(&self.committed).saturating_sub(get(done))
    }
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

/// The thread that keeps the index file up with the logs.
pub(crate) struct Indexer {
    /// Whether the indexer keeps insight's rollups (`EVIDENT_INSIGHT_ROLLUPS=off` turns them
    /// off, to measure what they cost; insight then scans, and turning them on again folds every
    /// entry again).
    pub(crate) rollups: bool,
    /// Entries per part of the index file, as a power of two (`parts.rs`).
    pub(crate) shift: u32,
    lag: LagBound,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How many entries a log may be ahead of its search index before its commits wait for the
/// indexer ([`Indexer::throttle`]). A search reads the entries the index does not hold yet from
/// their rows, up to twice the bound (commits at the indexer's pace keep the lag between one and
/// two bounds while a round is under way), and waits for the indexer only beyond that. So a
/// load at full rate cannot leave
/// searches waiting for a backlog (a 10,000,000-event fill left the index 7,000,000 entries
/// behind, and searches unavailable for 742 s). `EVIDENT_INDEX_LAG_ENTRIES` sets it; `off` lets
/// commits run ahead without bound (searches then wait for the indexer beyond the default, and
/// fail as unavailable after [`Indexer::MAX_WAIT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LagBound {
    entries: Option<u64>,
}

impl LagBound {
    /// Half a second of ingest at full rate on the 2-core machine.
    pub(crate) const DEFAULT: u64 = 16_384;
    const MIN: u64 = 1_024;
    /// The longest one commit waits.
    const MAX_WAIT: Duration = Duration::from_secs(2);

    fn from_env() -> Result<LagBound> {
        Self::parse(std::env::var("EVIDENT_INDEX_LAG_ENTRIES").ok().as_deref())
    }

    fn parse(setting: Option<&str>) -> Result<LagBound> {
        match setting.map(str::trim) {
            None => Ok(LagBound { entries: Some(Self::DEFAULT) }),
            Some("off") => Ok(LagBound { entries: None }),
            Some(number) => match number.parse::<u64>() {
                Ok(entries) if entries >= Self::MIN => Ok(LagBound { entries: Some(entries) }),
                _ => Err(Error::InvalidArgument(format!(
                    "EVIDENT_INDEX_LAG_ENTRIES is {number:?}: it must be a whole number of entries, at \
                     least {}, or off (unset it for the default of {})",
                    Self::MIN,
                    Self::DEFAULT
                ))),
            },
        }
    }

    /// How many entries of the tail a search reads from the rows before it waits (32,768 rows
    /// by default: tens of milliseconds).
    fn tail(self) -> u64 {
        2 * self.entries.unwrap_or(Self::DEFAULT)
    }
}

impl Indexer {
    /// How long committed entries may gather before the indexer writes them, unless a reader
    /// waits for them.
    pub(crate) const WINDOW: Duration = Duration::from_millis(100);
    /// How far behind the rollups a question waits for them rather than scanning the events:
    /// a few seconds of folding.
    const ROLLUPS_WAITED: u64 = 100_000;
    /// How long a read waits for the index before failing as unavailable.
    const MAX_WAIT: Duration = Duration::from_secs(30);

    /// Starts following the store at `path`: committed sizes from its `logs`, watermarks from
    /// the index file (made with parts of 2^`shift` entries if new).
    pub(crate) fn start(path: &Path, shift: u32) -> Result<Indexer> {
        let connection = open_with_index(path)?;
        // The index is derived data: a round of the indexer's lost to a power cut is rolled back
        // with its watermarks (WAL stays consistent at NORMAL) and done again from the events, so
        // its commits need no fsync of their own, and a search waiting for a round waits for no
        // disk flush. Erasure's deletions use their own connection at FULL (`forget_tokens`).
        // Temporary data in files, not memory: a round's sort of its rows held about a page per
        // index page the round touches, with the statement journal its many-row insert kept then
        // (in memory, 380 MiB more peak RSS rebuilding 2,000,000 entries, `bench/reindex.sh`);
        // SQLite unlinks such files as it opens them. The round's statements now cannot stop
        // half way (see `index_range`), so SQLite keeps no statement journal for them: at
        // 1,500,000 entries, that journal's writes were 8 % of the indexer's samples. The index
        // file's WAL is copied into it every `INDEXER_WAL_PAGES`, not SQLite's 1,000: fewer fsyncs
        // of the index file for the commits' fsyncs to queue behind.
        connection
            .execute_batch(&format!(
                "PRAGMA ix.synchronous = NORMAL; PRAGMA ix.cache_size = -{}; PRAGMA temp_store = FILE;
                 PRAGMA wal_autocheckpoint = {};",
                crate::INDEXER_CACHE_KIB,
                crate::INDEXER_WAL_PAGES
            ))
            .map_err(storage)?;
        crate::rollup::drop_old_form(&connection)?;
        crate::paths::drop_old_form(&connection)?;
        let shift = crate::parts::settle(&connection, shift)?;
        let mut progress = Progress::default();
        let pairs = |sql: &str| -> Result<HashMap<i64, u64>> {
            let mut statement = connection.prepare(sql).map_err(storage)?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)? as u64)))
                .map_err(storage)?;
            rows.collect::<rusqlite::Result<_>>().map_err(storage)
        };
        progress.committed = pairs("SELECT tid, size FROM main.logs")?;
        progress.indexed = pairs("SELECT tid, size FROM ix.indexed")?;
        progress.rolled = pairs("SELECT tid, size FROM ix.rolled")?;
        progress.pathed = pairs("SELECT tid, size FROM ix.pathed")?;
        let rollups = std::env::var("EVIDENT_INSIGHT_ROLLUPS").as_deref() != Ok("off");
        let rounds = Rounds::from_env()?;
        let lag = LagBound::from_env()?;
        for (tid, indexed) in progress.indexed.iter_mut() {
            let committed = progress.committed.get(tid).copied().unwrap_or(0);
            // Folds are not idempotent: a log rolled back under the index is indexed again from
            // nothing (searches' rows are replaced).
            if *indexed > committed {
                drop_beyond(&connection, *tid, committed)?;
                *indexed = 0;
                progress.pathed.insert(*tid, 0);
                progress.rolled.insert(*tid, 0);
            }
            // Nor are rollups without a watermark (an index file from before them, or from before
            // the hour sets) or ahead of the index: folded again from the stored events, between
            // the indexer's other work, while questions answer from the events.
            let rolled = progress.rolled.get(tid).copied();
            if rollups && rolled.is_none_or(|rolled| rolled > *indexed) {
                drop_folded(&connection, *tid, Behind::Rollups)?;
                progress.rolled.insert(*tid, 0);
            }
        }
        // Nor is the path table: one ahead of the index (which cannot be, unless the file was
        // tampered with) is built again from nothing.
        for (tid, pathed) in progress.pathed.iter_mut() {
            if *pathed > progress.indexed.get(tid).copied().unwrap_or(0) {
                drop_folded(&connection, *tid, Behind::Paths)?;
                *pathed = 0;
            }
        }
        let shared = Arc::new(Shared { progress: Mutex::new(progress), changed: Condvar::new() });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("evident-indexer".into())
            .spawn(move || {
                follow(&thread_shared, &connection, Folds { rollups, paths: false, rounds, shift })
            })
            .map_err(|err| Error::Unavailable(format!("cannot start the indexer: {err}")))?;
        Ok(Indexer { rollups, shift, lag, shared, thread: Some(thread) })
    }

    /// What the checkpointer holds the indexer with.
    pub(crate) fn pauser(&self) -> Pauser {
        Pauser { shared: Arc::clone(&self.shared) }
    }

    /// A commit moved the log of `tid` to `size` (called once it is durable).
    pub(crate) fn committed(&self, tid: i64, size: u64) {
        let mut progress = self.shared.progress.lock().expect("index progress lock");
        progress.committed.insert(tid, size);
        progress.commits += 1;
        progress.active = true;
        if progress.wanted {
            self.shared.changed.notify_all();
        }
    }

    /// Called after a commit of `entries` to the log of `tid`, outside the writer's lock, before
    /// it is acknowledged: while the log is further ahead of its index than the [`LagBound`],
    /// waits as long as the indexer takes (at its measured pace) for `entries`, up to twice that
    /// as the lag nears twice the bound, or until the index is back within the bound. Commits
    /// then go on at the indexer's pace, at half of it far beyond the bound, so a big lag shrinks
    /// (an index rebuilt from nothing included), and smoothly: a commit waits in proportion to
    /// its size, not for the end of a round. Never waits on a failing or stopping indexer, nor
    /// longer than [`LagBound::MAX_WAIT`]: the commit is durable, and its acknowledgement must
    /// not hang on derived data.
    pub(crate) fn throttle(&self, tid: i64, entries: u64) {
        let Some(bound) = self.lag.entries else { return };
        let started = Instant::now();
        let mut progress = self.shared.progress.lock().expect("index progress lock");
        if progress.behind(tid) <= bound || progress.failure.is_some() {
            return;
        }
        // Once over the bound, as long as the indexer takes for `entries`; at twice the bound
        // and beyond, for twice that.
        let over = (progress.behind(tid) as f64 / bound as f64).min(2.0);
        let pace = Duration::from_secs_f64(progress.seconds_per_entry * over * entries as f64);
        let deadline = started + pace.min(LagBound::MAX_WAIT);
        progress.wanted = true;
        self.shared.changed.notify_all();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if progress.behind(tid) <= bound || progress.failure.is_some() || progress.stop {
                break;
            }
            progress = self.shared.changed.wait_timeout(progress, left).expect("index progress lock").0;
        }
        progress.throttled += 1;
        progress.throttled_for += started.elapsed();
    }

    /// How far the index is behind, in entries of every log, and how often commits waited.
    pub(crate) fn lag(&self) -> IndexProgress {
        let progress = self.shared.progress.lock().expect("index progress lock");
        IndexProgress {
            behind: progress.committed.keys().map(|tid| progress.behind(*tid)).sum(),
            throttled_commits: progress.throttled,
            throttled_for: progress.throttled_for,
        }
    }

    /// Waits until the index covers every entry of `tid` committed before this call.
    pub(crate) fn wait_for(&self, tid: i64) -> Result<()> {
        self.wait_until(tid, "search index", 0, |progress| &progress.indexed)
    }

    /// Waits until at most the lag bound's entries of `tid` committed before this call are not
    /// indexed (a search reads those from their rows): at once, unless commits ran ahead
    /// without a bound or the index is being rebuilt.
    pub(crate) fn wait_for_search(&self, tid: i64) -> Result<()> {
        self.wait_until(tid, "search index", self.lag.tail(), |progress| &progress.indexed)
    }

    /// Whether the rollups of `tid` cover every entry committed before this call, after waiting
    /// for them while they are at most [`Indexer::ROLLUPS_WAITED`] entries short. Further
    /// behind, they are being folded again from the stored events (an index file from before
    /// them): they answer nothing, and a question scans the events instead.
    pub(crate) fn wait_for_rollups(&self, tid: i64) -> bool {
        let progress = self.shared.progress.lock().expect("index progress lock");
        if progress.short(tid, &progress.rolled) > Self::ROLLUPS_WAITED {
            return false;
        }
        drop(progress);
        self.wait_until(tid, "insight rollups", 0, |progress| &progress.rolled).is_ok()
    }

    /// Waits until the path table covers every entry of `tid` committed before this call.
    pub(crate) fn wait_for_paths(&self, tid: i64) -> Result<()> {
        self.wait_until(tid, "insight path table", 0, |progress| &progress.pathed)
    }

    fn wait_until(
        &self,
        tid: i64,
        what: &str,
        slack: u64,
        done: fn(&Progress) -> &HashMap<i64, u64>,
    ) -> Result<()> {
        let deadline = Instant::now() + Self::MAX_WAIT;
        let mut progress = self.shared.progress.lock().expect("index progress lock");
        let target = progress.committed.get(&tid).copied().unwrap_or(0);
        while done(&progress).get(&tid).copied().unwrap_or(0).saturating_add(slack) < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                let why = progress.failure.clone().unwrap_or_else(|| "it is still catching up".into());
                return Err(Error::Unavailable(format!("the {what} is behind the log: {why}")));
            };
            progress.wanted = true;
            progress.active = true;
            self.shared.changed.notify_all();
            progress = self.shared.changed.wait_timeout(progress, left).expect("index progress lock").0;
        }
        Ok(())
    }
}

/// Holds the indexer between its transactions, so that no snapshot of the main file it reads
/// keeps the checkpointer from copying the whole WAL (see `Checkpointer`).
#[derive(Clone)]
pub(crate) struct Pauser {
    shared: Arc<Shared>,
}

/// The indexer stays held until this is dropped.
pub(crate) struct Held<'a> {
    shared: &'a Shared,
}

impl Pauser {
    /// Waits (at most `max`) for the indexer's transaction under way to end and keeps it from
    /// starting another until the answer is dropped; `None` if the transaction outlasted `max`.
    pub(crate) fn hold(&self, max: Duration) -> Option<Held<'_>> {
        let deadline = Instant::now() + max;
        let mut progress = self.shared.progress.lock().expect("index progress lock");
        progress.paused = true;
        while progress.busy {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                progress.paused = false;
                self.shared.changed.notify_all();
                return None;
            };
            progress = self.shared.changed.wait_timeout(progress, left).expect("index progress lock").0;
        }
        Some(Held { shared: &self.shared })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.shared.progress.lock().expect("index progress lock").paused = false;
        self.shared.changed.notify_all();
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.shared.progress.lock().expect("index progress lock").stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A tenant's work: its watermarks and committed size.
struct Work {
    tid: i64,
    indexed: u64,
    rolled: u64,
    pathed: u64,
    committed: u64,
}

/// The indexer thread: waits for work (a window, or a reader), indexes all of it, builds a chunk
/// of each path table that is behind, repeats (at once while one still is).
fn follow(shared: &Shared, connection: &Connection, setup: Folds) {
    let Folds { rollups, rounds, .. } = setup;
    let (mut behind, mut commits) = (false, 0);
    loop {
        let mut round = rounds;
        let work: Vec<Work> = {
            let mut progress = shared.progress.lock().expect("index progress lock");
            if !progress.wanted && !progress.stop && !behind {
                progress = shared.changed.wait_timeout(progress, Indexer::WINDOW).expect("lock").0;
            }
            while progress.paused && !progress.stop {
                progress = shared.changed.wait(progress).expect("lock");
            }
            if progress.stop {
                return;
            }
            if !progress.active {
                continue;
            }
            progress.busy = true;
            if progress.commits != commits {
                commits = progress.commits;
                round.entries = rounds.live;
            }
            progress.wanted = false;
            let get = |map: &HashMap<i64, u64>, tid| map.get(tid).copied().unwrap_or(0);
            progress
                .committed
                .iter()
                .map(|(tid, size)| Work {
                    tid: *tid,
                    indexed: get(&progress.indexed, tid),
                    rolled: get(&progress.rolled, tid),
                    pathed: get(&progress.pathed, tid),
                    committed: *size,
                })
                .filter(|w| w.indexed < w.committed || (rollups && w.pathed.min(w.rolled) < w.committed))
                .collect()
        };
        behind = false;
        for mut work in work {
            if !index_all(shared, connection, &mut work, Folds { rounds: round, ..setup }) {
                break;
            }
            if rollups && work.rolled < work.indexed {
                behind |= build(shared, connection, &mut work, round, Behind::Rollups);
            }
            if rollups && work.pathed < work.indexed {
                behind |= build(shared, connection, &mut work, round, Behind::Paths);
            }
        }
        let mut progress = shared.progress.lock().expect("index progress lock");
        progress.busy = false;
        // A hold that came in during the rounds left the rest for after it.
        behind |= progress.paused;
        shared.changed.notify_all();
    }
}

/// Folds a round of `entries` that took `took` into the indexer's measured pace: an average of
/// seconds per entry in which a round weighs by its entries (rounds of a few entries, which cost
/// mostly their transaction, count little), about the last 100,000 entries'.
fn pace(shared: &Shared, entries: u64, took: Duration) {
    if entries == 0 {
        return;
    }
    let mut progress = shared.progress.lock().expect("index progress lock");
    let round = took.as_secs_f64() / entries as f64;
    let weight = (entries as f64 / 100_000.0).min(1.0);
    let before = progress.seconds_per_entry;
    progress.seconds_per_entry = if before > 0.0 { before + weight * (round - before) } else { round };
}

/// Records the outcome of one transaction: its watermarks moved, or why it failed (then waits a
/// second before the next try). Whether to go on: it succeeded and no stop is asked.
fn record(shared: &Shared, tid: i64, result: Result<()>, moved: Moved) -> bool {
    let mut progress = shared.progress.lock().expect("index progress lock");
    let ok = match result {
        Ok(()) => {
            progress.indexed.extend(moved.indexed.map(|size| (tid, size)));
            progress.rolled.extend(moved.rolled.map(|size| (tid, size)));
            progress.pathed.extend(moved.pathed.map(|size| (tid, size)));
            progress.failure = None;
            // A stop waits for this round, not for the whole backlog (a store far behind took
            // minutes to stop); the next start goes on from here. So does a hold.
            !progress.stop && !progress.paused
        }
        Err(err) => {
            progress.failure = Some(err.to_string());
            drop(progress);
            crate::rollup::forget_names();
            std::thread::sleep(Duration::from_secs(1));
            false
        }
    };
    shared.changed.notify_all();
    ok
}

/// The watermarks a transaction moved, to where.
#[derive(Default)]
struct Moved {
    indexed: Option<u64>,
    rolled: Option<u64>,
    pathed: Option<u64>,
}

/// Indexes a tenant's committed entries a chunk at a time, folding them into the rollups and
/// the path table too when each is level with the index. Whether to go on (no failure, stop or
/// hold).
fn index_all(shared: &Shared, connection: &Connection, work: &mut Work, folds: Folds) -> bool {
    while work.indexed < work.committed {
        let (from, end) = (work.indexed, work.committed.min(work.indexed + folds.rounds.entries));
        let rollups = folds.rollups && work.rolled == from;
        let paths = folds.rollups && work.pathed == from;
        let started = Instant::now();
        let result = index_range(connection, work.tid, from, end, Folds { rollups, paths, ..folds });
        if result.is_ok() {
            pace(shared, end - from, started.elapsed());
        }
        let moved =
            Moved { indexed: Some(end), rolled: rollups.then_some(end), pathed: paths.then_some(end) };
        if !record(shared, work.tid, result, moved) {
            return false;
        }
        work.indexed = end;
        work.rolled = if rollups { end } else { work.rolled };
        work.pathed = if paths { end } else { work.pathed };
    }
    true
}

/// A table of the index file folded from the stored events while it is behind the index.
#[derive(Clone, Copy)]
enum Behind {
    Rollups,
    Paths,
}

impl Behind {
    fn watermark(self) -> &'static str {
        match self {
            Behind::Rollups => "rolled",
            Behind::Paths => "pathed",
        }
    }
}

/// Folds one chunk of a tenant's `table` that is behind its index; whether it still is.
fn build(shared: &Shared, connection: &Connection, work: &mut Work, rounds: Rounds, table: Behind) -> bool {
    let done = match table {
        Behind::Rollups => work.rolled,
        Behind::Paths => work.pathed,
    };
    let end = work.indexed.min(done + rounds.fold);
    let result = fold_range(connection, work.tid, done, end, table);
    let moved = match table {
        Behind::Rollups => Moved { rolled: Some(end), ..Moved::default() },
        Behind::Paths => Moved { pathed: Some(end), ..Moved::default() },
    };
    let done = match table {
        Behind::Rollups => &mut work.rolled,
        Behind::Paths => &mut work.pathed,
    };
    if record(shared, work.tid, result, moved) {
        *done = end;
    }
    *done < work.indexed
}

/// What an index transaction folds besides the search rows, and how it writes them.
#[derive(Clone, Copy)]
struct Folds {
    rollups: bool,
    paths: bool,
    rounds: Rounds,
    /// Entries per part of the index file, as a power of two (`parts.rs`).
    shift: u32,
}

/// An event of the insight folds from the columns of a stored row.
fn event_of(row: &rusqlite::Row<'_>, time: i64, texts: [Option<String>; 6], entry: usize) -> Result<Event> {
    let [event_type, action, outcome, actor, subject, source] = texts;
    Ok(Event::new(Row {
        index: 0,
        time: Micros(time),
        event_type: event_type.unwrap_or_default(),
        action: action.unwrap_or_default(),
        outcome: outcome.unwrap_or_default(),
        source: source.unwrap_or_default(),
        actor: actor.unwrap_or_default(),
        subject,
        entry: Some(row.get(entry).map_err(storage)?),
    }))
}

/// Folds entries `from..to` of `tid` into `table` and moves its watermark to `to`, in one
/// transaction (a table behind the index, folded from the stored events).
fn fold_range(connection: &Connection, tid: i64, from: u64, to: u64, table: Behind) -> Result<()> {
    let tx = connection.unchecked_transaction().map_err(storage)?;
    let (mut rollups, mut paths) = (Fold::default(), PathFold::default());
    {
        // The path table holds only events about a customer.
        let only = if matches!(table, Behind::Paths) { "AND subject IS NOT NULL" } else { "" };
        let mut rows = tx
            .prepare_cached(&format!(
                "SELECT time, type, action, outcome, actor, subject, source, entry
                 FROM main.events WHERE rid >= ?1 AND rid < ?2 {only} ORDER BY rid"
            ))
            .map_err(storage)?;
        let mut query = rows.query(params![rid(tid, from), rid(tid, to)]).map_err(storage)?;
        while let Some(row) = query.next().map_err(storage)? {
            let texts: Vec<Option<String>> =
                (1..7).map(|i| row.get(i)).collect::<rusqlite::Result<_>>().map_err(storage)?;
            let time = row.get(0).map_err(storage)?;
            let event = event_of(row, time, texts.try_into().expect("six columns"), 7)?;
            match table {
                Behind::Rollups => rollups.add(&event),
                Behind::Paths => paths.add(&event),
            }
        }
    }
    match table {
        Behind::Rollups => crate::rollup::write(&tx, tid, &rollups)?,
        Behind::Paths => crate::paths::write(&tx, tid, &paths)?,
    }
    tx.execute(
        &format!("INSERT OR REPLACE INTO ix.{} (tid, size) VALUES (?1, ?2)", table.watermark()),
        params![tid, to as i64],
    )
    .map_err(storage)?;
    tx.commit().map_err(storage)
}

/// Indexes entries `from..to` of `tid`, folds them into the insight rollups and the path table
/// (as `folds` says) and moves their watermarks to `to`, in one transaction of the index file.
///
/// Written for a big index: every row goes in in the order of the b-tree it lands in, so a page
/// is read and written once per transaction however many of the chunk's rows it takes, where
/// rows in log order would dirty (and spill from a small cache) one random page per row per
/// index. The search rows go in in time order, which is the order of each of `event_search`'s
/// indexes after a few values (all but the subject's); the targets sorted by their key; the folds
/// of each [`Rounds::fold`] entries sorted by theirs.
fn index_range(connection: &Connection, tid: i64, from: u64, to: u64, folds: Folds) -> Result<()> {
    let tx = connection.unchecked_transaction().map_err(storage)?;
    let (first, end) = (rid(tid, from), rid(tid, to));
    // `OR IGNORE`, not `OR REPLACE`: a statement that may fail half way (REPLACE of a NOT NULL
    // column without a default aborts) makes SQLite journal every page it changes, to a temporary
    // file. A row already there is the same row: an entry's search columns never change, and
    // rows beyond the log are deleted before it is indexed again (`drop_beyond`).
    tx.prepare_cached(
        "INSERT OR IGNORE INTO ix.event_search (rid, tid, time, type, action, outcome, actor, subject, source)
         SELECT rid, ?1, time, type, action, outcome, actor, subject, source
         FROM main.events WHERE rid >= ?2 AND rid < ?3 ORDER BY time",
    )
    .and_then(|mut insert| insert.execute(params![tid, first, end]))
    .map_err(storage)?;
    let mut targets = RoundTargets::default();
    let mut batch = FoldBatch::new(folds);
    let mut times = crate::parts::Times::default();
    {
        let mut rows = tx
            .prepare_cached(
                "SELECT rid, time, type, action, outcome, actor, subject, source, targets, entry
                 FROM main.events WHERE rid >= ?1 AND rid < ?2 ORDER BY rid",
            )
            .map_err(storage)?;
        let mut query = rows.query(params![first, end]).map_err(storage)?;
        while let Some(row) = query.next().map_err(storage)? {
            let (row_id, time): (i64, i64) = (row.get(0).map_err(storage)?, row.get(1).map_err(storage)?);
            times.note(crate::parts::of(row_id, folds.shift), time);
            targets.add(
                row.get_ref(8).and_then(|v| Ok(v.as_blob_or_null()?)).map_err(storage)?,
                time,
                row_id,
            )?;
            if folds.rollups || folds.paths {
                let texts: Vec<Option<String>> =
                    (2..8).map(|i| row.get(i)).collect::<rusqlite::Result<_>>().map_err(storage)?;
                batch.add(&tx, tid, &event_of(row, time, texts.try_into().expect("six columns"), 9)?)?;
            }
        }
    }
    batch.write(&tx, tid)?;
    targets.write(&tx, tid, folds.shift)?;
    times.write(&tx, tid)?;
    let tables = [("indexed", true), ("rolled", folds.rollups), ("pathed", folds.paths)];
    for (table, _) in tables.iter().filter(|(_, moved)| *moved) {
        tx.execute(
            &format!("INSERT OR REPLACE INTO ix.{table} (tid, size) VALUES (?1, ?2)"),
            params![tid, to as i64],
        )
        .map_err(storage)?;
    }
    tx.commit().map_err(storage)
}

/// A round's targets: their texts in one buffer and each row as ranges of it, so that a round
/// does not allocate two strings per target (with the search rows and the rollups, the targets
/// are one of the three big parts of a round).
#[derive(Default)]
struct RoundTargets {
    texts: Vec<u8>,
    /// (type, id, time, rid) of each target.
    rows: Vec<(Range<usize>, Range<usize>, i64, i64)>,
}

impl RoundTargets {
    /// Adds the targets an event stored (`events.targets`); an error for bytes
    /// [`encode_targets`] did not write.
    fn add(&mut self, stored: Option<&[u8]>, time: i64, rid: i64) -> Result<()> {
        for pair in text_pairs(stored) {
            let (kind, id) = pair?;
            let (kind, id) = (self.keep(kind.as_bytes()), self.keep(id.as_bytes()));
            self.rows.push((kind, id, time, rid));
        }
        Ok(())
    }

    fn keep(&mut self, text: &[u8]) -> Range<usize> {
        self.texts.extend_from_slice(text);
        self.texts.len() - text.len()..self.texts.len()
    }

    /// Inserts the rows in their key's order (each page of the table written once), in parts
    /// of 2^`shift` entries.
    fn write(mut self, tx: &Connection, tid: i64, shift: u32) -> Result<()> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        let texts = &self.texts;
        let key = |row: &(Range<usize>, Range<usize>, i64, i64)| {
            (crate::parts::of(row.3, shift), &texts[row.0.clone()], &texts[row.1.clone()], row.2, row.3)
        };
        self.rows.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO ix.event_targets (tid, part, type, id, time, rid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(storage)?;
        for row in &self.rows {
            let (part, kind, id, time, rid) = key(row);
            // Bound as text (checked UTF-8 in `add`), as the column's other rows are.
            let (kind, id) =
                (ToSqlOutput::Borrowed(ValueRef::Text(kind)), ToSqlOutput::Borrowed(ValueRef::Text(id)));
            insert.execute(params![tid, part, kind, id, time, rid]).map_err(storage)?;
        }
        Ok(())
    }
}

/// The insight folds of an index transaction, written every [`Rounds::fold`] entries: a fold
/// holds a few hundred bytes per customer it touched, so a whole round's would not fit the
/// indexer's memory.
struct FoldBatch {
    folds: Folds,
    entries: u64,
    fold: Fold,
    paths: PathFold,
}

impl FoldBatch {
    fn new(folds: Folds) -> FoldBatch {
        FoldBatch { folds, entries: 0, fold: Fold::default(), paths: PathFold::default() }
    }

    fn add(&mut self, tx: &Connection, tid: i64, event: &Event) -> Result<()> {
        if self.folds.rollups {
            self.fold.add(event);
        }
        if self.folds.paths {
            self.paths.add(event);
        }
        self.entries += 1;
        if self.entries == self.folds.rounds.fold {
            self.write(tx, tid)?;
        }
        Ok(())
    }

    fn write(&mut self, tx: &Connection, tid: i64) -> Result<()> {
        crate::rollup::write(tx, tid, &std::mem::take(&mut self.fold))?;
        crate::paths::write(tx, tid, &std::mem::take(&mut self.paths))?;
        self.entries = 0;
        Ok(())
    }
}

/// Index rows of `tid` at or beyond `size`, from a log that was rolled back under the index
/// (a restored backup with a newer index file), removed before use; its rollups removed and its
/// watermarks set to nothing, in one transaction, so the indexer folds every entry again.
fn drop_beyond(connection: &Connection, tid: i64, size: u64) -> Result<()> {
    let (from, end) = (rid(tid, size), rid(tid, 1 << TENANT_SHIFT));
    connection
        .execute_batch(&format!(
            "BEGIN;
             DELETE FROM ix.event_search WHERE rid >= {from} AND rid < {end};
             DELETE FROM ix.event_targets WHERE tid = {tid} AND rid >= {from} AND rid < {end};
             DELETE FROM ix.part_times WHERE tid = {tid};
             DELETE FROM ix.insight_counts WHERE tid = {tid};
             DELETE FROM ix.insight_hour_ids WHERE tid = {tid};
             DELETE FROM ix.insight_names WHERE tid = {tid};
             DELETE FROM ix.insight_paths WHERE tid = {tid};
             DELETE FROM ix.insight_kinds WHERE tid = {tid};
             UPDATE ix.indexed SET size = 0 WHERE tid = {tid};
             INSERT OR REPLACE INTO ix.rolled (tid, size) VALUES ({tid}, 0);
             INSERT OR REPLACE INTO ix.pathed (tid, size) VALUES ({tid}, 0);
             COMMIT;"
        ))
        .map_err(storage)
}

/// `table` of `tid` removed and its watermark set to nothing, in one transaction, so the
/// indexer folds it again from the stored events (names stay: their ids do not change).
fn drop_folded(connection: &Connection, tid: i64, table: Behind) -> Result<()> {
    let [first, second] = match table {
        Behind::Rollups => ["insight_counts", "insight_hour_ids"],
        Behind::Paths => ["insight_paths", "insight_kinds"],
    };
    connection
        .execute_batch(&format!(
            "BEGIN;
             DELETE FROM ix.{first} WHERE tid = {tid};
             DELETE FROM ix.{second} WHERE tid = {tid};
             INSERT OR REPLACE INTO ix.{} (tid, size) VALUES ({tid}, 0);
             COMMIT;",
            table.watermark()
        ))
        .map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An indexer over a new store whose pace is set to `seconds_per_entry`, held by its
    /// checkpointer's pauser (so it indexes nothing) until the answer's hold is dropped.
    fn held_indexer(dir: &Path, seconds_per_entry: f64) -> Indexer {
        let path = dir.join("evident.sqlite");
        drop(crate::open_writer(&path).unwrap());
        let indexer = Indexer::start(&path, crate::parts::DEFAULT_SHIFT).unwrap();
        indexer.shared.progress.lock().unwrap().seconds_per_entry = seconds_per_entry;
        indexer
    }

    #[test]
    fn commits_within_the_lag_bound_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let indexer = held_indexer(dir.path(), 1e-4);
        let pauser = indexer.pauser();
        let _held = pauser.hold(Duration::from_secs(30)).unwrap();
        indexer.committed(1, LagBound::DEFAULT);
        indexer.throttle(1, 1_000);
        let lag = indexer.lag();
        assert_eq!((lag.behind, lag.throttled_commits), (LagBound::DEFAULT, 0));
    }

    /// Beyond the bound a commit waits in proportion to its entries at the indexer's pace (here
    /// 100 µs an entry, twice that as the lag is over twice the bound), however far behind.
    #[test]
    fn commits_beyond_the_lag_bound_wait_the_indexers_time_for_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let indexer = held_indexer(dir.path(), 1e-4);
        let pauser = indexer.pauser();
        let held = pauser.hold(Duration::from_secs(30)).unwrap();
        indexer.committed(1, 10 * LagBound::DEFAULT);
        indexer.throttle(1, 1_000);
        let lag = indexer.lag();
        assert_eq!((lag.behind, lag.throttled_commits), (10 * LagBound::DEFAULT, 1));
        assert!(lag.throttled_for >= Duration::from_millis(200), "waited {:?}", lag.throttled_for);
        // A commit far bigger waits at most `MAX_WAIT`, then is acknowledged all the same.
        indexer.throttle(1, 1_000_000);
        let waited = indexer.lag().throttled_for - lag.throttled_for;
        assert!(waited >= LagBound::MAX_WAIT && waited < Indexer::MAX_WAIT, "waited {waited:?}");
        // Once the indexer may go on it catches up, and commits stop waiting.
        drop(held);
        indexer.wait_for(1).unwrap();
        indexer.throttle(1, 1_000);
        assert_eq!((indexer.lag().behind, indexer.lag().throttled_commits), (0, 2));
    }

    #[test]
    fn the_lag_bound_is_read_from_its_setting() {
        assert_eq!(LagBound::parse(None).unwrap(), LagBound { entries: Some(LagBound::DEFAULT) });
        assert_eq!(LagBound::parse(Some(" 4096 ")).unwrap(), LagBound { entries: Some(4_096) });
        let off = LagBound::parse(Some("off")).unwrap();
        assert_eq!(
            (off.entries, off.tail()),
            (None, 2 * LagBound::DEFAULT),
            "searches read the default tail"
        );
        for bad in ["", "0", "1023", "-1", "2.5", "32k", "on"] {
            let err = LagBound::parse(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("EVIDENT_INDEX_LAG_ENTRIES") && err.contains("off"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn targets_round_trip_through_their_column() {
        let targets =
            vec![("customer".to_owned(), "cust-1".to_owned()), ("pii:origin.ip".into(), "ab".into())];
        let bytes = encode_targets(&targets).unwrap();
        assert_eq!(bytes.len(), 8 + 8 + 6 + 8 + 13 + 2);
        assert_eq!(decode_targets(Some(&bytes)).unwrap(), targets);
        assert_eq!(encode_targets(&[]), None);
        assert_eq!(decode_targets(None).unwrap(), Vec::<(String, String)>::new());
        assert!(decode_targets(Some(&bytes[..bytes.len() - 1])).is_err());
    }

    /// A round's targets go in as text, in their key's order, each event's once; stored bytes
    /// that are not what `encode_targets` writes fail the round.
    #[test]
    fn a_rounds_targets_are_written_as_text_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evident.sqlite");
        drop(crate::open_writer(&path).unwrap());
        let connection = open_with_index(&path).unwrap();
        let shift = crate::parts::settle(&connection, 40).unwrap();
        let pair = |kind: &str, id: &str| (kind.to_owned(), id.to_owned());
        let mut targets = RoundTargets::default();
        let first = encode_targets(&[pair("ticket", "TCK-9"), pair("customer", "cüst-2")]).unwrap();
        let second = encode_targets(&[pair("customer", "cust-10"), pair("customer", "cust-10")]).unwrap();
        targets.add(Some(&first), 20, 1).unwrap();
        targets.add(Some(&second), 10, 2).unwrap();
        targets.add(None, 30, 3).unwrap();
        targets.write(&connection, 1, shift).unwrap();
        let mut statement =
            connection.prepare("SELECT typeof(type), type, id, time, rid FROM ix.event_targets").unwrap();
        let rows: Vec<(String, String, String, i64, i64)> = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let text =
            |kind: &str, id: &str, time, rid| ("text".to_owned(), kind.to_owned(), id.to_owned(), time, rid);
        assert_eq!(
            rows,
            [
                text("customer", "cust-10", 10, 2),
                text("customer", "cüst-2", 20, 1),
                text("ticket", "TCK-9", 20, 1)
            ]
        );
        let mut bad = RoundTargets::default();
        assert!(matches!(bad.add(Some(&first[..first.len() - 1]), 1, 1), Err(Error::Integrity(_))));
        let not_utf8 = [1, 0, 0, 0, 0xff, 1, 0, 0, 0, b'x'];
        assert!(matches!(bad.add(Some(&not_utf8), 1, 1), Err(Error::Integrity(_))));
    }
}
