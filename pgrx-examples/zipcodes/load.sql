-- The 42,049 US ZIP codes of vega-datasets as a vasttile points table.
-- Run from the repository root (the \copy path is relative): psql -f pgrx-examples/zipcodes/load.sql
CREATE EXTENSION IF NOT EXISTS vasttile;

DROP TABLE IF EXISTS zipcodes;
CREATE TABLE zipcodes (
    zip_code  text PRIMARY KEY,
    latitude  float8 NOT NULL,
    longitude float8 NOT NULL,
    city      text,
    state     text,
    county    text,
    -- VCS coordinates, converted once on the way in (the functions are IMMUTABLE, so they can
    -- generate columns), and the Morton key that orders the plane tile by tile.
    x       int4 GENERATED ALWAYS AS (vasttile.lon_to_vcs(longitude)) STORED,
    y       int4 GENERATED ALWAYS AS (vasttile.lat_to_vcs(latitude)) STORED,
    vcs_key int8 GENERATED ALWAYS AS (vasttile.lonlat_to_key(longitude, latitude)) STORED
);

\copy zipcodes (zip_code, latitude, longitude, city, state, county) FROM 'data/vega-datasets/zipcodes.csv' WITH (FORMAT csv, HEADER true)

-- One B-tree over the key answers any tile at any zoom with one range scan; clustering on it
-- puts each tile's rows on neighbouring pages.
CREATE INDEX zipcodes_vcs_key ON zipcodes (vcs_key);
CLUSTER zipcodes USING zipcodes_vcs_key;
VACUUM ANALYZE zipcodes;
