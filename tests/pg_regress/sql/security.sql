-- The security model: five roles, every stored and on-the-fly tile kind, hostile names, and the
-- attacks found by an independent tester (forged logs and caches, hijacked names, injected
-- DDL, stored SQL run with a superuser's rights).
SET client_min_messages = warning;
SET search_path = public, vasttile;
DROP TABLE IF EXISTS sec_pts, sec_rls, sec_rls_mine, sec_polys, sec_other, sec_mine, "sec ""odd;tbl", at_col, pwned, sec_gone, sec_world, sec_acts, sec_paths CASCADE;
DO $$ BEGIN
    PERFORM vasttile.drop_heat_pyramid(name) FROM vasttile.heat_pyramids WHERE name LIKE 'sec%' OR name LIKE 'x%';
    PERFORM vasttile.drop_skeleton_layer(name) FROM vasttile.skeleton_layers WHERE name LIKE 'sec%';
END $$;
DO $$ DECLARE r text; BEGIN
    FOREACH r IN ARRAY ARRAY['vt_owner', 'vt_reader', 'vt_rls', 'vt_nosel', 'vt_other', 'vt_gone'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I CASCADE', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
        EXECUTE format('CREATE ROLE %I', r);
    END LOOP;
END $$;
GRANT CREATE, USAGE ON SCHEMA public TO vt_owner, vt_other;
-- SQLSTATE of a statement, or 'ok' (run as the current role).
CREATE OR REPLACE FUNCTION public.sec_try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;
-- md5 of a bytea query's result, or its SQLSTATE.
CREATE OR REPLACE FUNCTION public.sec_md5(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE b bytea; BEGIN EXECUTE q INTO b; RETURN coalesce(md5(b), 'null'); EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;

-- The owner's tables: points open to readers, points under row-level security, polygons.
SET ROLE vt_owner;
CREATE TABLE sec_pts AS
    SELECT i AS id, vasttile.lonlat_to_key(-100 + (i % 40), 30 + (i % 17)) AS vcs_key FROM generate_series(1, 400) i;
CREATE TABLE sec_rls AS
    SELECT i AS id, CASE WHEN i % 3 = 0 THEN 'vt_rls' ELSE 'vt_owner' END AS who,
           vasttile.lonlat_to_key(-100 + (i % 40), 30 + (i % 17)) AS vcs_key FROM generate_series(1, 400) i;
-- The rows vt_rls may see, for comparing its tiles with a render of exactly those rows.
CREATE TABLE sec_rls_mine AS SELECT * FROM sec_rls WHERE who = 'vt_rls';
ALTER TABLE sec_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON sec_rls FOR SELECT TO vt_rls USING (who = current_user);
CREATE POLICY all_rows ON sec_rls FOR SELECT TO vt_reader USING (true);
CREATE TABLE sec_polys (id int8, who text, polygon vasttile.vcspolygon);
INSERT INTO sec_polys
    SELECT i, CASE WHEN i % 2 = 0 THEN 'vt_rls' ELSE 'vt_owner' END,
           vasttile.polygon_from_geojson(json_build_object('type', 'Polygon', 'coordinates',
               json_build_array(json_build_array(json_build_array(-110 + 5 * i, 30), json_build_array(-106 + 5 * i, 30),
                   json_build_array(-106 + 5 * i, 45), json_build_array(-110 + 5 * i, 45), json_build_array(-110 + 5 * i, 30))))::jsonb)
    FROM generate_series(1, 6) i;
ALTER TABLE sec_polys ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_polys ON sec_polys FOR SELECT TO vt_rls USING (who = current_user);
CREATE POLICY all_polys ON sec_polys FOR SELECT TO vt_reader USING (true);
GRANT SELECT ON sec_pts, sec_rls, sec_polys TO vt_reader, vt_rls;
GRANT INSERT ON sec_pts TO vt_reader;
SELECT (vasttile.create_heat_pyramid('sec_pts', 'sec_pts', '{"base_zoom": 6}')->>'rows')::int AS pts_rows;
SELECT (vasttile.create_heat_pyramid('sec_rls', 'sec_rls', '{"base_zoom": 6}')->>'rows')::int AS rls_rows;
SELECT vasttile.create_skeleton_layer('sec_polys', 'sec_polys');
SELECT vasttile.create_pyramid_layer('sec_rls_layer', 'sec_rls');
-- The tiles each role should get: everything, and vt_rls's own rows.
CREATE TABLE sec_expect AS SELECT
    md5(vasttile.heat_pyramid_tile('sec_pts', 3, 1, 3)) AS pts_pyramid,
    md5(vasttile.heat_pyramid_tile('sec_rls', 3, 1, 3)) AS rls_pyramid,
    md5(vasttile.heat_tile('sec_rls', 3, 1, 3)) AS rls_heat_all,
    md5(vasttile.heat_tile('sec_rls_mine', 3, 1, 3)) AS rls_heat_mine,
    md5(vasttile.dot_tile('sec_rls', 3, 1, 3)) AS rls_dots_all,
    md5(vasttile.dot_tile('sec_rls_mine', 3, 1, 3)) AS rls_dots_mine,
    md5(vasttile.access_tile('sec_rls', 6, 14, 25)) AS rls_access_all,
    md5(vasttile.access_tile('sec_rls_mine', 6, 14, 25)) AS rls_access_mine,
    md5(vasttile.skeleton_tile('sec_polys', 3, 1, 3)) AS polys_all,
    NULL::text AS polys_mine;
CREATE TABLE sec_polys_mine AS SELECT * FROM sec_polys WHERE who = 'vt_rls';
SELECT vasttile.create_skeleton_layer('sec_polys_mine', 'sec_polys_mine');
UPDATE sec_expect SET polys_mine = md5(vasttile.skeleton_tile('sec_polys_mine', 3, 1, 3));
GRANT SELECT ON sec_expect TO PUBLIC;
SELECT pts_pyramid IS NOT NULL AND rls_heat_all <> rls_heat_mine AND rls_dots_all <> rls_dots_mine
       AND rls_access_all <> rls_access_mine AND polys_all <> polys_mine AS distinct_expectations FROM sec_expect;
RESET ROLE;

-- Each role's tiles: stored tiles only for SELECT without row security; on the fly under RLS.
CREATE FUNCTION public.sec_tiles() RETURNS TABLE (what text, got text) LANGUAGE sql AS $$
    SELECT 'pyramid sec_pts', CASE sec_md5($q$SELECT vasttile.heat_pyramid_tile('sec_pts', 3, 1, 3)$q$)
        WHEN e.pts_pyramid THEN 'all rows' ELSE sec_md5($q$SELECT vasttile.heat_pyramid_tile('sec_pts', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'heat_tile sec_pts (pyramid)', CASE sec_md5($q$SELECT vasttile.heat_tile('sec_pts', 3, 1, 3)$q$)
        WHEN e.pts_pyramid THEN 'all rows' ELSE sec_md5($q$SELECT vasttile.heat_tile('sec_pts', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'pyramid sec_rls', CASE sec_md5($q$SELECT vasttile.heat_pyramid_tile('sec_rls', 3, 1, 3)$q$)
        WHEN e.rls_pyramid THEN 'all rows' ELSE sec_md5($q$SELECT vasttile.heat_pyramid_tile('sec_rls', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'pyramid layer sec_rls', CASE sec_md5($q$SELECT public.sec_rls_layer(3, 1, 3)$q$)
        WHEN e.rls_pyramid THEN 'all rows' ELSE sec_md5($q$SELECT public.sec_rls_layer(3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'heat_tile sec_rls', CASE sec_md5($q$SELECT vasttile.heat_tile('sec_rls', 3, 1, 3)$q$)
        WHEN e.rls_heat_all THEN 'all rows' WHEN e.rls_pyramid THEN 'all rows (pyramid)' WHEN e.rls_heat_mine THEN 'own rows'
        ELSE sec_md5($q$SELECT vasttile.heat_tile('sec_rls', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'dot_tile sec_rls', CASE sec_md5($q$SELECT vasttile.dot_tile('sec_rls', 3, 1, 3)$q$)
        WHEN e.rls_dots_all THEN 'all rows' WHEN e.rls_dots_mine THEN 'own rows'
        ELSE sec_md5($q$SELECT vasttile.dot_tile('sec_rls', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'access_tile sec_rls', CASE sec_md5($q$SELECT vasttile.access_tile('sec_rls', 6, 14, 25)$q$)
        WHEN e.rls_access_all THEN 'all rows' WHEN e.rls_access_mine THEN 'own rows'
        ELSE sec_md5($q$SELECT vasttile.access_tile('sec_rls', 6, 14, 25)$q$) END FROM sec_expect e
    UNION ALL SELECT 'skeleton_tile sec_polys', CASE sec_md5($q$SELECT vasttile.skeleton_tile('sec_polys', 3, 1, 3)$q$)
        WHEN e.polys_all THEN 'all rows' WHEN e.polys_mine THEN 'own rows'
        ELSE sec_md5($q$SELECT vasttile.skeleton_tile('sec_polys', 3, 1, 3)$q$) END FROM sec_expect e
    UNION ALL SELECT 'heat_pyramid_seams sec_pts', sec_try($q$SELECT vasttile.heat_pyramid_seams('sec_pts', 6)$q$)
    UNION ALL SELECT 'heat_pyramid_counts sec_pts', sec_try($q$SELECT vasttile.heat_pyramid_counts('sec_pts', 3, 1, 3)$q$)
    UNION ALL SELECT 'heat_pyramid_counts sec_rls', sec_try($q$SELECT vasttile.heat_pyramid_counts('sec_rls', 3, 1, 3)$q$)
$$;
GRANT EXECUTE ON FUNCTION public.sec_tiles() TO PUBLIC;
DELETE FROM vasttile.skeleton_cache WHERE layer = 'sec_polys';
SET ROLE vt_owner;  SELECT 'owner' AS role, * FROM sec_tiles(); RESET ROLE;
SET ROLE vt_reader; SELECT 'reader' AS role, * FROM sec_tiles(); RESET ROLE;
SET ROLE vt_rls;    SELECT 'rls' AS role, * FROM sec_tiles(); RESET ROLE;
SET ROLE vt_nosel;  SELECT 'no select' AS role, * FROM sec_tiles(); RESET ROLE;
SET ROLE vt_other;  SELECT 'other owner' AS role, * FROM sec_tiles(); RESET ROLE;
-- The skeleton cache holds only tiles rendered for roles that see every row.
SELECT z, x, y FROM vasttile.skeleton_cache WHERE layer = 'sec_polys' ORDER BY z, x, y;

-- What roles other than the owner may do to the owner's pyramids, layers and vasttile's tables.
CREATE FUNCTION public.sec_attacks() RETURNS TABLE (attack text, sqlstate text) LANGUAGE sql AS $$
    SELECT a, sec_try(q) FROM (VALUES
        ('rebuild', $q$SELECT vasttile.heat_pyramid_build('sec_pts')$q$),
        ('refresh', $q$SELECT vasttile.heat_pyramid_refresh('sec_pts')$q$),
        ('drop', $q$SELECT vasttile.drop_heat_pyramid('sec_pts')$q$),
        ('pyramid over the table', $q$SELECT vasttile.create_heat_pyramid('sec_x', 'sec_pts')$q$),
        ('skeleton layer over the table', $q$SELECT vasttile.create_skeleton_layer('sec_x', 'sec_polys')$q$),
        ('drop skeleton layer', $q$SELECT vasttile.drop_skeleton_layer('sec_polys')$q$),
        ('read tiles', $q$SELECT count(*) FROM vasttile.heat_pyramid_tiles$q$),
        ('read log', $q$SELECT count(*) FROM vasttile.heat_pyramid_log$q$),
        ('read cache', $q$SELECT count(*) FROM vasttile.skeleton_cache$q$),
        ('forge log', $q$INSERT INTO vasttile.heat_pyramid_log (pyramid, sign, path) VALUES ('sec_pts', 1, ARRAY[0])$q$),
        ('poison cache', $q$INSERT INTO vasttile.skeleton_cache (layer, generation, z, x, y, size, skeleton) VALUES ('sec_polys', 0, 9, 0, 0, 256, '\x00')$q$),
        ('rewrite definition', $q$UPDATE vasttile.heat_pyramids SET options = '{}' WHERE name = 'sec_pts'$q$),
        ('delete definition', $q$DELETE FROM vasttile.skeleton_layers WHERE name = 'sec_polys'$q$),
        ('read definitions', $q$SELECT count(*) FROM vasttile.heat_pyramids$q$)
    ) AS t(a, q)
$$;
GRANT EXECUTE ON FUNCTION public.sec_attacks() TO PUBLIC;
SET ROLE vt_reader; SELECT 'reader' AS role, * FROM sec_attacks(); RESET ROLE;
SET ROLE vt_other;  SELECT 'other owner' AS role, * FROM sec_attacks(); RESET ROLE;

-- Hijack by name: another owner may not re-point the owner's pyramid or layer at its own table.
SET ROLE vt_other;
CREATE TABLE sec_other AS SELECT 1::int8 AS id, vasttile.lonlat_to_key(0, 0) AS vcs_key, NULL::vasttile.vcspolygon AS polygon;
SELECT sec_try($q$SELECT vasttile.create_heat_pyramid('sec_pts', 'sec_other')$q$) AS hijack_pyramid,
       sec_try($q$SELECT vasttile.create_skeleton_layer('sec_polys', 'sec_other')$q$) AS hijack_layer;
-- A trigger of its own calling the log function for the owner's pyramid cannot forge its log.
SELECT vasttile.create_heat_pyramid('sec_theirs', 'sec_other', '{"base_zoom": 4}') IS NOT NULL AS own_pyramid;
CREATE TRIGGER forge AFTER INSERT ON sec_other REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vasttile.heat_pyramid_log_rows('sec_pts');
SELECT sec_try($q$INSERT INTO sec_other VALUES (2, 0, NULL)$q$) AS forge_through_trigger;
DROP TRIGGER forge ON sec_other;
-- Finding 1: rewriting a pyramid's stored definition to run its own code is refused, and the log
-- trigger runs no stored SQL text.
CREATE FUNCTION sec_escalate() RETURNS int8[] LANGUAGE sql AS $$ ALTER ROLE vt_other SUPERUSER; SELECT ARRAY[0::int8] $$;
SELECT sec_try($q$UPDATE vasttile.heat_pyramids SET options = options || '{"column": "x, sec_escalate()"}' WHERE name = 'sec_theirs'$q$) AS rewrite_own_definition;
-- A column of its own type (whose cast would run its code as the log trigger's owner) is refused.
CREATE DOMAIN sec_key AS int8;
CREATE TABLE sec_typed (vcs_key sec_key);
SELECT sec_try($q$SELECT vasttile.create_heat_pyramid('sec_typed', 'sec_typed')$q$) AS user_typed_column;
DROP TABLE sec_typed;
DROP DOMAIN sec_key;
SELECT vasttile.drop_heat_pyramid('sec_theirs') AS dropped_own;
RESET ROLE;
INSERT INTO sec_pts VALUES (1000, vasttile.lonlat_to_key(-90, 35));
SELECT rolsuper AS other_is_superuser FROM pg_roles WHERE rolname = 'vt_other';
SELECT name, owner, source FROM vasttile.heat_pyramids WHERE name LIKE 'sec%' ORDER BY name;
SELECT name, owner, source FROM vasttile.skeleton_layers WHERE name LIKE 'sec%' ORDER BY name;

-- A writer with INSERT on the table (and nothing on vasttile.*) feeds the pyramid's log.
SET ROLE vt_reader;
INSERT INTO sec_pts VALUES (1001, vasttile.lonlat_to_key(-90, 35));
RESET ROLE;
SELECT sign, count(*) FROM vasttile.heat_pyramid_log WHERE pyramid = 'sec_pts' GROUP BY sign ORDER BY sign;
SET ROLE vt_owner;
SELECT (vasttile.heat_pyramid_refresh('sec_pts')->>'rows')::int AS refreshed_rows;
RESET ROLE;

-- Hostile names: quotes, semicolons, $STYLE, t_col, a column named like an injection, 63 and
-- 64 bytes.
SET ROLE vt_owner;
CREATE TABLE "sec ""odd;tbl" (id int8, " ON v(i);CREATE TABLE pwned(i int);--" int8[]);
INSERT INTO "sec ""odd;tbl" VALUES (1, ARRAY[vasttile.lonlat_to_key(-100, 40), vasttile.lonlat_to_key(-90, 35)]);
CREATE TABLE at_col (id int8, " ON v(i);CREATE TABLE pwned(i int);--" int8[]);
INSERT INTO at_col SELECT * FROM "sec ""odd;tbl";
SELECT (vasttile.create_heat_pyramid('x"; DROP TABLE sec_pts; --', '"sec ""odd;tbl"',
        '{"geometry": "paths", "column": " ON v(i);CREATE TABLE pwned(i int);--", "base_zoom": 5}')->>'rows')::int AS odd_rows;
SELECT (vasttile.create_heat_pyramid('x$STYLE t_col', 'at_col',
        '{"geometry": "paths", "column": " ON v(i);CREATE TABLE pwned(i int);--", "base_zoom": 5}')->>'rows')::int AS at_col_rows;
SELECT to_regclass('pwned') AS pwned, to_regclass('sec_pts') IS NOT NULL AS sec_pts_kept;
SELECT length(vasttile.create_pyramid_layer('x$STYLE layer', 'x$STYLE t_col', '{"colormap": "viridis"}')) > 0 AS odd_layer;
SELECT public."x$STYLE layer"(5, 7, 12) IS NOT NULL AS odd_layer_tile;
SELECT (vasttile.create_heat_pyramid(repeat('x', 63), 'at_col', '{"geometry": "paths", "column": " ON v(i);CREATE TABLE pwned(i int);--", "base_zoom": 5}')->>'rows')::int AS name_63_bytes;
SELECT sec_try(format($q$SELECT vasttile.create_heat_pyramid(%L, 'at_col')$q$, repeat('x', 64))) AS name_64_bytes;
-- Two pyramids' four triggers each, and the version trigger, which stays when they go.
SELECT count(*) AS at_col_triggers FROM pg_trigger WHERE tgrelid = 'at_col'::regclass AND NOT tgisinternal;
SELECT vasttile.drop_heat_pyramid(repeat('x', 63)) AND vasttile.drop_heat_pyramid('x$STYLE t_col') AS dropped;
SELECT count(*) AS at_col_triggers_left FROM pg_trigger WHERE tgrelid = 'at_col'::regclass AND NOT tgisinternal;
INSERT INTO at_col SELECT * FROM "sec ""odd;tbl";
SELECT vasttile.drop_heat_pyramid('x"; DROP TABLE sec_pts; --') AS dropped_odd;
RESET ROLE;

-- Missing tables, columns and layers are errors at creation.
SET ROLE vt_owner;
SELECT sec_try($q$SELECT vasttile.create_heat_pyramid('sec_bad', 'sec_pts', '{"column": "nope"}')$q$) AS missing_column,
       sec_try($q$SELECT vasttile.create_heat_pyramid('sec_bad', 'no_such_table')$q$) AS missing_table,
       sec_try($q$SELECT vasttile.create_skeleton_layer('sec_bad', 'sec_polys', 'nope')$q$) AS missing_id_column,
       sec_try($q$SELECT vasttile.create_skeleton_layer('sec_bad', 'sec_polys', 'who')$q$) AS text_id_column,
       sec_try($q$SELECT vasttile.skeleton_tile('no_such_layer', 0, 0, 0)$q$) AS missing_layer,
       sec_try($q$SELECT vasttile.heat_pyramid_tile('no_such_pyramid', 0, 0, 0)$q$) AS missing_pyramid;
RESET ROLE;

-- A caller's temporary types cannot stand in for built-in ones in the queries vasttile runs as
-- the extension's owner (search_path is fixed there).
SET ROLE vt_other;
CREATE FUNCTION pg_temp.sec_grab(oid) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'vt_other' THEN ALTER ROLE vt_other SUPERUSER; END IF;
    RETURN true;
END $$;
CREATE DOMAIN pg_temp.oid AS pg_catalog.oid CHECK (pg_temp.sec_grab(VALUE));
CREATE DOMAIN pg_temp.bytea AS pg_catalog.bytea CHECK (pg_temp.sec_grab(0));
SELECT sec_try($q$SELECT vasttile.heat_pyramid_tile('sec_pts', 3, 1, 3)$q$) AS shadowed_tile,
       sec_try($q$SELECT vasttile.skeleton_tile('sec_polys', 3, 1, 3)$q$) AS shadowed_skeleton,
       sec_try($q$SELECT vasttile.drop_heat_pyramid('sec_pts')$q$) AS shadowed_drop;
DROP DOMAIN pg_temp.oid;
DROP DOMAIN pg_temp.bytea;
-- Temporary tables are refused as sources (the definitions would outlive the session).
CREATE TEMP TABLE sec_temp (vcs_key int8);
SELECT sec_try($q$SELECT vasttile.create_heat_pyramid('sec_temp', 'sec_temp')$q$) AS temp_source;
RESET ROLE;
SELECT rolsuper AS other_is_superuser FROM pg_roles WHERE rolname = 'vt_other';

-- A renamed column cannot turn the log trigger's `t.name` into a call of name(t) over the row
-- (which would cast a column of the owner's own type with the extension owner's rights).
SET ROLE vt_owner;
CREATE TYPE sec_kind AS ENUM ('a');
CREATE FUNCTION sec_kind_json(sec_kind) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'vt_owner' THEN ALTER ROLE vt_owner SUPERUSER; END IF;
    RETURN '1';
END $$;
CREATE CAST (sec_kind AS json) WITH FUNCTION sec_kind_json(sec_kind);
CREATE TABLE sec_acts (id int8, path int8[], times float8[], row_to_json text, is_virtual bool, is_private bool, payload sec_kind);
SELECT vasttile.create_heat_pyramid('sec_acts', 'sec_acts', '{"geometry": "activities", "kind_column": "row_to_json", "base_zoom": 1}', false)->'built' AS built;
ALTER TABLE sec_acts RENAME COLUMN row_to_json TO kind;
SELECT sec_try($q$INSERT INTO sec_acts VALUES (1, NULL, NULL, 'run', false, false, 'a')$q$) AS insert_after_rename;
SELECT vasttile.drop_heat_pyramid('sec_acts') AS dropped;
DROP TABLE sec_acts;
-- Prerendering a world-sized polygon at z12 is refused at once, not listed in memory.
CREATE TABLE sec_world (id int8, polygon vasttile.vcspolygon);
INSERT INTO sec_world VALUES (1, vasttile.polygon_from_geojson('{"type": "Polygon", "coordinates": [[[-179, -80], [179, -80], [179, 80], [-179, 80], [-179, -80]]]}'));
SELECT vasttile.create_skeleton_layer('sec_world', 'sec_world');
SELECT sec_try($q$SELECT vasttile.skeleton_prerender('sec_world', 12, 12)$q$) AS prerender_world_z12;
SELECT vasttile.drop_skeleton_layer('sec_world');
RESET ROLE;
SELECT rolsuper AS owner_is_superuser FROM pg_roles WHERE rolname = 'vt_owner';

-- A reader with an older snapshot cannot put tiles of deleted rows back into the cache: cached
-- skeletons belong to the generation of the layer their snapshot saw.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT vasttile.skeleton_ids(vasttile.skeleton_tile('sec_polys', 3, 1, 3)) AS before_delete;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS polys_in_snapshot FROM sec_polys;
SELECT dblink_exec(format('dbname=%s host=%s port=%s user=postgres', current_database(),
                          split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')),
                   'DELETE FROM sec_polys WHERE id = 2') AS deleted_elsewhere;
SELECT count(*) AS ids_in_old_snapshot FROM vasttile.skeleton_ids(vasttile.skeleton_tile('sec_polys', 3, 1, 3));
COMMIT;
SELECT vasttile.skeleton_ids(vasttile.skeleton_tile('sec_polys', 3, 1, 3)) AS after_delete;

-- When a pyramid's creator is dropped, the table's owner may still drop the pyramid.
GRANT CREATE, USAGE ON SCHEMA public TO vt_gone;
SET ROLE vt_gone;
CREATE TABLE sec_gone AS SELECT vasttile.lonlat_to_key(0, 0) AS vcs_key;
SELECT vasttile.create_heat_pyramid('sec_gone', 'sec_gone', '{"base_zoom": 2}') IS NOT NULL AS created;
RESET ROLE;
REASSIGN OWNED BY vt_gone TO vt_owner;
DROP OWNED BY vt_gone;
DROP ROLE vt_gone;
SET ROLE vt_other;
SELECT sec_try($q$SELECT vasttile.drop_heat_pyramid('sec_gone')$q$) AS other_drops_orphan;
RESET ROLE;
SET ROLE vt_owner;
SELECT vasttile.drop_heat_pyramid('sec_gone') AS table_owner_drops_orphan;
DROP TABLE sec_gone, sec_world;
RESET ROLE;

-- A trigger of the owner's own calling the log function without transition tables cannot make
-- it read a temporary table named old_rows (whose column casts with the owner's code).
SET ROLE vt_owner;
CREATE TYPE sec_evil AS (k int8);
CREATE FUNCTION sec_evil_keys(sec_evil) RETURNS int8[] LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> 'vt_owner' THEN ALTER ROLE vt_owner SUPERUSER; END IF;
    RETURN ARRAY[0::int8];
END $$;
CREATE CAST (sec_evil AS int8[]) WITH FUNCTION sec_evil_keys(sec_evil);
CREATE TABLE sec_paths (path int8[]);
SELECT vasttile.create_heat_pyramid('sec_paths', 'sec_paths', '{"geometry": "paths", "base_zoom": 2}', false)->'built' AS built;
CREATE TEMP TABLE old_rows (id int8, path sec_evil, times float8[], kind text, is_virtual bool, is_private bool, weight float8);
INSERT INTO old_rows VALUES (1, ROW(1), NULL, NULL, false, false, 1);
CREATE TRIGGER sec_bare AFTER DELETE ON sec_paths FOR EACH STATEMENT EXECUTE FUNCTION vasttile.heat_pyramid_log_rows('sec_paths');
SELECT sec_try($q$DELETE FROM sec_paths$q$) AS delete_through_bare_trigger;
DROP TRIGGER sec_bare ON sec_paths;
SELECT vasttile.drop_heat_pyramid('sec_paths') AS dropped;
DROP TABLE sec_paths, old_rows;
DROP CAST (sec_evil AS int8[]);
DROP FUNCTION sec_evil_keys(sec_evil);
DROP TYPE sec_evil;
-- Redefining a pyramid without building it leaves none of its old tiles to serve.
SELECT vasttile.create_heat_pyramid('sec_rls', 'sec_rls', '{"base_zoom": 5}', false)->'built' AS built;
RESET ROLE;
SELECT rolsuper AS owner_is_superuser FROM pg_roles WHERE rolname = 'vt_owner';
SELECT count(*) AS tiles_after_redefinition FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'sec_rls';

-- Aggregate states have types of their own (heat_state, dot_state, access_state), so any role
-- may declare an aggregate over vasttile's support functions: the types keep one aggregate's
-- state from reaching another's functions, a state's text is checked like any stored bytes, and
-- the support functions refuse to run outside an aggregate.
SET ROLE vt_other;
SELECT sec_try($q$CREATE AGGREGATE pg_temp.sec_mixed(int8, int4, int4, int4) (SFUNC = vasttile.heat_grid_trans, STYPE = vasttile.heat_state, FINALFUNC = vasttile.dot_tile_final)$q$) AS mixed_aggregate;
SELECT sec_try($q$CREATE AGGREGATE pg_temp.sec_internal(int8, int4, int4, int4) (SFUNC = vasttile.heat_grid_trans, STYPE = internal, FINALFUNC = vasttile.heat_grid_final)$q$) AS internal_aggregate;
SELECT sec_try($q$SELECT '\x5654484701'::vasttile.heat_state$q$) AS truncated_state;
SELECT sec_try($q$SELECT 'VTHG'::vasttile.heat_state$q$) AS not_hex;
SELECT sec_try($q$SELECT vasttile.heat_grid_trans(NULL::vasttile.heat_state, 1::int8, 0, 0, 0)$q$) AS trans_outside_aggregate;
-- A state of one's own making as the starting value only adds its (checked) heat.
CREATE AGGREGATE pg_temp.sec_started(int8, int4, int4, int4) (SFUNC = vasttile.heat_grid_trans,
    STYPE = vasttile.heat_state, FINALFUNC = vasttile.heat_grid_final, COMBINEFUNC = vasttile.heat_grid_combine,
    INITCOND = '\x565448430100000000000180800400');
SELECT (vasttile.heat_stats(pg_temp.sec_started(k, 0, 0, 0))).rows AS started_rows
FROM (VALUES (0::int8), (5), (17)) v(k);
SELECT sec_try($q$SELECT vasttile.heat_grid_combine('\x565448430100000000000180800400', '\x565448430100000000000180800400')$q$) AS combine_outside_aggregate;
RESET ROLE;

-- Functions of SQL or PL/pgSQL around vasttile's states: PL/pgSQL returning a state it was
-- handed takes the object over (into its own memory), so vasttile keeps states flat wherever
-- such a function can see them (window aggregates, aggregates with such a combine function)
-- and updates them in place only under its own functions (else such a function would leave the
-- aggregate pointing at freed memory).
CREATE FUNCTION public.sec_keep(a vasttile.heat_state, b vasttile.heat_state) RETURNS vasttile.heat_state
    LANGUAGE plpgsql PARALLEL SAFE AS $$ BEGIN RETURN a; END $$;
CREATE FUNCTION public.sec_minv(s vasttile.heat_state, g vasttile.heatgrid) RETURNS vasttile.heat_state
    LANGUAGE plpgsql AS $$ BEGIN RETURN s; END $$;
CREATE AGGREGATE public.sec_kept(int8, int4, int4, int4) (SFUNC = vasttile.heat_grid_trans,
    STYPE = vasttile.heat_state, FINALFUNC = vasttile.heat_grid_final, COMBINEFUNC = public.sec_keep, PARALLEL = SAFE);
CREATE AGGREGATE public.sec_moving(vasttile.heatgrid) (SFUNC = vasttile.heat_merge_trans,
    STYPE = vasttile.heat_state, FINALFUNC = vasttile.heat_grid_final,
    MSFUNC = vasttile.heat_merge_trans, MINVFUNC = public.sec_minv, MSTYPE = vasttile.heat_state,
    MFINALFUNC = vasttile.heat_grid_final);
CREATE TABLE sec_many AS SELECT i, vasttile.lonlat_to_key(-100 + (i % 40), 30 + (i % 17)) AS k FROM generate_series(1, 20000) i;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT (SELECT rows FROM vasttile.heat_stats(public.sec_kept(k, 0, 0, 0))) > 0 AS kept_ran FROM sec_many;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT count(*) AS windows, sum((SELECT rows FROM vasttile.heat_stats(g))) AS rows FROM (
    SELECT public.sec_moving(vasttile.heat_grid(k, 0, 0, 0)) OVER (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS g
    FROM sec_many WHERE i <= 30 GROUP BY i) w;
SELECT count(*) AS windows, max((SELECT rows FROM vasttile.heat_stats(g))) AS most_rows FROM (
    SELECT vasttile.heat_grid(k, 0, 0, 0) OVER (ORDER BY i ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS g
    FROM sec_many WHERE i <= 30) w;
DROP AGGREGATE public.sec_kept(int8, int4, int4, int4), public.sec_moving(vasttile.heatgrid);
DROP FUNCTION public.sec_keep(vasttile.heat_state, vasttile.heat_state), public.sec_minv(vasttile.heat_state, vasttile.heatgrid);
DROP TABLE sec_many;

-- The Citus node functions (anyone may call them: the coordinator calls them with its caller's
-- rights): only a table's owner defines, takes or forgets a pyramid over it; definitions are
-- kept by name and table, so one over another table never touches this one.
SET ROLE vt_owner;
SELECT vasttile.shard_pyramid_define('sec_node', 'sec_pts', '{"base_zoom": 8}');
RESET ROLE;
SET ROLE vt_other;
SELECT sec_try($$SELECT vasttile.shard_pyramid_define('sec_node', 'sec_other', '{"base_zoom": 8}')$$) AS same_name_own_table;
SELECT sec_try($$SELECT vasttile.shard_pyramid_define('sec_x', 'sec_pts', '{}')$$) AS define_on_others_table;
SELECT sec_try($$SELECT vasttile.shard_pyramid_take('sec_node', 'sec_pts', '{"base_zoom": 8}', 0, 1, 10, 100000)$$) AS take_others_rows;
SELECT sec_try($$SELECT vasttile.shard_pyramid_forget('sec_node', 'sec_pts')$$) AS forget_others;
SELECT sec_try($$SELECT vasttile.shard_pyramid_forget('sec_node', 'sec_other')$$) AS forget_own;
SELECT sec_try($$SELECT count(*) FROM vasttile.shard_pyramids$$) AS read_definitions;
SELECT sec_try($$INSERT INTO vasttile.shard_pyramid_log (pyramid, shard, sign) VALUES ('sec_node', 'sec_pts_1', 1)$$) AS forge_log;
SELECT sec_try($$SELECT vasttile.shard_pyramid_define('sec_node', 'no_such_table', '{}')$$) AS unknown_table;
RESET ROLE;
SELECT name, source FROM vasttile.shard_pyramids ORDER BY 1, 2;
SET ROLE vt_owner;
-- No Citus here: no shards, no rows; other options than this node's definition: rebuild.
SELECT vasttile.shard_pyramid_take('sec_node', 'sec_pts', '{"base_zoom": 8}', 0, 1, 10, 100000) AS taken_without_shards;
SELECT vasttile.shard_pyramid_take('sec_node', 'sec_pts', '{"base_zoom": 9}', 0, 2, 10, 100000) AS other_options;
SELECT sec_try($$SELECT vasttile.shard_pyramid_define('sec_node', 'sec_pts', '{"base_zoom": 99}')$$) AS bad_options;
SELECT vasttile.shard_pyramid_forget('sec_node', 'sec_pts');
RESET ROLE;
SELECT count(*) AS definitions_left FROM vasttile.shard_pyramids;

-- Clean up.
SELECT vasttile.drop_heat_pyramid(n) FROM unnest(ARRAY['sec_pts', 'sec_rls']) n;
SELECT vasttile.drop_skeleton_layer(n) FROM unnest(ARRAY['sec_polys', 'sec_polys_mine']) n;
DROP FUNCTION public.sec_tiles(), public.sec_attacks();
DO $$ DECLARE r text; BEGIN
    FOREACH r IN ARRAY ARRAY['vt_owner', 'vt_reader', 'vt_rls', 'vt_nosel', 'vt_other'] LOOP
        EXECUTE format('DROP OWNED BY %I CASCADE', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END $$;
