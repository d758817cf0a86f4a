-- Reads of records (read.go, snapshot.go, counts.go, fieldindex.go).

-- Record keys compare and sort byte by byte whatever the database's
-- collation (en_US.UTF-8 sorts "a-b" after "ab"): a snapshot walks ids,
-- and a source's connections, in the order the embedded driver does, and
-- the primary key serves those walks. The columns' type is unchanged, only
-- their collation (the indexes on them are rebuilt: the table is empty when
-- this runs with the schema's first release).
ALTER TABLE synclayer_records
    ALTER COLUMN source_key TYPE text COLLATE "C",
    ALTER COLUMN model TYPE text COLLATE "C",
    ALTER COLUMN id TYPE text COLLATE "C";

-- modifiedAfter starts at the oldest revision committed at or after a
-- time: a range of this index (the revisions since), not a walk of all.
CREATE INDEX synclayer_revisions_at ON synclayer_revisions (layer_id, created_at);

-- A record's payload as jsonb, for field indexes (fieldindex.go). jsonb
-- holds no "\u0000": such an escape reads as "\ufffd" (the same length,
-- so the JSON stays valid whether it was an escape or the text after an
-- escaped backslash), so that the record's other fields are still found.
-- What jsonb cannot hold at all (a number beyond numeric's range) reads as
-- null: the record is not found by a lookup, and its publish never fails
-- for an index. Declared immutable (what an index expression needs): its
-- result depends on the bytes only.
CREATE FUNCTION synclayer_payload_json(p bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN convert_from(p, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
    BEGIN
        RETURN replace(convert_from(p, 'UTF8'), E'\\u0000', E'\\ufffd')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
END $$;

-- The field indexes a layer declared (SetFieldIndexes). Each is a partial
-- GIN index of synclayer_records over the field's value, named index_name;
-- since_rev is the newest revision when it was built: older snapshots
-- report the field as not indexed, as the embedded driver does.
CREATE TABLE synclayer_field_indexes (
    layer_id   bigint NOT NULL REFERENCES synclayer_layers (id),
    source     text   COLLATE "C" NOT NULL,
    model      text   COLLATE "C" NOT NULL,
    field      text   COLLATE "C" NOT NULL,
    index_name text   NOT NULL UNIQUE,
    since_rev  bigint NOT NULL,
    PRIMARY KEY (layer_id, source, model, field)
);
