-- Point tiles on a small synthetic table: shapes, DISTINCT, NULL for empty tiles, errors.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vasttile;
SET search_path = vasttile, public;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- A 20 x 20 grid of points 1 degree apart over the central US, each point repeated 3 times.
CREATE TABLE grid AS
SELECT lon_to_vcs(-100 + i) AS x, lat_to_vcs(30 + j) AS y, lonlat_to_key(-100 + i, 30 + j) AS vcs_key
FROM generate_series(0, 19) i, generate_series(0, 19) j, generate_series(1, 3) rep;
CREATE INDEX ON grid (vcs_key);
ANALYZE grid;

-- 1,200 rows, 400 distinct points; at z0 (1.4 degrees a pixel) neighbours share pixels.
SELECT count(*) AS rows, count(DISTINCT vcs_key) AS points,
       count(DISTINCT pixel_key(vcs_key, 0)) AS z0_pixels, count(DISTINCT pixel_key(vcs_key, 4)) AS z4_pixels
FROM grid;

-- Radius 0 draws exactly one pixel per distinct pixel; the tile is indexed colour at 1 bit.
SELECT t.*, (SELECT count(DISTINCT pixel_key(vcs_key, 4)) FROM grid
             WHERE vcs_key >= tile_key_lo(4, 3, 6) AND vcs_key < tile_key_hi(4, 3, 6)) AS distinct_pixels
FROM png_info(dot_tile('grid', 4, 3, 6, '{"radius": 0}')) t;

-- Larger, translucent dots cover more pixels with more alpha levels; 512-px tiles double the grid.
SELECT * FROM png_info(dot_tile('grid', 4, 3, 6, '{"radius": 2, "color": "rgba(200, 30, 30, 0.6)"}'));
SELECT * FROM png_info(dot_tile('grid', 4, 3, 6, '{"radius": 0, "size": 512}'));

-- The aggregate over any query gives the same tile as the table function.
SELECT png_diff(dot_tile('grid', 4, 3, 6, '{"radius": 3}'),
                (SELECT dot_tile_agg(x, y, 4, 3, 6, '{"radius": 3}') FROM grid)) AS differing_pixels;

-- Empty tiles are NULL; empty_tile() gives a transparent PNG for callers that want one.
SELECT dot_tile('grid', 4, 0, 0) IS NULL AS empty_is_null,
       (SELECT dot_tile_agg(x, y, 4, 3, 6, '{}') FROM grid WHERE false) IS NULL AS no_rows_is_null;
SELECT * FROM png_info(empty_tile());
SELECT * FROM png_info(empty_tile(512));

-- Bad input.
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"radius": 65}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"radius": -1}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"radius": "big"}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"colour": "red"}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"color": "#12"}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{"size": 1024}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '"red"')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 23, 0, 0, '{"size": 512}')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 16)$q$);
SELECT pg_temp.err($q$SELECT dot_tile('grid', 4, 3, 6, '{}', 'no_such_column')$q$);
SELECT pg_temp.err($q$SELECT dot_tile('no_such_table', 4, 3, 6)$q$);
SELECT pg_temp.err($q$SELECT dot_tile_agg(x, y, 4, (x % 2)::int, 6, '{}') FROM grid$q$);
SELECT pg_temp.err($q$SELECT dot_tile_agg(-x, y, 4, 3, 6, '{}') FROM grid$q$);
SELECT pg_temp.err($q$SELECT png_info('\x00'::bytea)$q$);
