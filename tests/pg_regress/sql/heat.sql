-- Heat grids on real data against independent computations; rendering, stats, preview, the
-- Citus path, layers, accessibility, and bad input. Needs the zipcodes table (zipcodes.sql runs first).
SET client_min_messages = warning;
SET search_path = vasttile, public;
SET extra_float_digits = 0;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
\i pgrx-examples/earthquakes/load.sql
SET search_path = vasttile, public;

-- Web Mercator pixels in plain SQL floating point, without any vasttile function.
CREATE FUNCTION pg_temp.px(lon float8, z int) RETURNS int8 LANGUAGE sql IMMUTABLE AS
  $$ SELECT floor((lon + 180) / 360 * 2 ^ (z + 8))::int8 $$;
CREATE FUNCTION pg_temp.py(lat float8, z int) RETURNS int8 LANGUAGE sql IMMUTABLE AS
  $$ SELECT floor((1 - ln(tan(pi() / 4 + radians(lat) / 2)) / pi()) / 2 * 2 ^ (z + 8))::int8 $$;

-- Count grids of ZIP codes equal an independent GROUP BY, pixel for pixel, at z4 and z10.
WITH tiles(z, tx, ty) AS (VALUES (4, 4, 6), (4, 3, 5), (10, 301, 384)),
vasttile AS (
  SELECT z, tx, ty, p.px, p.py, p.heat
  FROM tiles, LATERAL heat_pixels((SELECT heat_grid(vcs_key, z, tx, ty) FROM zipcodes)) p),
independent AS (
  SELECT z, tx, ty, pg_temp.px(longitude, z) - tx * 256 AS px, pg_temp.py(latitude, z) - ty * 256 AS py, count(*)::float8 AS heat
  FROM tiles, zipcodes
  WHERE pg_temp.px(longitude, z) / 256 = tx AND pg_temp.py(latitude, z) / 256 = ty
  GROUP BY 1, 2, 3, 4, 5)
SELECT z, tx, ty, count(*) AS pixels, sum(i.heat) AS points,
       count(*) FILTER (WHERE v.heat IS DISTINCT FROM i.heat) AS differing_pixels
FROM vasttile v FULL JOIN independent i USING (z, tx, ty, px, py)
GROUP BY z, tx, ty ORDER BY z, tx, ty;

-- Earthquakes weighted by magnitude (weights must be >= 0: the 44 negative magnitudes are left
-- out; pixels whose quakes all have magnitude 0 hold no heat), at the world tile and over
-- California; sums agree to rounding of the addition order.
WITH tiles(z, tx, ty) AS (VALUES (0, 0, 0), (5, 5, 12)),
vasttile AS (
  SELECT z, tx, ty, p.px, p.py, p.heat
  FROM tiles, LATERAL heat_pixels((SELECT heat_grid(vcs_key, z, tx, ty, mag) FROM earthquakes WHERE mag >= 0)) p),
independent AS (
  SELECT z, tx, ty, pg_temp.px(lon, z) - tx * 256 AS px, pg_temp.py(lat, z) - ty * 256 AS py, sum(mag) AS heat
  FROM tiles, earthquakes
  WHERE mag >= 0 AND pg_temp.px(lon, z) / 256 = tx AND pg_temp.py(lat, z) / 256 = ty
  GROUP BY 1, 2, 3, 4, 5 HAVING sum(mag) > 0)
SELECT z, tx, ty, count(*) AS pixels, round(sum(i.heat)::numeric, 2) AS magnitude,
       count(*) FILTER (WHERE abs(v.heat - i.heat) > 1e-9 OR v.heat IS NULL OR i.heat IS NULL) AS differing_pixels
FROM vasttile v FULL JOIN independent i USING (z, tx, ty, px, py)
GROUP BY z, tx, ty ORDER BY z, tx, ty;

-- Statistics and a text preview, for psql.
SELECT * FROM heat_stats((SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes));
SELECT heat_preview((SELECT heat_grid(vcs_key, 0, 0, 0, mag) FROM earthquakes WHERE mag >= 0), '{"normalize": "log"}', 32);

-- heat_tile equals rendering the aggregate; every normalisation and colormap renders.
SELECT png_diff(heat_tile('zipcodes', 4, 4, 6), heat_render((SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes))) AS differing;
SELECT n, c, (png_info(heat_render(g, jsonb_build_object('normalize', n, 'colormap', c)))).*
FROM (SELECT heat_grid(vcs_key, 4, 4, 6) AS g FROM zipcodes) s,
     (VALUES ('linear', 'jet'), ('log', 'viridis'), ('cbrt', 'inferno'), ('eq_hist', 'fire'), ('eq_hist', 'magma'), ('log', 'turbo'), ('linear', 'hot')) v(n, c);
SELECT (png_info(heat_tile('zipcodes', 4, 4, 6, '{"size": 512, "colormap": ["#000033", "#ff0000", "#ffff00"]}'))).*;
-- Grids of the x/y and key forms, and at 512 px, agree with each other.
SELECT (SELECT heat_grid(x, y, 4, 4, 6) FROM zipcodes) = (SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes) AS xy_equals_key,
       (SELECT heat_grid(x, y, 4, 4, 6, 1.0, 512) FROM zipcodes) = (SELECT heat_grid(vcs_key, 4, 4, 6, 1.0, 512) FROM zipcodes) AS same_at_512;

-- Merging grids of parts equals the grid of the whole.
SELECT heat_merge(g) = (SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes) AS merge_equals_whole
FROM (SELECT heat_grid(vcs_key, 4, 4, 6) AS g FROM zipcodes GROUP BY state) parts;

-- The path that distributes on Citus: GROUP BY the pixel key with built-in count, then the pairs.
-- (The pairs carry no row count: compare pixels, not statistics.)
WITH pairs AS (
  SELECT heat_grid_from_pixels(4, 4, 6, array_agg(pixel), array_agg(n)) AS g
  FROM (SELECT pixel_key(vcs_key, 4) AS pixel, count(*)::float8 AS n FROM zipcodes
        WHERE vcs_key >= tile_key_lo(4, 4, 6) AND vcs_key < tile_key_hi(4, 4, 6) GROUP BY 1) p),
agg AS (SELECT heat_grid(vcs_key, 4, 4, 6) AS g FROM zipcodes)
SELECT (SELECT count(*) FROM ((SELECT * FROM heat_pixels((SELECT g FROM pairs)))
                              EXCEPT (SELECT * FROM heat_pixels((SELECT g FROM agg)))) d) AS pixels_only_in_pairs,
       (SELECT count(*) FROM heat_pixels((SELECT g FROM pairs))) AS pixels,
       png_diff(heat_render((SELECT g FROM pairs)), heat_render((SELECT g FROM agg))) AS differing_rendered;

-- Empty tiles are NULL; all points in one pixel light one pixel.
SELECT heat_tile('zipcodes', 4, 0, 0) IS NULL AS empty_tile_is_null,
       (SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes WHERE false) IS NULL AS no_rows_is_null;
SELECT (png_info(heat_render(heat_grid(1073741824 + g, 1073741824, 0, 0, 0)))).visible_pixels
FROM generate_series(1, 1000) g;

-- A layer for tile servers: a (z, x, y, query_params) function with Martin's JSON comment.
SELECT create_heat_layer('regress_zip_heat', 'zipcodes', '{"colormap": "inferno"}');
SELECT obj_description('public.regress_zip_heat(integer, integer, integer, json)'::regprocedure)::jsonb -> 'content_type' AS content_type,
       p.provolatile, p.proparallel
FROM pg_proc p WHERE p.proname = 'regress_zip_heat';
SELECT png_diff(public.regress_zip_heat(4, 4, 6), heat_tile('zipcodes', 4, 4, 6, '{"colormap": "inferno"}')) AS default_style,
       png_diff(public.regress_zip_heat(4, 4, 6, '{"colormap": "viridis", "normalize": "log"}'),
                heat_tile('zipcodes', 4, 4, 6, '{"colormap": "viridis", "normalize": "log"}')) AS query_params_style;
SELECT pg_temp.err($q$SELECT public.regress_zip_heat(4, 4, 6, '{"colour": "red"}')$q$);

-- Accessibility: ZIP codes within 2 km of each pixel over Manhattan; access_tile is access_render of the aggregate.
SELECT rows, lit_pixels, round(max::numeric, 3) AS max
FROM heat_stats((SELECT access_grid(vcs_key, 11, 603, 769, 2.0) FROM zipcodes));
SELECT png_diff(access_tile('zipcodes', 11, 603, 769, '{"radius_km": 2}'),
                access_render((SELECT access_grid(vcs_key, 11, 603, 769, 2.0) FROM zipcodes))) AS differing;
SELECT (png_info(access_tile('zipcodes', 11, 603, 769, '{"radius_km": 2, "size": 512}'))).*;

-- Bad input.
SELECT pg_temp.err($q$SELECT heat_grid(vcs_key, 4, 4, 6, 'NaN') FROM zipcodes$q$);
SELECT pg_temp.err($q$SELECT heat_grid(vcs_key, 4, 4, 6, -1) FROM zipcodes$q$);
SELECT pg_temp.err($q$SELECT heat_grid(vcs_key, 4, 4, 6, mag) FROM earthquakes$q$);
SELECT pg_temp.err($q$SELECT heat_grid(vcs_key, 4, 4, 6, 1, 300) FROM zipcodes$q$);
SELECT pg_temp.err($q$SELECT heat_grid(x, y, 4, (x % 2)::int + 3, 6) FROM zipcodes$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{"normalise": "log"}')$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{"normalize": "sqrt"}')$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{"colormap": "rainbowz"}')$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{"max": 0}')$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{"alpha_max": 1.5}')$q$);
SELECT pg_temp.err($q$SELECT heat_tile('zipcodes', 4, 4, 6, '{}', 'vcs_key', 'no_such_column')$q$);
SELECT pg_temp.err($q$SELECT heat_render('\x0001'::bytea::heatgrid)$q$);
SELECT pg_temp.err($q$SELECT heat_grid_from_pixels(4, 4, 6, ARRAY[1, 2]::int8[], ARRAY[1]::float8[])$q$);
SELECT pg_temp.err($q$SELECT heat_preview((SELECT heat_grid(vcs_key, 4, 4, 6) FROM zipcodes), '{}', 2)$q$);
SELECT pg_temp.err($q$SELECT access_tile('zipcodes', 11, 603, 769, '{"radius_km": 0}')$q$);
SELECT pg_temp.err($q$SELECT access_tile('zipcodes', 11, 603, 769, '{"radius_km": 1000}')$q$);
SELECT pg_temp.err($q$SELECT access_grid(vcs_key, 11, 603, 769, -1) FROM zipcodes$q$);
