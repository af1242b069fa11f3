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

-- Statement trigger on a layer's table: any change empties the layer's cache. SECURITY
-- DEFINER, so the table's writers need no rights on the cache; it empties only the layer whose
-- table it fires on.
CREATE FUNCTION skeleton_invalidate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
