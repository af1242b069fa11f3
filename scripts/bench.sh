#!/usr/bin/env bash
# Benchmarks (not timed tests): each hot path beside its peer in the same run, medians and ratios.
#   benches/points.sql  point tiles from the ZIP codes, z0..z10, beside count(*) and SQL DISTINCT
#   benches/heat.py     heat and accessibility beside count(*), datashader, PostGIS and Numba
#   benches/pyramid.py  heat pyramid of 100k activities: build, line pixels/s beside datashader, tile p50/p99
#   benches/pyramid_releases.sh  the same pyramid built by release 0.1.0 and by this checkout, back
#                       to back: build time, bytes on disk, every tile served compared
#   scripts/test_citus.sh    every tile kind and pyramid on Citus (coordinator + 2 workers) beside
#                       one node: times, rows and bytes reaching the coordinator (when Citus is in)
#   benches/build_memory.py  pyramid builds of 10M world points (z12) and 1M activities (z16): peak
#                       backend RSS beside rows (VASTTILE_BENCH_SKIP_BIG=1 skips it: about 20 minutes)
# Installs the peers it needs (PostGIS from Debian; datashader, numba from PyPI into a venv) and
# does the set-up of scripts/setup.sh if it has not run.
source "$(dirname "$0")/lib.sh"
cd "$REPO"
ensure_apt_packages postgresql-$PG_MAJOR-postgis-3 python3-venv
VENV="$STATE_DIR/bench-venv"
if ! "$VENV/bin/python" -c "import datashader, numba, PIL, psycopg2" 2>/dev/null; then
  log "pip: datashader, numba, pillow, psycopg2 into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q datashader numba pillow psycopg2-binary
fi
ensure_cluster
# The demo database, made by setup.sh with this version of the extension (setup.sh makes it
# again after an upgrade of the checkout).
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
if ! psql_db vasttile_demo -tAc "SELECT to_regclass('zipcodes') IS NOT NULL
      AND (SELECT extversion FROM pg_extension WHERE extname = 'vasttile') = '$VERSION'" 2>/dev/null | grep -q t; then
  "$REPO/scripts/setup.sh"
fi
psql_db vasttile_demo -f benches/points.sql
ensure_database vasttile_bench
PGHOST="$SOCKET_DIR" PGPORT="$PG_PORT" "$VENV/bin/python" benches/heat.py
PGHOST="$SOCKET_DIR" PGPORT="$PG_PORT" "$VENV/bin/python" benches/pyramid.py
"$REPO/benches/pyramid_releases.sh"
if [ -x "$REPO/../shared/citus/build.sh" ]; then
  "$REPO/../shared/citus/build.sh"
fi
VASTTILE_CITUS_RUNS=7 "$REPO/scripts/test_citus.sh"
[ -n "${VASTTILE_BENCH_SKIP_BIG:-}" ] || PGHOST="$SOCKET_DIR" PGPORT="$PG_PORT" "$VENV/bin/python" benches/build_memory.py
psql_db vasttile_demo -f benches/choropleth.sql
