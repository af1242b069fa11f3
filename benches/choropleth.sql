-- Choropleth benchmark on the US counties coloured by unemployment (scripts/bench.sh runs it in
-- vasttile_demo after scripts/setup.sh loaded the counties): per tile, recolouring a cached
-- skeleton, rendering the skeleton from the polygons then recolouring, and the PostGIS route
-- (ST_AsRaster per polygon, ST_Union, ST_ColorMap, ST_AsPNG). Medians of 5 runs inside the server.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS postgis_raster;
SET postgis.gdal_enabled_drivers = 'PNG';
SET search_path = public, vasttile;

DROP TABLE IF EXISTS bench_counties_geom;
CREATE TABLE bench_counties_geom AS
SELECT c.id, u.rate,
       ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(polygon_to_geojson(c.polygon)::text), 4326), 3857) AS geom
FROM counties c LEFT JOIN unemployment u USING (id);
CREATE INDEX ON bench_counties_geom USING gist (geom);
ANALYZE bench_counties_geom;

CREATE OR REPLACE FUNCTION pg_temp.median_ms(q text, runs int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ms float8[] := '{}'; i int;
BEGIN
  FOR i IN 1..runs LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    ms := ms || 1000 * extract(epoch FROM clock_timestamp() - t0)::float8;
  END LOOP;
  RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m) FROM unnest(ms) m);
END $$;

-- Six classes of unemployment rate, the same for every route.
CREATE TEMP TABLE style AS SELECT
  '{"classes": {"breaks": [0.03, 0.05, 0.07, 0.09, 0.11], "colors": ["#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"]}}'::jsonb AS s,
  E'1 239 243 255 255\n2 198 219 239 255\n3 158 202 225 255\n4 107 174 214 255\n5 49 130 189 255\n6 8 81 156 255\nnv 0 0 0 0' AS postgis_colormap;

CREATE TEMP TABLE results (tile text, counties int, recolour_cached_ms float8, from_polygons_ms float8, postgis_ms float8);
DO $$
DECLARE t record; st jsonb := (SELECT s FROM style); cm text := (SELECT postgis_colormap FROM style); n int;
BEGIN
  FOR t IN SELECT * FROM (VALUES (3, 1, 3), (5, 8, 12), (8, 64, 96)) v(z, x, y) LOOP
    SELECT count(*) INTO n FROM bench_counties_geom WHERE geom && ST_TileEnvelope(t.z, t.x, t.y);
    PERFORM skeleton_tile('counties', t.z, t.x, t.y);  -- cache it
    INSERT INTO results VALUES (format('%s/%s/%s', t.z, t.x, t.y), n,
      pg_temp.median_ms(format($q$SELECT skeleton_render(skeleton_tile('counties', %s, %s, %s), array_agg(id), array_agg(rate), %L) FROM unemployment$q$, t.z, t.x, t.y, st), 5),
      pg_temp.median_ms(format($q$DELETE FROM skeleton_cache WHERE layer = 'counties' AND z = %1$s AND x = %2$s AND y = %3$s;
                                 SELECT skeleton_render(skeleton_tile('counties', %1$s, %2$s, %3$s), array_agg(id), array_agg(rate), %4$L) FROM unemployment$q$, t.z, t.x, t.y, st), 5),
      pg_temp.median_ms(format($q$
        WITH ref AS (SELECT ST_AsRaster(ST_TileEnvelope(%1$s, %2$s, %3$s), 256, 256, '8BUI', 0, 0) AS r)
        SELECT ST_AsPNG(ST_ColorMap(ST_Union(ST_AsRaster(g.geom, ref.r, '8BUI',
                 1 + (g.rate >= 0.03)::int + (g.rate >= 0.05)::int + (g.rate >= 0.07)::int + (g.rate >= 0.09)::int + (g.rate >= 0.11)::int, 0)),
               1, %4$L, 'EXACT'))
        FROM bench_counties_geom g, ref
        WHERE g.geom && ST_TileEnvelope(%1$s, %2$s, %3$s) AND g.rate IS NOT NULL$q$, t.z, t.x, t.y, cm), 3));
  END LOOP;
END $$;

\echo
\echo 'Choropleth tiles, US counties by unemployment: median ms per tile'
SELECT tile, counties, round(recolour_cached_ms::numeric, 2) AS recolour_cached_ms,
       round(from_polygons_ms::numeric, 2) AS from_polygons_ms, round(postgis_ms::numeric, 1) AS postgis_ms,
       round((from_polygons_ms / recolour_cached_ms)::numeric, 1) AS cache_speedup,
       round((postgis_ms / recolour_cached_ms)::numeric, 0) AS vs_postgis_cached,
       round((postgis_ms / from_polygons_ms)::numeric, 1) AS vs_postgis_uncached
FROM results;
