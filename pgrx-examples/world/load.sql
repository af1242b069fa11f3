-- The world's countries (npm world-atlas 2.0.2: Natural Earth 1:50m, TopoJSON) as a skeleton
-- layer: the demo map's basemap, drawn in quiet greys under every data layer. Rings across the
-- antimeridian (Russia, Fiji) and around the pole (Antarctica) are read as on the sphere.
-- Run from the repository root: psql -f pgrx-examples/world/load.sql
CREATE EXTENSION IF NOT EXISTS vasttile;
\set topo `cat data/world-atlas/countries-50m.json`

DROP TABLE IF EXISTS world_countries CASCADE;
CREATE TABLE world_countries AS
SELECT row_number() OVER (ORDER BY properties ->> 'name') AS id, id AS iso_n3,
       properties ->> 'name' AS name, polygon
FROM vasttile.polygons_from_topojson(:'topo', 'countries');
\unset topo
ALTER TABLE world_countries ADD PRIMARY KEY (id);

SELECT vasttile.create_skeleton_layer('world_countries', 'world_countries', 'id', 'polygon');

-- The borders and coasts as lines: the topology's arcs (each shared border once), decoded from
-- their quantised deltas, drawn as a paths pyramid. Steps of the arcs along the antimeridian
-- and the poles (+-180 to -+180) are drawn the short way, so they add nothing.
\set topo `cat data/world-atlas/countries-50m.json`
DROP TABLE IF EXISTS world_borders CASCADE;
CREATE TABLE world_borders AS
WITH t AS (SELECT :'topo'::jsonb AS j),
tr AS (SELECT (j #>> '{transform,scale,0}')::float8 AS sx, (j #>> '{transform,scale,1}')::float8 AS sy,
              (j #>> '{transform,translate,0}')::float8 AS tx, (j #>> '{transform,translate,1}')::float8 AS ty
       FROM t),
steps AS (SELECT a.n AS arc, p.n AS i, (p.v ->> 0)::int8 AS dx, (p.v ->> 1)::int8 AS dy
          FROM t, jsonb_array_elements(t.j -> 'arcs') WITH ORDINALITY a(v, n),
               jsonb_array_elements(a.v) WITH ORDINALITY p(v, n)),
pos AS (SELECT arc, i, sum(dx) OVER w AS qx, sum(dy) OVER w AS qy
        FROM steps WINDOW w AS (PARTITION BY arc ORDER BY i))
SELECT arc AS id,
       array_agg(vasttile.lonlat_to_key(greatest(-180, least(180, qx * sx + tx)),
                                        greatest(-90, least(90, qy * sy + ty))) ORDER BY i) AS path
FROM pos, tr GROUP BY arc;
\unset topo
SELECT vasttile.drop_heat_pyramid('world_borders');
SELECT (vasttile.create_heat_pyramid('world_borders', 'world_borders',
          '{"geometry": "paths", "column": "path", "base_zoom": 7}')) -> 'tiles' AS border_tiles;
