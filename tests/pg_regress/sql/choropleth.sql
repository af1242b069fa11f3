-- Choropleth tiles: polygon import and validation, skeleton cache (miss, hit, invalidation),
-- recolouring with values from a join, feature bits, and bad input.
SET client_min_messages = warning;
SET search_path = vasttile, public;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
\i pgrx-examples/counties/load.sql
SET search_path = vasttile, public;

SELECT count(*) AS counties, sum(i.vertices) AS vertices, count(*) FILTER (WHERE i.rings > 1) AS with_holes_or_parts
FROM counties, polygon_info(polygon) i;
SELECT count(*) AS rates, round(avg(rate)::numeric, 4) AS mean_rate FROM unemployment;

-- A miss renders and saves; a hit reads the same bytes.
SELECT count(*) AS cached_before FROM skeleton_cache WHERE layer = 'counties';
SELECT count(*) AS ids_in_tile, sum(pixels) AS pixels FROM skeleton_ids(skeleton_tile('counties', 5, 8, 12));
SELECT count(*) AS cached_after FROM skeleton_cache WHERE layer = 'counties';
SELECT skeleton_tile('counties', 5, 8, 12) = (SELECT skeleton FROM skeleton_cache WHERE layer = 'counties' AND z = 5) AS hit_reads_cache;

-- Recolour from a join: classes, a continuous colormap, explicit colours, missing values.
SELECT (png_info(skeleton_render(skeleton_tile('counties', 5, 8, 12), array_agg(id), array_agg(rate),
        '{"classes": {"breaks": [0.05, 0.1], "colors": ["#fee", "#f99", "#c00"]}}'))).*
FROM unemployment;
SELECT (png_info(skeleton_render(skeleton_tile('counties', 5, 8, 12), array_agg(id), array_agg(rate), '{"colormap": "viridis"}'))).*
FROM unemployment;
SELECT (png_info(skeleton_render(skeleton_tile('counties', 5, 8, 12), NULL, NULL, '{"colors": {"28049": "red", "1001": "blue"}}'))).*;
-- Counties without a value: transparent by default, or a configured colour.
SELECT (png_info(skeleton_render(skeleton_tile('counties', 5, 8, 12), ARRAY[1001]::int8[], ARRAY[0.1]))).visible_pixels AS one_county,
       (png_info(skeleton_render(skeleton_tile('counties', 5, 8, 12), ARRAY[1001]::int8[], ARRAY[0.1], '{"missing": "#ccc"}'))).visible_pixels AS all_counties;

-- Changing the layer's table empties its cache.
UPDATE counties SET name = name WHERE id = 28049;
SELECT count(*) AS cached_after_update FROM skeleton_cache WHERE layer = 'counties';
SELECT skeleton_prerender('counties', 0, 2) AS prerendered;
SELECT z, count(*) FROM skeleton_cache WHERE layer = 'counties' GROUP BY z ORDER BY z;

-- Feature bits: up to 32 features per pixel, switched by the colour mapping alone.
CREATE TABLE features (bit int8, polygon vcspolygon);
INSERT INTO features VALUES
  (0, polygon_from_geojson('{"type": "Polygon", "coordinates": [[[-100, 30], [-90, 30], [-90, 40], [-100, 40], [-100, 30]]]}')),
  (1, polygon_from_geojson('{"type": "Polygon", "coordinates": [[[-105, 35], [-95, 35], [-95, 45], [-105, 45], [-105, 35]]]}'));
SELECT create_skeleton_layer('features', 'features', 'bit', 'polygon', true);
SELECT * FROM skeleton_ids(skeleton_tile('features', 3, 1, 3));
SELECT (png_info(skeleton_render(skeleton_tile('features', 3, 1, 3), NULL, NULL, '{"features": [[1, "red"]]}'))).visible_pixels AS only_bit_1,
       (png_info(skeleton_render(skeleton_tile('features', 3, 1, 3), NULL, NULL, '{"features": [[0, "blue"], [1, "red"]]}'))).visible_pixels AS both;

-- WKB (as PostGIS ST_AsBinary gives it) equals the same polygon from GeoJSON.
SELECT polygon_from_wkb('\x0103000000010000000500000000000000000059c00000000000003e4000000000008056c00000000000003e4000000000008056c0000000000000444000000000000059c0000000000000444000000000000059c00000000000003e40'::bytea)
     = polygon_from_geojson('{"type": "Polygon", "coordinates": [[[-100, 30], [-90, 30], [-90, 40], [-100, 40], [-100, 30]]]}') AS wkb_equals_geojson;

-- Bad input.
SELECT pg_temp.err($q$SELECT polygon_from_geojson('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}')$q$);
SELECT pg_temp.err($q$SELECT polygon_from_geojson('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}')$q$);
SELECT pg_temp.err($q$SELECT polygon_from_geojson('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 100], [0, 0]]]}')$q$);
SELECT pg_temp.err($q$SELECT polygon_from_geojson('{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}')$q$);
SELECT pg_temp.err($q$SELECT polygon_from_wkb('\x0103'::bytea)$q$);
SELECT pg_temp.err($q$SELECT * FROM polygons_from_topojson('{"type": "Topology", "arcs": [], "objects": {}}', 'counties')$q$);
SELECT pg_temp.err($q$SELECT skeleton_tile('no_such_layer', 3, 1, 3)$q$);
SELECT pg_temp.err($q$SELECT skeleton_tile('counties', 3, 8, 3)$q$);
SELECT pg_temp.err($q$SELECT skeleton_render('\x00'::bytea)$q$);
SELECT pg_temp.err($q$SELECT skeleton_render(skeleton_tile('counties', 3, 1, 3), NULL, NULL, '{"classes": {"breaks": [2, 1], "colors": ["#111", "#222", "#333"]}}')$q$);
SELECT pg_temp.err($q$SELECT skeleton_render(skeleton_tile('counties', 3, 1, 3), ARRAY[1]::int8[], ARRAY[]::float8[])$q$);
SELECT pg_temp.err($q$SELECT skeleton_render(skeleton_tile('counties', 3, 1, 3), NULL, NULL, '{"palette": "x"}')$q$);
SELECT pg_temp.err($q$SELECT skeleton_prerender('counties', 0, 20)$q$);

-- A layer for tile servers, restyled by query parameters.
SELECT create_choropleth_layer('regress_unemployment', 'counties', 'SELECT id, rate FROM unemployment',
       '{"classes": {"breaks": [0.05, 0.1], "colors": ["#fee", "#f99", "#c00"]}}');
SELECT obj_description('public.regress_unemployment(integer, integer, integer, json)'::regprocedure)::jsonb -> 'content_type' AS content_type;
SELECT (png_info(public.regress_unemployment(5, 8, 12))).visible_pixels,
       (png_info(public.regress_unemployment(5, 8, 12, '{"size": "512"}'))).width,
       png_diff(public.regress_unemployment(5, 8, 12), public.regress_unemployment(5, 8, 12, '{"opacity": 0.5}')) AS restyled_pixels;
