//! The SQL `install` runs: the `evident_capture` schema (settings, the tables captured, the outbox,
//! dead letters) and the trigger function every captured table calls. Everything capture creates
//! lives in that schema or is a trigger named `evident_capture`, so `uninstall` can remove it all.

/// The schema, its tables and the trigger function (idempotent).
///
/// The trigger runs `AFTER ... FOR EACH ROW` in the transaction of the change, so a change and its
/// outbox row commit or roll back together. Its arguments: the subject column (`''` for none), the
/// primary key columns, the excluded columns, the hashed columns (comma-separated). Excluded
/// columns never reach the outbox; hashed ones reach it as `sha256:` of the install's salt and the
/// value's text. An update that changes only excluded columns writes nothing.
pub const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS evident_capture;
CREATE TABLE IF NOT EXISTS evident_capture.settings (
    install_id text NOT NULL,
    hash_salt bytea NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS evident_capture.tables (
    table_name text PRIMARY KEY,
    subject_column text,
    personal text[] NOT NULL DEFAULT '{}',
    excluded text[] NOT NULL DEFAULT '{}',
    hashed text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS evident_capture.outbox (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    op text NOT NULL,
    row_id text,
    subject text,
    before jsonb,
    after jsonb,
    changed text[] NOT NULL,
    actor text,
    reason text,
    db_user text NOT NULL DEFAULT session_user,
    txid bigint NOT NULL DEFAULT txid_current(),
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS evident_capture.dead_letter (
    outbox_id bigint PRIMARY KEY,
    event jsonb NOT NULL,
    status text NOT NULL,
    errors jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION evident_capture.hashed(value jsonb, salt bytea) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL OR value = 'null'::jsonb THEN value
        ELSE to_jsonb('sha256:' || encode(sha256(salt || convert_to(value #>> '{}', 'UTF8')), 'hex')) END
$$;
CREATE OR REPLACE FUNCTION evident_capture.record_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys text[] := string_to_array(nullif(TG_ARGV[1], ''), ',');
    excluded text[] := coalesce(string_to_array(nullif(TG_ARGV[2], ''), ','), '{}');
    hashed text[] := coalesce(string_to_array(nullif(TG_ARGV[3], ''), ','), '{}');
    whole jsonb;
    old_row jsonb;
    new_row jsonb;
    changed text[];
    salt bytea;
    col text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); whole := old_row; END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); whole := new_row; END IF;
    old_row := old_row - excluded;
    new_row := new_row - excluded;
    SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO changed
        FROM jsonb_object_keys(coalesce(new_row, old_row)) AS k
        WHERE old_row -> k IS DISTINCT FROM new_row -> k;
    IF TG_OP = 'UPDATE' AND cardinality(changed) = 0 THEN
        RETURN NULL;
    END IF;
    IF cardinality(hashed) > 0 THEN
        SELECT hash_salt INTO salt FROM evident_capture.settings;
        FOREACH col IN ARRAY hashed LOOP
            IF old_row ? col THEN old_row := jsonb_set(old_row, ARRAY[col], evident_capture.hashed(old_row -> col, salt)); END IF;
            IF new_row ? col THEN new_row := jsonb_set(new_row, ARRAY[col], evident_capture.hashed(new_row -> col, salt)); END IF;
        END LOOP;
    END IF;
    INSERT INTO evident_capture.outbox (table_name, op, row_id, subject, before, after, changed, actor, reason)
    VALUES (
        TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
        lower(TG_OP),
        (SELECT string_agg(whole ->> k, ',' ORDER BY ord) FROM unnest(keys) WITH ORDINALITY AS u(k, ord)),
        whole ->> nullif(TG_ARGV[0], ''),
        old_row,
        new_row,
        changed,
        nullif(current_setting('evident.actor', true), ''),
        nullif(current_setting('evident.reason', true), '')
    );
    RETURN NULL;
END
$$;
"#;

/// The rows an outbox read answers, oldest first (`$1`: how many).
pub const READ_OUTBOX: &str = r#"
SELECT id, table_name, op, row_id, subject, before::text, after::text, changed, actor, reason, db_user,
       txid, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), current_database()
FROM evident_capture.outbox ORDER BY id LIMIT $1
"#;

/// Only one process drains a database's outbox at a time (a session-level advisory lock).
pub const DRAIN_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('evident_capture.drain'))";
