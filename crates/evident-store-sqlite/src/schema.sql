-- Evident's embedded store, schema version 4 (`meta.schema`; versions 1 to 3 are migrated in
-- `lib.rs`). Events of all tenants share one table; `rid` = tenant number * 2^40 + leaf index, so
-- each tenant's entries are one contiguous, append-ordered key range. The secondary (search)
-- indexes are in the index file beside this one (`index.rs`), written off the commit.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    tid        INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    policy     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The latest head of each log; moves only by compare-and-swap on `size`.
CREATE TABLE IF NOT EXISTS logs (
    tid        INTEGER PRIMARY KEY,
    size       INTEGER NOT NULL,
    checkpoint TEXT NOT NULL
);

-- The checkpoints kept in the history (at a bounded rate, `LogCommit::keep_checkpoint`, and
-- those exports and timestamps are made against); the latest one is `logs.checkpoint`.
CREATE TABLE IF NOT EXISTS checkpoints (
    tid  INTEGER NOT NULL,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (tid, size)
) WITHOUT ROWID;

-- C2SP tlog-tiles: one row per (level, index), holding the widest version written so far; a
-- narrower partial tile is a prefix of it, a full tile is 8192 bytes and never changes. Level-0
-- partial tiles are not stored: they are the leaf hashes of their entries, computed when read.
CREATE TABLE IF NOT EXISTS tiles (
    tid   INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (tid, level, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    rid          INTEGER PRIMARY KEY,
    tid          INTEGER NOT NULL,
    event_id     BLOB NOT NULL,
    source       TEXT NOT NULL,
    producer_id  TEXT NOT NULL,
    -- The idempotency digest (evident_core::privacy::idempotency): nothing personal in clear.
    idempotency  BLOB NOT NULL,
    time         INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    type         TEXT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    subject      TEXT,
    entry        BLOB NOT NULL,
    seal_subject TEXT,
    sealed       BLOB,
    -- `(type, id)` of every target, search tokens (`pii:` types) included until erasure, for the
    -- indexer (`index::encode_targets`).
    targets      BLOB
);
-- The two indexes a commit needs: event ids and idempotency keys are unique.
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events (tid, source, producer_id);

CREATE TABLE IF NOT EXISTS data_keys (
    tid     INTEGER NOT NULL,
    subject TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (tid, subject)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    tid         INTEGER NOT NULL,
    role        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    global      INTEGER NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Named blobs of service state (detection windows and baselines, for one).
CREATE TABLE IF NOT EXISTS service_state (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Streams out to SIEMs (the server's `outstream`): the definition and delivery status as the
-- server's JSON, and the cursor, the next leaf index to deliver.
CREATE TABLE IF NOT EXISTS streams (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    spec   BLOB NOT NULL,
    cursor INTEGER NOT NULL,
    status BLOB NOT NULL
);
