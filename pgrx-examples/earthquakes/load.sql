-- The USGS earthquakes of one week (vega-datasets earthquakes.json, GeoJSON) as a points table.
-- Run from the repository root: psql -f pgrx-examples/earthquakes/load.sql
CREATE EXTENSION IF NOT EXISTS vasttile;
\set doc `cat data/vega-datasets/earthquakes.json`

DROP VIEW IF EXISTS earthquakes_by_magnitude;
DROP TABLE IF EXISTS earthquakes;
CREATE TABLE earthquakes (
    id      text PRIMARY KEY,
    mag     float8,
    place   text,
    time    timestamptz,
    lon     float8 NOT NULL,
    lat     float8 NOT NULL,
    depth   float8,
    vcs_key int8 GENERATED ALWAYS AS (vasttile.lonlat_to_key(lon, lat)) STORED
);
INSERT INTO earthquakes (id, mag, place, time, lon, lat, depth)
SELECT f ->> 'id', (f -> 'properties' ->> 'mag')::float8, f -> 'properties' ->> 'place',
       to_timestamp((f -> 'properties' ->> 'time')::float8 / 1000),
       (f -> 'geometry' -> 'coordinates' ->> 0)::float8, (f -> 'geometry' -> 'coordinates' ->> 1)::float8,
       (f -> 'geometry' -> 'coordinates' ->> 2)::float8
FROM jsonb_array_elements((:'doc')::jsonb -> 'features') AS f;
\unset doc
CREATE INDEX earthquakes_vcs_key ON earthquakes (vcs_key);
VACUUM ANALYZE earthquakes;

-- Heat weights must be >= 0; tiny quakes have negative magnitudes. A view is a layer too:
-- heat_tile('earthquakes_by_magnitude', z, x, y, style, 'vcs_key', 'mag').
CREATE VIEW earthquakes_by_magnitude AS SELECT vcs_key, mag FROM earthquakes WHERE mag >= 0;
