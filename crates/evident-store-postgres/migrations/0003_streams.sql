-- Streams out to SIEMs (the server's `outstream`): the definition and delivery status as the
-- server's JSON, and the cursor, the next leaf index to deliver (moved by compare-and-set).
CREATE TABLE streams (
    id     text PRIMARY KEY,
    tenant text NOT NULL,
    spec   bytea NOT NULL,
    cursor bigint NOT NULL,
    status bytea NOT NULL
);
CREATE INDEX streams_tenant ON streams (tenant, id);
