-- The system half (system*.go and beside it): counters, the webhook
-- inbox, trigger webhooks, the outbox, the event and audit logs, runs,
-- connections and settings. Names and ids that order a listing are
-- COLLATE "C": listings come in byte order, as on the embedded driver,
-- whatever the database's locale. JSON documents are bytea: they are
-- stored and returned byte for byte (jsonb would reject \u0000 and
-- reorder keys), and never queried inside; the columns beside them are
-- what queries use.

-- Per-layer counters handing out the numbers that must grow in commit
-- order across hosts: "inbox" (inbox sequence numbers), "event" and
-- "audit" (log sequence numbers) and "outbox" (outbox change numbers); and
-- "inbox_done", the inbox items ever removed ("inbox" minus it is the
-- inbox's depth, read without counting the inbox). A
-- writer takes its number with an upsert that locks the counter's row
-- until it commits, so the next writer, on any host, gets a larger number
-- only once the previous one is committed and visible: a reader that
-- sees number N sees every number below it. A counter never goes back
-- (pruning leaves it alone), so numbering never restarts.
CREATE TABLE synclayer_counters (
    layer_id bigint NOT NULL REFERENCES synclayer_layers (id),
    name     text   NOT NULL,
    value    bigint NOT NULL,
    PRIMARY KEY (layer_id, name)
);

-- Payload webhooks accepted (202) and not yet published, dropped or set
-- aside; handled in seq order.
CREATE TABLE synclayer_inbox (
    layer_id bigint      NOT NULL REFERENCES synclayer_layers (id),
    seq      bigint      NOT NULL,
    received timestamptz NOT NULL,
    -- store.InboxItem as JSON, without its body.
    item     bytea       NOT NULL,
    body     bytea       NOT NULL,
    PRIMARY KEY (layer_id, seq)
);

-- Payload webhooks that could not be handled, kept for an operator until
-- the event retention prunes them.
CREATE TABLE synclayer_inbox_set_aside (
    layer_id bigint      NOT NULL REFERENCES synclayer_layers (id),
    seq      bigint      NOT NULL,
    set_at   timestamptz NOT NULL,
    reason   text        NOT NULL,
    item     bytea       NOT NULL,
    body     bytea       NOT NULL,
    PRIMARY KEY (layer_id, seq)
);
CREATE INDEX synclayer_inbox_set_aside_at ON synclayer_inbox_set_aside (layer_id, set_at);

-- Trigger webhooks. An id is looked up by its SHA-256 (id_hash), so a
-- lookup's timing tells nothing useful about valid ids.
CREATE TABLE synclayer_webhooks (
    layer_id bigint      NOT NULL REFERENCES synclayer_layers (id),
    id_hash  bytea       NOT NULL,
    id       text        NOT NULL,
    name     text        NOT NULL,
    created  timestamptz NOT NULL,
    PRIMARY KEY (layer_id, id_hash)
);

-- Outbound deliveries: one event for one endpoint.
CREATE TABLE synclayer_deliveries (
    layer_id      bigint             NOT NULL REFERENCES synclayer_layers (id),
    event_id      text COLLATE "C"   NOT NULL,
    endpoint      text COLLATE "C"   NOT NULL,
    -- store.Delivery's state, and when its next attempt is due (NULL:
    -- now), for listings and claims.
    state         text               NOT NULL,
    next_at       timestamptz,
    -- The last attempt's time (or the creation's, before any), for
    -- pruning.
    last_at       timestamptz        NOT NULL,
    -- The outbox change number of the delivery's last write (the
    -- "outbox" counter): OutboxChanges reads the rows above a number.
    change        bigint             NOT NULL,
    -- The host whose attempt holds the delivery, until when
    -- (ClaimDeliveries); NULL when unclaimed.
    claimed_by    text,
    claimed_until timestamptz,
    -- store.Delivery as JSON, without its body.
    doc           bytea              NOT NULL,
    body          bytea              NOT NULL,
    PRIMARY KEY (layer_id, event_id, endpoint)
);
CREATE INDEX synclayer_deliveries_change ON synclayer_deliveries (layer_id, change);
CREATE INDEX synclayer_deliveries_pending ON synclayer_deliveries (layer_id, event_id, endpoint) WHERE state = 'pending';
CREATE INDEX synclayer_deliveries_due ON synclayer_deliveries (layer_id, next_at) WHERE state = 'pending';
CREATE INDEX synclayer_deliveries_settled ON synclayer_deliveries (layer_id, last_at) WHERE state <> 'pending';

-- The sync event log, read by followers in seq order.
CREATE TABLE synclayer_events (
    layer_id bigint      NOT NULL REFERENCES synclayer_layers (id),
    seq      bigint      NOT NULL,
    time     timestamptz NOT NULL,
    -- store.Event as JSON.
    doc      bytea       NOT NULL,
    PRIMARY KEY (layer_id, seq)
);
CREATE INDEX synclayer_events_time ON synclayer_events (layer_id, time);

-- The audit log.
CREATE TABLE synclayer_audit (
    layer_id bigint      NOT NULL REFERENCES synclayer_layers (id),
    seq      bigint      NOT NULL,
    time     timestamptz NOT NULL,
    -- store.AuditEntry as JSON.
    doc      bytea       NOT NULL,
    PRIMARY KEY (layer_id, seq)
);
CREATE INDEX synclayer_audit_time ON synclayer_audit (layer_id, time);

-- Run records.
CREATE TABLE synclayer_runs (
    layer_id    bigint           NOT NULL REFERENCES synclayer_layers (id),
    id          text COLLATE "C" NOT NULL,
    state       text             NOT NULL,
    finished_at timestamptz,
    -- store.Run as JSON.
    doc         bytea            NOT NULL,
    PRIMARY KEY (layer_id, id)
);
CREATE INDEX synclayer_runs_active ON synclayer_runs (layer_id, id) WHERE state IN ('queued', 'running');
CREATE INDEX synclayer_runs_finished ON synclayer_runs (layer_id, finished_at) WHERE state NOT IN ('queued', 'running');

-- Connections of sources (SPEC §12).
CREATE TABLE synclayer_connections (
    layer_id bigint           NOT NULL REFERENCES synclayer_layers (id),
    source   text COLLATE "C" NOT NULL,
    id       text COLLATE "C" NOT NULL,
    -- store.Connection as JSON (its config sealed by the caller).
    doc      bytea            NOT NULL,
    PRIMARY KEY (layer_id, source, id)
);

-- Small values the host keeps per layer.
CREATE TABLE synclayer_meta (
    layer_id bigint NOT NULL REFERENCES synclayer_layers (id),
    name     text   NOT NULL,
    value    bytea  NOT NULL,
    PRIMARY KEY (layer_id, name)
);
