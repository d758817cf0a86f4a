-- Records, revisions and checkpoints (the records half: records*.go).

-- One row per published revision of a layer; rev counts from 1 per layer.
-- Publishes of a layer are serialised by locking its synclayer_layers row
-- (SELECT ... FOR UPDATE), on every host, so rev and cursors grow in
-- commit order.
CREATE TABLE synclayer_revisions (
    layer_id   bigint      NOT NULL REFERENCES synclayer_layers (id),
    rev        bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    -- store.Revision without Number, CreatedAt, Pinned and TS.
    info       jsonb       NOT NULL,
    PRIMARY KEY (layer_id, rev)
);

-- Every kept version of every record. A reader of revision N sees the
-- versions with from_rev <= N AND (to_rev IS NULL OR to_rev > N): at most
-- one per (source_key, model, id). Publishing revision N inserts the new
-- versions with from_rev = N and sets to_rev = N on the versions they
-- replace, in the transaction that inserts the revision row.
CREATE TABLE synclayer_records (
    layer_id       bigint   NOT NULL REFERENCES synclayer_layers (id),
    -- store.SourceKey(source, connection).
    source_key     text     NOT NULL,
    model          text     NOT NULL,
    id             text     NOT NULL,
    from_rev       bigint   NOT NULL,
    to_rev         bigint,
    -- The record's cursor is store.MakeCursor(from_rev, seq): seq orders
    -- the changes of one revision.
    seq            integer  NOT NULL,
    -- store.Action: 1 added, 2 updated, 3 deleted.
    action         smallint NOT NULL,
    -- The revision the record was first seen in (first_seen_at is its
    -- created_at; last_modified_at is from_rev's).
    first_seen_rev bigint   NOT NULL,
    -- The connector's JSON object, byte for byte (kept for a delete too:
    -- a soft-deleted record keeps its last payload).
    payload        bytea    NOT NULL,
    PRIMARY KEY (layer_id, source_key, model, id, from_rev)
);
CREATE UNIQUE INDEX synclayer_records_live ON synclayer_records (layer_id, source_key, model, id) WHERE to_rev IS NULL;
CREATE INDEX synclayer_records_cursor ON synclayer_records (layer_id, from_rev, seq);

-- The published checkpoint of each sync of each source key.
CREATE TABLE synclayer_checkpoints (
    layer_id   bigint NOT NULL REFERENCES synclayer_layers (id),
    source_key text   NOT NULL,
    sync       text   NOT NULL,
    state      bytea  NOT NULL,
    PRIMARY KEY (layer_id, source_key, sync)
);

-- A run's changes until it publishes or aborts, in the order they were
-- staged. Nothing staged outlives its run: a run whose host died runs
-- again from its published checkpoints.
CREATE TABLE synclayer_staged (
    layer_id   bigint  NOT NULL REFERENCES synclayer_layers (id),
    run        text    NOT NULL,
    seq        bigint  NOT NULL,
    source_key text    NOT NULL,
    model      text    NOT NULL,
    id         text    NOT NULL,
    deleted    boolean NOT NULL,
    payload    bytea,
    PRIMARY KEY (layer_id, run, seq)
);

-- The records a run saw, for track_deletes (a full run deletes what it
-- did not see).
CREATE TABLE synclayer_seen (
    layer_id   bigint NOT NULL REFERENCES synclayer_layers (id),
    run        text   NOT NULL,
    source_key text   NOT NULL,
    model      text   NOT NULL,
    id         text   NOT NULL,
    PRIMARY KEY (layer_id, run, source_key, model, id)
);

-- Checkpoints a run staged, published with its revision.
CREATE TABLE synclayer_staged_checkpoints (
    layer_id   bigint NOT NULL REFERENCES synclayer_layers (id),
    run        text   NOT NULL,
    source_key text   NOT NULL,
    sync       text   NOT NULL,
    state      bytea  NOT NULL,
    PRIMARY KEY (layer_id, run, source_key, sync)
);

-- Pins and retention settings live on the layer row.
ALTER TABLE synclayer_layers
    ADD COLUMN pinned bigint NOT NULL DEFAULT 0;
