//! The embedded store: SQLite (bundled) in WAL mode with `synchronous=FULL`, so a committed group
//! is on disk before the engine acknowledges it. One writer connection, a small pool of readers.
//!
//! The only crate besides the PostgreSQL one that knows SQL; the schema is in `schema.sql`. With
//! the `bench-peer` feature, [`peer`] is the load tool's baseline: the same rows without tamper
//! evidence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use evident_core::event::TenantPolicy;
use evident_core::store::{
    ApiKeyRecord, Column, Commit, Condition, EventIndex, Existing, KeyStore, LeafTiles, LogHead, LogStore,
    NewDataKey, Role, ScannedEntry, SearchPlan, StoredEvent, TenantId, answer_tile,
};
use evident_core::{Error, Result};
use evident_tlog::{TileId, TreeSize};
use evident_wire::Micros;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

mod index;
mod insight;
mod parts;
mod paths;
#[cfg(feature = "bench-peer")]
pub mod peer;
mod rollup;
mod streams;

use index::{Indexer, Pauser, decode_targets, encode_targets, index_path, open_with_index};

/// 2: `events.idempotency` (`evident_core::privacy::idempotency`) replaced version 1's
/// `content_hash`, an unsalted hash of the whole event that personal values could be guessed from.
/// 3: the secondary indexes and `event_targets` moved to the index file ([`index`]), off the
/// commit; `events.targets` holds each event's targets for the indexer.
/// 4: level-0 partial tiles are no longer stored (`evident_core::store::keeps_tile`): read as
/// the leaf hashes of their entries; version 3's rows of them are deleted.
const SCHEMA_VERSION: &str = "4";

/// The store's schema: tables and indexes.
const SCHEMA: &str = include_str!("schema.sql");
const TENANT_SHIFT: u32 = 40;
const MAX_READERS: usize = 8;

/// Row id of a tenant's entry.
fn rid(tid: i64, index: u64) -> i64 {
    (tid << TENANT_SHIFT) + index as i64
}

fn storage(err: rusqlite::Error) -> Error {
    Error::Unavailable(format!("sqlite: {err}"))
}

/// The embedded store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    tenant_ids: RwLock<HashMap<TenantId, i64>>,
    /// The head's level-0 tile of each log as last read (it is not stored).
    leaf_tiles: LeafTiles,
    /// Keeps the index file up with the logs; dropped (stopped) before the checkpointer.
    indexer: Indexer,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: Checkpointer,
}

/// Moves committed pages from the WAL into the database file in the background, so the commit
/// path (and so acknowledgement latency) never pays for it. Durability does not depend on it:
/// a commit is durable once its WAL frames are synced.
///
/// SQLite starts the WAL over (writes from its beginning again) only when a write transaction
/// begins with every frame copied and no reader in the WAL; under steady commits a background
/// copy never ends that way (frames arrive while it copies), so the WAL grew until a blocking
/// `TRUNCATE` held every writer back, for seconds, until the readers of older snapshots were done
/// (p99 acknowledgement 2.9 s at 64 x 100). Now, once the WAL is past [`Self::RESTART_BYTES`],
/// the checkpointer copies in passes without holding writers back until at most
/// [`Self::LOCKED_FRAMES`] are left, then copies those holding the writer's lock, so the next
/// commit starts the WAL over; writers wait for milliseconds of frames, not for readers.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
    /// Past this the WAL is started over (and cut back to it: `journal_size_limit`); see
    /// [`Self::restart_bytes`].
    const RESTART_BYTES: u64 = 64 << 20;
    /// Most frames copied while writers wait.
    const LOCKED_FRAMES: i64 = 2_048;
    /// Passes without the lock before giving up until the next interval (a reader of an old
    /// snapshot keeps frames from being copied).
    const PASSES: usize = 4;
    /// Past this (a reader held an old snapshot for long) the checkpointer truncates the WAL,
    /// holding writers back until those readers are done.
    const MAX_WAL_BYTES: u64 = 1 << 30;

    /// Longest wait for the indexer's transaction under way before starting the WAL over.
    const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

    /// Starts checkpointing the store at `path`, whose commits `writer` makes and whose indexer
    /// (none for the plain-SQLite peer) `indexer` holds.
    fn start(path: &Path, writer: Arc<Mutex<Connection>>, indexer: Option<Pauser>) -> Result<Checkpointer> {
        let connection = open_connection(path)?;
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let restart_bytes = Self::restart_bytes()?;
        writer
            .lock()
            .expect("writer lock")
            .execute_batch(&format!("PRAGMA journal_size_limit = {restart_bytes}"))
            .map_err(storage)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("evident-checkpt".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::INTERVAL)
                {
                    let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    if len > Self::MAX_WAL_BYTES {
                        let _ = checkpoint(&connection, "TRUNCATE");
                    } else if len > restart_bytes {
                        Self::start_over(&connection, &writer, indexer.as_ref());
                    } else {
                        let _ = checkpoint(&connection, "PASSIVE");
                    }
                }
                let _ = checkpoint(&connection, "PASSIVE");
            })
            .map_err(|err| Error::Unavailable(format!("cannot start the checkpointer: {err}")))?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
    }

    /// [`Self::RESTART_BYTES`], or `EVIDENT_WAL_RESTART_BYTES` (for tests that cannot write
    /// 64 MiB of WAL).
    fn restart_bytes() -> Result<u64> {
        let Ok(text) = std::env::var("EVIDENT_WAL_RESTART_BYTES") else { return Ok(Self::RESTART_BYTES) };
        match text.trim().parse::<u64>() {
            Ok(bytes) if bytes >= 4096 => Ok(bytes),
            _ => Err(Error::InvalidArgument(format!(
                "EVIDENT_WAL_RESTART_BYTES is {text:?}: it must be a whole number of bytes, at least 4096 \
                 (unset it for the default of {})",
                Self::RESTART_BYTES
            ))),
        }
    }

    /// Holds the indexer (the one long reader of the main file) between its transactions, copies
    /// the WAL in passes until few frames are left, then the rest holding the writer's lock, so
    /// that the next commit starts the WAL over.
    fn start_over(connection: &Connection, writer: &Mutex<Connection>, indexer: Option<&Pauser>) {
        let _held = match indexer.map(|indexer| indexer.hold(Self::MAX_HOLD)) {
            Some(None) => return,
            held => held,
        };
        for _ in 0..Self::PASSES {
            match checkpoint(connection, "PASSIVE") {
                Ok(left) if left <= Self::LOCKED_FRAMES => {
                    let writer = writer.lock().expect("writer lock");
                    let _ = checkpoint(&writer, "PASSIVE");
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// One `wal_checkpoint` in `mode` on `connection`: the frames of the WAL it could not copy.
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<i64> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(row.get::<_, i64>(1)? - row.get::<_, i64>(2)?)
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    /// A commit's data keys, in its transaction: a key made for it is stored unless the subject
    /// has one; a key named as stored must be the subject's ([`NewDataKey::stored`]).
    fn write_data_keys(&self, tx: &rusqlite::Transaction<'_>, keys: &[NewDataKey]) -> Result<()> {
        let mut insert_key = tx
            .prepare_cached("INSERT OR IGNORE INTO data_keys (tid, subject, wrapped) VALUES (?1, ?2, ?3)")
            .map_err(storage)?;
        let mut read_key = tx
            .prepare_cached("SELECT wrapped FROM data_keys WHERE tid = ?1 AND subject = ?2")
            .map_err(storage)?;
        for key in keys {
            let tid = self.tid(&key.tenant)?;
            if !key.stored {
                insert_key.execute(params![tid, key.subject, key.wrapped]).map_err(storage)?;
                continue;
            }
            let stored: Option<Vec<u8>> = read_key
                .query_row(params![tid, key.subject], |row| row.get(0))
                .optional()
                .map_err(storage)?;
            if stored.as_ref() != Some(&key.wrapped) {
                return Err(evident_core::store::data_key_changed(&key.tenant));
            }
        }
        Ok(())
    }

    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with_index_parts(path, parts::DEFAULT_SHIFT)
    }

    /// Opens the store at `path` as [`SqliteStore::open`] does, except that a new index file
    /// (a new store's, or one deleted to be built again) keeps its customer-keyed indexes in
    /// parts of 2^`shift` entries instead of 2^18: tests, to read across many parts with few
    /// entries. An existing index file keeps its own parts.
    pub fn open_with_index_parts(path: &Path, shift: u32) -> Result<SqliteStore> {
        let mut writer = open_writer(path)?;
        let version: Option<String> = writer
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |row| row.get(0))
            .optional()
            .map_err(storage)?;
        match version.as_deref() {
            None => {
                writer
                    .execute("INSERT INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA_VERSION])
                    .map_err(storage)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some("1") => {
                migrate_from_v1(&mut writer)?;
                migrate_from_v2(&mut writer)?;
                migrate_from_v3(&mut writer)?;
            }
            Some("2") => {
                migrate_from_v2(&mut writer)?;
                migrate_from_v3(&mut writer)?;
            }
            Some("3") => migrate_from_v3(&mut writer)?,
            Some(other) => {
                return Err(Error::Unavailable(format!(
                    "{} has schema version {other}; this build knows {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        let writer = Arc::new(Mutex::new(writer));
        let indexer = Indexer::start(path, shift)?;
        let pauser = indexer.pauser();
        let store = SqliteStore {
            path: path.to_owned(),
            writer: Arc::clone(&writer),
            readers: Mutex::new(Vec::new()),
            tenant_ids: RwLock::new(HashMap::new()),
            leaf_tiles: LeafTiles::default(),
            indexer,
            _checkpointer: Checkpointer::start(path, writer, Some(pauser))?,
        };
        store.load_tenant_ids()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_tenant_ids(&self) -> Result<()> {
        let writer = self.writer.lock().expect("writer lock");
        let mut statement = writer.prepare("SELECT tid, name FROM tenants").map_err(storage)?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .map_err(storage)?;
        let mut ids = self.tenant_ids.write().expect("tenant ids lock");
        for row in rows {
            let (tid, name) = row.map_err(storage)?;
            ids.insert(TenantId::new(&name)?, tid);
        }
        Ok(())
    }

    fn tid(&self, tenant: &TenantId) -> Result<i64> {
        self.tenant_ids
            .read()
            .expect("tenant ids lock")
            .get(tenant)
            .copied()
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant}")))
    }

    /// Runs `f` on a reader connection from the pool (the index file attached as `ix`).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let connection = self.readers.lock().expect("readers lock").pop();
        let connection = match connection {
            Some(connection) => connection,
            None => open_with_index(&self.path)?,
        };
        let result = f(&connection).map_err(storage);
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() < MAX_READERS {
            readers.push(connection);
        }
        result
    }
}

/// Page cache of the writer (it touches the most pages) and of each other connection, in KiB.
/// The writer's was 64 MiB: heaptrack put SQLite's page caches at 124 MiB of a 141 MiB heap peak
/// during ingest, and the process peaked at 292 MiB on a 10M store against issue 18's 300 MB.
/// At 32 MiB, ingesting 1,000,000 events peaked at 242 and 244 MiB against 274 and 271 MiB, at
/// 0.98x the rate (alternated runs of `bench/ingest-rss.sh`, `bench/README.md`). Once commits
/// ran at 35,000 events/s (the WAL started over without blocking), heaptrack put the writer's
/// cache at 90 MB of a 196 MB heap peak (dirty pages beyond the limit while a commit runs): at
/// 16 MiB, 1,500,000 events of `hammer` 8 x 100 peaked at 302 against 322 MiB at the same rate.
const WRITER_CACHE_KIB: i64 = 16_384;
const OTHER_CACHE_KIB: i64 = 8_192;
/// Page cache of the indexer's connection for the index file (`ix`), in KiB: SQLite's default
/// (an attached file does not take the `cache_size` set for `main`). 64 MiB indexed a store
/// 5,000,000 entries behind about 1.25 times faster (1,700 against 1,330 entries/s, still
/// bound by the random-key indexes' page writes) but cost about 40 MB of RSS already at 400,000
/// events, against issue 18's 300 MB goal: `bench/README.md`, insight at 10M.
pub(crate) const INDEXER_CACHE_KIB: i64 = 2_000;
/// WAL pages after which the indexer's commit copies the index file's WAL into it (SQLite's
/// `wal_autocheckpoint`; its default is 1,000). Each such copy ends in an fsync of the index
/// file, which the commits' own fsyncs then queue behind on the same disk: with 16,000 pages
/// (64 MiB of WAL at most) a lone producer's p99 fell from 0.76-0.89 to 0.55-0.67 ms and its rate
/// rose 1.03x-1.08x, 8 x 100 1.04x-1.19x (`bench/README.md`, sixth session).
pub(crate) const INDEXER_WAL_PAGES: i64 = 16_000;

fn open_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(storage)?;
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 10000;
             PRAGMA cache_size = -{OTHER_CACHE_KIB};
             PRAGMA temp_store = MEMORY;
             PRAGMA secure_delete = ON;"
        ))
        .map_err(storage)?;
    index::add_target_function(&connection)?;
    Ok(connection)
}

/// The writer: the schema in place, no automatic checkpoints (the [`Checkpointer`] does them off
/// the commit path), the larger cache.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let writer = open_connection(path)?;
    writer.execute_batch(SCHEMA).map_err(storage)?;
    writer
        .execute_batch(&format!("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
        .map_err(storage)?;
    Ok(writer)
}

/// Version 3 to 4, in one transaction: the level-0 partial tiles version 3 kept (one per log, the
/// rightmost, rewritten by every commit) are deleted; reads derive them from the entries, and a
/// later full tile is written as before. Reads never trust a level-0 row that is not full, so a
/// row left by anything else changes no answer.
fn migrate_from_v3(writer: &mut Connection) -> Result<()> {
    let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
    tx.execute(&format!("DELETE FROM tiles WHERE level = 0 AND length(data) < {}", 32 * 256), [])
        .map_err(storage)?;
    tx.execute("UPDATE meta SET value = '4' WHERE key = 'schema'", []).map_err(storage)?;
    tx.commit().map_err(storage)
}

/// Version 2 to 3, in one transaction: each event's targets (search tokens included) copied
/// from `event_targets` into its row, then that table and the secondary indexes of `events`
/// dropped (`secure_delete` zeroes their pages). The indexer rebuilds them in the index file.
fn migrate_from_v2(writer: &mut Connection) -> Result<()> {
    let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
    let mut targets: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    let exists = |kind: &str, name: &str| -> Result<bool> {
        tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = ?1 AND name = ?2",
            [kind, name],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(storage)
    };
    if exists("table", "event_targets")? {
        let mut statement =
            tx.prepare("SELECT rid, type, id FROM event_targets ORDER BY rid, type, id").map_err(storage)?;
        let rows =
            statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).map_err(storage)?;
        for row in rows {
            let (rid, kind, id): (i64, String, String) = row.map_err(storage)?;
            targets.entry(rid).or_default().push((kind, id));
        }
    }
    let has_column: i64 = tx
        .query_row("SELECT count(*) FROM pragma_table_info('events') WHERE name = 'targets'", [], |row| {
            row.get(0)
        })
        .map_err(storage)?;
    if has_column == 0 {
        tx.execute_batch("ALTER TABLE events ADD COLUMN targets BLOB").map_err(storage)?;
    }
    {
        let mut update = tx.prepare("UPDATE events SET targets = ?1 WHERE rid = ?2").map_err(storage)?;
        for (rid, targets) in targets {
            update.execute(params![encode_targets(&targets), rid]).map_err(storage)?;
        }
    }
    tx.execute_batch(
        "DROP TABLE IF EXISTS event_targets;
         DROP INDEX IF EXISTS events_time; DROP INDEX IF EXISTS events_actor;
         DROP INDEX IF EXISTS events_subject; DROP INDEX IF EXISTS events_type;
         DROP INDEX IF EXISTS events_action; DROP INDEX IF EXISTS events_outcome;
         DROP INDEX IF EXISTS events_source;",
    )
    .map_err(storage)?;
    tx.execute("UPDATE meta SET value = '3' WHERE key = 'schema'", []).map_err(storage)?;
    tx.commit().map_err(storage)?;
    // An index file from before is stale: the indexer starts again from nothing.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!(
            "{}{suffix}",
            index_path(Path::new(writer.path().unwrap_or_default())).display()
        ));
    }
    Ok(())
}

/// Version 1 to 2: renames `content_hash` to `idempotency` and replaces every stored unsalted
/// hash of a whole event by the legacy idempotency digest recomputed from its entry (which holds
/// nothing personal), in one transaction; then rewrites the file (`secure_delete` and `VACUUM`)
/// and truncates the WAL so that the old hashes are in no page of either.
fn migrate_from_v1(writer: &mut Connection) -> Result<()> {
    let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
    tx.execute_batch("ALTER TABLE events RENAME COLUMN content_hash TO idempotency").map_err(storage)?;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut statement = tx.prepare("SELECT rid, entry FROM events").map_err(storage)?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)?
    };
    {
        let mut update = tx.prepare("UPDATE events SET idempotency = ?1 WHERE rid = ?2").map_err(storage)?;
        for (rid, entry) in rows {
            let digest = evident_core::privacy::idempotency::legacy_from_entry(&entry)?;
            update.execute(params![digest.to_bytes(), rid]).map_err(storage)?;
        }
    }
    tx.execute("UPDATE meta SET value = '2' WHERE key = 'schema'", []).map_err(storage)?;
    tx.commit().map_err(storage)?;
    writer.execute_batch("VACUUM").map_err(storage)?;
    truncate_wal(writer, "main")
}

/// Copies every page of the WAL into the file and truncates the WAL to nothing, so older page
/// images (an erased key's, say) are gone from it. Waits for readers of older snapshots
/// (`busy_timeout`) and for a checkpoint the [`Checkpointer`] is running (which SQLite answers
/// with `SQLITE_BUSY` at once); fails, to be retried, if that takes over ten seconds.
/// `schema` is the database's name on `connection` (`main`, or `ix` for the index file, whose
/// checkpoint the indexer's round under way keeps from finishing).
fn truncate_wal(connection: &Connection, schema: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pragma = format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)");
    loop {
        let busy = match connection.query_row(&pragma, [], |row| row.get::<_, i64>(0)) {
            Ok(busy) => busy != 0,
            Err(rusqlite::Error::SqliteFailure(code, _))
                if code.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                true
            }
            Err(err) => return Err(storage(err)),
        };
        if !busy {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Unavailable(
                "the WAL could not be truncated: the database stayed busy".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn stored_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let rid: i64 = row.get(0)?;
    let event_id: Vec<u8> = row.get(1)?;
    let seal_subject: Option<String> = row.get(4)?;
    let sealed: Option<Vec<u8>> = row.get(5)?;
    Ok(StoredEvent {
        index: (rid & ((1i64 << TENANT_SHIFT) - 1)) as u64,
        event_id: event_id.as_slice().try_into().unwrap_or([0; 16]),
        time: Micros(row.get(2)?),
        entry: row.get(3)?,
        sealed: seal_subject.zip(sealed),
    })
}

/// The events a search's SQL answers.
fn stored_events(
    connection: &Connection,
    (sql, values): (String, Vec<rusqlite::types::Value>),
) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values.iter()), stored_event)?;
    rows.collect()
}

/// Most distinct types a type prefix is searched over one by one (more: as one range).
const MAX_PREFIX_WALKS: usize = 32;

const EVENT_COLUMNS: &str = "e.rid, e.event_id, e.time, e.entry, e.seal_subject, e.sealed";

impl LogStore for SqliteStore {
    fn create_tenant(&self, tenant: &TenantId, policy: &TenantPolicy) -> Result<bool> {
        let writer = self.writer.lock().expect("writer lock");
        let inserted = writer
            .execute(
                "INSERT OR IGNORE INTO tenants (name, policy, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.as_str(), policy.to_stored(), Micros::now().0],
            )
            .map_err(storage)?;
        let tid: i64 = writer
            .query_row("SELECT tid FROM tenants WHERE name = ?1", [tenant.as_str()], |row| row.get(0))
            .map_err(storage)?;
        if tid >= 1 << (63 - TENANT_SHIFT) {
            return Err(Error::Unavailable("too many tenants for this store".into()));
        }
        self.tenant_ids.write().expect("tenant ids lock").insert(tenant.clone(), tid);
        Ok(inserted == 1)
    }

    fn tenants(&self) -> Result<Vec<(TenantId, TenantPolicy)>> {
        let rows = self.read(|c| {
            let mut statement = c.prepare("SELECT name, policy FROM tenants ORDER BY name")?;
            let rows =
                statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(name, policy)| Ok((TenantId::new(&name)?, TenantPolicy::from_stored(&policy)?)))
            .collect()
    }

    fn head(&self, tenant: &TenantId) -> Result<Option<LogHead>> {
        let tid = self.tid(tenant)?;
        let row = self.read(|c| {
            c.query_row("SELECT size, checkpoint FROM logs WHERE tid = ?1", [tid], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .optional()
        })?;
        Ok(row.map(|(size, checkpoint)| LogHead { size: TreeSize(size as u64), checkpoint }))
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<LogHead>> {
        let tid = self.tid(tenant)?;
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT size, note FROM checkpoints WHERE tid = ?1
                 UNION SELECT size, checkpoint FROM logs WHERE tid = ?1 ORDER BY size",
            )?;
            let rows = statement.query_map([tid], |row| {
                Ok(LogHead { size: TreeSize(row.get::<_, i64>(0)? as u64), checkpoint: row.get(1)? })
            })?;
            rows.collect()
        })
    }

    fn keep_checkpoint(&self, tenant: &TenantId, checkpoint: &LogHead) -> Result<()> {
        let tid = self.tid(tenant)?;
        let writer = self.writer.lock().expect("writer lock");
        writer
            .execute(
                "INSERT OR IGNORE INTO checkpoints (tid, size, note) VALUES (?1, ?2, ?3)",
                params![tid, checkpoint.size.0 as i64, checkpoint.checkpoint],
            )
            .map(|_| ())
            .map_err(storage)
    }

    fn read_tiles(&self, tenant: &TenantId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        let tid = self.tid(tenant)?;
        let found = self.read(|c| {
            let mut statement =
                c.prepare_cached("SELECT data FROM tiles WHERE tid = ?1 AND level = ?2 AND idx = ?3")?;
            tiles
                .iter()
                .map(|tile| {
                    statement
                        .query_row(params![tid, tile.level, tile.index as i64], |row| {
                            row.get::<_, Vec<u8>>(0)
                        })
                        .optional()
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        tiles
            .iter()
            .zip(found)
            .map(|(tile, data)| {
                answer_tile(tenant, tile, data, &self.leaf_tiles, |leaves| {
                    self.entries(tenant, leaves.start, leaves.end)
                })
            })
            .collect()
    }

    fn entries(&self, tenant: &TenantId, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let tid = self.tid(tenant)?;
        if start >= end {
            return Ok(Vec::new());
        }
        let end = end.min(1 << TENANT_SHIFT);
        self.read(|c| {
            let mut statement =
                c.prepare_cached("SELECT entry FROM events WHERE rid >= ?1 AND rid < ?2 ORDER BY rid")?;
            let rows = statement.query_map([rid(tid, start), rid(tid, end)], |row| row.get(0))?;
            rows.collect()
        })
    }

    fn scan_entries(&self, tenant: &TenantId, start: u64, limit: usize) -> Result<Vec<ScannedEntry>> {
        let tid = self.tid(tenant)?;
        let start = start.min(1 << TENANT_SHIFT);
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT rid, event_id, entry FROM events WHERE rid >= ?1 AND rid < ?2 ORDER BY rid LIMIT ?3",
            )?;
            let rows =
                statement.query_map(params![rid(tid, start), rid(tid + 1, 0), limit as i64], |row| {
                    let rid: i64 = row.get(0)?;
                    let event_id: Vec<u8> = row.get(1)?;
                    Ok(ScannedEntry {
                        index: (rid & ((1i64 << TENANT_SHIFT) - 1)) as u64,
                        event_id: event_id.as_slice().try_into().unwrap_or([0; 16]),
                        entry: row.get(2)?,
                    })
                })?;
            rows.collect()
        })
    }

    fn find_existing(&self, tenant: &TenantId, keys: &[(&str, &str)]) -> Result<Vec<Option<Existing>>> {
        let tid = self.tid(tenant)?;
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT rid, event_id, idempotency FROM events WHERE tid = ?1 AND source = ?2 AND producer_id = ?3",
            )?;
            keys.iter()
                .map(|(source, id)| {
                    statement
                        .query_row(params![tid, source, id], |row| {
                            let rid: i64 = row.get(0)?;
                            let event_id: Vec<u8> = row.get(1)?;

                            Ok(Existing {
                                index: (rid & ((1i64 << TENANT_SHIFT) - 1)) as u64,
                                event_id: event_id.as_slice().try_into().unwrap_or([0; 16]),
                                idempotency: row.get(2)?,
                            })
                        })
                        .optional()
                })
                .collect()
        })
    }

    fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<Vec<u8>>> {
        let tid = self.tid(tenant)?;
        self.read(|c| {
            c.prepare_cached("SELECT wrapped FROM data_keys WHERE tid = ?1 AND subject = ?2")?
                .query_row(params![tid, subject], |row| row.get(0))
                .optional()
        })
    }

    fn data_key_names(&self, tenant: &TenantId, subject: Option<&str>) -> Result<Vec<String>> {
        let tid = self.tid(tenant)?;
        self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT subject FROM data_keys WHERE tid = ?1
                 AND (?2 IS NULL OR subject = ?2 OR substr(subject, 1, length(?2) + 1) = ?2 || char(31))
                 ORDER BY subject",
            )?;
            let rows = statement.query_map(params![tid, subject], |row| row.get(0))?;
            rows.collect()
        })
    }

    fn forget_search_tokens(&self, tenant: &TenantId, subject: &str) -> Result<u64> {
        let tid = self.tid(tenant)?;
        // Everything committed is indexed first, so no token of the subject is still on its way.
        self.indexer.wait_for(tid)?;
        let writer = self.writer.lock().expect("writer lock");
        forget_tokens(&writer, &self.path, tid, subject)
    }

    fn replace_data_key(&self, tenant: &TenantId, name: &str, wrapped: &[u8]) -> Result<bool> {
        let tid = self.tid(tenant)?;
        let writer = self.writer.lock().expect("writer lock");
        let updated = writer
            .execute(
                "UPDATE data_keys SET wrapped = ?3 WHERE tid = ?1 AND subject = ?2",
                params![tid, name, wrapped],
            )
            .map_err(storage)?;
        Ok(updated == 1)
    }

    fn erase_data_key(&self, tenant: &TenantId, subject: &str) -> Result<bool> {
        let tid = self.tid(tenant)?;
        let writer = self.writer.lock().expect("writer lock");
        // Overwrite before deleting (and `secure_delete` zeroes what a delete frees), so the
        // wrapped key lingers in no page of the file.
        writer
            .execute(
                "UPDATE data_keys SET wrapped = zeroblob(length(wrapped)) WHERE tid = ?1 AND subject = ?2",
                params![tid, subject],
            )
            .map_err(storage)?;
        let deleted = writer
            .execute("DELETE FROM data_keys WHERE tid = ?1 AND subject = ?2", params![tid, subject])
            .map_err(storage)?;
        truncate_wal(&writer, "main")?;
        Ok(deleted == 1)
    }

    fn commit(&self, commit: &Commit) -> Result<()> {
        if commit.fence.is_some() || !commit.answered.is_empty() {
            return Err(Error::InvalidArgument(
                "the embedded store has one node: it takes no fenced commits and no inbox answers".into(),
            ));
        }
        let mut writer = self.writer.lock().expect("writer lock");
        let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        {
            self.write_data_keys(&tx, &commit.data_keys)?;
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO events (rid, tid, event_id, source, producer_id, idempotency, time, recorded_at,
                        type, action, outcome, actor, subject, entry, seal_subject, sealed, targets)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(storage)?;
            let mut put_tile = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO tiles (tid, level, idx, data) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(storage)?;
            for log in &commit.logs {
                let tid = self.tid(&log.tenant)?;
                let current: Option<i64> = tx
                    .prepare_cached("SELECT size FROM logs WHERE tid = ?1")
                    .and_then(|mut s| s.query_row([tid], |row| row.get(0)).optional())
                    .map_err(storage)?;
                if current.unwrap_or(0) as u64 != log.old_size.0 {
                    return Err(Error::Conflict(format!(
                        "log of {} is at size {}, not {}: another writer moved it",
                        log.tenant,
                        current.unwrap_or(0),
                        log.old_size
                    )));
                }
                for entry in &log.entries {
                    let row = rid(tid, entry.index);
                    let (seal_subject, sealed) = match &entry.sealed {
                        Some((subject, sealed)) => (Some(subject.as_str()), Some(sealed.as_slice())),
                        None => (None, None),
                    };
                    insert_event
                        .execute(params![
                            row,
                            tid,
                            entry.event_id.as_slice(),
                            entry.source,
                            entry.producer_id,
                            entry.idempotency,
                            entry.time.0,
                            entry.recorded_at.0,
                            entry.event_type,
                            entry.action,
                            entry.outcome,
                            entry.actor,
                            entry.subject,
                            entry.entry,
                            seal_subject,
                            sealed,
                            encode_targets(&entry.targets),
                        ])
                        .map_err(|err| match err {
                            rusqlite::Error::SqliteFailure(code, _)
                                if code.code == rusqlite::ErrorCode::ConstraintViolation =>
                            {
                                Error::Conflict(format!(
                                    "entry {} of {} is already stored",
                                    entry.index, log.tenant
                                ))
                            }
                            other => storage(other),
                        })?;
                }
                for (tile, data) in &log.tiles {
                    put_tile.execute(params![tid, tile.level, tile.index as i64, data]).map_err(storage)?;
                }
                if log.keep_checkpoint {
                    tx.prepare_cached("INSERT INTO checkpoints (tid, size, note) VALUES (?1, ?2, ?3)")
                        .and_then(|mut s| s.execute(params![tid, log.new_size.0 as i64, log.checkpoint]))
                        .map_err(storage)?;
                }
                tx.prepare_cached("INSERT OR REPLACE INTO logs (tid, size, checkpoint) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![tid, log.new_size.0 as i64, log.checkpoint]))
                    .map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)?;
        let mut told = Vec::with_capacity(commit.logs.len());
        for log in &commit.logs {
            let tid = self.tid(&log.tenant)?;
            self.indexer.committed(tid, log.new_size.0);
            told.push((tid, log.entries.len() as u64));
        }
        // Durable, and the writer free for the checkpointer (which holds the indexer) before
        // the acknowledgement waits for an index that is too far behind.
        drop(writer);
        for (tid, entries) in told {
            self.indexer.throttle(tid, entries);
        }
        Ok(())
    }

    /// `events_key` (tid, source, producer id) is unique: the insert of a stored key fails, and
    /// `commit` answers it as a conflict with nothing written.
    fn refuses_duplicate_entries(&self) -> bool {
        true
    }
}

impl EventIndex for SqliteStore {
    fn event_by_id(&self, tenant: &TenantId, event_id: &[u8; 16]) -> Result<Option<StoredEvent>> {
        let tid = self.tid(tenant)?;
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.event_id = ?1 AND e.tid = ?2"
            ))?
            .query_row(params![event_id.as_slice(), tid], stored_event)
            .optional()
        })
    }

    fn event_by_index(&self, tenant: &TenantId, index: u64) -> Result<Option<StoredEvent>> {
        let tid = self.tid(tenant)?;
        if index >= 1 << TENANT_SHIFT {
            return Ok(None);
        }
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.rid = ?1"))?
                .query_row([rid(tid, index)], stored_event)
                .optional()
        })
    }

    fn search(&self, tenant: &TenantId, plan: &SearchPlan) -> Result<Vec<StoredEvent>> {
        let tid = self.tid(tenant)?;
        self.indexer.wait_for_search(tid)?;
        let prefix = plan.conditions().into_iter().find_map(|condition| match condition {
            Condition::Prefix(Column::EventType, prefix) if plan.target().is_none() => Some(prefix),
            _ => None,
        });
        self.read(|c| {
            // One snapshot of each file, the index's first: the index holds the entries below
            // its watermark, and the main file, read after it, every entry committed before.
            let snapshot = c.unchecked_transaction()?;
            let indexed = parts::indexed(&snapshot, tid)?;
            let types = match prefix {
                Some(prefix) => types_with_prefix(&snapshot, tid, prefix, MAX_PREFIX_WALKS)?,
                None => None,
            };
            let mut found = match &types {
                Some(types) if types.is_empty() => Vec::new(),
                Some(types) => stored_events(&snapshot, prefix_search_sql(tid, plan, types))?,
                None if by_part(plan) => {
                    part_search(&snapshot, tid, indexed as u64, self.indexer.shift, plan)?
                }
                None => stored_events(&snapshot, search_sql(tid, plan))?,
            };
            found.extend(stored_events(&snapshot, tail_search_sql(tid, indexed, plan))?);
            // Both parts are in the page's order; together, the page is their first `limit`.
            found.sort_by_key(|event| (event.time, event.index));
            if plan.descending() {
                found.reverse();
            }
            found.truncate(plan.limit);
            Ok(found)
        })
    }

    fn insight(&self) -> Option<&dyn evident_core::insight::InsightIndex> {
        Some(self)
    }

    fn index_progress(&self) -> Option<evident_core::store::IndexProgress> {
        Some(self.indexer.lag())
    }
}

impl KeyStore for SqliteStore {
    fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let tid = self.tid(&key.tenant)?;
        let writer = self.writer.lock().expect("writer lock");
        writer
            .execute(
                "INSERT INTO api_keys (key_id, tid, role, secret_hash, global, label, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.key_id,
                    tid,
                    key.role.as_str(),
                    key.secret_hash.as_slice(),
                    key.global,
                    key.label,
                    key.created_at.0,
                    key.revoked_at.map(|t| t.0)
                ],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let rows = self.read(|c| {
            let mut statement = c.prepare_cached(&format!("{KEY_SELECT} WHERE k.key_id = ?1"))?;
            let rows = statement.query_map([key_id], key_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().next().map(key_record).transpose()
    }

    fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>> {
        let tid = tenant.map(|t| self.tid(t)).transpose()?;
        let rows = self.read(|c| {
            let mut statement = c.prepare_cached(&format!(
                "{KEY_SELECT} WHERE ?1 IS NULL OR k.tid = ?1 ORDER BY k.created_at, k.key_id"
            ))?;
            let rows = statement.query_map([tid], key_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(key_record).collect()
    }

    fn revoke_api_key(&self, key_id: &str, at: Micros) -> Result<bool> {
        let writer = self.writer.lock().expect("writer lock");
        let changed = writer
            .execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
                params![key_id, at.0],
            )
            .map_err(storage)?;
        Ok(changed == 1)
    }

    fn check_writable(&self) -> Result<()> {
        let writer = self.writer.lock().expect("writer lock");
        writer.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").map_err(storage)
    }

    fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read(|connection| {
            connection
                .query_row("SELECT value FROM service_state WHERE name = ?1", [name], |row| row.get(0))
                .optional()
        })
    }

    fn put_state(&self, name: &str, value: &[u8]) -> Result<()> {
        let writer = self.writer.lock().expect("writer lock");
        writer
            .execute(
                "INSERT INTO service_state (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map(|_| ())
            .map_err(storage)
    }

    fn delete_state(&self, name: &str) -> Result<bool> {
        let writer = self.writer.lock().expect("writer lock");
        let deleted = writer.execute("DELETE FROM service_state WHERE name = ?1", [name]).map_err(storage)?;
        Ok(deleted > 0)
    }

    fn state_names(&self, prefix: &str) -> Result<Vec<String>> {
        // BINARY collation: the range is exactly the names that begin with `prefix`.
        let end = evident_core::store::prefix_end(prefix);
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT name FROM service_state WHERE name >= ?1 AND (?2 IS NULL OR name < ?2) ORDER BY name",
            )?;
            let names = statement.query_map(params![prefix, end], |row| row.get(0))?;
            names.collect()
        })
    }
}

const KEY_SELECT: &str =
    "SELECT k.key_id, t.name, k.role, k.secret_hash, k.global, k.label, k.created_at, k.revoked_at
     FROM api_keys k JOIN tenants t ON t.tid = k.tid";

type KeyRow = (String, String, String, Vec<u8>, bool, Option<String>, i64, Option<i64>);

fn key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn key_record(
    (key_id, tenant, role, hash, global, label, created_at, revoked_at): KeyRow,
) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id,
        tenant: TenantId::new(&tenant)?,
        role: Role::parse(&role)
            .ok_or_else(|| Error::Integrity(format!("stored key has unknown role {role:?}")))?,
        secret_hash: hash
            .as_slice()
            .try_into()
            .map_err(|_| Error::Integrity("stored key hash is not 32 bytes".into()))?,
        global,
        label,
        created_at: Micros(created_at),
        revoked_at: revoked_at.map(Micros),
    })
}

/// Builds the SQL of a search, over the index file (`ix`), that [`by_part`] does not walk: through
/// the index of the most selective given column of `event_search`.
fn search_sql(tid: i64, plan: &SearchPlan) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut values: Vec<V> = vec![V::Integer(tid)];
    let mut conditions = vec!["s.tid = ?1".to_owned()];
    let direction = if plan.descending() { "DESC" } else { "ASC" };
    for condition in plan.conditions() {
        conditions.push(condition_sql(condition, &mut values, tid, plan, ("s", "s.time", "s.rid")));
    }
    values.push(V::Integer(plan.limit as i64));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM ix.event_search s JOIN events e ON e.rid = s.rid WHERE {} \
         ORDER BY s.time {direction}, s.rid {direction} LIMIT ?{}",
        conditions.join(" AND "),
        values.len()
    );
    (sql, values)
}

/// Whether a search walks an index keyed by part first (`parts.rs`): the targets with a target
/// filter, else the subject index with a subject condition.
fn by_part(plan: &SearchPlan) -> bool {
    plan.target().is_some()
        || plan.conditions().iter().any(|c| {
            matches!(c, Condition::Equals(Column::Subject, _) | Condition::Prefix(Column::Subject, _))
        })
}

/// A position in a page's order: (time, rid), reversed for a page of the newest.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PageKey {
    time: i64,
    rid: i64,
    descending: bool,
}

impl Ord for PageKey {
    fn cmp(&self, other: &PageKey) -> std::cmp::Ordering {
        let order = (self.time, self.rid).cmp(&(other.time, other.rid));
        if self.descending { order.reverse() } else { order }
    }
}

impl PartialOrd for PageKey {
    fn partial_cmp(&self, other: &PageKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A search that [`by_part`] walks: each part of the index's entries in the page's direction,
/// cut at the page so far ([`parts::walk`]), then the page's events from their rows.
fn part_search(
    connection: &Connection,
    tid: i64,
    indexed: u64,
    shift: u32,
    plan: &SearchPlan,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let descending = plan.descending();
    let parts = parts::of_log(tid, indexed, shift);
    let parts: Box<dyn Iterator<Item = i64>> =
        if descending { Box::new(parts.rev()) } else { Box::new(parts) };
    let (whole, values) = part_search_sql(tid, plan, shift, false);
    let (cut_off, _) = part_search_sql(tid, plan, shift, true);
    let times = parts::Times::of_log(connection, tid)?;
    let page = parts::walk(parts, plan.limit, |part, cut: Option<PageKey>| {
        // A part whose events are all older than the page's last (newer, for a page of the
        // oldest) has nothing for it.
        if cut.is_some_and(|cut| !times.may_reach(part, cut.time, descending)) {
            return Ok(Vec::new());
        }
        let mut statement = connection.prepare_cached(if cut.is_some() { &cut_off } else { &whole })?;
        let bound = [part].into_iter().chain(cut.into_iter().flat_map(|cut| [cut.time, cut.rid]));
        let values = values.iter().cloned().chain(bound.map(rusqlite::types::Value::Integer));
        let keys = statement.query_map(params_from_iter(values), |row| {
            Ok(PageKey { time: row.get(0)?, rid: row.get(1)?, descending })
        })?;
        keys.collect()
    })?;
    // The page's rows in one statement; the caller puts them in the page's order.
    let rids = serde_json::to_string(&page.iter().map(|key| key.rid).collect::<Vec<_>>())
        .expect("integers serialize");
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.rid IN (SELECT value FROM json_each(?1))");
    stored_events(connection, (sql, vec![rusqlite::types::Value::Text(rids)]))
}

/// The SQL of one part's walk in a search by target or subject ([`part_search`]): the (time,
/// rid) of the part's first matches in the page's order, up to the page's limit; with `cut`, only
/// those before a position. The caller binds the part and the cut's time and rid after `values`.
fn part_search_sql(
    tid: i64,
    plan: &SearchPlan,
    shift: u32,
    cut: bool,
) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut values: Vec<V> = vec![V::Integer(tid)];
    let mut conditions = vec!["s.tid = ?1".to_owned()];
    let (from, part, time_column, rid_column) = match plan.target() {
        Some((target_type, target_id)) => {
            values.extend([V::Text(target_type.to_owned()), V::Text(target_id.to_owned())]);
            conditions.push("t.tid = ?1 AND t.type = ?2 AND t.id = ?3".to_owned());
            (
                "ix.event_targets t JOIN ix.event_search s ON s.rid = t.rid",
                "t.part".to_owned(),
                "t.time",
                "t.rid",
            )
        }
        // The expression of the subject index, so that SQLite walks it (`parts::subject_index`).
        None => {
            ("ix.event_search s INDEXED BY search_subject", format!("(s.rid >> {shift})"), "s.time", "s.rid")
        }
    };
    for condition in plan.conditions() {
        conditions.push(condition_sql(condition, &mut values, tid, plan, ("s", time_column, rid_column)));
    }
    values.push(V::Integer(plan.limit as i64));
    let limit = values.len();
    conditions.push(format!("{part} = ?{}", limit + 1));
    if cut {
        let comparison = if plan.descending() { ">" } else { "<" };
        conditions.push(format!(
            "({time_column}, {rid_column}) {comparison} (?{}, ?{})",
            limit + 2,
            limit + 3
        ));
    }
    let direction = if plan.descending() { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {time_column}, {rid_column} FROM {from} WHERE {} \
         ORDER BY {time_column} {direction}, {rid_column} {direction} LIMIT ?{limit}",
        conditions.join(" AND ")
    );
    (sql, values)
}

/// A type prefix without a target, over the few distinct `types` it covers: one walk of the type
/// index per type, each already in time order and cut at the limit, then merged. (A range over
/// the type index would read and sort every matching row before the first page.)
fn prefix_search_sql(tid: i64, plan: &SearchPlan, types: &[String]) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut values: Vec<V> = vec![V::Integer(tid)];
    let mut conditions = vec!["s.tid = ?1".to_owned()];
    for condition in plan.conditions() {
        if !matches!(condition, Condition::Prefix(Column::EventType, _)) {
            conditions.push(condition_sql(condition, &mut values, tid, plan, ("s", "s.time", "s.rid")));
        }
    }
    values.push(V::Integer(plan.limit as i64));
    let limit = values.len();
    let direction = if plan.descending() { "DESC" } else { "ASC" };
    let walks: Vec<String> = types
        .iter()
        .map(|kind| {
            values.push(V::Text(kind.clone()));
            format!(
                "SELECT rid, time FROM (SELECT s.rid, s.time FROM ix.event_search s WHERE {} AND s.type = ?{} \
                 ORDER BY s.time {direction}, s.rid {direction} LIMIT ?{limit})",
                conditions.join(" AND "),
                values.len()
            )
        })
        .collect();
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM ({}) u JOIN events e ON e.rid = u.rid \
         ORDER BY u.time {direction}, u.rid {direction} LIMIT ?{limit}",
        walks.join(" UNION ALL ")
    );
    (sql, values)
}

/// The SQL of a search over the entries of `tid` at and above the index's watermark `indexed`,
/// read from their rows in the main file (which hold the search columns and the targets), cut
/// at the page's limit.
fn tail_search_sql(tid: i64, indexed: u64, plan: &SearchPlan) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut values: Vec<V> =
        vec![V::Integer(tid), V::Integer(rid(tid, indexed)), V::Integer(rid(tid + 1, 0))];
    // `+e.tid`: no index on it, so the walk is the rows' key range, never `events_key` (tid, ...)
    // over every row of the tenant.
    let mut conditions = vec!["+e.tid = ?1 AND e.rid >= ?2 AND e.rid < ?3".to_owned()];
    if let Some((target_type, target_id)) = plan.target() {
        values.extend([V::Text(target_type.to_owned()), V::Text(target_id.to_owned())]);
        conditions.push(format!("evident_has_target(e.targets, ?{}, ?{})", values.len() - 1, values.len()));
    }
    for condition in plan.conditions() {
        conditions.push(condition_sql(condition, &mut values, tid, plan, ("e", "e.time", "e.rid")));
    }
    values.push(V::Integer(plan.limit as i64));
    let direction = if plan.descending() { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE {} ORDER BY e.time {direction}, e.rid {direction} LIMIT ?{}",
        conditions.join(" AND "),
        values.len()
    );
    (sql, values)
}

/// The distinct event types of a tenant that begin with `prefix`, one seek of the type index
/// each; `None` when there are more than `max` (then a range serves better than a walk per type).
fn types_with_prefix(
    connection: &Connection,
    tid: i64,
    prefix: &str,
    max: usize,
) -> rusqlite::Result<Option<Vec<String>>> {
    let end = evident_core::store::prefix_end(prefix);
    let mut next = connection.prepare_cached(
        "SELECT type FROM ix.event_search WHERE tid = ?1 AND type > ?2 AND (?3 IS NULL OR type < ?3) \
         ORDER BY type LIMIT 1",
    )?;
    let mut first = connection.prepare_cached(
        "SELECT type FROM ix.event_search WHERE tid = ?1 AND type >= ?2 AND (?3 IS NULL OR type < ?3) \
         ORDER BY type LIMIT 1",
    )?;
    let mut types: Vec<String> = Vec::new();
    let mut found = first.query_row(params![tid, prefix, end], |row| row.get(0)).optional()?;
    while let Some(kind) = found {
        if types.len() == max {
            return Ok(None);
        }
        found = next.query_row(params![tid, kind, end], |row| row.get(0)).optional()?;
        types.push(kind);
    }
    Ok(Some(types))
}

/// One condition of a search as SQL, its values appended to `values` (`?1` is the tenant).
fn condition_sql(
    condition: Condition,
    values: &mut Vec<rusqlite::types::Value>,
    tid: i64,
    plan: &SearchPlan,
    (table, time_column, rid_column): (&str, &str, &str),
) -> String {
    use rusqlite::types::Value as V;
    let n = values.len() + 1;
    let comparison = if plan.descending() { "<" } else { ">" };
    match condition {
        Condition::Equals(column, value) => {
            values.push(V::Text(value.to_owned()));
            format!("{table}.{} = ?{n}", column_name(column))
        }
        Condition::Prefix(column, prefix) => {
            // BINARY collation compares UTF-8 bytes: the range is exactly the prefix's texts.
            values.push(V::Text(prefix.to_owned()));
            match evident_core::store::prefix_end(prefix) {
                Some(end) => {
                    values.push(V::Text(end));
                    format!("{table}.{0} >= ?{n} AND {table}.{0} < ?{1}", column_name(column), n + 1)
                }
                None => format!("{table}.{} >= ?{n}", column_name(column)),
            }
        }
        Condition::TimeAtLeast(time) => {
            values.push(V::Integer(time.0));
            format!("{time_column} >= ?{n}")
        }
        Condition::TimeBefore(time) => {
            values.push(V::Integer(time.0));
            format!("{time_column} < ?{n}")
        }
        Condition::After(position) => {
            values.extend([V::Integer(position.time.0), V::Integer(rid(tid, position.index))]);
            format!("({time_column}, {rid_column}) {comparison} (?{n}, ?{})", n + 1)
        }
    }
}

/// The column a condition compares, in `event_search` and in `events` alike.
fn column_name(column: Column) -> &'static str {
    match column {
        Column::Actor => "actor",
        Column::Subject => "subject",
        Column::EventType => "type",
        Column::Action => "action",
        Column::Outcome => "outcome",
        Column::Source => "source",
    }
}

/// Deletes the search tokens of the events sealed under `subject` (or its sub-keys) from the
/// index file, then from the events' `targets` column, so a rebuilt index cannot bring them
/// back; truncates the index file's WAL so no older page image keeps them.
fn forget_tokens(writer: &Connection, path: &Path, tid: i64, subject: &str) -> Result<u64> {
    const SEALED_UNDER: &str = "tid = ?1 AND (seal_subject = ?2
        OR substr(seal_subject, 1, length(?2) + 1) = ?2 || char(31)) AND targets IS NOT NULL";
    let index = open_with_index(path)?;
    // Durable at commit, whatever the indexer's own connection does: a deleted token must not
    // come back after a power cut.
    index.execute_batch("PRAGMA ix.synchronous = FULL").map_err(storage)?;
    let deleted = index
        .execute(
            &format!(
                "DELETE FROM ix.event_targets WHERE tid = ?1 AND substr(type, 1, 4) = 'pii:' AND rid IN
                 (SELECT rid FROM main.events WHERE {SEALED_UNDER})"
            ),
            params![tid, subject],
        )
        .map_err(storage)?;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut statement = writer
            .prepare(&format!("SELECT rid, targets FROM events WHERE {SEALED_UNDER}"))
            .map_err(storage)?;
        let rows = statement
            .query_map(params![tid, subject], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(storage)?;
        rows.collect::<rusqlite::Result<_>>().map_err(storage)?
    };
    let tx = writer.unchecked_transaction().map_err(storage)?;
    for (rid, targets) in rows {
        let kept: Vec<(String, String)> = decode_targets(Some(&targets))?
            .into_iter()
            .filter(|(kind, _)| !kind.starts_with(evident_core::privacy::search::TARGET_PREFIX))
            .collect();
        tx.execute("UPDATE events SET targets = ?1 WHERE rid = ?2", params![encode_targets(&kept), rid])
            .map_err(storage)?;
    }
    tx.commit().map_err(storage)?;
    // The deleted tokens' old page images go with the WAL, once the indexer's round (if one is
    // under way) lets the checkpoint finish.
    truncate_wal(&index, "ix")?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_wire::filter::{Filter, Order};

    /// The tail of a search is walked by the rows' key range whatever its filter: an index that
    /// begins with the tenant (`events_key`) would walk every row of the tenant instead (a
    /// timeline page took 336 ms on a 300,000-event store that way).
    #[test]
    fn a_tail_search_walks_the_rows_key_range() {
        let dir = tempfile::tempdir().unwrap();
        let connection = open_writer(&dir.path().join("evident.sqlite")).unwrap();
        let filters = [
            Filter::default(),
            Filter { subject: Some("cust-1".into()), ..Filter::default() },
            Filter { actor: Some("agent-1".into()), source: Some("//crm".into()), ..Filter::default() },
            Filter { target: Some(("customer".into(), "cust-1".into())), ..Filter::default() },
            Filter::from_pairs([("type", "customer.*")]).unwrap(),
        ];
        for filter in &filters {
            for order in [Order::NewestFirst, Order::OldestFirst] {
                let plan = SearchPlan { filter, order, after: None, limit: 50 };
                let steps = query_plan(&connection, tail_search_sql(1, 10, &plan));
                assert!(steps[0].contains("INTEGER PRIMARY KEY"), "{filter:?}: {steps:?}");
            }
        }
    }

    /// What SQLite's plan for `sql` does, step by step.
    fn query_plan(
        connection: &Connection,
        (sql, values): (String, Vec<rusqlite::types::Value>),
    ) -> Vec<String> {
        let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps = statement.query_map(params_from_iter(values.iter()), |row| row.get(3)).unwrap();
        steps.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// A part's walk by target seeks the targets' key by part, a part's walk by subject the
    /// subject index by its part expression, with or without a cut: not every part's rows of an
    /// index, nor another index.
    #[test]
    fn a_walk_of_one_part_seeks_its_part_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evident.sqlite");
        drop(open_writer(&path).unwrap());
        let connection = open_with_index(&path).unwrap();
        let shift = parts::settle(&connection, parts::DEFAULT_SHIFT).unwrap();
        let cases = [
            (
                Filter { target: Some(("customer".into(), "cust-1".into())), ..Filter::default() },
                "USING PRIMARY KEY (tid=? AND part=? AND type=? AND id=?",
            ),
            (
                Filter { subject: Some("cust-1".into()), ..Filter::default() },
                "INDEX search_subject (tid=? AND <expr>=? AND subject=?",
            ),
            (
                Filter { subject: Some("cust-1".into()), actor: Some("agent-1".into()), ..Filter::default() },
                "INDEX search_subject (tid=? AND <expr>=? AND subject=?",
            ),
        ];
        for (filter, walk) in &cases {
            for (order, cut) in [(Order::NewestFirst, false), (Order::OldestFirst, true)] {
                let plan = SearchPlan { filter, order, after: None, limit: 50 };
                let (sql, mut values) = part_search_sql(1, &plan, shift, cut);
                // The part, and the cut's time and rid.
                let bound = if cut { 3 } else { 1 };
                values.extend([1, 2, 3].map(rusqlite::types::Value::Integer).into_iter().take(bound));
                let steps = query_plan(&connection, (sql, values));
                assert!(steps[0].contains(walk), "{filter:?}: {steps:?}");
                assert!(!steps.iter().any(|step| step.contains("TEMP B-TREE")), "{filter:?}: {steps:?}");
            }
        }
    }
}
