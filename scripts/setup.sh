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
install_extension
ensure_cluster
ensure_database vasttile_demo
psql_db vasttile_demo -c "DROP EXTENSION IF EXISTS vasttile CASCADE" -c "CREATE EXTENSION vasttile" 2>/dev/null
log "loading ZIP codes"
psql_db vasttile_demo -f pgrx-examples/zipcodes/load.sql 2>&1 | grep -v NOTICE || true

log "rendering tiles"
mkdir -p "$OUT_DIR"
render() { # name z x y style
  save_png vasttile_demo "SELECT vasttile.dot_tile('zipcodes', $2, $3, $4, '$5')" "$OUT_DIR/$1.png"
  printf '  %-34s z=%-2s x=%-4s y=%-4s %s\n' "$OUT_DIR/$1.png" "$2" "$3" "$4" "$5"
}
render zip-z0-world            0   0   0 '{}'
render zip-z4-southeast-us     4   4   6 '{"radius": 1.2, "color": "#d62728"}'
render zip-z4-northeast-us     4   4   5 '{"radius": 1.2, "color": "#d62728"}'
render zip-z4-southwest-us     4   3   6 '{"radius": 1.2, "color": "#d62728"}'
render zip-z4-northwest-us     4   3   5 '{"radius": 1.2, "color": "#d62728"}'
render zip-z4-southeast-us@2x  4   4   6 '{"radius": 2.4, "color": "#d62728", "size": 512}'
render zip-z10-chicago        10 262 380 '{"radius": 3, "color": "#6a3d9acc"}'
render zip-z10-new-york       10 301 384 '{"radius": 3, "color": "#6a3d9acc"}'

cat <<DONE

vasttile is installed and PostgreSQL is running:
  psql -h $SOCKET_DIR -p $PG_PORT -U postgres vasttile_demo
  e.g.  SELECT vasttile.dot_tile('zipcodes', 4, 4, 6);
Tiles are in $OUT_DIR/.
DONE
