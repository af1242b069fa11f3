-- Data versions: a table's, a pyramid's and a layer's version change in the transaction that
-- changes what they draw, and only then; the channel vasttile_data hears of it; the version
-- is for callers who may read the table.
SET client_min_messages = warning;
SET search_path = public;
DROP TABLE IF EXISTS ver_pts, ver_other, ver_parent CASCADE;
DROP SCHEMA IF EXISTS ver_s CASCADE;
SELECT vasttile.drop_heat_pyramid('ver_pyr');
DROP ROLE IF EXISTS ver_nobody;
CREATE ROLE ver_nobody;
CREATE TABLE ver_pts (vcs_key int8);
INSERT INTO ver_pts SELECT vasttile.lonlat_to_key(-0.1 + i * 0.001, 51.5) FROM generate_series(1, 50) i;
CREATE INDEX ON ver_pts (vcs_key);
-- Not versioned until a layer or pyramid is made over it.
SELECT vasttile.table_version('ver_pts') IS NULL AS unversioned;
SELECT vasttile.create_heat_layer('ver_heat', 'ver_pts', '{"colormap": "fire"}');
SELECT vasttile.create_dot_layer('ver_dots', 'ver_pts');
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ver_pts'::regclass ORDER BY 1;
CREATE TEMP TABLE seen (what text, v int8);
INSERT INTO seen VALUES ('table', vasttile.table_version('ver_pts')),
                        ('heat', vasttile.layer_version('ver_heat')),
                        ('dots', vasttile.layer_version('ver_dots'));
-- Reading changes nothing.
SELECT count(*) FROM ver_pts;
SELECT bool_and(v = CASE what WHEN 'table' THEN vasttile.table_version('ver_pts')
                              WHEN 'heat' THEN vasttile.layer_version('ver_heat')
                              ELSE vasttile.layer_version('ver_dots') END) AS unchanged_by_reads FROM seen;
-- A change, and the layer made again in another style, each give new versions.
INSERT INTO ver_pts VALUES (vasttile.lonlat_to_key(-0.05, 51.5));
SELECT vasttile.table_version('ver_pts') <> (SELECT v FROM seen WHERE what = 'table') AS table_changed,
       vasttile.layer_version('ver_heat') <> (SELECT v FROM seen WHERE what = 'heat') AS heat_changed,
       vasttile.layer_version('ver_dots') <> (SELECT v FROM seen WHERE what = 'dots') AS dots_changed;
UPDATE seen SET v = vasttile.layer_version('ver_heat') WHERE what = 'heat';
SELECT vasttile.create_heat_layer('ver_heat', 'ver_pts', '{"colormap": "viridis"}');
SELECT vasttile.layer_version('ver_heat') <> (SELECT v FROM seen WHERE what = 'heat') AS restyled_layer_changed;
-- Every kind of statement counts, TRUNCATE too; a rolled-back change leaves the version.
UPDATE seen SET v = vasttile.table_version('ver_pts') WHERE what = 'table';
BEGIN;
DELETE FROM ver_pts WHERE vcs_key < 0;
ROLLBACK;
SELECT vasttile.table_version('ver_pts') = (SELECT v FROM seen WHERE what = 'table') AS rollback_unchanged;
CREATE TEMP TABLE history (v int8);
INSERT INTO history VALUES (vasttile.table_version('ver_pts'));
UPDATE ver_pts SET vcs_key = vcs_key WHERE false;
INSERT INTO history VALUES (vasttile.table_version('ver_pts'));
DELETE FROM ver_pts WHERE vcs_key = vasttile.lonlat_to_key(-0.05, 51.5);
INSERT INTO history VALUES (vasttile.table_version('ver_pts'));
-- 1,000 statements: their rows are merged now and then (one in 64 at random: fewer than 700
-- rows are left unless none of the last 700 merged, a chance of 2 in 100,000), and every
-- version is new.
DO $$ BEGIN
    FOR i IN 1..1000 LOOP
        INSERT INTO ver_pts VALUES (i);
        INSERT INTO history VALUES (vasttile.table_version('ver_pts'));
    END LOOP;
END $$;
SELECT count(*) AS versions, count(DISTINCT v) AS distinct_versions FROM history;
SELECT sum(changes) AS changes, count(*) < 700 AS merged FROM vasttile.data_changes WHERE rel = 'ver_pts'::regclass;
DELETE FROM ver_pts WHERE vcs_key BETWEEN 1 AND 1000;
-- Pyramids: built and refreshed with changes, a new version; refreshed without, the same.
SELECT vasttile.create_heat_pyramid('ver_pyr', 'ver_pts', '{"base_zoom": 10}') ->> 'tiles' AS tiles;
SELECT vasttile.create_pyramid_layer('ver_pyr_layer', 'ver_pyr');
INSERT INTO seen VALUES ('pyramid', vasttile.heat_pyramid_version('ver_pyr')), ('pyramid layer', vasttile.layer_version('ver_pyr_layer'));
SELECT vasttile.heat_pyramid_refresh('ver_pyr') ->> 'refresh' AS refresh;
SELECT vasttile.heat_pyramid_version('ver_pyr') = (SELECT v FROM seen WHERE what = 'pyramid') AS empty_refresh_unchanged,
       vasttile.layer_version('ver_pyr_layer') = (SELECT v FROM seen WHERE what = 'pyramid layer') AS layer_unchanged;
-- A change to the table changes the pyramid's version at once (deeper tiles are drawn from it),
-- and again when the refresh brings it into the stored tiles.
INSERT INTO ver_pts VALUES (vasttile.lonlat_to_key(-0.02, 51.5));
SELECT vasttile.heat_pyramid_version('ver_pyr') <> (SELECT v FROM seen WHERE what = 'pyramid') AS changed_by_insert;
UPDATE seen SET v = vasttile.heat_pyramid_version('ver_pyr') WHERE what = 'pyramid';
SELECT vasttile.heat_pyramid_refresh('ver_pyr') ->> 'refresh' AS refresh;
SELECT vasttile.heat_pyramid_version('ver_pyr') <> (SELECT v FROM seen WHERE what = 'pyramid') AS changed_by_refresh;
-- The heat layer serves the pyramid's zooms: its version follows the pyramid too.
UPDATE seen SET v = vasttile.layer_version('ver_heat') WHERE what = 'heat';
SELECT vasttile.heat_pyramid_build('ver_pyr') ->> 'tiles' AS rebuilt_tiles;
SELECT vasttile.layer_version('ver_heat') <> (SELECT v FROM seen WHERE what = 'heat') AS heat_follows_pyramid;
-- Layers that are drawn every time: choropleths, and layers over tables of other owners.
CREATE TABLE ver_other (vcs_key int8);
GRANT SELECT ON ver_other TO ver_nobody;
CREATE SCHEMA ver_s AUTHORIZATION ver_nobody;
SET ROLE ver_nobody;
SELECT vasttile.create_dot_layer('ver_other_dots', 'ver_other', '{}', 'vcs_key', 'ver_s');
SELECT vasttile.layer_version('ver_other_dots', 'ver_s') IS NULL AS other_owner_unversioned;
SELECT vasttile.table_version('ver_other') IS NULL AS other_table_unversioned;
RESET ROLE;
SELECT vasttile.create_choropleth_layer('ver_choro', 'no_such_skeleton', 'SELECT 1, 1.0');
SELECT vasttile.layer_version('ver_choro') IS NULL AS choropleth_unversioned;
-- A trigger disabled, then enabled again: the writes meanwhile were not counted, yet the
-- version is new (it follows the trigger's catalog row too).
UPDATE seen SET v = vasttile.table_version('ver_pts') WHERE what = 'table';
ALTER TABLE ver_pts DISABLE TRIGGER vasttile_version;
SELECT vasttile.table_version('ver_pts') IS NULL AS disabled_unversioned;
INSERT INTO ver_pts VALUES (7);
ALTER TABLE ver_pts ENABLE TRIGGER vasttile_version;
SELECT vasttile.table_version('ver_pts') <> (SELECT v FROM seen WHERE what = 'table') AS new_after_enable;
DELETE FROM ver_pts WHERE vcs_key = 7;
-- Tables whose writes would not all fire the trigger: a parent of inheritance children, and a
-- versioned table that becomes one.
CREATE TABLE ver_parent (vcs_key int8);
CREATE TABLE ver_child () INHERITS (ver_parent);
SELECT vasttile.create_dot_layer('ver_parent_dots', 'ver_parent');
SELECT vasttile.table_version('ver_parent') IS NULL AS parent_unversioned;
CREATE TABLE ver_child2 () INHERITS (ver_pts);
SELECT vasttile.table_version('ver_pts') IS NULL AS unversioned_once_a_parent;
DROP TABLE ver_child2;
SELECT vasttile.table_version('ver_pts') IS NOT NULL AS versioned_again;
-- The parameter v is not style: it changes nothing in the tile.
SELECT md5(public.ver_dots(14, 8187, 5448)) = md5(public.ver_dots(14, 8187, 5448, '{"v": 12345}')) AS v_ignored;
-- Bad input and rights.
CREATE OR REPLACE FUNCTION public.ver_try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$;
SELECT ver_try('SELECT vasttile.layer_version(''ver_none'')');
SELECT ver_try('SELECT vasttile.layer_version(NULL)');
SELECT ver_try('SELECT vasttile.layer_version(''ver_heat'', NULL)');
SELECT ver_try('SELECT vasttile.layer_version(''ver_heat'', ''no_schema'')');
SELECT ver_try('SELECT vasttile.heat_pyramid_version(''ver_none'')');
SELECT ver_try('SELECT vasttile.table_version(0::oid::regclass)');
SELECT vasttile.table_version(NULL) IS NULL AS strict;
GRANT USAGE ON SCHEMA public TO ver_nobody;
GRANT EXECUTE ON FUNCTION public.ver_try(text) TO ver_nobody;
SET ROLE ver_nobody;
SELECT ver_try('SELECT vasttile.table_version(''ver_pts'')');
SELECT ver_try('SELECT vasttile.layer_version(''ver_heat'')');
SELECT ver_try('SELECT vasttile.heat_pyramid_version(''ver_pyr'')');
SELECT ver_try('SELECT count(*) FROM vasttile.data_changes');
SELECT ver_try('INSERT INTO vasttile.data_changes VALUES (''ver_pts''::regclass, -1)');
SELECT ver_try('SELECT nextval(''vasttile.pyramid_version_seq'')');
RESET ROLE;
SELECT vasttile.drop_heat_pyramid('ver_pyr');
DROP FUNCTION public.ver_heat(integer, integer, integer, json), public.ver_dots(integer, integer, integer, json),
    public.ver_pyr_layer(integer, integer, integer, json), public.ver_choro(integer, integer, integer, json),
    public.ver_parent_dots(integer, integer, integer, json), public.ver_try(text);
DROP TABLE ver_parent CASCADE;
DROP SCHEMA ver_s CASCADE;
DROP TABLE ver_pts, ver_other;
REVOKE ALL ON SCHEMA public FROM ver_nobody;
DROP ROLE ver_nobody;
