-- Skeleton layers and their cache. The tables belong to the extension's owner; PUBLIC may read
-- the layer definitions, not the cache. Every change goes through the extension's functions,
-- which check the caller's rights first (README: Security model).

CREATE DOMAIN vcspolygon AS bytea;
COMMENT ON DOMAIN vcspolygon IS 'vasttile polygon: rings of VCS points (multipolygon with holes)';

-- Generations never repeat, even across a layer dropped and made again under its name.
CREATE SEQUENCE skeleton_generation;
REVOKE ALL ON SEQUENCE skeleton_generation FROM PUBLIC;

CREATE TABLE skeleton_layers (
    name           text PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 63),
    source         regclass NOT NULL,
    owner          regrole NOT NULL,
    id_column      text NOT NULL,
    polygon_column text NOT NULL,
    feature_bits   boolean NOT NULL DEFAULT false,
    -- Bumped by every change to the table: cached skeletons belong to the generation the
    -- snapshot that drew them saw, so a reader with an older snapshot can never put tiles of
    -- deleted rows back in front of newer ones.
    generation     int8 NOT NULL DEFAULT nextval('skeleton_generation')
);
COMMENT ON TABLE skeleton_layers IS 'vasttile skeleton layers: tables of (id, vcspolygon) rasterised into cached ID tiles';

CREATE TABLE skeleton_cache (
    layer      text NOT NULL REFERENCES skeleton_layers (name) ON DELETE CASCADE,
    generation int8 NOT NULL,
    z        int4 NOT NULL,
    x        int4 NOT NULL,
    y        int4 NOT NULL,
    size     int4 NOT NULL,
    skeleton bytea NOT NULL,
    PRIMARY KEY (layer, generation, z, x, y, size)
);
COMMENT ON TABLE skeleton_cache IS 'vasttile: rasterised skeleton tiles; rebuilt on demand, emptied when a layer''s table changes';

REVOKE ALL ON skeleton_layers, skeleton_cache FROM PUBLIC;
GRANT SELECT (name, source, owner, id_column, polygon_column, feature_bits) ON skeleton_layers TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('skeleton_layers', '');
SELECT pg_catalog.pg_extension_config_dump('skeleton_generation', '');

-- Changes to a distributed (Citus) table happen on the workers, in its shards, where the
-- triggers of skeleton layers and heat pyramids fire: they count them in that node's
-- shard_changes, in the writer's transaction, and the coordinator adds up every node's counts.
CREATE TABLE shard_changes (
    kind    text NOT NULL CHECK (kind IN ('skeleton', 'pyramid')),
    name    text NOT NULL,
    -- One row per shard: shards of one table changed by one statement on parallel connections
    -- must not wait for each other's row (a distributed deadlock).
    shard   name NOT NULL,
    changes int8 NOT NULL,
    PRIMARY KEY (kind, name, shard)
);
COMMENT ON TABLE shard_changes IS 'vasttile: on Citus nodes, statements that changed a shard of a skeleton layer''s or heat pyramid''s table';
REVOKE ALL ON shard_changes FROM PUBLIC;

-- Count a change if the trigger fired on a shard of a distributed table (true), for the trigger
-- functions below (they run as the extension's owner).
CREATE FUNCTION shard_change(kind text, name text, rel_schema name, rel_name name) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    is_shard boolean := false;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_shard') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s
                            JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = $1 AND c.relname || ''_'' || s.shardid = $2)'
        INTO is_shard USING rel_schema, rel_name;
    IF is_shard THEN
        INSERT INTO @extschema@.shard_changes AS c (kind, name, shard, changes) VALUES (kind, name, rel_name, 1)
        ON CONFLICT ON CONSTRAINT shard_changes_pkey DO UPDATE SET changes = c.changes + 1;
    END IF;
    RETURN is_shard;
END $$;
REVOKE ALL ON FUNCTION shard_change(text, text, name, name) FROM PUBLIC;

-- Statement trigger on a layer's table: any change empties the layer's cache. SECURITY
-- DEFINER, so the table's writers need no rights on the cache; it empties only the layer whose
-- table it fires on.
CREATE FUNCTION skeleton_invalidate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- On a shard of a distributed table (a Citus worker), count the change for the coordinator.
    IF @extschema@.shard_change('skeleton', TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME) THEN
        RETURN NULL;
    END IF;
    -- A trigger left behind by a dropped layer does nothing; one naming another table's layer
    -- is refused.
    IF NOT EXISTS (SELECT 1 FROM @extschema@.skeleton_layers l WHERE l.name = TG_ARGV[0]) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @extschema@.skeleton_layers l
                   WHERE l.name = TG_ARGV[0] AND l.source::oid = TG_RELID) THEN
        RAISE EXCEPTION 'trigger % on % does not belong to a skeleton layer over that table', TG_NAME, TG_RELID::regclass
            USING ERRCODE = '42501';
    END IF;
    UPDATE @extschema@.skeleton_layers SET generation = nextval('@extschema@.skeleton_generation')
    WHERE name = TG_ARGV[0];
    DELETE FROM @extschema@.skeleton_cache WHERE layer = TG_ARGV[0];
    RETURN NULL;
END $$;
