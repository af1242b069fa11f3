-- Paths drawn as lines: the London Underground (vega-datasets), tiles that join exactly, errors.
SET client_min_messages = warning;
SET search_path = vasttile, public;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
\i pgrx-examples/london/load.sql
SET search_path = vasttile, public;
SELECT count(*) AS parts, count(DISTINCT line) AS lines, sum(array_length(path, 1)) AS points FROM tube_lines;

SELECT * FROM heat_stats((SELECT heat_grid_paths(path, 10, 511, 340) FROM tube_lines));

-- The four z11 tiles under z10 (511, 340) hold exactly the pixels of the z10 tile drawn at 512 px
-- (the same pixel grid): lines split at tile edges join without seams or double counts.
WITH big AS (SELECT p.* FROM heat_pixels((SELECT heat_grid_paths(path, 10, 511, 340, 1.0, 512) FROM tube_lines)) p),
quads AS (
  SELECT (q.tx - 1022) * 256 + p.px AS px, (q.ty - 680) * 256 + p.py AS py, p.heat
  FROM (VALUES (1022, 680), (1023, 680), (1022, 681), (1023, 681)) q(tx, ty),
       LATERAL heat_pixels((SELECT heat_grid_paths(path, 11, q.tx, q.ty) FROM tube_lines)) p)
SELECT (SELECT count(*) FROM big) AS pixels_512,
       (SELECT count(*) FROM quads) AS pixels_in_quads,
       (SELECT count(*) FROM ((SELECT * FROM big) EXCEPT (SELECT * FROM quads)) d) AS differing;

-- Weighted paths, and a GeoJSON LineString.
SELECT round(total::numeric, 2) AS total FROM heat_stats((SELECT heat_grid_paths(path, 10, 511, 340, 0.5, 256) FROM tube_lines));
SELECT array_length(p, 1) AS points FROM paths_from_geojson('{"type": "LineString", "coordinates": [[-0.2, 51.5], [-0.1, 51.5], [-0.1, 51.5], [-0.1, 51.52]]}') p;
SELECT (png_info(heat_render(heat_grid_paths(p, 10, 511, 340)))).visible_pixels
FROM paths_from_geojson('{"type": "LineString", "coordinates": [[-0.2, 51.5], [-0.1, 51.5], [-0.1, 51.52]]}') p;

-- Bad input.
SELECT pg_temp.err($q$SELECT * FROM paths_from_geojson('{"type": "LineString", "coordinates": [[0, 0]]}')$q$);
SELECT pg_temp.err($q$SELECT * FROM paths_from_geojson('{"type": "Point", "coordinates": [0, 0]}')$q$);
SELECT pg_temp.err($q$SELECT * FROM paths_from_geojson('{"type": "LineString", "coordinates": [[0, 0], [0, 95]]}')$q$);
SELECT pg_temp.err($q$SELECT heat_grid_paths(path, 10, 511, 340, -1.0, 256) FROM tube_lines$q$);
SELECT pg_temp.err($q$SELECT heat_grid_paths(path, 10, 511, 340, 1.0, 100) FROM tube_lines$q$);
SELECT pg_temp.err($q$SELECT heat_grid_paths(ARRAY[-5]::int8[], 10, 511, 340)$q$);
SELECT pg_temp.err($q$SELECT heat_grid_paths(path, 10, 511 + (part % 2)::int, 340) FROM tube_lines$q$);
