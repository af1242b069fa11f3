#!/usr/bin/env bash
# Set up vasttile from nothing and run the main job:
#   installs what is missing (apt, cargo-pgrx), builds and installs the extension, starts a local
#   PostgreSQL cluster (as the `postgres` OS user when run as root), creates the database
#   `vasttile_demo`, loads the 42,049 US ZIP codes of vega-datasets, renders tiles to out/.
# Running it again skips what is done and re-renders.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_toolchain
ensure_vega_datasets
ensure_us_atlas
ensure_world_atlas
install_extension
ensure_cluster
ensure_database vasttile_demo
psql_db vasttile_demo -c "DROP EXTENSION IF EXISTS vasttile CASCADE" -c "CREATE EXTENSION vasttile" 2>/dev/null
log "loading ZIP codes and earthquakes"
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/zipcodes/load.sql
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/earthquakes/load.sql
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/london/load.sql
log "loading 100,000 synthetic activities and building their heat pyramid (z0-z16)"
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/activities/load.sql
log "loading US counties and unemployment"
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/counties/load.sql >/dev/null
log "loading the world's countries (the map's basemap)"
psql_db vasttile_demo -c "SET client_min_messages = warning" -f pgrx-examples/world/load.sql >/dev/null

log "rendering tiles"
mkdir -p "$OUT_DIR"
render() { # name "SQL returning a PNG"
  save_png vasttile_demo "$2" "$OUT_DIR/$1.png"
  printf '  %s\n      %s\n' "$OUT_DIR/$1.png" "$2"
}
dots() { # name z x y style
  render "$1" "SELECT vasttile.dot_tile('zipcodes', $2, $3, $4, '$5')"
}
dots zip-z0-world            0   0   0 '{}'
dots zip-z4-southeast-us     4   4   6 '{"radius": 1.2, "color": "#d62728"}'
dots zip-z4-northeast-us     4   4   5 '{"radius": 1.2, "color": "#d62728"}'
dots zip-z4-southwest-us     4   3   6 '{"radius": 1.2, "color": "#d62728"}'
dots zip-z4-northwest-us     4   3   5 '{"radius": 1.2, "color": "#d62728"}'
dots zip-z4-southeast-us@2x  4   4   6 '{"radius": 2.4, "color": "#d62728", "size": 512}'
dots zip-z10-chicago        10 262 380 '{"radius": 3, "color": "#6a3d9acc"}'
dots zip-z10-new-york       10 301 384 '{"radius": 3, "color": "#6a3d9acc"}'
render heat-zip-z4-southeast-us@2x "SELECT vasttile.heat_tile('zipcodes', 4, 4, 6, '{\"size\": 512}')"
render heat-zip-z3-log-viridis "SELECT vasttile.heat_tile('zipcodes', 3, 2, 3, '{\"normalize\": \"log\", \"colormap\": \"viridis\"}')"
render heat-earthquakes-z0-magnitude "SELECT vasttile.heat_tile('earthquakes_by_magnitude', 0, 0, 0, '{\"normalize\": \"log\", \"colormap\": \"inferno\"}', 'vcs_key', 'mag')"
CLASSES='{"classes": {"breaks": [0.03, 0.05, 0.07, 0.09, 0.11, 0.13], "colors": ["#f7fbff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594"]}, "missing": "#cccccc"}'
choropleth() { # name z x y
  render "$1" "SELECT vasttile.skeleton_render(vasttile.skeleton_tile('counties', $2, $3, $4), array_agg(id), array_agg(rate), '$CLASSES') FROM unemployment"
}
choropleth counties-unemployment-z3 3 1 3
choropleth counties-unemployment-z3-east 3 2 3
choropleth counties-unemployment-z5 5 8 12
choropleth counties-unemployment-z8 8 64 96
render tube-lines-z10-london@2x "SELECT vasttile.heat_render(vasttile.heat_grid_paths(path, 10, 511, 340, 1.0, 512), '{\"normalize\": \"linear\", \"colormap\": \"hot\", \"max\": 4}') FROM tube_lines"
pyramid() { # name pyramid z x y [style]
  local style="${6:-}"
  [ -n "$style" ] || style='{}'
  render "$1" "SELECT vasttile.heat_pyramid_tile('$2', $3, $4, $5, '$style')"
}
pyramid activities-z12-london activities 12 2046 1362
pyramid activities-z14-london activities 14 8187 5448
pyramid activities-z14-london-viridis activities 14 8187 5448 '{"colormap": "viridis"}'
pyramid activities-z16-london activities 16 32749 21794
pyramid activities-z17-london-on-the-fly activities 17 65499 43589
pyramid tube-z14-london-pyramid tube 14 8187 5448 '{"colormap": "hot"}'
render access-zip-z11-new-york "SELECT vasttile.access_tile('zipcodes', 11, 603, 769, '{\"radius_km\": 2}')"

log "publishing the layers and starting the tile server"
psql_db vasttile_demo -q -f pgrx-examples/tileserver/layers.sql >/dev/null
ensure_tileserver
start_tileserver tileserver "$HTTP_PORT" vasttile_demo

cat <<DONE

vasttile is installed and PostgreSQL is running:
  psql -h $SOCKET_DIR -p $PG_PORT -U postgres vasttile_demo
  e.g.  SELECT vasttile.dot_tile('zipcodes', 4, 4, 6);
Tiles are in $OUT_DIR/.
The tile server is running (log: $STATE_DIR/tileserver.log; stop: kill \$(cat $STATE_DIR/tileserver.pid)):
  map:    http://127.0.0.1:$HTTP_PORT/map/
  layers: http://127.0.0.1:$HTTP_PORT/index.json
DONE
