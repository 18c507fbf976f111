-- Insight's seen facts, transposed (`evident_core::insight::rollup::RollupItem::Hour`): instead of
-- one `insight_seen` row per (dimension, value, customer) holding the customer's hours, one row per
-- (dimension, value, UTC hour) holding the `insight_names` ids of the customers (who 0) or actors
-- (who 1) seen in it, as a portable Roaring treemap. A 30-day trend reads about 720 rows per value
-- instead of one per customer, and a fold rewrites the few hours it touched instead of a row per
-- customer and dimension. Those sets are small and fast only while a tenant's ids are dense, and
-- earlier folds took a new id for every name of every fold (a conflicting insert still takes
-- one), so the names are numbered again from 1. The rollups and the path table (whose rows hold
-- customer ids) are rebuilt from the stored events: the follower folds them again from entry 0,
-- and questions wait for that as they wait for any fold.
CREATE TABLE insight_hour_ids (
    tid   bigint NOT NULL,
    dim   smallint NOT NULL,
    who   smallint NOT NULL,
    value bigint NOT NULL,
    hour  integer NOT NULL,
    ids   bytea NOT NULL,
    PRIMARY KEY (tid, dim, who, value, hour)
);
DROP TABLE insight_seen;
TRUNCATE insight_counts, insight_paths, insight_names;
ALTER TABLE insight_names ALTER COLUMN id RESTART WITH 1;
DELETE FROM insight_rolled;
DELETE FROM insight_pathed;
