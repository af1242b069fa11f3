-- The demo's tile-server layers: one function per layer, (z, x, y, query_params json) -> PNG,
-- discovered by the tile server, pg_tileserv and Martin alike. Run after the other examples'
-- load.sql (setup.sh does).
SELECT vasttile.create_dot_layer('zip_dots', 'zipcodes', '{"radius": 1.5, "color": "#d62728"}');
SELECT vasttile.create_heat_layer('zip_heat', 'zipcodes', '{"colormap": "fire"}');
SELECT vasttile.create_access_layer('zip_access', 'zipcodes', '{"radius_km": 2}');
SELECT vasttile.create_choropleth_layer('counties_unemployment', 'counties', 'SELECT id, rate FROM unemployment',
  '{"classes": {"breaks": [0.03, 0.05, 0.07, 0.09, 0.11, 0.13],
                "colors": ["#f7fbff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594"]},
    "missing": "#cccccc", "opacity": 0.85}');
-- (activities_heat and tube_heat, the pyramid layers, come from pgrx-examples/activities/load.sql)
