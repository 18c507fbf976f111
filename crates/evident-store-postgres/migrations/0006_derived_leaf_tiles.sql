-- Level-0 partial tiles are no longer stored (`evident_core::store::keeps_tile`): the rightmost one
-- changed with every commit, and it is only the leaf hashes of entries the same commit stores, so
-- reads derive it from them. The rows earlier versions kept are deleted; reads never trust a
-- level-0 row that is not a full tile (8192 bytes) anyway. A node of an earlier version refuses
-- a schema with this migration, as it would look for those rows.
DELETE FROM tiles WHERE level = 0 AND length(data) < 8192;
