-- The same rows twice on the coordinator: as plain tables (*_local: what one node computes) and
-- as distributed tables (4 shards over two workers). Deterministic, so every run compares the
-- same tiles.
CREATE TABLE pts_local AS
  SELECT i AS id,
         vasttile.lonlat_to_key(-125 + 60 * ((hashint4(i) & 65535) / 65536.0),
                                25 + 24 * ((hashint4(i + 7) & 65535) / 65536.0)) AS vcs_key,
         1.0 / (1 + i % 3) + (i % 5) * 0.1 AS w
  FROM generate_series(1, 300000) i;
CREATE TABLE pts (LIKE pts_local);
SELECT create_distributed_table('pts', 'id');
INSERT INTO pts SELECT * FROM pts_local;
CREATE INDEX ON pts (vcs_key);
CREATE INDEX ON pts_local (vcs_key);

CREATE TABLE acts_local AS SELECT id, path FROM vasttile.synthetic_activities(3000, 7);
CREATE TABLE acts (LIKE acts_local);
SELECT create_distributed_table('acts', 'id');
INSERT INTO acts SELECT * FROM acts_local;

-- Squares side by side over the western US (ids from 1), for skeletons and choropleths.
CREATE TABLE polys_local AS
  SELECT i + 1 AS id,
         vasttile.polygon_from_geojson(format(
           '{"type": "Polygon", "coordinates": [[[%s, %s], [%s, %s], [%s, %s], [%s, %s], [%s, %s]]]}',
           -120 + i, 30, -119 + i, 30, -119 + i, 31 + i % 3, -120 + i, 31 + i % 3, -120 + i, 30)::jsonb) AS polygon
  FROM generate_series(0, 40) i;
CREATE TABLE polys (LIKE polys_local);
SELECT create_distributed_table('polys', 'id');
INSERT INTO polys SELECT * FROM polys_local;
-- Vacuumed, so every run times the same plans (index-only scans need the visibility map).
VACUUM ANALYZE pts, pts_local, acts, acts_local, polys, polys_local;

-- 100,000 synthetic activities for the pyramids.
CREATE TABLE big_acts_local AS SELECT id, path FROM vasttile.synthetic_activities(100000, 3);
CREATE TABLE big_acts (LIKE big_acts_local);
SELECT create_distributed_table('big_acts', 'id');
INSERT INTO big_acts SELECT * FROM big_acts_local;
VACUUM ANALYZE big_acts, big_acts_local;
