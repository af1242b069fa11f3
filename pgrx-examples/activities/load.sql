-- 100,000 synthetic activities in London (runs, rides and walks along a street grid, with GPS
-- noise, stops at junctions, some virtual rides, car trips labelled as rides and private ones),
-- made into a heat pyramid from z0 to z16 with the Strava post's filters, and published as a
-- tile-server layer. The London Underground lines get a pyramid too. Run from the repository
-- root after pgrx-examples/london/load.sql.
CREATE EXTENSION IF NOT EXISTS vasttile;
SELECT vasttile.drop_heat_pyramid('activities');
DROP TABLE IF EXISTS activities;
CREATE TABLE activities AS SELECT * FROM vasttile.synthetic_activities(100000);
ALTER TABLE activities ADD PRIMARY KEY (id);
SELECT jsonb_pretty(vasttile.create_heat_pyramid('activities', 'activities',
  '{"geometry": "activities", "base_zoom": 16}')) AS build;
SELECT vasttile.create_pyramid_layer('activities_heat', 'activities');

SELECT vasttile.drop_heat_pyramid('tube');
SELECT vasttile.create_heat_pyramid('tube', 'tube_lines', '{"geometry": "paths", "base_zoom": 14, "radius": 3}')->'tiles' AS tube_tiles;
SELECT vasttile.create_pyramid_layer('tube_heat', 'tube', '{"colormap": "hot"}');
