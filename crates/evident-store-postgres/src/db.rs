//! The operations of the store, as async functions over the connection pool. They run on the
//! store's own runtime (see `PgStore::run`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError};
use evident_core::event::TenantPolicy;
use evident_core::store::{
    ApiKeyRecord, Commit, Existing, LeafTiles, Lease, LogHead, NewEntry, Role, ScannedEntry, StoredEvent,
    TenantId, stored_tile,
};
use evident_core::{Error, Result};
use evident_tlog::{TileId, TreeSize};
use evident_wire::Micros;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::search::{EVENT_COLUMNS, Param};

/// A pooled connection.
pub(crate) type Client = deadpool_postgres::Client;

/// The pool and what the store caches: tenant numbers (tenants are never deleted) and the
/// monthly partitions known to exist.
pub(crate) struct Db {
    pool: Pool,
    /// The sequencer's own connection (idempotency lookups and commits), so a burst of other
    /// work, such as producers storing new subjects' keys, never makes a commit wait for one.
    writer: Pool,
    /// `host:port` of the server, for messages.
    server: String,
    schema: String,
    tenant_ids: RwLock<HashMap<TenantId, i64>>,
    /// The head's level-0 tile of each log as last read (it is not stored).
    leaf_tiles: LeafTiles,
    pub(crate) partitions: Mutex<HashSet<String>>,
}

/// The text of a PostgreSQL error: the server's own message when it sent one.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failed statement: the store is unavailable (the caller may retry).
pub(crate) fn failed(err: tokio_postgres::Error) -> Error {
    Error::Unavailable(format!("postgres: {}", describe(&err)))
}

/// A failed write of a commit: a unique key already taken means the commit conflicts with what is
/// stored (an entry at the same index, key or id), anything else is [`failed`].
fn write_failed(err: tokio_postgres::Error) -> Error {
    match err.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => Error::Conflict(format!(
            "already stored ({}): {}",
            db.constraint().unwrap_or("a unique key"),
            db.detail().unwrap_or(db.message())
        )),
        _ => failed(err),
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn bytes<const N: usize>(value: &[u8]) -> [u8; N] {
    value.try_into().unwrap_or([0; N])
}

fn stored_event(row: &Row) -> StoredEvent {
    let event_id: Vec<u8> = row.get(1);
    let seal_subject: Option<String> = row.get(4);
    let sealed: Option<Vec<u8>> = row.get(5);
    StoredEvent {
        index: row.get::<_, i64>(0) as u64,
        event_id: bytes(&event_id),
        time: Micros(row.get(2)),
        entry: row.get(3),
        sealed: seal_subject.zip(sealed),
    }
}

/// Runs a statement prepared once per connection.
async fn query(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.query(&statement, params).await.map_err(failed)
}

async fn query_opt(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.query_opt(&statement, params).await.map_err(failed)
}

async fn execute(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.execute(&statement, params).await.map_err(write_failed)
}

const KEY_SELECT: &str =
    "SELECT k.key_id, t.name, k.role, k.secret_hash, k.global, k.label, k.created_at, k.revoked_at
     FROM api_keys k JOIN tenants t ON t.tid = k.tid";

fn key_record(row: &Row) -> Result<ApiKeyRecord> {
    let role: String = row.get(2);
    let hash: Vec<u8> = row.get(3);
    Ok(ApiKeyRecord {
        key_id: row.get(0),
        tenant: TenantId::new(row.get(1))?,
        role: Role::parse(&role)
            .ok_or_else(|| Error::Integrity(format!("stored key has unknown role {role:?}")))?,
        secret_hash: hash
            .as_slice()
            .try_into()
            .map_err(|_| Error::Integrity("stored key hash is not 32 bytes".into()))?,
        global: row.get(4),
        label: row.get(5),
        created_at: Micros(row.get(6)),
        revoked_at: row.get::<_, Option<i64>>(7).map(Micros),
    })
}

/// The rows one commit adds to `events`, `event_keys`, `event_ids` and `event_targets`, as the
/// columns of an `UNNEST`.
#[derive(Default)]
struct EntryColumns<'a> {
    tid: Vec<i64>,
    idx: Vec<i64>,
    recorded_at: Vec<i64>,
    event_id: Vec<&'a [u8]>,
    source: Vec<&'a str>,
    producer_id: Vec<&'a str>,
    idempotency: Vec<&'a [u8]>,
    time: Vec<i64>,
    event_type: Vec<&'a str>,
    action: Vec<&'a str>,
    outcome: Vec<&'a str>,
    actor: Vec<&'a str>,
    subject: Vec<Option<&'a str>>,
    entry: Vec<&'a [u8]>,
    seal_subject: Vec<Option<&'a str>>,
    sealed: Vec<Option<&'a [u8]>>,
    target_tid: Vec<i64>,
    target_type: Vec<&'a str>,
    target_id: Vec<&'a str>,
    target_time: Vec<i64>,
    target_idx: Vec<i64>,
    target_recorded_at: Vec<i64>,
}

/// A fenced commit must hold a lease of every log it writes.
fn check_fence_covers_logs(commit: &Commit) -> Result<()> {
    if let Some(fence) = &commit.fence
        && let Some(log) = commit.logs.iter().find(|log| !fence.leases.iter().any(|(t, _)| *t == log.tenant))
    {
        return Err(Error::InvalidArgument(format!(
            "the commit writes the log of {} but its fence holds no lease of it",
            log.tenant
        )));
    }
    Ok(())
}

/// Every column a commit writes: the parameters of [`COMMIT`], whatever the commit holds.
struct CommitColumns<'a> {
    /// The fence's node, `None` without a fence.
    node: Option<&'a str>,
    /// Per log: tenant, size before and after, the new head's checkpoint.
    head_tids: Vec<i64>,
    old_sizes: Vec<i64>,
    new_sizes: Vec<i64>,
    heads: Vec<&'a str>,
    entries: EntryColumns<'a>,
    key_tids: Vec<i64>,
    subjects: Vec<&'a str>,
    wrapped: Vec<&'a [u8]>,
    /// Per data key: checked rather than stored ([`evident_core::store::NewDataKey::stored`]).
    key_stored: Vec<bool>,
    tiles: TileColumns<'a>,
    /// The kept checkpoints: tenant, size, note.
    log_tids: Vec<i64>,
    sizes: Vec<i64>,
    notes: Vec<&'a str>,
    tickets: Vec<i64>,
    answers: Vec<&'a [u8]>,
    /// The fence's leases, by `(tid, epoch)`, sorted and without repeats.
    lease_tids: Vec<i64>,
    epochs: Vec<i64>,
}

impl<'a> CommitColumns<'a> {
    fn new(commit: &'a Commit, tids: &HashMap<&TenantId, i64>) -> CommitColumns<'a> {
        let mut entries = EntryColumns::default();
        for log in &commit.logs {
            for entry in &log.entries {
                entries.push(tids[&log.tenant], entry);
            }
        }
        let mut leases: Vec<(i64, i64)> = match &commit.fence {
            Some(fence) => fence.leases.iter().map(|(tenant, epoch)| (tids[tenant], int(*epoch))).collect(),
            None => Vec::new(),
        };
        leases.sort_unstable();
        leases.dedup();
        let (lease_tids, epochs) = leases.into_iter().unzip();
        // The checkpoints kept in the history; the head (`logs`) holds the latest either way.
        let kept = || commit.logs.iter().filter(|log| log.keep_checkpoint);
        CommitColumns {
            node: commit.fence.as_ref().map(|fence| fence.node.as_str()),
            head_tids: commit.logs.iter().map(|log| tids[&log.tenant]).collect(),
            old_sizes: commit.logs.iter().map(|log| int(log.old_size.0)).collect(),
            new_sizes: commit.logs.iter().map(|log| int(log.new_size.0)).collect(),
            heads: commit.logs.iter().map(|log| log.checkpoint.as_str()).collect(),
            entries,
            key_tids: commit.data_keys.iter().map(|k| tids[&k.tenant]).collect(),
            subjects: commit.data_keys.iter().map(|k| k.subject.as_str()).collect(),
            wrapped: commit.data_keys.iter().map(|k| k.wrapped.as_slice()).collect(),
            key_stored: commit.data_keys.iter().map(|k| k.stored).collect(),
            tiles: TileColumns::new(commit, tids),
            log_tids: kept().map(|log| tids[&log.tenant]).collect(),
            sizes: kept().map(|log| int(log.new_size.0)).collect(),
            notes: kept().map(|log| log.checkpoint.as_str()).collect(),
            tickets: commit.answered.iter().map(|(ticket, _)| int(*ticket)).collect(),
            answers: commit.answered.iter().map(|(_, answer)| answer.as_slice()).collect(),
            lease_tids,
            epochs,
        }
    }

    /// The parameters of [`COMMIT`], in its order.
    fn params(&self) -> [&(dyn ToSql + Sync); 42] {
        let (rows, tiles) = (&self.entries, &self.tiles);
        [
            &self.lease_tids,
            &self.epochs,
            &self.node,
            &self.head_tids,
            &self.old_sizes,
            &self.new_sizes,
            &self.heads,
            &self.key_tids,
            &self.subjects,
            &self.wrapped,
            &rows.tid,
            &rows.idx,
            &rows.recorded_at,
            &rows.event_id,
            &rows.source,
            &rows.producer_id,
            &rows.idempotency,
            &rows.time,
            &rows.event_type,
            &rows.action,
            &rows.outcome,
            &rows.actor,
            &rows.subject,
            &rows.entry,
            &rows.seal_subject,
            &rows.sealed,
            &rows.target_tid,
            &rows.target_type,
            &rows.target_id,
            &rows.target_time,
            &rows.target_idx,
            &rows.target_recorded_at,
            &tiles.tid,
            &tiles.level,
            &tiles.index,
            &tiles.data,
            &self.log_tids,
            &self.sizes,
            &self.notes,
            &self.tickets,
            &self.answers,
            &self.key_stored,
        ]
    }
}

impl<'a> EntryColumns<'a> {
    fn push(&mut self, tid: i64, entry: &'a NewEntry) {
        let idx = int(entry.index);
        self.tid.push(tid);
        self.idx.push(idx);
        self.recorded_at.push(entry.recorded_at.0);
        self.event_id.push(&entry.event_id);
        self.source.push(&entry.source);
        self.producer_id.push(&entry.producer_id);
        self.idempotency.push(&entry.idempotency);
        self.time.push(entry.time.0);
        self.event_type.push(&entry.event_type);
        self.action.push(&entry.action);
        self.outcome.push(&entry.outcome);
        self.actor.push(&entry.actor);
        self.subject.push(entry.subject.as_deref());
        self.entry.push(&entry.entry);
        self.seal_subject.push(entry.sealed.as_ref().map(|(subject, _)| subject.as_str()));
        self.sealed.push(entry.sealed.as_ref().map(|(_, sealed)| sealed.as_slice()));
        // An entry may name a target twice; its row is written once.
        for (i, (target_type, target_id)) in entry.targets.iter().enumerate() {
            if entry.targets[..i].iter().any(|(t, id)| t == target_type && id == target_id) {
                continue;
            }
            self.target_tid.push(tid);
            self.target_type.push(target_type);
            self.target_id.push(target_id);
            self.target_time.push(entry.time.0);
            self.target_idx.push(idx);
            self.target_recorded_at.push(entry.recorded_at.0);
        }
    }
}

/// The tiles a commit puts, as the columns of an `UNNEST`.
#[derive(Default)]
struct TileColumns<'a> {
    tid: Vec<i64>,
    level: Vec<i32>,
    index: Vec<i64>,
    data: Vec<&'a [u8]>,
}

impl<'a> TileColumns<'a> {
    /// One row per (tenant, level, index), the last given winning, as one upsert may not touch
    /// a row twice.
    fn new(commit: &'a Commit, tids: &HashMap<&TenantId, i64>) -> TileColumns<'a> {
        let mut tiles: HashMap<(i64, i32, i64), &[u8]> = HashMap::new();
        for log in &commit.logs {
            for (tile, data) in &log.tiles {
                tiles.insert((tids[&log.tenant], i32::from(tile.level), int(tile.index)), data);
            }
        }
        let mut columns = TileColumns::default();
        for ((tid, level, index), data) in tiles {
            columns.tid.push(tid);
            columns.level.push(level);
            columns.index.push(index);
            columns.data.push(data);
        }
        columns
    }
}

/// The conflict of a fenced commit some of whose leases this node no longer holds.
fn lease_lost(commit: &Commit, tids: &HashMap<&TenantId, i64>, held: &[Row]) -> Error {
    let fence = commit.fence.as_ref().expect("a fence was checked");
    let held: HashSet<i64> = held.iter().map(|row| row.get(0)).collect();
    let lost: Vec<String> = fence
        .leases
        .iter()
        .filter(|(tenant, _)| !held.contains(&tids[tenant]))
        .map(|(tenant, epoch)| format!("{tenant} (epoch {epoch})"))
        .collect();
    Error::Conflict(format!(
        "lease lost: node {} no longer holds the lease of {}",
        fence.node,
        lost.join(", ")
    ))
}

/// A whole commit in one statement, so in one round trip: sent alone (its own implicit
/// transaction), it commits at its `Sync`, and its answer comes after the commit is durable.
///
/// The main query runs first: it locks the fence's lease rows ($1 to $3; none without a
/// fence), moves each log's head by compare-and-swap on its size ($4 to $7; a first head is
/// inserted, or written over one of size 0), and divides by zero unless every lease was held
/// and every head moved and every data key the entries were sealed with that it does not store
/// ($8 to $10 where $42 is true) is the subject's stored one, which aborts the statement before
/// any row is written. The inserts,
/// which no part of the main query reads, then run to completion: a duplicate entry fails one
/// of the small unique tables (`event_keys`, `event_ids`) as a unique violation. The entries'
/// columns ($11 to $26) are sent once and read by the three tables that hold them.
const COMMIT: &str = "WITH held AS (SELECT l.tid FROM leases l
        JOIN UNNEST($1::bigint[], $2::bigint[]) AS q (tid, epoch) ON l.tid = q.tid AND l.epoch = q.epoch
        WHERE l.node = $3::text AND l.expires_at > clock_timestamp()
        ORDER BY l.tid FOR UPDATE OF l),
    heads AS (SELECT * FROM UNNEST($4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
        AS h (tid, old_size, new_size, checkpoint)),
    moved AS (UPDATE logs l SET size = h.new_size, checkpoint = h.checkpoint FROM heads h
        WHERE l.tid = h.tid AND h.old_size > 0 AND l.size = h.old_size RETURNING 1),
    started AS (INSERT INTO logs AS l (tid, size, checkpoint)
        SELECT tid, new_size, checkpoint FROM heads WHERE old_size = 0
        ON CONFLICT (tid) DO UPDATE SET size = excluded.size, checkpoint = excluded.checkpoint
        WHERE l.size = 0 RETURNING 1),
    keys AS (SELECT * FROM UNNEST($8::bigint[], $9::text[], $10::bytea[], $42::boolean[])
        AS k (tid, subject, wrapped, stored)),
    put_data_keys AS (INSERT INTO data_keys (tid, subject, wrapped)
        SELECT tid, subject, wrapped FROM keys WHERE NOT stored
        ON CONFLICT (tid, subject) DO NOTHING),
    put_event_keys AS (INSERT INTO event_keys (tid, source, producer_id, idx, event_id, idempotency, recorded_at)
        SELECT * FROM UNNEST($11::bigint[], $15::text[], $16::text[], $12::bigint[], $14::bytea[],
            $17::bytea[], $13::bigint[])),
    put_event_ids AS (INSERT INTO event_ids (event_id, tid, idx, recorded_at)
        SELECT * FROM UNNEST($14::bytea[], $11::bigint[], $12::bigint[], $13::bigint[])),
    put_events AS (INSERT INTO events (tid, idx, recorded_at, event_id, source, producer_id, idempotency,
            time, type, action, outcome, actor, subject, entry, seal_subject, sealed)
        SELECT * FROM UNNEST($11::bigint[], $12::bigint[], $13::bigint[], $14::bytea[], $15::text[],
            $16::text[], $17::bytea[], $18::bigint[], $19::text[], $20::text[], $21::text[], $22::text[],
            $23::text[], $24::bytea[], $25::text[], $26::bytea[])),
    put_targets AS (INSERT INTO event_targets (tid, type, id, time, idx, recorded_at)
        SELECT * FROM UNNEST($27::bigint[], $28::text[], $29::text[], $30::bigint[], $31::bigint[],
            $32::bigint[])),
    put_tiles AS (INSERT INTO tiles (tid, level, idx, data)
        SELECT * FROM UNNEST($33::bigint[], $34::integer[], $35::bigint[], $36::bytea[])
        ON CONFLICT (tid, level, idx) DO UPDATE SET data = excluded.data),
    put_checkpoints AS (INSERT INTO checkpoints (tid, size, note)
        SELECT * FROM UNNEST($37::bigint[], $38::bigint[], $39::text[])),
    answer AS (UPDATE inbox i SET answer = q.answer, answered_at = now()
        FROM UNNEST($40::bigint[], $41::bytea[]) AS q (ticket, answer) WHERE i.ticket = q.ticket)
    SELECT 1 / ((SELECT count(*) FROM held) = cardinality($1::bigint[])
        AND (SELECT count(*) FROM moved) + (SELECT count(*) FROM started) = cardinality($4::bigint[])
        AND NOT EXISTS (SELECT FROM keys k WHERE k.stored AND NOT EXISTS (SELECT FROM data_keys d
            WHERE d.tid = k.tid AND d.subject = k.subject AND d.wrapped = k.wrapped)))::int";

/// The leases of a fence this node still holds, read after a commit refused for a lost one.
const HELD_LEASES: &str = "SELECT l.tid FROM leases l
    JOIN UNNEST($1::bigint[], $2::bigint[]) AS q (tid, epoch) ON l.tid = q.tid AND l.epoch = q.epoch
    WHERE l.node = $3 AND l.expires_at > clock_timestamp()";

/// Takes the lease if it is free or expired (epoch + 1), renews it for its holder (same epoch);
/// no row when another node holds it. One statement, by the database's clock.
const ACQUIRE_LEASE: &str = "INSERT INTO leases AS l (tid, node, epoch, expires_at)
    VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (tid) DO UPDATE SET
        epoch = CASE WHEN l.node = excluded.node AND l.expires_at > clock_timestamp()
                     THEN l.epoch ELSE l.epoch + 1 END,
        node = excluded.node,
        expires_at = excluded.expires_at
    WHERE l.node = excluded.node OR l.expires_at <= clock_timestamp()
    RETURNING l.epoch";

/// Stores a subject's key unless one is stored, and answers the stored one (none when another
/// session stored one after this statement began: asked again). Its transaction commits without
/// waiting for the disk (`synchronous_commit` off for it alone): the commits of entries sealed
/// with the key check it ([`COMMIT`]), and their own wait for the disk covers the key too, as
/// the write-ahead log is flushed in order.
const ENSURE_DATA_KEY: &str = "WITH inserted AS (
        INSERT INTO data_keys (tid, subject, wrapped) VALUES ($1, $2, $3)
        ON CONFLICT (tid, subject) DO NOTHING RETURNING wrapped)
    SELECT coalesce((SELECT wrapped FROM inserted),
            (SELECT wrapped FROM data_keys WHERE tid = $1 AND subject = $2)),
        set_config('synchronous_commit', 'off', true)";

impl Db {
    pub(crate) fn new(pool: Pool, writer: Pool, server: String, schema: String) -> Db {
        Db {
            pool,
            writer,
            server,
            schema,
            tenant_ids: RwLock::new(HashMap::new()),
            leaf_tiles: LeafTiles::default(),
            partitions: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// `host:port` of the server, for messages.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Whether [`Db::close`] was called.
    pub(crate) fn closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Closes the pool: idle connections are dropped, later requests fail.
    pub(crate) fn close(&self) {
        self.pool.close();
        self.writer.close();
    }

    pub(crate) async fn client(&self) -> Result<Client> {
        self.checkout(&self.pool).await
    }

    async fn writer_client(&self) -> Result<Client> {
        self.checkout(&self.writer).await
    }

    async fn checkout(&self, pool: &Pool) -> Result<Client> {
        pool.get().await.map_err(|err| match err {
            PoolError::Backend(err) => Error::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.server,
                crate::tls::explain(describe(&err))
            )),
            PoolError::Timeout(_) => Error::Unavailable(format!(
                "no connection to PostgreSQL at {} within the pool's timeout",
                self.server
            )),
            other => Error::Unavailable(format!("PostgreSQL at {}: {other}", self.server)),
        })
    }

    /// The tenant's number, from the cache or the database (another node may have created it).
    pub(crate) async fn tid(&self, client: &Client, tenant: &TenantId) -> Result<i64> {
        let cached = self.tenant_ids.read().expect("tenant ids lock").get(tenant).copied();
        if let Some(tid) = cached {
            return Ok(tid);
        }
        let row = query_opt(client, "SELECT tid FROM tenants WHERE name = $1", &[&tenant.as_str()]).await?;
        let tid: i64 = row.ok_or_else(|| Error::NotFound(format!("tenant {tenant}")))?.get(0);
        self.tenant_ids.write().expect("tenant ids lock").insert(tenant.clone(), tid);
        Ok(tid)
    }

    pub(crate) async fn create_tenant(&self, tenant: &TenantId, policy: &str) -> Result<bool> {
        let client = self.client().await?;
        let inserted = execute(
            &client,
            "INSERT INTO tenants (name, policy, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&tenant.as_str(), &policy, &Micros::now().0],
        )
        .await?;
        self.tid(&client, tenant).await?;
        Ok(inserted == 1)
    }

    pub(crate) async fn tenants(&self) -> Result<Vec<(TenantId, TenantPolicy)>> {
        let client = self.client().await?;
        let rows =
            query(&client, "SELECT name, policy FROM tenants ORDER BY name COLLATE \"C\"", &[]).await?;
        rows.iter()
            .map(|row| Ok((TenantId::new(row.get(0))?, TenantPolicy::from_stored(row.get(1))?)))
            .collect()
    }

    pub(crate) async fn head(&self, tenant: &TenantId) -> Result<Option<LogHead>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let row = query_opt(&client, "SELECT size, checkpoint FROM logs WHERE tid = $1", &[&tid]).await?;
        Ok(row.map(|row| LogHead { size: TreeSize(row.get::<_, i64>(0) as u64), checkpoint: row.get(1) }))
    }

    pub(crate) async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<LogHead>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let rows = query(
            &client,
            "SELECT size, note FROM checkpoints WHERE tid = $1
             UNION SELECT size, checkpoint FROM logs WHERE tid = $1 AND size > 0 ORDER BY size",
            &[&tid],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| LogHead { size: TreeSize(row.get::<_, i64>(0) as u64), checkpoint: row.get(1) })
            .collect())
    }

    pub(crate) async fn keep_checkpoint(&self, tenant: &TenantId, checkpoint: &LogHead) -> Result<()> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let statement =
            "INSERT INTO checkpoints (tid, size, note) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        execute(&client, statement, &[&tid, &int(checkpoint.size.0), &checkpoint.checkpoint])
            .await
            .map(|_| ())
    }

    pub(crate) async fn read_tiles(&self, tenant: &TenantId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let levels: Vec<i32> = tiles.iter().map(|t| i32::from(t.level)).collect();
        let indices: Vec<i64> = tiles.iter().map(|t| int(t.index)).collect();
        let rows = query(
            &client,
            "SELECT q.n, t.data FROM UNNEST($2::integer[], $3::bigint[]) WITH ORDINALITY AS q (level, idx, n)
             JOIN tiles t ON t.tid = $1 AND t.level = q.level AND t.idx = q.idx",
            &[&tid, &levels, &indices],
        )
        .await?;
        let mut found: Vec<Option<Vec<u8>>> = vec![None; tiles.len()];
        for row in rows {
            let n: i64 = row.get(0);
            found[n as usize - 1] = Some(row.get(1));
        }
        let mut answers = Vec::with_capacity(tiles.len());
        for (tile, data) in tiles.iter().zip(found) {
            answers.push(match stored_tile(tile, data) {
                Some(data) => data,
                None if tile.level == 0 => {
                    let known = self.leaf_tiles.known(tenant, tile);
                    let missing = LeafTiles::missing(tile, &known);
                    let entries = match missing.is_empty() {
                        true => Vec::new(),
                        false => self.entries(tenant, missing.start, missing.end).await?,
                    };
                    self.leaf_tiles.extend(tenant, tile, known, &entries)?
                }
                None => return Err(Error::NotFound(format!("tile {} of {tenant}", tile.path()))),
            });
        }
        Ok(answers)
    }

    pub(crate) async fn entries(&self, tenant: &TenantId, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        if start >= end {
            return Ok(Vec::new());
        }
        let rows = query(
            &client,
            "SELECT entry FROM events WHERE tid = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            &[&tid, &int(start), &int(end)],
        )
        .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub(crate) async fn scan_entries(
        &self,
        tenant: &TenantId,
        start: u64,
        limit: usize,
    ) -> Result<Vec<ScannedEntry>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let rows = query(
            &client,
            "SELECT idx, event_id, entry FROM events WHERE tid = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
            &[&tid, &int(start), &int(limit as u64)],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| ScannedEntry {
                index: row.get::<_, i64>(0) as u64,
                event_id: bytes(row.get::<_, &[u8]>(1)),
                entry: row.get(2),
            })
            .collect())
    }

    pub(crate) async fn find_existing(
        &self,
        tenant: &TenantId,
        sources: &[String],
        producer_ids: &[String],
    ) -> Result<Vec<Option<Existing>>> {
        let client = self.writer_client().await?;
        let tid = self.tid(&client, tenant).await?;
        let rows = query(
            &client,
            "SELECT q.n, k.idx, k.event_id, k.idempotency
             FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS q (source, producer_id, n)
             JOIN event_keys k ON k.tid = $1 AND k.source = q.source AND k.producer_id = q.producer_id",
            &[&tid, &sources, &producer_ids],
        )
        .await?;
        let mut found = vec![None; sources.len()];
        for row in rows {
            let n: i64 = row.get(0);
            found[n as usize - 1] = Some(Existing {
                index: row.get::<_, i64>(1) as u64,
                event_id: bytes(row.get::<_, &[u8]>(2)),
                idempotency: row.get::<_, Vec<u8>>(3),
            });
        }
        Ok(found)
    }

    pub(crate) async fn data_key_names(
        &self,
        tenant: &TenantId,
        subject: Option<&str>,
    ) -> Result<Vec<String>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let rows = query(
            &client,
            "SELECT subject FROM data_keys WHERE tid = $1
             AND ($2::text IS NULL OR subject = $2 OR left(subject, length($2) + 1) = $2 || chr(31))
             ORDER BY subject",
            &[&tid, &subject],
        )
        .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub(crate) async fn forget_search_tokens(&self, tenant: &TenantId, subject: &str) -> Result<u64> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        execute(
            &client,
            "DELETE FROM event_targets WHERE tid = $1 AND left(type, 4) = 'pii:' AND idx IN
             (SELECT idx FROM events WHERE tid = $1
              AND (seal_subject = $2 OR left(seal_subject, length($2) + 1) = $2 || chr(31)))",
            &[&tid, &subject],
        )
        .await
    }

    pub(crate) async fn replace_data_key(
        &self,
        tenant: &TenantId,
        name: &str,
        wrapped: &[u8],
    ) -> Result<bool> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let updated = execute(
            &client,
            "UPDATE data_keys SET wrapped = $3 WHERE tid = $1 AND subject = $2",
            &[&tid, &name, &wrapped],
        )
        .await?;
        Ok(updated == 1)
    }

    pub(crate) async fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let row = query_opt(
            &client,
            "SELECT wrapped FROM data_keys WHERE tid = $1 AND subject = $2",
            &[&tid, &subject],
        )
        .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Deletes the row. Its old version stays in the table's pages until vacuum reclaims them;
    /// overwriting first would not help, an update writes a new version too.
    pub(crate) async fn erase_data_key(&self, tenant: &TenantId, subject: &str) -> Result<bool> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let deleted =
            execute(&client, "DELETE FROM data_keys WHERE tid = $1 AND subject = $2", &[&tid, &subject])
                .await?;
        // The deleted row version stays in the table's pages until vacuumed; vacuum now (a small
        // table) rather than whenever autovacuum comes by. `docs/privacy.md` covers WAL archives.
        client.batch_execute("VACUUM data_keys").await.map_err(failed)?;
        Ok(deleted == 1)
    }

    /// One statement ([`COMMIT`]), so one round trip and one transaction: a crash before the
    /// server commits it leaves nothing of it (only, perhaps, an empty monthly partition created
    /// beforehand); after it, all of it. A check that fails aborts it; [`Db::refusal`] then says why.
    pub(crate) async fn commit(&self, commit: &Commit) -> Result<()> {
        let client = self.writer_client().await?;
        let tids = self.commit_tids(&client, commit).await?;
        check_fence_covers_logs(commit)?;
        let recorded: Vec<Micros> =
            commit.logs.iter().flat_map(|log| log.entries.iter().map(|e| e.recorded_at)).collect();
        self.ensure_partitions(&client, &recorded).await?;
        let columns = CommitColumns::new(commit, &tids);
        let statement = client.prepare_cached(COMMIT).await.map_err(failed)?;
        match client.query(&statement, &columns.params()).await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some(&SqlState::DIVISION_BY_ZERO) => {
                Err(self.refusal(&client, commit, &tids, &columns).await.unwrap_or_else(|err| err))
            }
            Err(err) => Err(write_failed(err)),
        }
    }

    /// Why [`COMMIT`]'s checks failed, read after it rolled back: a lease of its fence this node
    /// no longer holds, a log head another writer moved (with the head's size now), or else a
    /// data key that is no longer the one the entries were sealed with.
    async fn refusal(
        &self,
        client: &Client,
        commit: &Commit,
        tids: &HashMap<&TenantId, i64>,
        columns: &CommitColumns<'_>,
    ) -> Result<Error> {
        if commit.fence.is_some() {
            let held =
                query(client, HELD_LEASES, &[&columns.lease_tids, &columns.epochs, &columns.node]).await?;
            if held.len() < columns.lease_tids.len() {
                return Ok(lease_lost(commit, tids, &held));
            }
        }
        for log in &commit.logs {
            let rows = query(client, "SELECT size FROM logs WHERE tid = $1", &[&tids[&log.tenant]]).await?;
            let current = rows.first().map_or(0, |row| row.get::<_, i64>(0));
            if current != int(log.old_size.0) {
                return Ok(Error::Conflict(format!(
                    "log of {} is at size {current}, not {}: another writer moved it",
                    log.tenant, log.old_size
                )));
            }
        }
        for key in commit.data_keys.iter().filter(|key| key.stored) {
            if self.data_key(&key.tenant, &key.subject).await?.as_ref() != Some(&key.wrapped) {
                return Ok(evident_core::store::data_key_changed(&key.tenant));
            }
        }
        Ok(Error::Conflict(
            "the commit's leases, log heads or data keys changed while it ran: another writer moved them"
                .into(),
        ))
    }

    /// The number of every tenant a commit names: its logs, data keys and leases.
    async fn commit_tids<'a>(
        &self,
        client: &Client,
        commit: &'a Commit,
    ) -> Result<HashMap<&'a TenantId, i64>> {
        let mut tids: HashMap<&TenantId, i64> = HashMap::new();
        let mut named: Vec<&TenantId> = commit.logs.iter().map(|log| &log.tenant).collect();
        named.extend(commit.data_keys.iter().map(|k| &k.tenant));
        if let Some(fence) = &commit.fence {
            named.extend(fence.leases.iter().map(|(tenant, _)| tenant));
        }
        for tenant in named {
            if !tids.contains_key(tenant) {
                let tid = self.tid(client, tenant).await?;
                tids.insert(tenant, tid);
            }
        }
        Ok(tids)
    }

    pub(crate) async fn event_by_id(
        &self,
        tenant: &TenantId,
        event_id: &[u8; 16],
    ) -> Result<Option<StoredEvent>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let row = query_opt(
            &client,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM event_ids i
                 JOIN events e ON e.tid = i.tid AND e.idx = i.idx AND e.recorded_at = i.recorded_at
                 WHERE i.event_id = $1 AND i.tid = $2"
            ),
            &[&event_id.as_slice(), &tid],
        )
        .await?;
        Ok(row.as_ref().map(stored_event))
    }

    pub(crate) async fn event_by_index(&self, tenant: &TenantId, index: u64) -> Result<Option<StoredEvent>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let row = query_opt(
            &client,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM event_keys k
                 JOIN events e ON e.tid = k.tid AND e.idx = k.idx AND e.recorded_at = k.recorded_at
                 WHERE k.tid = $1 AND k.idx = $2"
            ),
            &[&tid, &int(index)],
        )
        .await?;
        Ok(row.as_ref().map(stored_event))
    }

    /// Runs a search rendered by [`search_sql`] (whose `$1` is the tenant's id).
    pub(crate) async fn search(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&tid as &(dyn ToSql + Sync))
            .chain(params.iter().map(|p| &**p as &(dyn ToSql + Sync)))
            .collect();
        let sql = sql.to_owned();
        let rows = query(&client, &sql, &params).await?;
        Ok(rows.iter().map(stored_event).collect())
    }

    pub(crate) async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let client = self.client().await?;
        let tid = self.tid(&client, &key.tenant).await?;
        execute(
            &client,
            "INSERT INTO api_keys (key_id, tid, role, secret_hash, global, label, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &key.key_id,
                &tid,
                &key.role.as_str(),
                &key.secret_hash.as_slice(),
                &key.global,
                &key.label,
                &key.created_at.0,
                &key.revoked_at.map(|t| t.0),
            ],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let client = self.client().await?;
        let row = query_opt(&client, &format!("{KEY_SELECT} WHERE k.key_id = $1"), &[&key_id]).await?;
        row.as_ref().map(key_record).transpose()
    }

    pub(crate) async fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>> {
        let client = self.client().await?;
        let tid = match tenant {
            Some(tenant) => Some(self.tid(&client, tenant).await?),
            None => None,
        };
        let rows = query(
            &client,
            &format!("{KEY_SELECT} WHERE $1::bigint IS NULL OR k.tid = $1 ORDER BY k.created_at, k.key_id COLLATE \"C\""),
            &[&tid],
        )
        .await?;
        rows.iter().map(key_record).collect()
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str, at: Micros) -> Result<bool> {
        let client = self.client().await?;
        let changed = execute(
            &client,
            "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
            &[&key_id, &at.0],
        )
        .await?;
        Ok(changed == 1)
    }

    /// The server answers, is no standby, and this session may write.
    pub(crate) async fn check_writable(&self) -> Result<()> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'", &[])
            .await
            .map_err(failed)?;
        let (standby, read_only): (bool, bool) = (row.get(0), row.get(1));
        if standby || read_only {
            return Err(Error::Unavailable(format!(
                "PostgreSQL at {} takes no writes (read-only)",
                self.server
            )));
        }
        Ok(())
    }

    /// Whether the database compares text in code-point order (collation `C`, `POSIX` or
    /// `C.UTF-8`), so a prefix is a range of the type index (see `search.rs`).
    pub(crate) async fn text_in_code_point_order(&self) -> Result<bool> {
        let client = self.client().await?;
        let row =
            query_opt(&client, "SELECT datcollate FROM pg_database WHERE datname = current_database()", &[])
                .await?;
        let collation: Option<String> = row.map(|row| row.get(0));
        Ok(matches!(collation.as_deref(), Some("C" | "POSIX" | "C.UTF-8" | "C.utf8")))
    }

    pub(crate) async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = query_opt(&client, "SELECT value FROM service_state WHERE name = $1", &[&name]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    pub(crate) async fn delete_state(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let deleted = execute(&client, "DELETE FROM service_state WHERE name = $1", &[&name]).await?;
        Ok(deleted > 0)
    }

    /// Names that begin with `prefix`, in byte order (`starts_with` and `COLLATE "C"`: the same
    /// under any database collation).
    pub(crate) async fn state_names(&self, prefix: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT name FROM service_state WHERE starts_with(name, $1) ORDER BY name COLLATE \"C\"",
            &[&prefix],
        )
        .await?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    pub(crate) async fn put_state(&self, name: &str, value: &[u8]) -> Result<()> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO service_state (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn acquire_lease(
        &self,
        tenant: &TenantId,
        node: &str,
        ttl: Duration,
    ) -> Result<Option<u64>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let row = query_opt(&client, ACQUIRE_LEASE, &[&tid, &node, &ttl_ms]).await?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    pub(crate) async fn release_lease(&self, tenant: &TenantId, node: &str, epoch: u64) -> Result<()> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        execute(
            &client,
            "UPDATE leases SET expires_at = clock_timestamp()
             WHERE tid = $1 AND node = $2 AND epoch = $3 AND expires_at > clock_timestamp()",
            &[&tid, &node, &int(epoch)],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn lease(&self, tenant: &TenantId) -> Result<Option<Lease>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let row = query_opt(
            &client,
            "SELECT node, epoch, floor(extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint
             FROM leases WHERE tid = $1",
            &[&tid],
        )
        .await?;
        Ok(row.map(|row| Lease {
            node: row.get(0),
            epoch: row.get::<_, i64>(1) as u64,
            remaining_ms: row.get(2),
        }))
    }

    pub(crate) async fn enqueue(&self, tenant: &TenantId, request: &[u8]) -> Result<u64> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        let rows = query(
            &client,
            "INSERT INTO inbox (tid, request) VALUES ($1, $2) RETURNING ticket",
            &[&tid, &request],
        )
        .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    pub(crate) async fn pending(
        &self,
        tenants: &[TenantId],
        limit: usize,
    ) -> Result<Vec<(TenantId, u64, Vec<u8>)>> {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let mut tids = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            tids.push(self.tid(&client, tenant).await?);
        }
        // One probe of `inbox_pending` (tid, ticket) WHERE answer IS NULL per tenant.
        let rows = query(
            &client,
            "SELECT tid, ticket, request FROM inbox
             WHERE tid = ANY($1) AND answer IS NULL ORDER BY ticket LIMIT $2",
            &[&tids, &int(limit as u64)],
        )
        .await?;
        rows.iter()
            .map(|row| {
                let tid: i64 = row.get(0);
                let at = tids.iter().position(|t| *t == tid).expect("a tenant asked for");
                Ok((tenants[at].clone(), row.get::<_, i64>(1) as u64, row.get(2)))
            })
            .collect()
    }

    /// Reads and deletes the answered requests among `tickets` in one statement, without
    /// waiting for the disk: the answers were durable before they were visible, and a delete
    /// that a crash of the server loses leaves answered rows, which no node takes again.
    pub(crate) async fn take_answers(&self, tickets: &[u64]) -> Result<Vec<(u64, Vec<u8>)>> {
        let client = self.client().await?;
        let tickets: Vec<i64> = tickets.iter().copied().map(int).collect();
        let rows = query(
            &client,
            "WITH taken AS (DELETE FROM inbox WHERE ticket = ANY($1) AND answer IS NOT NULL
                            RETURNING ticket, answer)
             SELECT ticket, answer, set_config('synchronous_commit', 'off', true) FROM taken
             ORDER BY ticket",
            &[&tickets],
        )
        .await?;
        Ok(rows.iter().map(|row| (row.get::<_, i64>(0) as u64, row.get(1))).collect())
    }

    /// A scan of the inbox (which holds only requests in flight, and these): no index serves
    /// it, and none is worth its cost on every answer.
    pub(crate) async fn sweep_answered(&self, older_than: Duration) -> Result<u64> {
        let client = self.client().await?;
        let millis = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        execute(
            &client,
            "DELETE FROM inbox WHERE answer IS NOT NULL
             AND answered_at < now() - $1::bigint * interval '1 millisecond'",
            &[&millis],
        )
        .await
    }

    /// Inserts unless present and answers the stored key, in one statement. Its snapshot predates
    /// a concurrent insert it waited for, so it may see no row at all; then it asks again.
    pub(crate) async fn ensure_data_key(
        &self,
        tenant: &TenantId,
        subject: &str,
        wrapped: &[u8],
    ) -> Result<Vec<u8>> {
        let client = self.client().await?;
        let tid = self.tid(&client, tenant).await?;
        for _ in 0..5 {
            let rows = query(&client, ENSURE_DATA_KEY, &[&tid, &subject, &wrapped]).await?;
            if let Some(stored) = rows.first().and_then(|row| row.get::<_, Option<Vec<u8>>>(0)) {
                return Ok(stored);
            }
        }
        Err(Error::Unavailable(format!("the data key of {subject} in {tenant} keeps changing")))
    }
}
