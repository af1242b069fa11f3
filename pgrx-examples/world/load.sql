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
