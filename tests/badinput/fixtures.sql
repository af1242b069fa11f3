-- Fixtures of the bad-input suite (tests/badinput/badinput.sql): small tables for the functions
-- that read tables, layers and a pyramid for those that read them, and valid values of every
-- stored format (made by the extension itself) for the suite to truncate, flip and forge.
SET client_min_messages = warning;

-- 500 points in tile (4, 4, 6) and a few elsewhere, with a weight and a two-point path each.
CREATE TABLE bi_points AS
SELECT g AS id, x, y, vasttile.vcs_key(x, y) AS vcs_key, (g % 5)::float8 AS w,
       ARRAY[vasttile.vcs_key(x, y), vasttile.vcs_key(x + 1000000, y + 500000)] AS path
FROM (SELECT g, ((4 << 27) + (g::int8 * 7919) % (1 << 27))::int4 AS x,
             ((6 << 27) + (g::int8 * 104729) % (1 << 27))::int4 AS y
      FROM generate_series(1, 500) g
      UNION ALL
      SELECT 1000 + g, (g * 100000000)::int4, (g * 90000000)::int4 FROM generate_series(1, 20) g) s;
CREATE INDEX ON bi_points (vcs_key);
CREATE TABLE bi_empty (LIKE bi_points);
CREATE TABLE bi_nokey (id int);
CREATE TABLE bi_textkey (id int, vcs_key text, w text);
INSERT INTO bi_textkey VALUES (1, 'not a key', 'heavy');
CREATE VIEW bi_view AS SELECT * FROM bi_points WHERE id % 2 = 0;

-- Polygons in the same tile, and a skeleton layer over them.
CREATE TABLE bi_polygons AS
SELECT i AS id, vasttile.polygon_from_geojson(jsonb_build_object('type', 'Polygon', 'coordinates',
         jsonb_build_array(jsonb_build_array(
           jsonb_build_array(-90 + i, 30), jsonb_build_array(-89 + i, 30), jsonb_build_array(-89 + i, 31),
           jsonb_build_array(-90 + i, 31), jsonb_build_array(-90 + i, 30))))) AS polygon
FROM generate_series(1, 5) i;
SELECT vasttile.create_skeleton_layer('bi_layer', 'bi_polygons');

-- Activities, and a heat pyramid over the points.
CREATE TABLE bi_activities AS SELECT * FROM vasttile.synthetic_activities(3, 1, -87.6, 41.8, 2000, 20);
SELECT vasttile.create_heat_pyramid('bi_pyr', 'bi_points',
  '{"geometry": "points", "column": "vcs_key", "base_zoom": 8}') IS NOT NULL AS pyramid_built;

-- Valid values of every stored format.
CREATE TABLE bi_fixtures (label text PRIMARY KEY, b bytea NOT NULL);
INSERT INTO bi_fixtures
SELECT 'heatgrid', vasttile.heat_grid(vcs_key, 4, 4, 6) FROM bi_points
UNION ALL
SELECT 'heatgrid dense', vasttile.access_grid(vcs_key, 4, 4, 6, 100.0) FROM bi_points
UNION ALL
SELECT 'heatgrid 512', vasttile.heat_grid(vcs_key, 4, 4, 6, w, 512) FROM bi_points
UNION ALL
SELECT 'vcspolygon', polygon FROM bi_polygons WHERE id = 1
UNION ALL
SELECT 'skeleton', vasttile.skeleton_tile('bi_layer', 4, 4, 6)
UNION ALL
SELECT 'png', vasttile.dot_tile('bi_points', 4, 4, 6, '{"radius": 2}')
UNION ALL
-- WKB of a little-endian Polygon: the unit square at (0, 0).
SELECT 'wkb', decode('0103000000010000000500000000000000000000000000000000000000000000000000f03f0000000000000000000000000000f03f000000000000f03f0000000000000000000000000000f03f00000000000000000000000000000000', 'hex');

-- A TopoJSON topology with a polygon and a line, and GeoJSON of each.
CREATE TABLE bi_text (label text PRIMARY KEY, t text NOT NULL);
INSERT INTO bi_text VALUES
('topojson', '{"type": "Topology", "arcs": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], [[0, 0], [2, 2]]],
  "objects": {"o": {"type": "GeometryCollection", "geometries": [
    {"type": "Polygon", "id": "a", "arcs": [[0]]}, {"type": "LineString", "id": "b", "arcs": [1, -1]}]}}}'),
('geojson polygon', '{"type": "Polygon", "coordinates": [[[-90, 30], [-89, 30], [-89, 31], [-90, 31], [-90, 30]]]}'),
('geojson line', '{"type": "LineString", "coordinates": [[-90, 30], [-89, 31], [-88, 30]]}');
