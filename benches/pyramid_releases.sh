#!/usr/bin/env bash
# The same heat pyramid built by the released 0.1.0 (its library built for release from commit
# 6b1d9d1, loaded in its own database) and by this checkout, back to back on this machine:
# build time (median of VASTTILE_BENCH_BUILDS), bytes on disk (pg_total_relation_size of the
# tiles table, after VACUUM FULL, holding only this pyramid), and every tile served by both
# compared byte for byte. 100k activities at base zoom 16 by default
# (VASTTILE_BENCH_ACTIVITIES). Run by scripts/bench.sh.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

N="${VASTTILE_BENCH_ACTIVITIES:-100000}"
BUILDS="${VASTTILE_BENCH_BUILDS:-5}"
OLD_VERSION=0.1.0
OLD_COMMIT=6b1d9d1
LIB="$STATE_DIR/lib-$OLD_VERSION-release"
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"

if [ "$(cat "$LIB/commit" 2>/dev/null)" != "$OLD_COMMIT" ]; then
  log "building vasttile $OLD_VERSION for release from $OLD_COMMIT"
  src="$STATE_DIR/src-$OLD_VERSION-release"
  rm -rf "$src" && mkdir -p "$src"
  git archive "$OLD_COMMIT" | tar -x -C "$src"
  grep -q '^\[workspace\]' "$src/Cargo.toml" || printf '\n[workspace]\n' >>"$src/Cargo.toml"
  (cd "$src" && CARGO_TARGET_DIR="$STATE_DIR/target-old" \
     cargo pgrx schema --release "pg$PG_MAJOR" -o /dev/null) >"$STATE_DIR/build-$OLD_VERSION-release.log" 2>&1 \
    || { tail -30 "$STATE_DIR/build-$OLD_VERSION-release.log" >&2; exit 1; }
  $SUDO install -d -m 755 "$LIB"
  $SUDO install -m 755 "$STATE_DIR/target-old/release/libvasttile.so" "$LIB/vasttile.so"
  echo "$OLD_COMMIT" | $SUDO tee "$LIB/commit" >/dev/null
  rm -rf "$src"
fi
$SUDO install -m 644 "sql/vasttile--$OLD_VERSION.sql" "$EXTDIR/vasttile--$OLD_VERSION.sql"

ensure_cluster
old=vasttile_bench_0_1_0
new=vasttile_bench_current
psql_db postgres -q -c "DROP DATABASE IF EXISTS $old" -c "CREATE DATABASE $old" \
  -c "ALTER DATABASE $old SET dynamic_library_path = '$LIB:\$libdir'" \
  -c "DROP DATABASE IF EXISTS $new" -c "CREATE DATABASE $new"
psql_db "$old" -q -c "CREATE EXTENSION vasttile VERSION '$OLD_VERSION'"
psql_db "$new" -q -c "CREATE EXTENSION vasttile"
loaded="$(psql_db "$old" -tAc "SELECT vasttile.vcs_key(1, 1)" \
  -c "SELECT count(*) FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\n') l WHERE l LIKE '%/lib-$OLD_VERSION-release/vasttile.so'" | tail -1)"
[ "$loaded" -gt 0 ] || { echo "the $OLD_VERSION database did not load the $OLD_VERSION library" >&2; exit 1; }

log "$N synthetic activities in both databases"
for db in "$old" "$new"; do
  psql_db "$db" -q -c "SET client_min_messages = warning" -c "CREATE TABLE acts AS SELECT * FROM vasttile.synthetic_activities($N)" \
    -c "ALTER TABLE acts ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE acts"
done
# The same rows in both (the generator is the same code in both releases).
same="$(for db in "$old" "$new"; do psql_db "$db" -tAc "SELECT md5(string_agg(md5(path::text), '' ORDER BY id)) FROM acts"; done | sort -u | wc -l)"
[ "$same" = 1 ] || { echo "the two releases generated different activities" >&2; exit 1; }

build() {  # build DB NAME [OPTIONS]: seconds of one build, as the client sees it
  local t0 t1
  t0="$(date +%s.%N)"
  psql_db "$1" -q -o /dev/null -c "SELECT vasttile.create_heat_pyramid('$2', 'acts', '{\"geometry\": \"activities\", \"base_zoom\": 16${3:-}}')" \
    || { echo FAILED; return; }
  t1="$(date +%s.%N)"
  awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }'
}
declare -A times
for i in $(seq 1 "$BUILDS"); do
  for db in "$old" "$new"; do
    times[$db]+="$(build "$db" acts) "
  done
  # This checkout's set-based build in PostgreSQL's parallel workers.
  times[parallel]+="$(build "$new" acts_parallel ', "build": "parallel_query"') "
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
if grep -q FAILED <<<"${times[*]}"; then echo "a build failed" >&2; exit 1; fi
for db in "$old" "$new"; do
  [ "$(psql_db "$db" -tAc "SELECT count(*) FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'acts'")" -gt 0 ] \
    || { echo "the pyramid in $db has no tiles: a build failed" >&2; exit 1; }
done
# Builds alternate, so each round's ratio sees the same machine: the median of those ratios
# is the figure least moved by a noisy neighbour.
ratios() { paste -d ' ' <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') | awk '{print $1 / $2}' | tr '\n' ' '; }
ratio_s="$(ratios "${times[$old]}" "${times[$new]}" | median)"
ratio_par="$(ratios "${times[$old]}" "${times[parallel]}" | median)"
old_s="$(echo "${times[$old]}" | median)"
new_s="$(echo "${times[$new]}" | median)"
par_s="$(echo "${times[parallel]}" | median)"
psql_db "$new" -q -c "SELECT vasttile.drop_heat_pyramid('acts_parallel')" >/dev/null
size() {
  psql_db "$1" -q -c "VACUUM FULL vasttile.heat_pyramid_tiles" >/dev/null
  psql_db "$1" -tAc "SELECT pg_total_relation_size('vasttile.heat_pyramid_tiles')"
}
old_b="$(size "$old")"
new_b="$(size "$new")"

log "every tile of both pyramids, served (heat_pyramid_tile, the default style)"
tiles() {
  psql_db "$1" -tA -F ' ' -c "SELECT z, x, y, md5(vasttile.heat_pyramid_tile('acts', z, x, y))
                              FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'acts' ORDER BY z, x, y"
}
tiles "$old" >"$STATE_DIR/pyramid-tiles-$OLD_VERSION.txt"
tiles "$new" >"$STATE_DIR/pyramid-tiles-current.txt"
count="$(wc -l <"$STATE_DIR/pyramid-tiles-current.txt")"
differ="$(diff "$STATE_DIR/pyramid-tiles-$OLD_VERSION.txt" "$STATE_DIR/pyramid-tiles-current.txt" | grep -c '^>' || true)"

printf '\npyramid of %s activities, base z16, %s builds each, back to back\n' "$N" "$BUILDS"
printf '  %-10s %12s %14s\n' release "build s" "tiles bytes"
printf '  %-10s %12.2f %14s\n' "$OLD_VERSION" "$old_s" "$old_b"
printf '  %-10s %12.2f %14s\n' current "$new_s" "$new_b"
printf '  %-10s %12.2f %14s\n' "  parallel" "$par_s" "(build: parallel_query)"
printf '  builds (s): %s %s | current %s | parallel %s\n' "$OLD_VERSION" "${times[$old]}" "${times[$new]}" "${times[parallel]}"
printf '  build: %.2fx faster (%.2fx with parallel_query; medians of the rounds'"'"' ratios); on disk: %.3f of %s\n' \
  "$ratio_s" "$ratio_par" "$(awk -v a="$new_b" -v b="$old_b" 'BEGIN { print a / b }')" "$OLD_VERSION"
printf '  tiles served: %s, differing from %s: %s\n' "$count" "$OLD_VERSION" "$differ"
psql_db postgres -q -c "DROP DATABASE $old" -c "DROP DATABASE $new"
