-- The demo's tile-server layers: one function per layer, (z, x, y, query_params json) -> PNG,
-- discovered by the tile server, pg_tileserv and Martin alike. Run after the other examples'
-- load.sql (setup.sh does).
SELECT vasttile.create_dot_layer('zip_dots', 'zipcodes', '{"radius": 1.5, "color": "#d62728"}');
-- A points pyramid over the ZIP codes up to z8: heat_tile (and so zip_heat) serves those zooms
-- from it, normalised across tiles without seams; deeper zooms are drawn per request.
SELECT vasttile.drop_heat_pyramid('zipcodes');
SELECT vasttile.create_heat_pyramid('zipcodes', 'zipcodes', '{"base_zoom": 8, "radius": 3}') -> 'tiles' AS zip_pyramid_tiles;
SELECT vasttile.create_heat_layer('zip_heat', 'zipcodes', '{"colormap": "fire"}');
SELECT vasttile.create_access_layer('zip_access', 'zipcodes', '{"radius_km": 2}');
SELECT vasttile.create_choropleth_layer('counties_unemployment', 'counties', 'SELECT id, rate FROM unemployment',
  '{"classes": {"breaks": [0.03, 0.05, 0.07, 0.09, 0.11, 0.13],
                "colors": ["#f7fbff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594"]},
    "missing": "#cccccc", "opacity": 0.85}');
-- (activities_heat and tube_heat, the pyramid layers, come from pgrx-examples/activities/load.sql)
-- The basemap under every layer of the map page: the world's countries in quiet greys (four,
-- so neighbours part), from pgrx-examples/world/load.sql.
SELECT vasttile.create_choropleth_layer('basemap_countries', 'world_countries',
  'SELECT id, (id % 4)::float8 FROM world_countries',
  '{"classes": {"breaks": [1, 2, 3], "colors": ["#e3e3df", "#dbdbd7", "#d3d3cf", "#cbcbc7"]}}');
-- Borders and coasts over it, as lines (a paths pyramid of the topology's arcs).
SELECT vasttile.create_pyramid_layer('basemap_borders', 'world_borders',
  '{"colormap": ["#b4b4b0", "#8c8c88"], "normalize": "linear", "max": 2}');
