-- Heat pyramids: definitions, tiles and the log of changed rows. The tables belong to the
-- extension's owner; PUBLIC may read the definitions, nothing else. Every change goes through
-- the extension's functions, which check the caller's rights first (README: Security model).

CREATE TABLE heat_pyramids (
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
COMMENT ON TABLE heat_pyramids IS 'vasttile heat pyramids: tables of points, paths or activities rendered into zoom pyramids';

-- Tiles and log rows name their pyramid without a foreign key: a build writes hundreds of
-- thousands of tiles in one transaction, and a key check queued per row costs memory until
-- commit. drop_heat_pyramid deletes them itself.
CREATE TABLE heat_pyramid_tiles (
    pyramid text NOT NULL,
    z       int4 NOT NULL,
    x       int4 NOT NULL,
    y       int4 NOT NULL,
    counts  bytea NOT NULL,
    summary bytea NOT NULL,
    levels  bytea,
    PRIMARY KEY (pyramid, z, x, y)
);
COMMENT ON TABLE heat_pyramid_tiles IS 'vasttile: per tile of a heat pyramid, raw counts (runs of varints, zstd), a CDF summary, and levels (a rank table per distinct count, or one byte per pixel; zstd)';
-- Counts, summaries and levels come compressed by the extension: TOAST stores them as they are.
ALTER TABLE heat_pyramid_tiles ALTER counts SET STORAGE EXTERNAL,
    ALTER summary SET STORAGE EXTERNAL, ALTER levels SET STORAGE EXTERNAL;

CREATE TABLE heat_pyramid_log (
    pyramid    text NOT NULL,
    sign       int2 NOT NULL,
    id         int8,
    path       int8[],
    times      float8[],
    kind       text,
    is_virtual boolean,
    is_private boolean,
    weight     float8
);
CREATE INDEX ON heat_pyramid_log (pyramid);
COMMENT ON TABLE heat_pyramid_log IS 'vasttile: rows added (+1) and removed (-1) since a pyramid was last refreshed; 0: rebuild';

-- On Citus nodes: the definitions of pyramids over distributed tables, left there by the
-- coordinator's builds, and the rows their shards' triggers logged, for the coordinator's
-- refreshes to take. A row is claimed by the refresh that took it and deleted by the next one,
-- once the claim was committed on the coordinator (its transaction is not the node's).
CREATE TABLE shard_pyramids (
    name    text NOT NULL,
    source  regclass NOT NULL,
    options jsonb NOT NULL,
    -- By name and table: a definition over another table never stands in the way of this one.
    PRIMARY KEY (name, source)
);
COMMENT ON TABLE shard_pyramids IS 'vasttile: on Citus nodes, the definitions of heat pyramids over distributed tables, for their shards'' triggers';
CREATE TABLE shard_pyramid_log (
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
CREATE INDEX ON shard_pyramid_log (pyramid);
COMMENT ON TABLE shard_pyramid_log IS 'vasttile: on Citus nodes, rows changed in shards of a distributed pyramid''s table, until the coordinator''s refresh has taken them';
-- The coordinator's claims.
CREATE SEQUENCE shard_claim_seq;

-- Every role may call the extension's functions (as it may PostGIS's); its tables say who
-- reads what.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
REVOKE ALL ON heat_pyramids, heat_pyramid_tiles, heat_pyramid_log, shard_pyramids, shard_pyramid_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE shard_claim_seq FROM PUBLIC;
-- The definitions, not the build reports (their counts describe the table's rows).
GRANT SELECT (name, source, owner, options, base_zoom, tile_size, built_at) ON heat_pyramids TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('heat_pyramids', '');
SELECT pg_catalog.pg_extension_config_dump('heat_pyramid_tiles', '');
SELECT pg_catalog.pg_extension_config_dump('heat_pyramid_log', '');

-- The columns a pyramid reads per row, in the order of heat_pyramid_log's columns from `id` on,
-- from its (checked, stored) options; every identifier quoted. Options that lack a column the
-- geometry reads (or name it with an empty string) are an error (22023) naming the option.
CREATE FUNCTION heat_pyramid_select_list(options jsonb) RETURNS text
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

-- The source columns a pyramid reads (for the type check of the log trigger).
CREATE FUNCTION heat_pyramid_columns(options jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(options ->> k) FILTER (WHERE options ->> k IS NOT NULL)
    FROM unnest(ARRAY['column', 'weight_column', 'id_column', 'times_column', 'kind_column',
                      'virtual_column', 'private_column']) AS k
$$;

-- Statement triggers of a pyramid's table: log the rows of the statement (transition tables).
-- SECURITY DEFINER, so the table's writers need no rights on vasttile's tables; it writes only
-- for the pyramid whose source is the table it fires on, and reads only columns of built-in
-- types (a cast of a user-defined type would run that type's code with the owner's rights).
CREATE FUNCTION heat_pyramid_log_rows() RETURNS trigger
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
