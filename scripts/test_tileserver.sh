#!/usr/bin/env bash
# The tile server over the demo data, as users reach it (called by test.sh, after setup.sh):
#   1. HTTP: layers, TileJSON, tiles and @2x, ETag -> 304, CORS, 4xx for bad tiles and styles;
#   2. headless Chromium on the MapLibre page: every tile 200 image/png, screenshots in out/;
#   3. bounded load runs (20 s with the tile cache, 20 s without, 10 s of pyramid tiles alone
#      without it) on pyramid and on-the-fly layers:
#      zero errors, flat memory, the pyramid at 2,000 tiles/s or more with p99 <= 20 ms, 304s;
#   4. Martin, installed from crates.io, discovers the same layers and serves equal pixels.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

PORT="${VASTTILE_TEST_HTTP_PORT:-28817}"
MARTIN_PORT="${VASTTILE_TEST_MARTIN_PORT:-28818}"
MARTIN_VERSION=1.14.0
BASE="http://127.0.0.1:$PORT"
WORK="$STATE_DIR/tileserver-test"
mkdir -p "$WORK" "$OUT_DIR"
trap 'stop_tileserver tileserver-test; stop_tileserver tileserver-nocache; [ -n "${MARTIN_PID:-}" ] && kill "$MARTIN_PID" 2>/dev/null; drop_test_layers; true' EXIT

ensure_tileserver
# Two layers that fail on purpose: one slower than the server's statement timeout, one whose SQL
# is broken (the client must learn neither the SQL nor the table's name).
psql_db vasttile_demo -q <<'SQL'
CREATE OR REPLACE FUNCTION public.vasttile_test_slow(z integer, x integer, y integer, query_params json DEFAULT '{}')
RETURNS bytea LANGUAGE sql AS $$ SELECT pg_sleep(5); SELECT vasttile.empty_tile() $$;
COMMENT ON FUNCTION public.vasttile_test_slow(integer, integer, integer, json) IS '{"content_type": "image/png"}';
CREATE OR REPLACE FUNCTION public.vasttile_test_broken(z integer, x integer, y integer, query_params json DEFAULT '{}')
RETURNS bytea LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT tile FROM vasttile_no_such_table LIMIT 1); END $$;
COMMENT ON FUNCTION public.vasttile_test_broken(integer, integer, integer, json) IS '{"content_type": "image/png"}';
SQL
drop_test_layers() {
  psql_db vasttile_demo -q -c "SET client_min_messages = warning" -c "DROP FUNCTION IF EXISTS public.vasttile_test_slow(integer, integer, integer, json)" \
    -c "DROP FUNCTION IF EXISTS public.vasttile_test_broken(integer, integer, integer, json)" \
    -c "DROP FUNCTION IF EXISTS public.vasttile_test_fresh_heat(integer, integer, integer, json)" \
    -c "SELECT vasttile.drop_heat_pyramid('vasttile_test_fresh')" -c "DROP TABLE IF EXISTS vasttile_test_fresh" >/dev/null
}
start_tileserver tileserver-test "$PORT" vasttile_demo --statement-timeout-ms 2000 --cache-control "public, max-age=30" --cache-mb 32

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect STATUS CONTENT_TYPE PATH [curl args...]
expect() {
  local status="$1" type="$2" path="$3"; shift 3
  local got
  got="$(curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code} %{content_type}' "$@" "$BASE$path")"
  [ "$got" = "$status $type" ] || fail "$path: expected $status $type, got $got: $(head -c 300 "$WORK/body")"
  echo "  $status $type  $path"
}

log "tile server: HTTP"
expect 200 application/json /index.json
for layer in zip_dots zip_heat zip_access counties_unemployment activities_heat tube_heat; do
  grep -q "\"id\":\"$layer\"" "$WORK/body" || fail "index.json does not list $layer"
done
expect 200 application/json /zip_heat
grep -q '"tilejson":"3.0.0"' "$WORK/body" || fail "TileJSON lacks its version"
expect 200 image/png /zip_heat/4/4/6.png
grep -qi '^access-control-allow-origin: \*' "$WORK/headers" || fail "no CORS header"
grep -qi '^cache-control: public' "$WORK/headers" || fail "no Cache-Control"
etag="$(grep -i '^etag:' "$WORK/headers" | cut -d' ' -f2 | tr -d '\r')"
expect 304 "" /zip_heat/4/4/6.png -H "If-None-Match: $etag"
expect 200 image/png "/zip_heat/4/4/6.png?colormap=viridis&normalize=log"
expect 200 image/png /zip_heat/4/4/6@2x.png
[ "$(file -b "$WORK/body" | grep -o '512 x 512')" = "512 x 512" ] || fail "@2x is not 512 px"
expect 200 image/png /zip_dots/4/4/6.png
expect 200 image/png /zip_access/11/603/769.png
expect 200 image/png /counties_unemployment/3/1/3.png
expect 200 image/png /activities_heat/14/8187/5448.png
expect 200 image/png /activities_heat/17/65499/43589.png
expect 200 image/png /zip_heat/12/0/0.png   # empty: a transparent tile
expect 200 image/png /legend/zip_heat
expect 400 application/json /zip_heat/4/16/6.png
grep -q 'x must be between 0 and 15' "$WORK/body" || fail "bad x message"
expect 400 application/json /zip_heat/99/0/0.png
expect 400 application/json /zip_heat/a/0/0.png
expect 400 application/json "/zip_heat/4/4/6.png?colormap=nope"
grep -q 'query parameter \\"colormap\\"' "$WORK/body" || fail "bad colormap message"
grep -qi 'select\|vasttile\.' "$WORK/body" && fail "an error message carries SQL"
expect 400 application/json "/zip_dots/4/4/6.png?radius=999"
# 4xx bodies are short fixed texts: nothing the client sent comes back at length, control
# characters are refused before the database is asked, and its messages stay in the log.
short_body() {
  [ "$(stat -c %s "$WORK/body")" -lt 200 ] || fail "$1: a $(stat -c %s "$WORK/body")-byte body"
  grep -q "$(printf 'a%.0s' $(seq 64))" "$WORK/body" && fail "$1: the body echoes the request"
  grep -qi 'unicode\|escape sequence\|converted\|select\|vasttile\.' "$WORK/body" && fail "$1: a database message"
  true
}
long="$(head -c 10240 /dev/zero | tr '\0' a)"
expect 414 application/json "/zip_heat/4/4/6.png?colormap=$long"; short_body "10 KB query"
expect 400 application/json "/zip_heat/4/4/6.png?colormap=${long:0:3000}"; short_body "3 KB colormap"
expect 400 application/json "/zip_heat/${long:0:3000}/4/6.png"; short_body "3 KB z"
expect 404 application/json "/${long:0:3000}/4/4/6.png"; short_body "3 KB layer"
expect 400 application/json "/zip_heat/4/4/6.png?%00=1"; short_body "NUL in a name"
expect 400 application/json "/zip_heat/4/4/6.png?colormap=fire%0Aevil"; short_body "newline in a value"
expect 400 application/json "/legend/zip_heat?colormap=%1B%5B31m"; short_body "escape in a legend value"
expect 404 application/json /nope/1/0/0.png
grep -qi '^cache-control: public, max-age=30' <(curl -s -D - -o /dev/null "$BASE/zip_heat/1/0/0.png") || fail "--cache-control is not used"
expect 504 application/json /vasttile_test_slow/1/0/0.png
grep -q 'longer than the server' "$WORK/body" || fail "timeout message"
expect 500 application/json /vasttile_test_broken/1/0/0.png
grep -qi 'select\|no_such_table' "$WORK/body" && fail "a 500 carries SQL: $(cat "$WORK/body")"
drop_test_layers
expect 200 image/png /activities_heat/14/8187/5448@2x.png
[ "$(file -b "$WORK/body" | grep -o '512 x 512')" = "512 x 512" ] || fail "pyramid @2x is not 512 px"

log "tile server: versions, the tile cache, and never a stale tile"
# A pyramid layer of its own (the demo's data stays as it is): 40 points in London at z12.
psql_db vasttile_demo -q <<'SQL' >/dev/null
SET client_min_messages = warning;
SELECT vasttile.drop_heat_pyramid('vasttile_test_fresh');
DROP TABLE IF EXISTS vasttile_test_fresh;
CREATE TABLE vasttile_test_fresh (vcs_key int8);
INSERT INTO vasttile_test_fresh SELECT vasttile.lonlat_to_key(-0.1 + i * 0.0005, 51.5) FROM generate_series(1, 40) i;
SELECT vasttile.create_heat_pyramid('vasttile_test_fresh', 'vasttile_test_fresh', '{"base_zoom": 12}');
SELECT vasttile.create_pyramid_layer('vasttile_test_fresh_heat', 'vasttile_test_fresh');
SQL
read -r fz fx fy <<<"$(psql_db vasttile_demo -tA -F ' ' -c "SELECT 12, vasttile.vcs_tile(vasttile.vcs_key_x(vasttile.lonlat_to_key(-0.09, 51.5)), 12), vasttile.vcs_tile(vasttile.vcs_key_y(vasttile.lonlat_to_key(-0.09, 51.5)), 12)")"
fresh="/vasttile_test_fresh_heat/$fz/$fx/$fy.png"
etag_of() { grep -i '^etag:' "$WORK/headers" | cut -d' ' -f2 | tr -d '\r'; }
# The server finds the new layer and reads its version: its tiles then carry a version's ETag.
for _ in $(seq 1 50); do
  expect 200 image/png "$fresh" >/dev/null
  case "$(etag_of)" in '"v'*) break ;; esac
  sleep 0.1
done
etag1="$(etag_of)"
case "$etag1" in '"v'*) ;; *) fail "no version ETag on a pyramid layer's tile: $etag1" ;; esac
md5_1="$(md5sum <"$WORK/body" | cut -d' ' -f1)"
echo "  version ETag $etag1"
# With the pyramid's tiles locked away from every reader, the cached tile and the 304 still
# come at once: neither asks the database. (A tile not cached would wait for the lock.)
psql_db vasttile_demo -q -c "BEGIN" -c "LOCK TABLE vasttile.heat_pyramid_tiles IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null &
LOCKER=$!
sleep 0.5
expect 304 "" "$fresh" -H "If-None-Match: $etag1" --max-time 1
expect 200 image/png "$fresh" --max-time 1
[ "$(md5sum <"$WORK/body" | cut -d' ' -f1)" = "$md5_1" ] || fail "the cached tile differs from the drawn one"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$BASE/vasttile_test_fresh_heat/$fz/$fx/$fy.png?colormap=viridis" || true)"
[ "$code" = "000" ] || fail "a tile that is not cached came while the pyramid was locked ($code): the test proves nothing"
echo "  cached tile and 304 served with the database locked; an uncached tile waited"
wait "$LOCKER"
# Five changes, each refreshed: the very next request gets the new tile, equal to the layer's
# own SQL, and the old ETag is no longer a 304.
for i in 1 2 3 4 5; do
  psql_db vasttile_demo -q -c "INSERT INTO vasttile_test_fresh SELECT vasttile.lonlat_to_key(-0.095 + $i * 0.001, 51.5 + j * 0.0004) FROM generate_series(1, 20 * $i) j" \
    -c "SELECT vasttile.heat_pyramid_refresh('vasttile_test_fresh')" >/dev/null
  expect 200 image/png "$fresh" -H "If-None-Match: $etag1" >/dev/null
  got="$(md5sum <"$WORK/body" | cut -d' ' -f1)"
  want="$(psql_db vasttile_demo -tA -c "SELECT md5(public.vasttile_test_fresh_heat($fz, $fx, $fy))")"
  [ "$got" = "$want" ] || fail "change $i: the server sent a stale tile ($got, the layer draws $want)"
  [ "$got" != "$md5_1" ] || fail "change $i: the tile did not change"
  [ "$(etag_of)" != "$etag1" ] || fail "change $i: the ETag did not change"
  etag1="$(etag_of)"; md5_1="$got"
done
echo "  5 refreshes: each next request served the new tile, equal to the layer's SQL"

log "tile server: headless Chromium on the map page"
ensure_apt_packages chromium
(cd "$TILESERVER_DIR/web" && node test-browser.mjs "$BASE" "$OUT_DIR" \
   activities_heat zip_heat zip_access counties_unemployment zip_dots)

log "tile server: load runs (20 s with the tile cache, 20 s without)"
{
  psql_db vasttile_demo -tA -c "
    SELECT 'pyramid /activities_heat/' || z || '/' || x || '/' || y || '.png'
    FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'activities' AND z BETWEEN 10 AND 16
    ORDER BY md5(z || '/' || x || '/' || y) LIMIT 400"
  psql_db vasttile_demo -tA -c "
    SELECT DISTINCT 'on-the-fly /zip_heat/' || z || '/' || vasttile.vcs_tile(vasttile.vcs_key_x(vcs_key), z)
           || '/' || vasttile.vcs_tile(vasttile.vcs_key_y(vcs_key), z) || '.png'
    FROM zipcodes, generate_series(9, 11) z WHERE vcs_key % 97 = 0"
  # Beyond the pyramid's base zoom: activity paths drawn on the fly from the table.
  psql_db vasttile_demo -tA -c "
    SELECT 'beyond-base /activities_heat/17/' || (2 * x + dx) || '/' || (2 * y + dy) || '.png'
    FROM (SELECT x, y FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'activities' AND z = 16
          ORDER BY md5(x || '/' || y) LIMIT 50) t, generate_series(0, 1) dx, generate_series(0, 1) dy"
} >"$WORK/tiles.txt"
# Clients revalidating the pyramid tiles they hold (If-None-Match): 304s.
sed -n 's/^pyramid /revalidate /p' "$WORK/tiles.txt" >>"$WORK/tiles.txt"
"$TILESERVER_DIR/target/release/vasttile-loadgen" --url "$BASE" --seconds 20 --concurrency 8 \
  --tiles "$WORK/tiles.txt" --pid "$(cat "$STATE_DIR/tileserver-test.pid")" | tee "$WORK/load.txt"
# Flat memory: the server (its cache holds 32 MiB at most) ends within 64 MiB of its start.
awk '/server memory/ {gsub(/,/, ""); s = $5; e = $11; if (e - s > 64) { print "memory grew from " s " to " e " MiB"; exit 1 } }' "$WORK/load.txt" \
  || fail "server memory is not flat"
# The pyramid's goal: 2,000 tiles/s with p99 under 20 ms, 304s for revalidations.
awk '$1 == "pyramid" && ($3 < 2000 || $5 > 20) { print "pyramid: " $3 " tiles/s, p99 " $5 " ms"; exit 1 }' "$WORK/load.txt" \
  || fail "pyramid tiles below 2,000/s or p99 over 20 ms"
grep -q '^  revalidate .*304:' "$WORK/load.txt" || fail "no 304 in the revalidation group"
# The same load on a server without the cache: every tile asks the database.
NOCACHE_PORT=$((PORT + 2))
start_tileserver tileserver-nocache "$NOCACHE_PORT" vasttile_demo --statement-timeout-ms 2000 --cache-mb 0
"$TILESERVER_DIR/target/release/vasttile-loadgen" --url "http://127.0.0.1:$NOCACHE_PORT" --seconds 20 --concurrency 8 \
  --tiles "$WORK/tiles.txt" --pid "$(cat "$STATE_DIR/tileserver-nocache.pid")" | tee "$WORK/load-nocache.txt"
# Pyramid tiles alone on that server: what the database serves when no other layer shares the
# cores (10 s; reported, as the machine's load decides it).
grep '^pyramid ' "$WORK/tiles.txt" >"$WORK/tiles-pyramid.txt"
"$TILESERVER_DIR/target/release/vasttile-loadgen" --url "http://127.0.0.1:$NOCACHE_PORT" --seconds 10 --concurrency 8 \
  --tiles "$WORK/tiles-pyramid.txt" --pid "$(cat "$STATE_DIR/tileserver-nocache.pid")" | tee "$WORK/load-nocache-pyramid.txt"
grep -q '^  pyramid .* {200: ' "$WORK/load-nocache-pyramid.txt" || fail "pyramid tiles without the cache failed"
stop_tileserver tileserver-nocache

log "Martin $MARTIN_VERSION on the same layers"
if ! martin --version 2>/dev/null | grep -q "$MARTIN_VERSION"; then
  log "cargo install martin $MARTIN_VERSION (PostgreSQL sources only)"
  cargo install martin --version "$MARTIN_VERSION" --locked --no-default-features --features postgres
fi
# Martin connects to PostGIS databases only.
ensure_apt_packages "postgresql-$PG_MAJOR-postgis-3"
psql_db vasttile_demo -q -c "CREATE EXTENSION IF NOT EXISTS postgis" 2>/dev/null
martin --listen-addresses "127.0.0.1:$MARTIN_PORT" "postgresql://postgres@127.0.0.1:$PG_PORT/vasttile_demo" \
  >"$WORK/martin.log" 2>&1 &
MARTIN_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$MARTIN_PORT/catalog" -o "$WORK/catalog.json" && break; sleep 0.2; done
for layer in zip_dots zip_heat zip_access counties_unemployment activities_heat tube_heat; do
  python3 -c "import json,sys; c = json.load(open('$WORK/catalog.json'))['tiles']; \
    sys.exit(0 if c.get('$layer', {}).get('content_type') == 'image/png' else 1)" \
    || fail "Martin's catalog lacks $layer as image/png"
done
for tile in "zip_heat/4/4/6" "zip_heat/4/4/6?colormap=viridis" "zip_heat/4/4/6?v=42" "zip_dots/4/4/6" "counties_unemployment/3/1/3" \
            "zip_access/11/603/769" "activities_heat/14/8187/5448" "tube_heat/14/8187/5448?colormap=hot"; do
  path="${tile%%\?*}"; query="${tile#"$path"}"
  got="$(curl -s -o "$WORK/martin.png" -w '%{http_code} %{content_type}' "http://127.0.0.1:$MARTIN_PORT/$tile")"
  [ "$got" = "200 image/png" ] || fail "Martin $tile: $got"
  curl -s -o "$WORK/ours.png" "$BASE/$path.png$query"
  differing="$(echo "SELECT vasttile.png_diff(decode(:'a', 'base64'), decode(:'b', 'base64'))" \
    | psql_db vasttile_demo -tA -v a="$(base64 -w0 "$WORK/martin.png")" -v b="$(base64 -w0 "$WORK/ours.png")" -f -)"
  [ "$differing" = 0 ] || fail "Martin's $tile differs from ours in $differing pixels"
  echo "  Martin $tile: 200 image/png, 0 pixels differ"
done
log "tile server tests passed"
