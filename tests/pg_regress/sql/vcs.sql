-- VCS coordinates, Morton keys, tiles and pixels.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vasttile;
SET search_path = vasttile, public;
SET extra_float_digits = 0;
-- SQLSTATE and message of a failing statement.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- Corners of the world; latitude beyond Web Mercator's limit is clamped.
SELECT lon_to_vcs(-180) AS west, lon_to_vcs(0) AS meridian, lon_to_vcs(180) AS east,
       lat_to_vcs(85.0511287798066) AS north, lat_to_vcs(0) AS equator,
       lat_to_vcs(89.9) AS clamped_north, lat_to_vcs(-90) AS clamped_south;

-- Round trip lon/lat -> VCS -> lon/lat lands within one VCS unit (360 / 2^31 degrees).
SELECT lon, lat, x, y,
       abs(vcs_to_lon(x) - lon) <= 360.0 / 2^31 AS lon_within_unit,
       abs(vcs_to_lat(y) - lat) <= 360.0 / 2^31 AS lat_within_unit
FROM (VALUES (-87.6298, 41.8781), (151.2093, -33.8688), (0.0, 0.0), (-179.999999, 85.05)) v(lon, lat),
     LATERAL (SELECT lon_to_vcs(lon) AS x, lat_to_vcs(lat) AS y) c;

-- Pixel at zoom, tile at zoom, pixel inside the tile (256 and 512 px) are shifts.
SELECT z, vcs_pixel(x, z) AS pixel, vcs_tile(x, z) AS tile,
       vcs_pixel_in_tile(x, z) AS in_tile_256, vcs_pixel_in_tile(x, z, 512) AS in_tile_512,
       vcs_pixel(x, z) = x >> (23 - z) AS is_shift
FROM (SELECT lon_to_vcs(-87.6298) AS x) s, generate_series(0, 22, 11) z;

-- Morton keys: interleaved bits, non-negative, invertible.
SELECT vcs_key(0, 0) AS origin, vcs_key(1, 0) AS x1, vcs_key(0, 1) AS y1, vcs_key(3, 5) AS k35,
       vcs_key(2147483647, 2147483647) = (1::int8 << 62) - 1 AS last_key_is_2_62_minus_1,
       vcs_key_x(vcs_key(123456789, 987654321)) AS x, vcs_key_y(vcs_key(123456789, 987654321)) AS y;

-- A tile is one key range; a pixel key is one value per pixel.
SELECT tile_key_lo(0, 0, 0), tile_key_hi(0, 0, 0), tile_key_range(1, 1, 0),
       tile_key_hi(23, 8388607, 8388607) = 1::int8 << 62 AS last_tile_ends_at_2_62;
SELECT * FROM tile_vcs_bounds(4, 4, 6);
SELECT round(west::numeric, 6) AS west, round(south::numeric, 6) AS south,
       round(east::numeric, 6) AS east, round(north::numeric, 6) AS north
FROM tile_envelope(4, 4, 6);
SELECT pixel_key(k, 0) AS z0, pixel_key(k, 10) AS z10, pixel_key(k, 10, 512) AS z10_512,
       pixel_key(k, 10) = k >> 26 AS is_shift
FROM (SELECT lonlat_to_key(-87.6298, 41.8781) AS k) s;
-- Ranges covering a tile and the 3-px ring its dots reach into: the tile's own range is one of them.
SELECT count(*) AS ranges,
       bool_or(lo <= tile_key_lo(10, 262, 380) AND hi >= tile_key_hi(10, 262, 380)) AS holds_tile
FROM tile_key_ranges(10, 262, 380, 3);

-- NULLs follow STRICT.
SELECT lon_to_vcs(NULL) IS NULL AS a, vcs_key(NULL, 1) IS NULL AS b, tile_key_lo(1, NULL, 0) IS NULL AS c;

-- Bad input is 22023 with a message naming the argument.
SELECT pg_temp.err('SELECT lon_to_vcs(''NaN'')');
SELECT pg_temp.err('SELECT lon_to_vcs(''Infinity'')');
SELECT pg_temp.err('SELECT lon_to_vcs(180.5)');
SELECT pg_temp.err('SELECT lat_to_vcs(-90.01)');
SELECT pg_temp.err('SELECT vcs_to_lon(-1)');
SELECT pg_temp.err('SELECT tile_key_lo(24, 0, 0)');
SELECT pg_temp.err('SELECT tile_key_lo(-1, 0, 0)');
SELECT pg_temp.err('SELECT tile_key_lo(4, 16, 0)');
SELECT pg_temp.err('SELECT tile_key_lo(4, 0, -1)');
SELECT pg_temp.err('SELECT vcs_pixel_in_tile(1, 4, 300)');
SELECT pg_temp.err('SELECT pixel_key(1, 23, 512)');
SELECT pg_temp.err('SELECT vcs_key_y(-5)');
SELECT pg_temp.err('SELECT * FROM tile_key_ranges(4, 4, 6, 257)');
