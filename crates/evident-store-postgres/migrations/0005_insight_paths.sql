-- Insight's path table (`evident_core::insight::paths`), folded from committed events by any node
-- (`paths.rs`): each fold is one transaction that locks the tenant's `insight_pathed` row, folds
-- the entries from its size on and moves it, so folds never overlap or repeat. A schema migrated
-- from 0004 starts at size 0: the follower builds the table from the stored events.
-- One row per (tenant, customer, UTC month): the customer's events of the month in time order as
-- varint pairs (time delta, kind id). Customers are ids of `insight_names` (pseudonymous subject
-- ids); kinds are numbered per tenant; nothing of an event's personal part is folded.
CREATE TABLE insight_pathed (
    tid  bigint PRIMARY KEY REFERENCES tenants,
    size bigint NOT NULL
);
CREATE TABLE insight_kinds (
    tid  bigint NOT NULL,
    id   integer NOT NULL,
    kind text NOT NULL,
    PRIMARY KEY (tid, id)
);
-- Read in (customer, month) order a page at a time, after the last customer of the page before.
CREATE TABLE insight_paths (
    tid      bigint NOT NULL,
    customer bigint NOT NULL,
    month    integer NOT NULL,
    pairs    bytea NOT NULL,
    PRIMARY KEY (tid, customer, month)
);
