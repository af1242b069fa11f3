-- The London Underground lines (vega-datasets londonTubeLines.json, TopoJSON) as paths: Morton
-- keys in order, drawn as lines by heat_grid_paths. Run from the repository root.
CREATE EXTENSION IF NOT EXISTS vasttile;
\set topo `cat data/vega-datasets/londonTubeLines.json`
DROP TABLE IF EXISTS tube_lines;
CREATE TABLE tube_lines AS
SELECT row_number() OVER () AS part, id AS line, path FROM vasttile.paths_from_topojson(:'topo', 'line');
\unset topo
