-- Point-tile benchmark on the ZIP codes: for each zoom 0..10, the 12 tiles holding the most ZIP
-- codes, each timed 7 times inside the server (no client round trips): PostgreSQL's own count(*)
-- over the tile's key range (the floor: an index-only range scan), the article's DISTINCT in
-- plain SQL, and vasttile's dot_tile at radius 0 (no ring to read) and radius 1.5 (reads the
-- 2-px ring around the tile so dots join across edges). Medians per zoom, and ratios to count(*).
-- Run with scripts/bench.sh (after scripts/setup.sh).
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;  -- one backend, like one tile request
SET search_path = vasttile, public;

CREATE TEMP TABLE bench_tiles AS
SELECT z, tx, ty, n FROM (
  SELECT z, tx, ty, n, row_number() OVER (PARTITION BY z ORDER BY n DESC, tx, ty) AS rank
  FROM (SELECT z, vcs_tile(x, z) AS tx, vcs_tile(y, z) AS ty, count(*) AS n
        FROM zipcodes, generate_series(0, 10) z GROUP BY 1, 2, 3) per_tile) ranked
WHERE rank <= 12;

CREATE TEMP TABLE bench_runs (rep int, z int, what text, ms float8);

-- Each run renders all of a zoom's tiles one way; a zoom's time per tile is the median over runs
-- of (run total / tiles), so busy and quiet tiles weigh as they come.
DO $$
DECLARE
  zoom int; rep int; t record; t0 timestamptz; n int8; b bytea; tiles int;
  ways text[] := ARRAY['count', 'sql_distinct', 'dot_r0', 'dot_r1.5'];
  way text;
BEGIN
  -- Warm the cache and the extension once.
  PERFORM count(*) FROM zipcodes;
  PERFORM dot_tile('zipcodes', 0, 0, 0);
  FOR rep IN 1..7 LOOP
    FOR zoom IN 0..10 LOOP
      SELECT count(*) INTO tiles FROM bench_tiles WHERE z = zoom;
      FOREACH way IN ARRAY ways LOOP
        t0 := clock_timestamp();
        FOR t IN SELECT * FROM bench_tiles WHERE z = zoom LOOP
          CASE way
          WHEN 'count' THEN
            SELECT count(*) INTO n FROM zipcodes
            WHERE vcs_key >= tile_key_lo(t.z, t.tx, t.ty) AND vcs_key < tile_key_hi(t.z, t.tx, t.ty);
          WHEN 'sql_distinct' THEN
            SELECT count(*) INTO n FROM (SELECT DISTINCT pixel_key(vcs_key, t.z) FROM zipcodes
              WHERE vcs_key >= tile_key_lo(t.z, t.tx, t.ty) AND vcs_key < tile_key_hi(t.z, t.tx, t.ty)) d;
          WHEN 'dot_r0' THEN
            b := dot_tile('zipcodes', t.z, t.tx, t.ty, '{"radius": 0}');
          ELSE
            b := dot_tile('zipcodes', t.z, t.tx, t.ty, '{"radius": 1.5}');
          END CASE;
        END LOOP;
        INSERT INTO bench_runs VALUES (rep, zoom, way, 1000 * extract(epoch FROM clock_timestamp() - t0) / tiles);
      END LOOP;
    END LOOP;
  END LOOP;
END $$;

\echo
\echo 'Point tiles from the 42,049 ZIP codes: ms per tile, median of 7 runs over the 12 busiest tiles of each zoom'
\echo '  count    PostgreSQL count(*) over the tile key range (index-only scan: the floor)'
\echo '  distinct SELECT DISTINCT pixel_key(...) over the same range, in plain SQL (the article)'
\echo '  dot r0   vasttile.dot_tile PNG, radius 0 (one pixel per distinct pixel)'
\echo '  dot r1.5 vasttile.dot_tile PNG, radius 1.5 (also reads the 2-px ring around the tile)'
WITH per_tile AS (
  SELECT z, avg(n) AS points FROM bench_tiles GROUP BY z),
med AS (
  SELECT z, what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM bench_runs GROUP BY z, what)
SELECT z, round(points)::int AS points_per_tile,
       round(c.ms::numeric, 3) AS count_ms, round(d.ms::numeric, 3) AS distinct_ms,
       round(r0.ms::numeric, 3) AS dot_r0_ms, round(r15.ms::numeric, 3) AS dot_r15_ms,
       round((r0.ms / c.ms)::numeric, 2) AS r0_over_count, round((r15.ms / c.ms)::numeric, 2) AS r15_over_count,
       round((r0.ms / d.ms)::numeric, 2) AS r0_over_distinct
FROM per_tile
JOIN med c USING (z) JOIN med d USING (z) JOIN med r0 USING (z) JOIN med r15 USING (z)
WHERE c.what = 'count' AND d.what = 'sql_distinct' AND r0.what = 'dot_r0' AND r15.what = 'dot_r1.5'
ORDER BY z;
