-- What the records half needs beyond 0002 (records*.go, stage.go,
-- publish.go, revisions.go).

-- The hash (xxhash64) of the connector's bytes of a record's payload, as
-- the embedded driver keeps it: a save is unchanged when its bytes hash
-- the same (the stored payload is compacted, so it cannot be compared
-- with the connector's bytes). Rows written without it (0) never match.
ALTER TABLE synclayer_records ADD COLUMN hash bigint NOT NULL DEFAULT 0;
ALTER TABLE synclayer_staged  ADD COLUMN hash bigint NOT NULL DEFAULT 0;

-- Pruning finds the versions no kept revision needs by to_rev.
CREATE INDEX synclayer_records_closed ON synclayer_records (layer_id, to_rev) WHERE to_rev IS NOT NULL;

-- The tables of versions and staged changes hold no foreign key to
-- synclayer_layers: checking one per row cost a quarter of a publish's
-- insert (6-7 µs a version), layers are never deleted, and every row is
-- written by a layer that exists.
ALTER TABLE synclayer_records DROP CONSTRAINT synclayer_records_layer_id_fkey;
ALTER TABLE synclayer_staged DROP CONSTRAINT synclayer_staged_layer_id_fkey;
ALTER TABLE synclayer_seen DROP CONSTRAINT synclayer_seen_layer_id_fkey;

-- A run's staging is private to the host running it and never outlives
-- it (a run whose host died runs again from its published checkpoints):
-- it needs no WAL, which halves what an ingest writes. A crash of the
-- server empties these tables, which is what a crash of the run does too.
ALTER TABLE synclayer_staged SET UNLOGGED;
ALTER TABLE synclayer_seen SET UNLOGGED;
ALTER TABLE synclayer_staged_checkpoints SET UNLOGGED;

-- Retention. discard_rev: no revision below it is readable again (the
-- versions only they needed may be pruned), whatever keep_revisions and
-- keep_for say later. A revision row stays for good (records last changed
-- by it render its created_at); kept is false once it is no longer
-- readable, and its info is then dropped.
ALTER TABLE synclayer_layers ADD COLUMN discard_rev bigint NOT NULL DEFAULT 0;
ALTER TABLE synclayer_revisions ADD COLUMN kept boolean NOT NULL DEFAULT true;
CREATE INDEX synclayer_revisions_kept ON synclayer_revisions (layer_id, rev) WHERE kept;

-- Leases: a revision a reader is paging stays readable until expires_at
-- (store.LeaseTTL after its last page), on every host.
CREATE TABLE synclayer_leases (
    layer_id   bigint      NOT NULL REFERENCES synclayer_layers (id),
    rev        bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (layer_id, rev)
);
