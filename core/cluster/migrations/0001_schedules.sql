-- The durable schedule: one row per scheduled sync (of one connection, or
-- of a source without connections: connection = ''). Every host's schedule
-- loop claims the due rows (FOR UPDATE SKIP LOCKED), moves next_at on and
-- enqueues the run in the same transaction: each firing happens once.
CREATE TABLE synclayer_cluster_schedules (
    layer      text        NOT NULL,
    source     text        NOT NULL,
    connection text        NOT NULL DEFAULT '',
    sync       text        NOT NULL,
    -- Exactly one of every_ms (a period) and cron (a five-field cron
    -- expression, or a descriptor like @hourly) is set.
    every_ms   bigint      NOT NULL DEFAULT 0,
    cron       text        NOT NULL DEFAULT '',
    next_at    timestamptz NOT NULL,
    PRIMARY KEY (layer, source, connection, sync),
    CONSTRAINT synclayer_cluster_schedules_one_kind CHECK ((every_ms > 0) <> (cron <> '')),
    CONSTRAINT synclayer_cluster_schedules_every_positive CHECK (every_ms >= 0)
);

CREATE INDEX synclayer_cluster_schedules_next_at ON synclayer_cluster_schedules (next_at);
