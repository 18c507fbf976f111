-- The unsalted SHA-256 of each whole event (personal values included) is replaced by the
-- idempotency digest (evident_core::privacy::idempotency): the columns are renamed here, and
-- `migrate.rs` then rewrites every old 32-byte value from the event's entry.
ALTER TABLE events RENAME COLUMN content_hash TO idempotency;
ALTER TABLE event_keys RENAME COLUMN content_hash TO idempotency;
