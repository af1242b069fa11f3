-- Heat pyramids: activities filtered and drawn as lines, 2x2 sums, seamless normalisation,
-- tiles beyond the base zoom, incremental refresh, failure safety, errors.
SET client_min_messages = warning;
SET search_path = vasttile, public;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- 3,000 synthetic activities in a 3 km town.
CREATE TABLE acts AS SELECT * FROM synthetic_activities(3000, 3, -0.1, 51.5, 3000);
ALTER TABLE acts ADD PRIMARY KEY (id);
SELECT kind, is_virtual, count(*), min(array_length(path, 1)) AS points FROM acts GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) FILTER (WHERE is_private) AS private FROM acts;

SELECT r->'rows' AS rows, r->'drawn' AS drawn, r->'left_out' AS left_out, r->'tiles' AS tiles, r->'base_tiles' AS base_tiles
FROM create_heat_pyramid('acts', 'acts', '{"geometry": "activities", "base_zoom": 15}') r;

-- The filters left out every virtual and private activity, and cars labelled as rides.
SELECT count(*) FILTER (WHERE activity_path(id, path, times, kind, is_virtual, is_private) IS NULL) AS left_out,
       count(*) FILTER (WHERE (is_virtual OR is_private)) AS flagged
FROM acts;
-- Each filter can be turned off.
SELECT count(*) FILTER (WHERE p IS NULL) AS left_out, sum(array_length(p, 1)) = sum(array_length(path, 1)) AS every_point
FROM acts, activity_path(id, path, times, kind, is_virtual, is_private,
  '{"exclude_flagged": false, "speed_limits": false, "stops": false, "offset_m": 0}') p;

-- Before normalisation every tile is the sum of its four children, pixel by pixel.
CREATE TEMP TABLE acts_counts AS
  SELECT z, x, y, heat_pyramid_counts('acts', z, x, y) AS counts FROM heat_pyramid_tiles WHERE pyramid = 'acts';
WITH parents AS (
  SELECT c.z - 1 AS z, c.x / 2 AS x, c.y / 2 AS y, heat_merge(heat_grid_parent(c.counts)) AS sum
  FROM acts_counts c WHERE c.z > 0 GROUP BY 1, 2, 3)
SELECT count(*) AS parents, count(*) FILTER (WHERE p.counts::bytea IS DISTINCT FROM s.sum::bytea) AS differing
FROM acts_counts p JOIN parents s USING (z, x, y);
SELECT count(DISTINCT total) AS distinct_totals, count(DISTINCT z) AS zooms
FROM (SELECT p.z, sum(s.total) AS total FROM acts_counts p, heat_stats(p.counts) s GROUP BY p.z) t;
-- Stored compact: a few bytes per lit pixel instead of eight per pixel.
SELECT sum(length(t.counts)) * 4 < sum(length(c.counts)) AS compact
FROM heat_pyramid_tiles t JOIN acts_counts c USING (z, x, y) WHERE t.pyramid = 'acts';

-- Seams: across tile edges, levels differ no more than between neighbouring pixels inside
-- tiles (all lit pairs: within 2%; equal heat, where only the normalisation can differ:
-- within 1/100 of a level).
SELECT z, compared_with, edge_pairs > 1000 AS enough_pairs,
       CASE WHEN compared_with = 'equal heat' THEN edge_mean <= inner_mean + 0.01
            ELSE edge_mean <= 1.02 * inner_mean END AS no_seam
FROM generate_series(14, 15) z, heat_pyramid_seams('acts', z) ORDER BY z, compared_with;

-- Tiles up to the base zoom come from stored levels; beyond it they are drawn on the fly and
-- equal the same rows drawn by hand.
SELECT z, (png_info(heat_pyramid_tile('acts', z, vcs_tile(lon_to_vcs(-0.1), z), vcs_tile(lat_to_vcs(51.5), z)))).visible_pixels > 0 AS lit
FROM generate_series(10, 16, 2) z;
WITH t AS (SELECT 17 AS z, vcs_tile(lon_to_vcs(-0.1), 17) AS x, vcs_tile(lat_to_vcs(51.5), 17) AS y)
SELECT png_diff(heat_pyramid_tile('acts', t.z, t.x, t.y),
                (SELECT heat_render(heat_grid_paths(activity_path(id, path, times, kind, is_virtual, is_private), t.z, t.x, t.y)) FROM acts)
       ) AS differing_pixels
FROM t;
-- Retina: a 512-px tile of the 256-px pyramid is its four children side by side.
WITH t AS (SELECT 13 AS z, vcs_tile(lon_to_vcs(-0.1), 13) AS x, vcs_tile(lat_to_vcs(51.5), 13) AS y)
SELECT (png_info(heat_pyramid_tile('acts', t.z, t.x, t.y, '{"size": 512}'))).width,
       (png_info(heat_pyramid_tile('acts', t.z, t.x, t.y, '{"size": 512}'))).visible_pixels =
       (SELECT sum(i.visible_pixels)
        FROM generate_series(0, 1) dx, generate_series(0, 1) dy,
             png_info(heat_pyramid_tile('acts', t.z + 1, 2 * t.x + dx, 2 * t.y + dy)) i) AS same_pixels
FROM t;
WITH t AS (SELECT 16 AS z, vcs_tile(lon_to_vcs(-0.1), 16) AS x, vcs_tile(lat_to_vcs(51.5), 16) AS y)
SELECT png_diff(heat_pyramid_tile('acts', t.z, t.x, t.y, '{"size": 512}'),
                (SELECT heat_render(heat_grid_paths(activity_path(id, path, times, kind, is_virtual, is_private), t.z, t.x, t.y, 1.0, 512)) FROM acts)
       ) AS differing_pixels_beyond_base
FROM t;
-- Restyled at request time; linear normalisation shades the stored counts.
SELECT (png_info(heat_pyramid_tile('acts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14), '{"colormap": "viridis", "normalize": "linear"}'))).visible_pixels > 0 AS restyled;

-- Incremental refresh: changes are logged, then redrawn into the tiles they touch; the result
-- equals a pyramid built from scratch.
INSERT INTO acts SELECT id + 10000, kind, is_virtual, is_private, path, times FROM synthetic_activities(60, 4, -0.09, 51.505, 400);
-- (and some where there were no tiles before)
INSERT INTO acts SELECT id + 11000, kind, is_virtual, is_private, path, times FROM synthetic_activities(20, 6, -0.3, 51.45, 300);
DELETE FROM acts WHERE id % 100 = 7;
UPDATE acts SET kind = 'walk' WHERE id % 100 = 9;
SELECT sign, count(*) FROM heat_pyramid_log WHERE pyramid = 'acts' GROUP BY sign ORDER BY sign;
SELECT r->'refresh' AS refresh, r->'rows' AS rows, (r->>'tiles_renormalised')::int > 0 AS renormalised FROM heat_pyramid_refresh('acts') r;
SELECT (create_heat_pyramid('fresh', 'acts', '{"geometry": "activities", "base_zoom": 15}'))->'rows' AS rows;
CREATE FUNCTION pg_temp.differing(a text, b text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (SELECT * FROM heat_pyramid_tiles WHERE pyramid = a) p
  FULL JOIN (SELECT * FROM heat_pyramid_tiles WHERE pyramid = b) q USING (z, x, y)
  WHERE p.counts::bytea IS DISTINCT FROM q.counts::bytea OR p.levels IS DISTINCT FROM q.levels $$;
SELECT pg_temp.differing('acts', 'fresh') AS differing_tiles;
-- The set-based build, in PostgreSQL's parallel workers, builds the same pyramid.
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT r->'build' AS build, r->'rows' AS rows, r->'tiles' AS tiles, r->'parallel_workers_planned' AS workers
FROM create_heat_pyramid('fresh_pq', 'acts', '{"geometry": "activities", "base_zoom": 15, "build": "parallel_query"}') r;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT pg_temp.differing('fresh_pq', 'fresh') AS differing_tiles, (SELECT count(*) FROM heat_pyramid_tiles WHERE pyramid = 'fresh_pq') > 0 AS built;
SELECT options->'build' AS build FROM heat_pyramids WHERE name = 'fresh_pq';
SELECT drop_heat_pyramid('fresh_pq');
SELECT pg_temp.err($$SELECT create_heat_pyramid('bad_build', 'acts', '{"geometry": "activities", "build": "threads"}')$$);
-- Counts are stored up to the base zoom only.
SELECT pg_temp.err($$SELECT heat_pyramid_counts('fresh', 16, 32749, 21794)$$);

-- A build or refresh that fails (here: a statement timeout) leaves the last good pyramid and
-- the log as they were.
INSERT INTO acts SELECT id + 20000, kind, is_virtual, is_private, path, times FROM synthetic_activities(30, 5, -0.1, 51.5, 3000);
SELECT count(*) AS logged FROM heat_pyramid_log WHERE pyramid = 'acts';
SET statement_timeout = '30ms';
SELECT heat_pyramid_build('acts');
SELECT heat_pyramid_refresh('acts');
RESET statement_timeout;
SELECT count(*) AS logged FROM heat_pyramid_log WHERE pyramid = 'acts';
SELECT pg_temp.differing('acts', 'fresh') AS differing_tiles;
SELECT r->'refresh' AS refresh FROM heat_pyramid_refresh('acts') r;
SELECT pg_temp.differing('acts', 'fresh') > 0 AS changed;
-- TRUNCATE asks for a full rebuild.
SELECT drop_heat_pyramid('fresh');
TRUNCATE acts;
SELECT r->'refresh' AS refresh, r->'tiles' AS tiles FROM heat_pyramid_refresh('acts') r;

-- A points pyramid: heat_tile over the same table then serves from it.
CREATE TABLE pts AS SELECT k AS vcs_key FROM synthetic_activities(300, 8, -0.1, 51.5, 2000) a, unnest(a.path) k;
CREATE INDEX ON pts (vcs_key);
CREATE TEMP TABLE before AS
  SELECT heat_tile('pts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14)) AS png;
SELECT r->'rows' AS rows FROM create_heat_pyramid('pts', 'pts', '{"base_zoom": 14}') r;
SELECT png_diff(heat_tile('pts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14)),
                heat_pyramid_tile('pts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14))) AS vs_pyramid,
       png_diff((SELECT png FROM before),
                heat_pyramid_tile('pts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14))) > 0 AS normalised_differently;
SELECT create_pyramid_layer('pts_heat', 'pts', '{"colormap": "inferno"}');
SELECT pts_heat(14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14)) =
       heat_pyramid_tile('pts', 14, vcs_tile(lon_to_vcs(-0.1), 14), vcs_tile(lat_to_vcs(51.5), 14), '{"colormap": "inferno"}') AS layer_serves;
SELECT count(*) AS tiles FROM path_tiles(ARRAY[lonlat_to_key(-0.2, 51.5), lonlat_to_key(-0.1, 51.5)], 12);

-- However little memory a build has, the same tiles: held in memory, runs spilled to a
-- temporary file, or (rows over more tiles than the spill index may hold) sorted by PostgreSQL.
CREATE TABLE wide AS SELECT i AS id, vcs_key((1 << 30) + (hashint4(i)::int8 & ((1 << 28) - 1))::int4,
                                             (1 << 30) + (hashint4(i + 7)::int8 & ((1 << 28) - 1))::int4) AS vcs_key
FROM generate_series(1, 60000) i;
CREATE TEMP TABLE wide_builds (mem text, spills int, sorted bool, tiles text);
CREATE FUNCTION pg_temp.wide_build(mem text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE r jsonb;
BEGIN
    PERFORM set_config('maintenance_work_mem', mem, true);
    r := heat_pyramid_build('wide');
    INSERT INTO wide_builds SELECT mem, (r->>'spills')::int, (r->>'sorted_runs')::bool,
        md5(string_agg(md5(heat_pyramid_tile('wide', z, x, y)), '' ORDER BY z, x, y))
    FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'wide';
END $f$;
SELECT create_heat_pyramid('wide', 'wide', '{"base_zoom": 9}', false) ->> 'built' AS built;
SELECT pg_temp.wide_build(m) FROM unnest(ARRAY['64MB', '2MB', '1MB']) m;
SELECT mem, spills > 0 AS spilled, sorted, tiles = (SELECT tiles FROM wide_builds WHERE mem = '64MB') AS same_tiles
FROM wide_builds ORDER BY mem;
SELECT drop_heat_pyramid('wide');
DROP TABLE wide;

-- Bad input.
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('nope', 1, 0, 0)$q$);
SELECT pg_temp.err($q$SELECT heat_pyramid_refresh('nope')$q$);
SELECT pg_temp.err($q$SELECT create_heat_pyramid('bad', 'acts', '{"geometry": "lines"}')$q$);
SELECT pg_temp.err($q$SELECT create_heat_pyramid('bad', 'acts', '{"base_zoom": 30}')$q$);
SELECT pg_temp.err($q$SELECT create_heat_pyramid('bad', 'acts', '{"geometry": "paths", "column": "nope"}')$q$);
SELECT pg_temp.err($q$SELECT create_heat_pyramid('bad', 'acts', '{"geometry": "activities", "filters": {"stops": 3}}')$q$);
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('pts', 1, 5, 0)$q$);
SELECT pg_temp.err($q$SELECT * FROM heat_pyramid_seams('pts', 15)$q$);
SELECT pg_temp.err($q$SELECT * FROM heat_pyramid_seams('pts', -1)$q$);
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('pts', 1, 0, 0, '{"colormap": "nope"}')$q$);
SELECT pg_temp.err($q$SELECT activity_path(1, ARRAY[1, 2]::int8[], ARRAY[0.0]::float8[], 'run')$q$);
SELECT pg_temp.err($q$SELECT activity_path(1, ARRAY[1, 2]::int8[], ARRAY[5.0, 1.0]::float8[], 'run')$q$);
SELECT pg_temp.err($q$SELECT heat_grid_parent(heat_grid(0::int8, 0, 0, 0))$q$);
SELECT pg_temp.err($q$SELECT * FROM synthetic_activities(-1)$q$);
-- Stored tiles are read as untrusted bytes (tampered with here as a superuser could): counts
-- that are not counts, another tile's counts under a rank table, or levels of no known form are
-- errors saying to rebuild, never a wrong tile; plain levels (0.1.0's form) need no counts.
SELECT get_byte(levels, 5) AS form, count(*) AS tiles
FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'pts' AND levels IS NOT NULL GROUP BY 1 ORDER BY 1;
CREATE TEMP TABLE pts_tile AS SELECT 14 AS z, vcs_tile(lon_to_vcs(-0.1), 14) AS x, vcs_tile(lat_to_vcs(51.5), 14) AS y;
CREATE FUNCTION pg_temp.tamper(counts bytea, levels bytea) RETURNS void LANGUAGE sql AS $$
  UPDATE vasttile.heat_pyramid_tiles t SET counts = coalesce(tamper.counts, t.counts), levels = coalesce(tamper.levels, t.levels)
  FROM pts_tile p WHERE t.pyramid = 'pts' AND (t.z, t.x, t.y) = (p.z, p.x, p.y) $$;
BEGIN;
SELECT pg_temp.tamper('\x00', decode(repeat('ff', 65536), 'hex'));
SELECT (png_info(heat_pyramid_tile('pts', z, x, y))).visible_pixels AS plain_levels_served FROM pts_tile;
ROLLBACK;
BEGIN;
SELECT pg_temp.tamper('\x00', NULL);
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('pts', z, x, y) FROM pts_tile$q$);
ROLLBACK;
BEGIN;
SELECT pg_temp.tamper((SELECT counts FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'pts' AND z = 10), NULL);
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('pts', z, x, y) FROM pts_tile$q$);
ROLLBACK;
BEGIN;
SELECT pg_temp.tamper(NULL, '\x56544c560102ffff');
SELECT pg_temp.err($q$SELECT heat_pyramid_tile('pts', z, x, y) FROM pts_tile$q$);
ROLLBACK;
-- A negative weight is an error naming it, in a build and in a refresh (never a wrong sum).
CREATE TABLE weighted (id int8 PRIMARY KEY, path int8[], w float8);
INSERT INTO weighted SELECT i, ARRAY[lonlat_to_key(-0.1 + i * 0.001, 51.5), lonlat_to_key(-0.09 + i * 0.001, 51.51)],
       CASE WHEN i = 3 THEN -2 ELSE 1 END FROM generate_series(1, 5) i;
SELECT pg_temp.err($q$SELECT create_heat_pyramid('weighted', 'weighted', '{"geometry": "paths", "column": "path", "weight_column": "w", "base_zoom": 12}')$q$);
UPDATE weighted SET w = 1 WHERE id = 3;
SELECT (create_heat_pyramid('weighted', 'weighted', '{"geometry": "paths", "column": "path", "weight_column": "w", "base_zoom": 12}'))->>'drawn' AS drawn;
UPDATE weighted SET w = -5 WHERE id = 2;
SELECT pg_temp.err($q$SELECT heat_pyramid_refresh('weighted')$q$);
SELECT drop_heat_pyramid('weighted');
DROP TABLE weighted;
SELECT count(*) AS pyramids FROM heat_pyramids;
