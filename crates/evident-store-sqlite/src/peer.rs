//! `plain-sqlite`, the baseline of the load tool (`evident hammer --peer plain-sqlite`): the rows
//! of this store's `events` and `event_targets` tables, with their indexes, `entry` holding the
//! producer's JSON, written by one connection with the writer's settings (WAL,
//! `synchronous=FULL`, no automatic checkpoints, the same cache) and the store's own background
//! [`Checkpointer`], one transaction per request. No hashing, sealing or tree: what an application
//! without tamper evidence does at the same durability, so the two differ only in that.
//!
//! Behind the `bench-peer` feature: only the load tool uses it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use evident_core::Result;
use evident_core::validate::Validated;
use evident_wire::Micros;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::{Checkpointer, TENANT_SHIFT, open_writer, rid, storage};

/// The one tenant of the peer, numbered as the store numbers its first tenant.
const TID: i64 = 1;

/// The secondary indexes and targets table as a plain application has them, in its one file and
/// in each transaction (schema version 2 of the store).
const PEER_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_time ON events (tid, time);
CREATE INDEX IF NOT EXISTS events_actor ON events (tid, actor, time);
CREATE INDEX IF NOT EXISTS events_subject ON events (tid, subject, time) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_type ON events (tid, type, time);
CREATE INDEX IF NOT EXISTS events_action ON events (tid, action, time);
CREATE INDEX IF NOT EXISTS events_outcome ON events (tid, outcome, time);
CREATE INDEX IF NOT EXISTS events_source ON events (tid, source, time);
CREATE TABLE IF NOT EXISTS event_targets (
    tid INTEGER NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL, rid INTEGER NOT NULL,
    PRIMARY KEY (tid, type, id, time, rid)
) WITHOUT ROWID;
";

/// The peer's database: one writer, no tamper evidence.
pub struct PlainSqlite {
    connection: Arc<Mutex<Connection>>,
    next_index: u64,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: Checkpointer,
}

impl PlainSqlite {
    /// Opens (creating if needed) the database at `path`; its rows continue after those there.
    pub fn open(path: &Path) -> Result<PlainSqlite> {
        let connection = open_writer(path)?;
        connection.execute_batch(PEER_INDEXES).map_err(storage)?;
        let next_rid: i64 = connection
            .query_row("SELECT coalesce(max(rid) + 1, 0) FROM events", [], |row| row.get(0))
            .map_err(storage)?;
        let connection = Arc::new(Mutex::new(connection));
        Ok(PlainSqlite {
            connection: Arc::clone(&connection),
            next_index: (next_rid & ((1 << TENANT_SHIFT) - 1)) as u64,
            _checkpointer: Checkpointer::start(path, connection, None)?,
        })
    }

    /// Stores one request's events (`raw`: their producer JSON) in one transaction; durable on
    /// return. The index of each, in order.
    pub fn insert(&mut self, raw: &[Vec<u8>], events: &[Validated]) -> Result<Vec<u64>> {
        let mut connection = self.connection.lock().expect("writer lock");
        let indices = insert_rows(&mut connection, self.next_index, raw, events).map_err(storage)?;
        self.next_index += indices.len() as u64;
        Ok(indices)
    }
}

fn insert_rows(
    connection: &mut Connection,
    next_index: u64,
    raw: &[Vec<u8>],
    events: &[Validated],
) -> rusqlite::Result<Vec<u64>> {
    let recorded_at = Micros::now().0;
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut indices = Vec::with_capacity(events.len());
    {
        let mut insert_event = tx.prepare_cached(
            "INSERT INTO events (rid, tid, event_id, source, producer_id, idempotency, time, recorded_at,
                type, action, outcome, actor, subject, entry, seal_subject, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, NULL, NULL)",
        )?;
        let mut insert_target = tx.prepare_cached(
            "INSERT OR IGNORE INTO event_targets (tid, type, id, time, rid) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (bytes, validated) in raw.iter().zip(events) {
            let event = &validated.event;
            let index = next_index + indices.len() as u64;
            let rid = rid(TID, index);
            // A time-ordered 16-byte id, as a UUIDv7 would be, without its randomness.
            let mut event_id = [0u8; 16];
            event_id[..8].copy_from_slice(&recorded_at.to_be_bytes());
            event_id[8..].copy_from_slice(&index.to_be_bytes());
            insert_event.execute(params![
                rid,
                TID,
                event_id.as_slice(),
                event.source,
                event.id,
                [0u8; 32].as_slice(),
                event.time.0,
                recorded_at,
                event.event_type,
                event.action.as_str(),
                event.outcome.as_str(),
                event.actor.id,
                event.subject,
                bytes.as_slice(),
            ])?;
            for target in &event.targets {
                insert_target.execute(params![TID, target.target_type, target.id, event.time.0, rid])?;
            }
            indices.push(index);
        }
    }
    tx.commit()?;
    Ok(indices)
}
