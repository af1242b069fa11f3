-- The 42,049 US ZIP codes (vega-datasets): DISTINCT pixels against an independent computation,
-- and the rendered tiles against golden PNGs, pixel by pixel.
SET client_min_messages = warning;
\i pgrx-examples/zipcodes/load.sql
SET search_path = vasttile, public;
SELECT count(*) AS zip_codes FROM zipcodes;

-- Distinct pixels over the whole table at z4 and z10: vasttile's pixel key against Web Mercator
-- pixels computed here in plain SQL floating point, without any vasttile function.
WITH independent AS (
  SELECT z, count(DISTINCT (floor((longitude + 180) / 360 * 2 ^ (z + 8)),
                            floor((1 - ln(tan(pi() / 4 + radians(latitude) / 2)) / pi()) / 2 * 2 ^ (z + 8)))) AS pixels
  FROM zipcodes, (VALUES (4), (10)) zs(z) GROUP BY z),
vasttile AS (
  SELECT z, count(DISTINCT pixel_key(vcs_key, z)) AS pixels
  FROM zipcodes, (VALUES (4), (10)) zs(z) GROUP BY z)
SELECT z, v.pixels AS vasttile_pixels, i.pixels AS independent_pixels, v.pixels = i.pixels AS equal
FROM vasttile v JOIN independent i USING (z) ORDER BY z;

-- The article's DISTINCT in plain SQL: one row per lit pixel of tile (10, 262, 380) over Chicago.
SELECT count(*) AS lit_pixels FROM (
  SELECT DISTINCT pixel_key(vcs_key, 10)
  FROM zipcodes
  WHERE vcs_key >= tile_key_lo(10, 262, 380) AND vcs_key < tile_key_hi(10, 262, 380)) p;

-- Radius-0 tiles light exactly the distinct pixels of their key range.
SELECT z, tx, ty, (png_info(dot_tile('zipcodes', z, tx, ty, '{"radius": 0}'))).visible_pixels,
       (SELECT count(DISTINCT pixel_key(vcs_key, z)) FROM zipcodes
        WHERE vcs_key >= tile_key_lo(z, tx, ty) AND vcs_key < tile_key_hi(z, tx, ty)) AS distinct_pixels
FROM (VALUES (0, 0, 0), (4, 4, 6), (4, 3, 5), (10, 262, 380), (10, 301, 384)) t(z, tx, ty);

-- Golden tiles, compared pixel by pixel.
\getenv repo VASTTILE_REPO
SELECT name, png_diff(tile, pg_read_binary_file(:'repo' || '/tests/golden/' || name || '.png')) AS differing_pixels
FROM (VALUES
  ('zip-z0', dot_tile('zipcodes', 0, 0, 0)),
  ('zip-z4-4-6', dot_tile('zipcodes', 4, 4, 6, '{"radius": 1.2, "color": "#d62728"}')),
  ('zip-z10-262-380', dot_tile('zipcodes', 10, 262, 380, '{"radius": 3, "color": "#6a3d9acc"}'))
) t(name, tile);
