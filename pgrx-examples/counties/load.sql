-- US counties (npm us-atlas, TopoJSON) and their 2009 unemployment rates (vega-datasets), as a
-- skeleton layer. Run from the repository root: psql -f pgrx-examples/counties/load.sql
CREATE EXTENSION IF NOT EXISTS vasttile;
\set topo `cat data/us-atlas/counties-10m.json`

DROP TABLE IF EXISTS counties CASCADE;
CREATE TABLE counties AS
SELECT id::int8 AS id, properties ->> 'name' AS name, polygon
FROM vasttile.polygons_from_topojson(:'topo', 'counties');
\unset topo
ALTER TABLE counties ADD PRIMARY KEY (id);

DROP TABLE IF EXISTS unemployment;
CREATE TABLE unemployment (id int8 PRIMARY KEY, rate float8 NOT NULL);
\copy unemployment FROM 'data/vega-datasets/unemployment.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true)

-- Rasterised once per tile, cached, recoloured per request.
SELECT vasttile.create_skeleton_layer('counties', 'counties', 'id', 'polygon');
