#!/usr/bin/env bash
# Cancellation: every long call ends within 250 ms of a 100 ms statement_timeout (PostGIS's
# interrupt tests ask the same), or is refused at once with 54000 when it could never finish.
# Runs against the local cluster (setup.sh) with the installed build, in database
# vasttile_cancel (its tables are made once and kept: 2M points, 20k activities, a polygon of
# 5M vertices; the extension is created afresh each run).
source "$(dirname "$0")/lib.sh"
cd "$REPO"

DB=vasttile_cancel
LIMIT_MS=350   # 100 ms timeout + 250 ms
ensure_cluster
ensure_database "$DB"
if [ "$(psql_db "$DB" -tAc "SELECT count(*) FROM pg_tables WHERE tablename = 'cancel_ready'")" != 1 ]; then
  log "cancellation fixtures (once)"
  psql_db "$DB" -q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vasttile;
CREATE TABLE pts AS SELECT vasttile.lonlat_to_key(-125 + random() * 58, 25 + random() * 24) AS vcs_key,
                           random() AS w FROM generate_series(1, 2000000);
CREATE INDEX ON pts (vcs_key);
CREATE TABLE acts AS SELECT * FROM vasttile.synthetic_activities(20000);
-- One ring of 5,000,000 vertices, as WKB (big-endian) built in SQL.
CREATE TABLE bigpoly AS SELECT 1::int8 AS id, vasttile.polygon_from_wkb('\x00'::bytea || int4send(3) || int4send(1)
    || int4send(5000001) || (SELECT string_agg(
        float8send(-100 + 20 * cos(2 * pi() * (i % 5000000) / 5000000.0) * (1 + 0.1 * (i % 2)))
     || float8send(40 + 15 * sin(2 * pi() * (i % 5000000) / 5000000.0) * (1 + 0.1 * (i % 2))), ''::bytea ORDER BY i)
    FROM generate_series(0, 5000000) i))::bytea AS polygon;
ANALYZE;
CREATE TABLE cancel_ready ();
SQL
fi

# The tables hold plain types, so the extension is made afresh each run (the build under test).
psql_db "$DB" -q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS vasttile CASCADE" \
  -c "CREATE EXTENSION vasttile" -c "SELECT vasttile.create_skeleton_layer('bigpoly', 'bigpoly')" >/dev/null

worst=0
failed=0
cancel() { # name "SQL"
  local out ms
  out="$(psql_db "$DB" -v ON_ERROR_STOP=0 2>&1 <<SQL
SET client_min_messages = warning;
DELETE FROM vasttile.skeleton_cache;
SET statement_timeout = 100;
\\timing on
$2;
SQL
)"
  ms="$(grep -o 'Time: [0-9.]*' <<<"$out" | tail -1 | cut -d' ' -f2)"
  local how
  if grep -q "statement timeout" <<<"$out"; then how="cancelled"
  elif grep -qE "ERROR:  .*(more than|at most|limit)" <<<"$out"; then how="refused (54000)"
  else how="NOT CANCELLED"; fi
  printf '  %-34s %-16s %8s ms\n' "$1" "$how" "$ms"
  if [ "$how" = "NOT CANCELLED" ] || [ -z "$ms" ] || awk -v m="$ms" -v l="$LIMIT_MS" 'BEGIN { exit !(m > l) }'; then
    failed=1
    grep ERROR <<<"$out" >&2 || true
  fi
  worst="$(awk -v a="$worst" -v b="${ms:-0}" 'BEGIN { print (b > a ? b : a) }')"
}

log "cancellation of long calls (statement_timeout 100 ms, limit $LIMIT_MS ms)"
cancel "heat_tile z0 (2M points)"        "SELECT length(vasttile.heat_tile('pts', 0, 0, 0))"
cancel "heat_tile weighted z3"           "SELECT length(vasttile.heat_tile('pts', 3, 1, 3, '{}', 'vcs_key', 'w'))"
cancel "dot_tile z0"                     "SELECT length(vasttile.dot_tile('pts', 0, 0, 0))"
cancel "access_tile z5 (many POIs)"      "SELECT length(vasttile.access_tile('pts', 5, 7, 12, '{\"radius_km\": 50}'))"
cancel "heat_grid aggregate (10M rows)"  "SELECT length(vasttile.heat_grid(vcs_key, 0, 0, 0)::bytea) FROM pts, generate_series(1, 5)"
cancel "dot_tile_agg aggregate (10M)"    "SELECT length(vasttile.dot_tile_agg(vcs_key, 0, 0, 0, '{}')) FROM pts, generate_series(1, 5)"
cancel "access_grid aggregate (2M POIs)" "SELECT length(vasttile.access_grid(vcs_key, 4, 3, 6, 100)::bytea) FROM pts"
cancel "heat_grid_paths (60k paths)"      "SELECT length(vasttile.heat_grid_paths(path, 11, 1023, 681)::bytea) FROM acts, generate_series(1, 3)"
cancel "create_heat_pyramid points z10"  "SELECT vasttile.create_heat_pyramid('c_pts', 'pts', '{\"base_zoom\": 10}')"
cancel "create_heat_pyramid activities"  "SELECT vasttile.create_heat_pyramid('c_acts', 'acts', '{\"geometry\": \"activities\", \"base_zoom\": 16}')"
cancel "skeleton_tile (5M vertices)"     "SELECT length(vasttile.skeleton_tile('bigpoly', 3, 1, 3))"
cancel "skeleton_prerender z0-z6"        "SELECT vasttile.skeleton_prerender('bigpoly', 0, 6)"
cancel "synthetic_activities(1M)"        "SELECT count(*) FROM vasttile.synthetic_activities(1000000)"
cancel "activity_path over 20k"          "SELECT count(vasttile.activity_path(id, path, times, kind)) FROM acts"
cancel "path_tiles z23 around the world" "SELECT count(*) FROM vasttile.path_tiles(ARRAY[0, 4611686018427387903]::int8[], 23)"
echo "  worst: $worst ms"
[ "$failed" = 0 ] || { echo "a long call did not end within $LIMIT_MS ms of statement_timeout" >&2; exit 1; }
log "cancellation passed"
