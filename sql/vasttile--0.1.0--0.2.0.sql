-- vasttile 0.1.0 -> 0.2.0: the security model (README: Security model) and bounded pyramid
-- builds. Existing pyramids, skeleton layers, their caches and the triggers on users' tables are
-- carried over; afterwards the schema equals a fresh 0.2.0 install (tests/upgrade).
-- Replace the library first, then ALTER EXTENSION UPDATE in every database: until then, the
-- 0.2.0 library refuses to serve a 0.1.0 schema's pyramids and layers (55000, saying so).
\echo Use "ALTER EXTENSION vasttile UPDATE TO '0.2.0'" to load this file. \quit

-- First, what 0.2.0 cannot carry over, before anything moves.
DO $$
DECLARE
    bad text;
BEGIN
    -- 0.1.0 took any name; 0.2.0 names are 1 to 63 bytes (its triggers are found by name).
    SELECT string_agg(pg_catalog.format('%L', n.name), ', ') INTO bad
    FROM (SELECT name FROM @extschema@.heat_pyramids UNION ALL SELECT name FROM @extschema@.skeleton_layers) n
    WHERE pg_catalog.octet_length(n.name) NOT BETWEEN 1 AND 63;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'vasttile 0.2.0 names heat pyramids and skeleton layers with 1 to 63 bytes; these are not: %', bad
            USING ERRCODE = '22023',
                  HINT = 'With vasttile 0.1.0 still installed, drop them (drop_heat_pyramid, or DELETE FROM vasttile.skeleton_layers and the triggers on their tables), update, then make them again under shorter names.';
    END IF;
    -- Definitions whose table is gone serve nothing: they go, with their tiles and caches.
    SELECT string_agg(pg_catalog.format('%L', d.name), ', ') INTO bad
    FROM (SELECT name, source FROM @extschema@.heat_pyramids
          UNION ALL SELECT name, source FROM @extschema@.skeleton_layers) d
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.source);
    IF bad IS NOT NULL THEN
        RAISE WARNING 'vasttile: dropping heat pyramids and skeleton layers whose table no longer exists: %', bad;
    END IF;
    -- 0.2.0's log trigger reads only columns of built-in types (a cast of a user-defined type
    -- would run that type's code with the extension owner's rights): writes to these tables
    -- will be refused until the pyramid is dropped or its columns change type.
    SELECT string_agg(DISTINCT pg_catalog.format('%L', p.name), ', ') INTO bad
    FROM @extschema@.heat_pyramids p
    JOIN pg_catalog.pg_attribute a ON a.attrelid = p.source AND NOT a.attisdropped
    WHERE a.atttypid >= 16384
      AND a.attname IN (p.options ->> 'column', p.options ->> 'weight_column', p.options ->> 'id_column',
                        p.options ->> 'times_column', p.options ->> 'kind_column',
                        p.options ->> 'virtual_column', p.options ->> 'private_column');
    IF bad IS NOT NULL THEN
        RAISE WARNING 'vasttile: heat pyramids reading columns of user-defined types: %', bad
            USING HINT = 'Writes to their tables will raise 42804 until the columns are of built-in types or the pyramids are dropped.';
    END IF;
END $$;

-- Every role may call the extension's functions (as it may PostGIS's); its tables say who
-- reads what.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

------------------------------------------------------------------------------------------------
-- Heat pyramids: an owner column instead of the stored select list (nothing stored is run as
-- SQL any more), names capped at 63 bytes, tiles and log without foreign keys (a build writes
-- hundreds of thousands of tiles in one transaction; drop_heat_pyramid deletes them itself).
ALTER TABLE @extschema@.heat_pyramid_tiles DROP CONSTRAINT heat_pyramid_tiles_pyramid_fkey;
ALTER TABLE @extschema@.heat_pyramid_log DROP CONSTRAINT heat_pyramid_log_pyramid_fkey;
-- Counts are stored compact (runs of varints, then zstd; tiles of 0.1.0 stay readable).
ALTER TABLE @extschema@.heat_pyramid_tiles ALTER COLUMN counts TYPE bytea;
COMMENT ON TABLE @extschema@.heat_pyramid_tiles IS 'vasttile: per tile of a heat pyramid, raw counts (runs of varints, zstd), a CDF summary, and levels (a rank table per distinct count, or one byte per pixel; zstd)';
-- Counts, summaries and levels come compressed by the extension: TOAST stores them as they are.
ALTER TABLE @extschema@.heat_pyramid_tiles ALTER counts SET STORAGE EXTERNAL,
    ALTER summary SET STORAGE EXTERNAL, ALTER levels SET STORAGE EXTERNAL;

-- The definitions move to a new table (a column added to the old one would land last; the
-- schema must equal a fresh install's). The old table leaves the extension first, so that
-- pg_dump's list of configuration tables forgets it.
ALTER TABLE @extschema@.heat_pyramids RENAME TO heat_pyramids_0_1_0;
ALTER INDEX @extschema@.heat_pyramids_pkey RENAME TO heat_pyramids_0_1_0_pkey;
CREATE TABLE @extschema@.heat_pyramids (
    name        text PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 63),
    source      regclass NOT NULL,
    owner       regrole NOT NULL,
    options     jsonb NOT NULL,
    base_zoom   int4 NOT NULL,
    tile_size   int4 NOT NULL,
    built_at    timestamptz,
    last_build  jsonb,
    -- Taken from pyramid_version_seq by every build and refresh that changed tiles.
    version     int8
);
COMMENT ON TABLE @extschema@.heat_pyramids IS 'vasttile heat pyramids: tables of points, paths or activities rendered into zoom pyramids';
-- 0.1.0 did not record who made a pyramid: its table's owner may act on it (as on any
-- pyramid whose creator is gone). Names over 63 bytes could not get their triggers in 0.1.0.
-- They keep 0.1.0's way of building, the default option `build`.
INSERT INTO @extschema@.heat_pyramids (name, source, owner, options, base_zoom, tile_size, built_at, last_build)
SELECT p.name, p.source, c.relowner::regrole, p.options || '{"build": "streaming"}', p.base_zoom, p.tile_size, p.built_at, p.last_build
FROM @extschema@.heat_pyramids_0_1_0 p JOIN pg_catalog.pg_class c ON c.oid = p.source;
ALTER EXTENSION vasttile DROP TABLE @extschema@.heat_pyramids_0_1_0;
DROP TABLE @extschema@.heat_pyramids_0_1_0;
-- Tiles and log rows of definitions that did not move (their table is gone).
DELETE FROM @extschema@.heat_pyramid_tiles t
WHERE NOT EXISTS (SELECT 1 FROM @extschema@.heat_pyramids p WHERE p.name = t.pyramid);
DELETE FROM @extschema@.heat_pyramid_log l
WHERE NOT EXISTS (SELECT 1 FROM @extschema@.heat_pyramids p WHERE p.name = l.pyramid);

REVOKE ALL ON @extschema@.heat_pyramids, @extschema@.heat_pyramid_tiles, @extschema@.heat_pyramid_log FROM PUBLIC;
-- 0.1.0 had writers of a pyramid's table insert into the log themselves, so roles may hold
-- grants on the tiles and the log: with them a role could forge any pyramid's log. Gone.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.oid::regclass AS rel, g.grantee::regrole AS grantee
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL (SELECT (pg_catalog.aclexplode(c.relacl)).grantee
                            UNION SELECT (pg_catalog.aclexplode(a.attacl)).grantee
                            FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid) g
        WHERE c.oid IN ('@extschema@.heat_pyramid_tiles'::regclass, '@extschema@.heat_pyramid_log'::regclass)
          AND g.grantee <> 0 AND g.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', r.rel, r.grantee);
    END LOOP;
END $$;
GRANT SELECT (name, source, owner, options, base_zoom, tile_size, built_at) ON @extschema@.heat_pyramids TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.heat_pyramids', '');

CREATE FUNCTION @extschema@.heat_pyramid_select_list(options jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    weight text := '1.0::float8';
    needed text[];
    k text;
BEGIN
    -- (plpgsql, not an SQL CASE: the planner may fold every branch of a CASE.)
    IF options ->> 'geometry' IN ('points', 'paths') THEN
        needed := ARRAY['column'];
    ELSIF options ->> 'geometry' = 'activities' THEN
        needed := ARRAY['id_column', 'column', 'times_column', 'kind_column', 'virtual_column', 'private_column'];
    ELSE
        RAISE EXCEPTION 'unknown pyramid geometry %', options ->> 'geometry' USING ERRCODE = '22023';
    END IF;
    FOREACH k IN ARRAY needed LOOP
        IF coalesce(options ->> k, '') = '' THEN
            RAISE EXCEPTION 'pyramid option "%" is missing: a pyramid of % reads that column', k, options ->> 'geometry'
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF options ->> 'weight_column' = '' THEN
        RAISE EXCEPTION 'pyramid option "weight_column" must not be empty' USING ERRCODE = '22023';
    ELSIF options ->> 'weight_column' IS NOT NULL THEN
        weight := format('t.%I::float8', options ->> 'weight_column');
    END IF;
    IF options ->> 'geometry' = 'points' THEN
        RETURN format('NULL::int8, ARRAY[t.%I]::int8[], NULL::float8[], NULL::text, false, false, %s',
                      options ->> 'column', weight);
    ELSIF options ->> 'geometry' = 'paths' THEN
        RETURN format('NULL::int8, t.%I::int8[], NULL::float8[], NULL::text, false, false, %s',
                      options ->> 'column', weight);
    END IF;
    RETURN format('t.%I::int8, t.%I::int8[], t.%I::float8[], t.%I::text, coalesce(t.%I, false), coalesce(t.%I, false), 1.0::float8',
                  options ->> 'id_column', options ->> 'column', options ->> 'times_column',
                  options ->> 'kind_column', options ->> 'virtual_column', options ->> 'private_column');
END $$;

CREATE FUNCTION @extschema@.heat_pyramid_columns(options jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(options ->> k) FILTER (WHERE options ->> k IS NOT NULL)
    FROM unnest(ARRAY['column', 'weight_column', 'id_column', 'times_column', 'kind_column',
                      'virtual_column', 'private_column']) AS k
$$;

CREATE OR REPLACE FUNCTION @extschema@.heat_pyramid_log_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    def record;
    list text;
    shard_of oid;
BEGIN
    -- On a shard of a distributed table (a Citus node): the change is counted, and where the
    -- coordinator's build left the pyramid's definition, the rows are logged on this node for
    -- the coordinator's refresh to take (shard_pyramid_take).
    IF @extschema@.shard_change('pyramid', TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME) THEN
        -- A shard only if this node holds it and the table's owner owns it: a table merely
        -- named like a shard logs nothing.
        EXECUTE 'SELECT s.logicalrelid FROM pg_catalog.pg_dist_shard s
                 JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname || ''_'' || s.shardid = $2
                   AND c.relowner = (SELECT r.relowner FROM pg_catalog.pg_class r WHERE r.oid = $3)
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_placement p
                               WHERE p.shardid = s.shardid
                                 AND p.groupid = (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g))'
            INTO shard_of USING TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID;
        SELECT s.source, s.options INTO def FROM @extschema@.shard_pyramids s
        WHERE s.name = TG_ARGV[0] AND s.source::oid = shard_of;
        IF shard_of IS NULL OR NOT FOUND THEN
            RETURN NULL;
        END IF;
    ELSE
        SELECT p.source, p.options INTO def FROM @extschema@.heat_pyramids p WHERE p.name = TG_ARGV[0];
        -- A trigger left behind by a dropped pyramid does nothing; one naming another table's
        -- pyramid is refused (it would forge that pyramid's log).
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    -- Only the triggers create_heat_pyramid makes: AFTER ... FOR EACH STATEMENT, with the
    -- transition tables named as this function reads them (without them, `old_rows` would be
    -- looked up as a table, possibly the caller's temporary one).
    IF TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'STATEMENT' OR NOT EXISTS (
        SELECT 1 FROM pg_trigger g
        WHERE g.tgrelid = TG_RELID AND g.tgname = TG_NAME
          AND (TG_OP NOT IN ('DELETE', 'UPDATE') OR g.tgoldtable = 'old_rows')
          AND (TG_OP NOT IN ('INSERT', 'UPDATE') OR g.tgnewtable = 'new_rows')) THEN
        RAISE EXCEPTION 'trigger % on % is not a trigger vasttile made for heat pyramid "%"', TG_NAME, TG_RELID::regclass, TG_ARGV[0]
            USING ERRCODE = '42501';
    END IF;
    IF shard_of IS NULL AND def.source::oid <> TG_RELID THEN
        RAISE EXCEPTION 'trigger % on % does not belong to a heat pyramid over that table', TG_NAME, TG_RELID::regclass
            USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        IF shard_of IS NULL THEN
            INSERT INTO @extschema@.heat_pyramid_log (pyramid, sign) VALUES (TG_ARGV[0], 0);
        END IF;
        RETURN NULL;
    END IF;
    -- Every column named must exist: a missing one would let `t.name` call a function name(t)
    -- over the whole row.
    IF (SELECT count(*) FROM pg_attribute a
        WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname = ANY (@extschema@.heat_pyramid_columns(def.options)))
       <> (SELECT count(DISTINCT c) FROM unnest(@extschema@.heat_pyramid_columns(def.options)) c) THEN
        RAISE EXCEPTION 'heat pyramid "%" reads a column that % no longer has', TG_ARGV[0], TG_RELID::regclass
            USING ERRCODE = '42703', HINT = 'Rebuild the pyramid with create_heat_pyramid after renaming or dropping columns.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = TG_RELID AND NOT a.attisdropped
                 AND a.attname = ANY (@extschema@.heat_pyramid_columns(def.options))
                 AND a.atttypid >= 16384) THEN
        RAISE EXCEPTION 'heat pyramid "%" reads a column of a user-defined type on %', TG_ARGV[0], TG_RELID::regclass
            USING ERRCODE = '42804', HINT = 'Pyramids read columns of built-in types (int8, int8[], float8[], text, boolean, numbers).';
    END IF;
    list := @extschema@.heat_pyramid_select_list(def.options);
    IF shard_of IS NOT NULL THEN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            EXECUTE format('INSERT INTO @extschema@.shard_pyramid_log (pyramid, shard, sign, id, path, times, kind, is_virtual, is_private, weight) '
                           'SELECT $1, $2, -1, %s FROM old_rows t', list)
                USING TG_ARGV[0], TG_TABLE_NAME;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            EXECUTE format('INSERT INTO @extschema@.shard_pyramid_log (pyramid, shard, sign, id, path, times, kind, is_virtual, is_private, weight) '
                           'SELECT $1, $2, 1, %s FROM new_rows t', list)
                USING TG_ARGV[0], TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        EXECUTE format('INSERT INTO @extschema@.heat_pyramid_log SELECT $1, -1, %s FROM old_rows t', list)
            USING TG_ARGV[0];
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE format('INSERT INTO @extschema@.heat_pyramid_log SELECT $1, 1, %s FROM new_rows t', list)
            USING TG_ARGV[0];
    END IF;
    RETURN NULL;
END $$;

-- A pyramid's per-tile runs of its paths, made in SQL so PostgreSQL sorts them by tile.
CREATE FUNCTION @extschema@."pyramid_runs"(
	"path" bigint[],
	"z" INT,
	"id" bigint DEFAULT NULL,
	"times" double precision[] DEFAULT NULL,
	"kind" TEXT DEFAULT NULL,
	"is_virtual" bool DEFAULT false,
	"is_private" bool DEFAULT false,
	"filters" jsonb DEFAULT NULL
) RETURNS TABLE (
	"tile" bigint,
	"seq" INT,
	"points" INT,
	"run" bigint[]
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pyramid_runs_wrapper';

-- The same runs gathered by tile, one row per path and tile, and the aggregate that draws them
-- where a distributed table's rows live.
CREATE FUNCTION @extschema@."pyramid_tile_runs"(
	"path" bigint[],
	"z" INT,
	"id" bigint DEFAULT NULL,
	"times" double precision[] DEFAULT NULL,
	"kind" TEXT DEFAULT NULL,
	"is_virtual" bool DEFAULT false,
	"is_private" bool DEFAULT false,
	"filters" jsonb DEFAULT NULL
) RETURNS TABLE (
	"tile" bigint,
	"points" INT,
	"runs" bigint[]
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'pyramid_tile_runs_wrapper';

-- A tile's stored counts as a heat grid (the column itself now holds the compact form).
CREATE FUNCTION @extschema@."heat_pyramid_counts"(
	"name" TEXT,
	"z" INT,
	"x" INT,
	"y" INT
) RETURNS @extschema@.heatgrid
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'heat_pyramid_counts_wrapper';

------------------------------------------------------------------------------------------------
-- Skeleton layers: an owner, names capped at 63 bytes, and a generation that every change to
-- the layer's table bumps; cached skeletons are keyed by it.
CREATE SEQUENCE @extschema@.skeleton_generation;
REVOKE ALL ON SEQUENCE @extschema@.skeleton_generation FROM PUBLIC;

ALTER TABLE @extschema@.skeleton_cache RENAME TO skeleton_cache_0_1_0;
ALTER INDEX @extschema@.skeleton_cache_pkey RENAME TO skeleton_cache_0_1_0_pkey;
ALTER TABLE @extschema@.skeleton_cache_0_1_0 RENAME CONSTRAINT skeleton_cache_layer_fkey TO skeleton_cache_0_1_0_layer_fkey;
ALTER TABLE @extschema@.skeleton_layers RENAME TO skeleton_layers_0_1_0;
ALTER INDEX @extschema@.skeleton_layers_pkey RENAME TO skeleton_layers_0_1_0_pkey;

CREATE TABLE @extschema@.skeleton_layers (
    name           text PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 63),
    source         regclass NOT NULL,
    owner          regrole NOT NULL,
    id_column      text NOT NULL,
    polygon_column text NOT NULL,
    feature_bits   boolean NOT NULL DEFAULT false,
    -- Bumped by every change to the table: cached skeletons belong to the generation the
    -- snapshot that drew them saw, so a reader with an older snapshot can never put tiles of
    -- deleted rows back in front of newer ones.
    generation     int8 NOT NULL DEFAULT nextval('@extschema@.skeleton_generation')
);
COMMENT ON TABLE @extschema@.skeleton_layers IS 'vasttile skeleton layers: tables of (id, vcspolygon) rasterised into cached ID tiles';
INSERT INTO @extschema@.skeleton_layers (name, source, owner, id_column, polygon_column, feature_bits)
SELECT l.name, l.source, c.relowner::regrole, l.id_column, l.polygon_column, l.feature_bits
FROM @extschema@.skeleton_layers_0_1_0 l JOIN pg_catalog.pg_class c ON c.oid = l.source;

CREATE TABLE @extschema@.skeleton_cache (
    layer      text NOT NULL REFERENCES @extschema@.skeleton_layers (name) ON DELETE CASCADE,
    generation int8 NOT NULL,
    z        int4 NOT NULL,
    x        int4 NOT NULL,
    y        int4 NOT NULL,
    size     int4 NOT NULL,
    skeleton bytea NOT NULL,
    PRIMARY KEY (layer, generation, z, x, y, size)
);
COMMENT ON TABLE @extschema@.skeleton_cache IS 'vasttile: rasterised skeleton tiles; rebuilt on demand, emptied when a layer''s table changes';
-- The cache was emptied by every change to a layer's table in 0.1.0 too: its tiles are current.
-- Except skeletons of more than 65,536 IDs, whose u16 indices 0.1.0 let wrap: those are
-- drawn again on demand.
INSERT INTO @extschema@.skeleton_cache (layer, generation, z, x, y, size, skeleton)
SELECT k.layer, l.generation, k.z, k.x, k.y, k.size, k.skeleton
FROM @extschema@.skeleton_cache_0_1_0 k JOIN @extschema@.skeleton_layers l ON l.name = k.layer
WHERE pg_catalog.length(k.skeleton) >= 20
  AND pg_catalog.get_byte(k.skeleton, 16) + 256 * pg_catalog.get_byte(k.skeleton, 17)
      + 65536 * pg_catalog.get_byte(k.skeleton, 18) + 16777216::int8 * pg_catalog.get_byte(k.skeleton, 19) <= 65536;
ALTER EXTENSION vasttile DROP TABLE @extschema@.skeleton_cache_0_1_0;
DROP TABLE @extschema@.skeleton_cache_0_1_0;
ALTER EXTENSION vasttile DROP TABLE @extschema@.skeleton_layers_0_1_0;
DROP TABLE @extschema@.skeleton_layers_0_1_0;

REVOKE ALL ON @extschema@.skeleton_layers, @extschema@.skeleton_cache FROM PUBLIC;
GRANT SELECT (name, source, owner, id_column, polygon_column, feature_bits) ON @extschema@.skeleton_layers TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.skeleton_layers', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.skeleton_generation', '');

-- Changes to a distributed (Citus) table happen on the workers, in its shards, where the
-- triggers of skeleton layers and heat pyramids fire: they count them in that node's
-- shard_changes, in the writer's transaction, and the coordinator adds up every node's counts.
CREATE TABLE @extschema@.shard_changes (
    kind    text NOT NULL CHECK (kind IN ('skeleton', 'pyramid')),
    name    text NOT NULL,
    -- One row per shard: shards of one table changed by one statement on parallel connections
    -- must not wait for each other's row (a distributed deadlock).
    shard   name NOT NULL,
    changes int8 NOT NULL,
    PRIMARY KEY (kind, name, shard)
);
COMMENT ON TABLE @extschema@.shard_changes IS 'vasttile: on Citus nodes, statements that changed a shard of a skeleton layer''s or heat pyramid''s table';
REVOKE ALL ON @extschema@.shard_changes FROM PUBLIC;

-- Count a change if the trigger fired on a shard of a distributed table (true), for the trigger
-- functions below (they run as the extension's owner).
CREATE FUNCTION @extschema@.shard_change(kind text, name text, rel_schema name, rel_name name) RETURNS boolean
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
REVOKE ALL ON FUNCTION @extschema@.shard_change(text, text, name, name) FROM PUBLIC;

-- Statement trigger on a layer's table: any change empties the layer's cache. SECURITY
-- DEFINER, so the table's writers need no rights on the cache; it empties only the layer whose
-- table it fires on.
CREATE OR REPLACE FUNCTION @extschema@.skeleton_invalidate() RETURNS trigger
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

CREATE FUNCTION @extschema@."drop_skeleton_layer"(
	"name" TEXT
) RETURNS bool
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'drop_skeleton_layer_wrapper';

------------------------------------------------------------------------------------------------
-- Triggers on users' tables: 0.1.0 named them after the object (cut at 63 bytes, so long names
-- could not be found again); 0.2.0 names them by a hash of the name and finds them by function
-- and argument. Same events, same functions: only the names change. 0.1.0 also left triggers
-- behind on a table when a pyramid or layer was made again over another one; 0.2.0's functions
-- would refuse writes there (42501), so those go.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT g.tgname, g.tgrelid, g.tgrelid::regclass AS rel,
               CASE WHEN g.tgfoid = '@extschema@.heat_pyramid_log_rows()'::regprocedure THEN 'pyramid' ELSE 'skeleton' END AS kind,
               pg_catalog.convert_from(pg_catalog.substr(g.tgargs, 1, pg_catalog.length(g.tgargs) - 1),
                                       pg_catalog.getdatabaseencoding()) AS arg,
               CASE WHEN g.tgfoid = '@extschema@.skeleton_invalidate()'::regprocedure THEN 'change'
                    WHEN g.tgtype & 4 <> 0 THEN 'insert'
                    WHEN g.tgtype & 8 <> 0 THEN 'delete'
                    WHEN g.tgtype & 16 <> 0 THEN 'update'
                    ELSE 'truncate' END AS event
        FROM pg_catalog.pg_trigger g
        WHERE g.tgfoid IN ('@extschema@.heat_pyramid_log_rows()'::regprocedure, '@extschema@.skeleton_invalidate()'::regprocedure)
          AND g.tgnargs = 1
    LOOP
        IF (t.kind = 'pyramid' AND EXISTS (SELECT 1 FROM @extschema@.heat_pyramids p
                                          WHERE p.name = t.arg AND p.source::oid = t.tgrelid))
           OR (t.kind = 'skeleton' AND EXISTS (SELECT 1 FROM @extschema@.skeleton_layers l
                                              WHERE l.name = t.arg AND l.source::oid = t.tgrelid)) THEN
            EXECUTE pg_catalog.format('ALTER TRIGGER %I ON %s RENAME TO %I', t.tgname, t.rel,
                                      pg_catalog.format('vasttile_%s_%s_%s', t.kind, pg_catalog.left(pg_catalog.md5(t.arg), 16), t.event));
        ELSE
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
        END IF;
    END LOOP;
END $$;

------------------------------------------------------------------------------------------------
-- path_box gives a path with a segment across the antimeridian the whole width of the world
-- (0.2.0 draws such segments the short way, at both edges of the map): indexes on it are
-- made again.
DO $$
DECLARE
    i regclass;
BEGIN
    FOR i IN
        SELECT x.indexrelid::regclass FROM pg_catalog.pg_index x
        WHERE pg_catalog.pg_get_indexdef(x.indexrelid) LIKE '%path_box(%'
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid
                        AND d.refclassid = 'pg_proc'::regclass
                        AND d.refobjid = '@extschema@.path_box(bigint[])'::regprocedure)
    LOOP
        EXECUTE pg_catalog.format('REINDEX INDEX %s', i);
    END LOOP;
END $$;

------------------------------------------------------------------------------------------------
-- The aggregates' states become types of their own (heat_state, dot_state, access_state) instead
-- of `internal`: Citus splits only aggregates whose state has a real type, and PostgreSQL's
-- parallel query then needs no serialise / deserialise functions. CREATE OR REPLACE AGGREGATE
-- keeps every aggregate's identity, so users' views over them stay valid.
CREATE TYPE @extschema@.heat_state;
CREATE FUNCTION @extschema@.heat_state_in(cstring) RETURNS @extschema@.heat_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_state_in';
CREATE FUNCTION @extschema@.heat_state_out(@extschema@.heat_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_state_out';
CREATE TYPE @extschema@.heat_state (INPUT = @extschema@.heat_state_in, OUTPUT = @extschema@.heat_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE @extschema@.heat_state IS 'vasttile: running state of heat_grid, heat_merge and heat_grid_paths';
CREATE FUNCTION @extschema@.heat_grid_final(heat_state) RETURNS @extschema@.heatgrid
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_final';
CREATE FUNCTION @extschema@.heat_grid_combine(heat_state, heat_state) RETURNS @extschema@.heat_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_combine';
CREATE TYPE @extschema@.dot_state;
CREATE FUNCTION @extschema@.dot_state_in(cstring) RETURNS @extschema@.dot_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_state_in';
CREATE FUNCTION @extschema@.dot_state_out(@extschema@.dot_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_state_out';
CREATE TYPE @extschema@.dot_state (INPUT = @extschema@.dot_state_in, OUTPUT = @extschema@.dot_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE @extschema@.dot_state IS 'vasttile: running state of the dot_tile aggregates';
CREATE FUNCTION @extschema@.dot_tile_final(dot_state) RETURNS bytea
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_tile_final';
CREATE FUNCTION @extschema@.dot_tile_combine(dot_state, dot_state) RETURNS @extschema@.dot_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_dot_tile_combine';
CREATE TYPE @extschema@.access_state;
CREATE FUNCTION @extschema@.access_state_in(cstring) RETURNS @extschema@.access_state
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_state_in';
CREATE FUNCTION @extschema@.access_state_out(@extschema@.access_state) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_state_out';
CREATE TYPE @extschema@.access_state (INPUT = @extschema@.access_state_in, OUTPUT = @extschema@.access_state_out, INTERNALLENGTH = VARIABLE, STORAGE = extended);
COMMENT ON TYPE @extschema@.access_state IS 'vasttile: running state of the access_grid aggregates';
CREATE FUNCTION @extschema@.access_grid_final(access_state) RETURNS @extschema@.heatgrid
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_final';
CREATE FUNCTION @extschema@.access_grid_combine(access_state, access_state) RETURNS @extschema@.access_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_combine';
CREATE FUNCTION @extschema@.heat_merge_trans(heat_state, heatgrid) RETURNS @extschema@.heat_state
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_merge_trans';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4, weight float8)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';
CREATE FUNCTION @extschema@.heat_grid_trans(heat_state, key int8, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_grid_trans_key';
CREATE FUNCTION @extschema@.heat_paths_trans(heat_state, path int8[], z int4, tile_x int4, tile_y int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_paths_trans';
CREATE FUNCTION @extschema@.heat_paths_trans_sized(heat_state, path int8[], z int4, tile_x int4, tile_y int4, weight float8, tile_size int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_heat_paths_trans';
CREATE FUNCTION @extschema@.access_grid_trans(access_state, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS @extschema@.access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION @extschema@.access_grid_trans(access_state, x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS @extschema@.access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans';
CREATE FUNCTION @extschema@.access_grid_trans(access_state, key int8, z int4, tile_x int4, tile_y int4, radius_km float8)
    RETURNS @extschema@.access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';
CREATE FUNCTION @extschema@.access_grid_trans(access_state, key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4)
    RETURNS @extschema@.access_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_access_grid_trans_key';
CREATE FUNCTION @extschema@.dot_tile_trans(state dot_state, x int4, y int4, z int4, tile_x int4, tile_y int4, style jsonb)
    RETURNS @extschema@.dot_state IMMUTABLE PARALLEL SAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'vasttile_dot_tile_trans';
CREATE FUNCTION @extschema@.dot_tile_trans_key(state dot_state, key int8, z int4, tile_x int4, tile_y int4, style jsonb)
    RETURNS @extschema@.dot_state IMMUTABLE PARALLEL SAFE LANGUAGE c
    AS 'MODULE_PATHNAME', 'vasttile_dot_tile_trans_key';
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(key int8, z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(key int8, z int4, tile_x int4, tile_y int4, weight float8) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid(key int8, z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_grid_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_merge(heatgrid) (
    SFUNC = heat_merge_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid_paths(path int8[], z int4, tile_x int4, tile_y int4) (
    SFUNC = heat_paths_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.heat_grid_paths(path int8[], z int4, tile_x int4, tile_y int4, weight float8, tile_size int4) (
    SFUNC = heat_paths_trans_sized, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.dot_tile_agg(x int4, y int4, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans,
    STYPE = dot_state, SSPACE = 16384,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE @extschema@.dot_tile_agg(key int8, z int4, tile_x int4, tile_y int4, style jsonb) (
    SFUNC = dot_tile_trans_key,
    STYPE = dot_state, SSPACE = 16384,
    FINALFUNC = dot_tile_final,
    COMBINEFUNC = dot_tile_combine,
    PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE @extschema@.access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.access_grid(x int4, y int4, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE @extschema@.access_grid(key int8, z int4, tile_x int4, tile_y int4, radius_km float8, tile_size int4) (
    SFUNC = access_grid_trans, STYPE = access_state, SSPACE = 8192, FINALFUNC = access_grid_final,
    COMBINEFUNC = access_grid_combine,
    PARALLEL = SAFE);
CREATE FUNCTION @extschema@.pyramid_base_trans(heat_state, tile int8, runs int8[], weight float8, base_zoom int4, tile_size int4)
    RETURNS @extschema@.heat_state IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'vasttile_pyramid_base_trans';
CREATE AGGREGATE @extschema@.pyramid_base_grid(tile int8, runs int8[], weight float8, base_zoom int4, tile_size int4) (
    SFUNC = pyramid_base_trans, STYPE = heat_state, SSPACE = 524288, FINALFUNC = heat_grid_final,
    COMBINEFUNC = heat_grid_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE @extschema@.pyramid_base_grid(int8, int8[], float8, int4, int4) IS
    'base tile of a heat pyramid from the rows of pyramid_tile_runs: one per path per tile';

-- The `internal` support functions are no longer used by any aggregate.
DROP FUNCTION @extschema@.heat_grid_serial(internal),
    @extschema@.heat_grid_deserial(bytea, internal),
    @extschema@.dot_tile_serial(internal),
    @extschema@.dot_tile_deserial(bytea, internal),
    @extschema@.access_grid_serial(internal),
    @extschema@.access_grid_deserial(bytea, internal),
    @extschema@.access_grid_combine(internal, internal),
    @extschema@.access_grid_final(internal),
    @extschema@.access_grid_trans(internal, int4, int4, int4, int4, int4, float8),
    @extschema@.access_grid_trans(internal, int4, int4, int4, int4, int4, float8, int4),
    @extschema@.access_grid_trans(internal, int8, int4, int4, int4, float8),
    @extschema@.access_grid_trans(internal, int8, int4, int4, int4, float8, int4),
    @extschema@.dot_tile_combine(internal, internal),
    @extschema@.dot_tile_final(internal),
    @extschema@.dot_tile_trans(internal, int4, int4, int4, int4, int4, jsonb),
    @extschema@.dot_tile_trans_key(internal, int8, int4, int4, int4, jsonb),
    @extschema@.heat_grid_combine(internal, internal),
    @extschema@.heat_grid_final(internal),
    @extschema@.heat_merge_trans(internal, heatgrid),
    @extschema@.heat_grid_trans(internal, int4, int4, int4, int4, int4),
    @extschema@.heat_grid_trans(internal, int4, int4, int4, int4, int4, float8),
    @extschema@.heat_grid_trans(internal, int4, int4, int4, int4, int4, float8, int4),
    @extschema@.heat_grid_trans(internal, int8, int4, int4, int4),
    @extschema@.heat_grid_trans(internal, int8, int4, int4, int4, float8),
    @extschema@.heat_grid_trans(internal, int8, int4, int4, int4, float8, int4),
    @extschema@.heat_paths_trans(internal, int8[], int4, int4, int4),
    @extschema@.heat_paths_trans_sized(internal, int8[], int4, int4, int4, float8, int4);

------------------------------------------------------------------------------------------------
-- Data versions: a tile server caches a layer's tiles under the layer's version and answers
-- If-None-Match without drawing, so the version changes in the very transaction that changes
-- what the layer draws. A table's version counts the statements that changed it (statement
-- triggers made by the layer and pyramid functions); a pyramid's takes a new number at every
-- build and refresh that changed tiles. Listeners of the channel vasttile_data hear of both.

CREATE TABLE @extschema@.data_changes (
    rel     oid NOT NULL,
    changes int8 NOT NULL
);
CREATE INDEX data_changes_rel ON @extschema@.data_changes (rel);
COMMENT ON TABLE @extschema@.data_changes IS 'vasttile: statements that changed tables with a version trigger, a row per statement until merged (their sum is the table''s version)';
REVOKE ALL ON @extschema@.data_changes FROM PUBLIC;

-- Numbers statements over all versioned tables: one in 64 of each table's merges its rows.
CREATE SEQUENCE @extschema@.data_changes_seq;
REVOKE ALL ON SEQUENCE @extschema@.data_changes_seq FROM PUBLIC;

CREATE SEQUENCE @extschema@.pyramid_version_seq;
COMMENT ON SEQUENCE @extschema@.pyramid_version_seq IS 'vasttile: a heat pyramid''s version, taken at every build and refresh that changed tiles';
REVOKE ALL ON SEQUENCE @extschema@.pyramid_version_seq FROM PUBLIC;

-- Statement trigger on a versioned table. SECURITY DEFINER, so writers need no rights on
-- data_changes; it only adds one to the table it fires on.
CREATE FUNCTION @extschema@.data_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    merged int8;
BEGIN
    -- One row per statement: concurrent writers never wait on each other here.
    INSERT INTO @extschema@.data_changes (rel, changes) VALUES (TG_RELID, 1);
    -- Now and then (one statement in 64 per table, whatever the other tables do) the table's
    -- rows become one, their sum unchanged (the rows deleted are added back in this
    -- transaction). One merger per table at a time, none waiting: no row is deleted twice and no
    -- lock cycle forms. Only under READ COMMITTED, where a merge never fails a writer.
    IF pg_catalog.hashint8extended(pg_catalog.nextval('@extschema@.data_changes_seq'), TG_RELID::int8) & 63 = 0
       AND pg_catalog.current_setting('transaction_isolation') = 'read committed'
       AND pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('vasttile data version ' || TG_RELID::text)) THEN
        WITH gone AS (DELETE FROM @extschema@.data_changes WHERE rel = TG_RELID RETURNING changes)
        SELECT sum(changes) INTO merged FROM gone;
        INSERT INTO @extschema@.data_changes (rel, changes) VALUES (TG_RELID, merged);
    END IF;
    PERFORM pg_catalog.pg_notify('vasttile_data', '');
    RETURN NULL;
END $$;

CREATE FUNCTION @extschema@."table_version"(
	"tbl" regclass
) RETURNS bigint
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'table_version_wrapper';

CREATE FUNCTION @extschema@."heat_pyramid_version"(
	"name" TEXT
) RETURNS bigint
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'heat_pyramid_version_wrapper';

CREATE FUNCTION @extschema@."layer_version"(
	"name" TEXT,
	"schema" TEXT DEFAULT 'public'
) RETURNS bigint
STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'layer_version_wrapper';

-- Tables of existing pyramids get their version trigger, as create_heat_pyramid now gives it
-- (tiles past the base zoom are drawn from them). Layers made by 0.1.0 do not name their table
-- in their comment: they stay unversioned until made again.
DO $$
DECLARE
    t regclass;
    distributed boolean;
BEGIN
    FOR t IN
        SELECT DISTINCT p.source FROM @extschema@.heat_pyramids p
        JOIN pg_catalog.pg_class c ON c.oid = p.source
        WHERE c.relkind = 'r' AND c.relpersistence <> 't'
    LOOP
        -- Not on distributed tables (their changes happen on the workers).
        distributed := false;
        IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
            EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
                INTO distributed USING t;
        END IF;
        CONTINUE WHEN distributed;
        EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER vasttile_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                                  'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.data_changed()', t);
    END LOOP;
END $$;

------------------------------------------------------------------------------------------------
-- On Citus nodes: the definitions of pyramids over distributed tables, left there by the
-- coordinator's builds, and the rows their shards' triggers logged, for the coordinator's
-- refreshes to take. A row is claimed by the refresh that took it and deleted by the next one,
-- once the claim was committed on the coordinator (its transaction is not the node's).
CREATE TABLE @extschema@.shard_pyramids (
    name    text NOT NULL,
    source  regclass NOT NULL,
    options jsonb NOT NULL,
    -- By name and table: a definition over another table never stands in the way of this one.
    PRIMARY KEY (name, source)
);
COMMENT ON TABLE @extschema@.shard_pyramids IS 'vasttile: on Citus nodes, the definitions of heat pyramids over distributed tables, for their shards'' triggers';
CREATE TABLE @extschema@.shard_pyramid_log (
    pyramid    text NOT NULL,
    shard      name NOT NULL,
    sign       int2 NOT NULL,
    id         int8,
    path       int8[],
    times      float8[],
    kind       text,
    is_virtual boolean,
    is_private boolean,
    weight     float8,
    claim      int8
);
CREATE INDEX ON @extschema@.shard_pyramid_log (pyramid);
COMMENT ON TABLE @extschema@.shard_pyramid_log IS 'vasttile: on Citus nodes, rows changed in shards of a distributed pyramid''s table, until the coordinator''s refresh has taken them';
-- The coordinator's claims.
CREATE SEQUENCE @extschema@.shard_claim_seq;
REVOKE ALL ON @extschema@.shard_pyramids, @extschema@.shard_pyramid_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.shard_claim_seq FROM PUBLIC;

-- On Citus nodes, for the coordinator's builds and refreshes (each checks the caller owns the table).
CREATE FUNCTION @extschema@."shard_pyramid_define"(
	"name" TEXT,
	"source" TEXT,
	"options" jsonb
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'shard_pyramid_define_wrapper';

CREATE FUNCTION @extschema@."shard_pyramid_forget"(
	"name" TEXT,
	"source" TEXT
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'shard_pyramid_forget_wrapper';

CREATE FUNCTION @extschema@."shard_pyramid_take"(
	"name" TEXT,
	"source" TEXT,
	"options" jsonb,
	"applied" bigint,
	"claim" bigint,
	"max_rows" bigint,
	"max_bytes" bigint
) RETURNS TEXT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'shard_pyramid_take_wrapper';
