-- Run under the old version: one object of every kind vasttile keeps, and the tiles each
-- serves (saved in upgrade_tiles_before), to compare after ALTER EXTENSION vasttile UPDATE.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET search_path = public, vasttile;

-- Points with weights, paths, activities, polygons.
CREATE TABLE up_points AS
SELECT k AS vcs_key, (1 + (row_number() OVER ()) % 5)::float8 AS w
FROM synthetic_activities(200, 11, -0.1, 51.5, 3000) a, unnest(a.path) k;
CREATE INDEX ON up_points (vcs_key);
CREATE TABLE up_paths AS SELECT id, path FROM synthetic_activities(150, 12, -0.1, 51.5, 4000);
CREATE TABLE up_acts AS SELECT * FROM synthetic_activities(300, 13, -0.1, 51.5, 3000);
CREATE TABLE up_regions AS
SELECT i * 10 + j + 1 AS id,
       polygon_from_geojson(jsonb_build_object('type', 'Polygon', 'coordinates', jsonb_build_array(jsonb_build_array(
           jsonb_build_array(-0.3 + i * 0.05, 51.35 + j * 0.03), jsonb_build_array(-0.25 + i * 0.05, 51.35 + j * 0.03),
           jsonb_build_array(-0.25 + i * 0.05, 51.38 + j * 0.03), jsonb_build_array(-0.3 + i * 0.05, 51.35 + j * 0.03))))) AS polygon
FROM generate_series(0, 9) i, generate_series(0, 9) j;
CREATE TABLE up_values AS SELECT id, (id % 7)::float8 AS v FROM up_regions;

-- Pyramids of each geometry, a skeleton layer with cached tiles, every layer kind.
SELECT (create_heat_pyramid('up_points', 'up_points', '{"geometry": "points", "base_zoom": 14, "weight_column": "w"}'))->'tiles' IS NOT NULL;
SELECT (create_heat_pyramid('up_paths', 'up_paths', '{"geometry": "paths", "column": "path", "base_zoom": 14}'))->'tiles' IS NOT NULL;
SELECT (create_heat_pyramid('up_acts', 'up_acts', '{"geometry": "activities", "base_zoom": 14}'))->'tiles' IS NOT NULL;
SELECT create_skeleton_layer('up_regions', 'up_regions');
SELECT skeleton_prerender('up_regions', 8, 10) > 0;
SELECT create_heat_layer('up_heat', 'up_points', '{"colormap": "viridis"}', 'vcs_key', 'w');
SELECT create_dot_layer('up_dots', 'up_points', '{"radius": 2, "color": "#d62728"}');
SELECT create_access_layer('up_access', 'up_points');
SELECT create_pyramid_layer('up_pyramid', 'up_acts', '{"colormap": "magma"}');
SELECT create_choropleth_layer('up_choropleth', 'up_regions', 'SELECT id, v FROM up_values', '{"colormap": "blues"}');

-- What a 0.1.0 installation could hold that 0.2.0 must clean up (a fresh install never has it,
-- so after the update both must look the same): grants its README asked for on the log and
-- tiles, triggers 0.1.0 left on a table when a pyramid or layer was made again over another
-- one, and a pyramid whose table was dropped.
SELECT extversion = '0.1.0' AS old_version FROM pg_extension WHERE extname = 'vasttile' \gset
\if :old_version
DO $$ BEGIN CREATE ROLE up_writer; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT INSERT ON vasttile.heat_pyramid_log TO up_writer;
GRANT SELECT ON vasttile.heat_pyramid_tiles TO up_writer;
GRANT UPDATE (levels) ON vasttile.heat_pyramid_tiles TO up_writer;
CREATE TABLE up_gone AS SELECT vcs_key FROM up_points LIMIT 100;
SELECT (create_heat_pyramid('up_gone', 'up_gone', '{"base_zoom": 10}'))->'tiles' IS NOT NULL;
DROP TABLE up_gone;
\endif
CREATE TABLE up_points2 AS SELECT vcs_key FROM up_points LIMIT 500;
CREATE TABLE up_regions2 AS SELECT * FROM up_regions WHERE id <= 20;
SELECT (create_heat_pyramid('up_moved', 'up_points', '{"base_zoom": 12}'))->'tiles' IS NOT NULL;
SELECT (create_heat_pyramid('up_moved', 'up_points2', '{"base_zoom": 12}'))->'tiles' IS NOT NULL;
SELECT create_skeleton_layer('up_moved_regions', 'up_regions');
SELECT create_skeleton_layer('up_moved_regions', 'up_regions2');

-- The tiles every object serves, by the same query before and after the update.
CREATE FUNCTION upgrade_tiles() RETURNS TABLE (what text, z int, x int, y int, tile bytea)
LANGUAGE sql SET search_path = public, vasttile AS $$
    WITH t(z, x, y) AS (VALUES (10, 511, 340), (11, 1023, 681), (12, 2046, 1362), (12, 2047, 1362), (13, 4093, 2724))
    SELECT 'pyramid ' || p, t.z, t.x, t.y, heat_pyramid_tile(p, t.z, t.x, t.y)
    FROM t, unnest(ARRAY['up_points', 'up_paths', 'up_acts']) p
    UNION ALL SELECT 'heat_tile (pyramid shortcut)', t.z, t.x, t.y, heat_tile('up_points', t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'heat_tile weighted', t.z, t.x, t.y, heat_tile('up_points', t.z, t.x, t.y, '{}', 'vcs_key', 'w') FROM t
    UNION ALL SELECT 'skeleton_tile', t.z, t.x, t.y, skeleton_tile('up_regions', t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_heat', t.z, t.x, t.y, public.up_heat(t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_dots', t.z, t.x, t.y, public.up_dots(t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_access', t.z, t.x, t.y, public.up_access(t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_pyramid', t.z, t.x, t.y, public.up_pyramid(t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_choropleth', t.z, t.x, t.y, public.up_choropleth(t.z, t.x, t.y) FROM t
    UNION ALL SELECT 'layer up_choropleth styled', t.z, t.x, t.y, public.up_choropleth(t.z, t.x, t.y, '{"colormap": "greys", "opacity": 0.5}') FROM t
$$;
CREATE TABLE upgrade_tiles_before AS SELECT * FROM upgrade_tiles();
SELECT count(*) AS tiles, count(*) FILTER (WHERE tile IS NOT NULL) AS drawn FROM upgrade_tiles_before;
SELECT count(*) AS cached_skeletons FROM vasttile.skeleton_cache;
-- Rows logged and not yet refreshed when the update runs.
INSERT INTO up_acts SELECT id + 50000, kind, is_virtual, is_private, path, times FROM synthetic_activities(12, 31, -0.1, 51.5, 2000);
