-- Run after the update and in a fresh install with the same objects: both must print the same.
-- Changes to every table, refreshes, cache invalidation and drops.
\set ON_ERROR_STOP on
\pset format unaligned
\pset pager off
SET client_min_messages = warning;
SET search_path = public, vasttile;

-- Every pyramid has a version (the update put the version trigger on their tables).
CREATE TEMP TABLE up_versions AS SELECT name, heat_pyramid_version(name) AS v FROM heat_pyramids;
SELECT name, v IS NOT NULL AS versioned FROM up_versions ORDER BY 1;
-- Writes go through the (renamed) triggers into the log; refreshes apply them.
INSERT INTO up_acts SELECT id + 10000, kind, is_virtual, is_private, path, times FROM synthetic_activities(40, 21, -0.12, 51.49, 2000);
DELETE FROM up_acts WHERE id % 9 = 0;
INSERT INTO up_points SELECT k, 2.5 FROM synthetic_activities(30, 22, -0.08, 51.51, 1500) a, unnest(a.path) k;
UPDATE up_paths SET path = path[1:10] WHERE id % 4 = 0;
-- Tables that lost a pyramid or layer to another table take writes (no trigger left behind).
INSERT INTO up_points2 SELECT vcs_key FROM up_points LIMIT 10;
UPDATE up_regions2 SET id = id WHERE id = 3;
SELECT pyramid, sign, count(*) FROM heat_pyramid_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT r->'rows' AS rows, r->'tiles_changed' AS tiles_changed FROM heat_pyramid_refresh('up_acts') r;
SELECT r->'rows' AS rows, r->'tiles_changed' AS tiles_changed FROM heat_pyramid_refresh('up_points') r;
SELECT r->'rows' AS rows, r->'tiles_changed' AS tiles_changed FROM heat_pyramid_refresh('up_paths') r;
SELECT r->'rows' AS rows, r->'tiles_changed' AS tiles_changed FROM heat_pyramid_refresh('up_moved') r;
SELECT count(*) AS log_rows_left FROM heat_pyramid_log;
SELECT name, heat_pyramid_version(name) <> v AS version_changed FROM up_versions ORDER BY 1;
-- A change to the polygons empties the layer's cache; the next tiles are drawn afresh.
UPDATE up_regions SET polygon = (SELECT polygon FROM up_regions WHERE id = 55) WHERE id = 1;
SELECT count(*) AS cached_after_change FROM skeleton_cache WHERE layer = 'up_regions';
SELECT what, z, x, y, md5(tile) FROM upgrade_tiles() ORDER BY 1, 2, 3, 4;
SELECT count(*) AS cached_again FROM skeleton_cache WHERE layer = 'up_regions';
SELECT 'refreshed tiles changed', count(*) > 0 FROM upgrade_tiles_before b JOIN upgrade_tiles() a USING (what, z, x, y)
WHERE a.tile IS DISTINCT FROM b.tile AND b.what IN ('pyramid up_acts', 'pyramid up_points', 'pyramid up_paths', 'skeleton_tile');
-- TRUNCATE logs a rebuild.
TRUNCATE up_paths;
SELECT r->'rows' AS rows FROM heat_pyramid_refresh('up_paths') r;
SELECT count(*) AS tiles_left FROM heat_pyramid_tiles WHERE pyramid = 'up_paths';
-- The owner recorded for every definition; rebuild and drop by name.
SELECT name, source, owner FROM heat_pyramids ORDER BY 1;
SELECT name, source, owner, generation > 0 AS has_generation FROM skeleton_layers ORDER BY 1;
SELECT r->'tiles' AS tiles FROM heat_pyramid_build('up_points') r;
SELECT drop_heat_pyramid('up_paths'), drop_heat_pyramid('up_acts'), drop_skeleton_layer('up_regions');
SELECT tgrelid::regclass, count(*) FROM pg_trigger WHERE tgname LIKE 'vasttile%' GROUP BY 1 ORDER BY 1;
SELECT pyramid, count(*) FROM heat_pyramid_tiles GROUP BY 1 ORDER BY 1;
SELECT count(*) AS skeletons_left FROM skeleton_cache;
