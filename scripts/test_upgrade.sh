#!/usr/bin/env bash
# Upgrade test: every released version is installed with its own library, given one object of
# every kind (tests/upgrade/objects.sql), updated with ALTER EXTENSION vasttile UPDATE and then
# must (1) serve the same tiles as before, (2) keep working (refresh, cache invalidation, drop:
# tests/upgrade/after.sql) exactly as a fresh install does, and (3) have the schema of a fresh
# install (tests/upgrade/describe.sql). Also checks that released SQL scripts are unchanged.
#
# The old library is built from its release commit into .vasttile/lib-VERSION/vasttile.so and
# loaded side by side: the old version's database sets dynamic_library_path to that folder
# (functions name their library `vasttile`, found through the path), so the cluster's other
# databases keep the current library. Resetting the path is what replacing the library is for
# a real installation.
# Expects the current build installed (install_extension) and the cluster running.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

# Released versions and their commits; add a line for every release.
RELEASES=("0.1.0 6b1d9d1")
CURRENT="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"
OUT="$STATE_DIR/upgrade"
$SUDO install -d -o "$(id -un)" "$OUT"

log "released SQL scripts are unchanged"
# Each sql/ file is frozen once a release that ships it exists: compare with its release commit.
for release in "${RELEASES[@]}"; do
  read -r version commit <<<"$release"
  file="sql/vasttile--$version.sql"
  [ -f "$file" ] || { echo "$file is missing: released scripts stay in sql/" >&2; exit 1; }
  if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "commit $commit of release $version is not in this clone (a shallow clone?)" >&2
    exit 1
  fi
  # The frozen install script was generated from that commit; it must still be what was frozen.
  frozen="$(git log --diff-filter=A --format=%H -- "$file" | tail -1)"
  if [ -n "$frozen" ] && ! git diff --quiet "$frozen" -- "$file"; then
    echo "$file changed after it was frozen in $frozen: add changes to the next upgrade script" >&2
    git diff --stat "$frozen" -- "$file" >&2
    exit 1
  fi
done
# Upgrade scripts whose target version was released are frozen too.
for file in sql/vasttile--*--*.sql; do
  target="${file##*--}"; target="${target%.sql}"
  [ "$target" = "$CURRENT" ] && continue
  frozen="$(git log --diff-filter=A --format=%H -- "$file" | tail -1)"
  if [ -n "$frozen" ] && ! git diff --quiet "$frozen" -- "$file"; then
    echo "$file (to released $target) changed after it was added" >&2
    exit 1
  fi
done

# The library of a release and its install script, built once from its commit (a debug build:
# quick to make, same SQL). The script made there must be the one frozen in sql/.
old_library() {
  local version="$1" commit="$2" dir="$STATE_DIR/lib-$1"
  if [ -f "$dir/vasttile.so" ] && [ "$(cat "$dir/commit" 2>/dev/null)" = "$commit" ]; then
    return
  fi
  log "building vasttile $version from $commit"
  local src="$STATE_DIR/src-$version"
  rm -rf "$src" && mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  # The copy lies inside this checkout's workspace: it is a project of its own.
  grep -q '^\[workspace\]' "$src/Cargo.toml" || printf '\n[workspace]\n' >>"$src/Cargo.toml"
  if ! (cd "$src" && CARGO_TARGET_DIR="$STATE_DIR/target-old" \
          cargo pgrx schema "pg$PG_MAJOR" -o "$src/vasttile--$version.sql") >"$STATE_DIR/build-$version.log" 2>&1; then
    tail -40 "$STATE_DIR/build-$version.log" >&2
    echo "building vasttile $version failed (log: $STATE_DIR/build-$version.log)" >&2
    exit 1
  fi
  # pgrx orders its blocks of objects differently from run to run: compare them as sets.
  python3 - "$src/vasttile--$version.sql" "sql/vasttile--$version.sql" <<'PY' \
    || { echo "sql/vasttile--$version.sql is not the install script of $commit" >&2; exit 1; }
import sys
blocks = [sorted(b.strip() for b in open(p).read().split("/* <begin connected objects> */")) for p in sys.argv[1:]]
sys.exit(0 if blocks[0] == blocks[1] else 1)
PY
  $SUDO install -d -m 755 "$dir"
  $SUDO install -m 755 "$STATE_DIR/target-old/debug/libvasttile.so" "$dir/vasttile.so"
  echo "$commit" | $SUDO tee "$dir/commit" >/dev/null
  rm -rf "$src"
}

# Run psql with `args` in both databases into $OUT/DB.NAME; they must print the same.
same_in_both() {
  local name="$1" why="$2"; shift 2
  for db in "$old" "$fresh"; do
    psql_db "$db" "$@" >"$OUT/$db.$name"
  done
  diff "$OUT/$old.$name" "$OUT/$fresh.$name" >&2 || { echo "$why" >&2; exit 1; }
}

for release in "${RELEASES[@]}"; do
  read -r version commit <<<"$release"
  [ "$version" = "$CURRENT" ] && continue
  old_library "$version" "$commit"
  $SUDO install -m 644 "sql/vasttile--$version.sql" "$EXTDIR/vasttile--$version.sql"
  old="vasttile_upgrade_${version//./_}"
  fresh="vasttile_upgrade_fresh"
  log "upgrade $version -> $CURRENT"
  psql_db postgres -c "DROP DATABASE IF EXISTS $old" -c "CREATE DATABASE $old" \
    -c "ALTER DATABASE $old SET dynamic_library_path = '$STATE_DIR/lib-$version:\$libdir'" \
    -c "DROP DATABASE IF EXISTS $fresh" -c "CREATE DATABASE $fresh" >/dev/null
  # The old version with its own library, and its objects.
  psql_db "$old" -c "CREATE EXTENSION vasttile VERSION '$version'" >/dev/null
  loaded="$(psql_db "$old" -tAc "SELECT vasttile.vcs_key(1, 1)" \
    -c "SELECT count(*) FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\n') l WHERE l LIKE '%/lib-$version/vasttile.so'" | tail -1)"
  [ "$loaded" -gt 0 ] || { echo "the $version database did not load the $version library" >&2; exit 1; }
  psql_db "$old" -o /dev/null -f tests/upgrade/objects.sql
  # Replace the library (for this database) and update.
  psql_db postgres -c "ALTER DATABASE $old RESET dynamic_library_path" >/dev/null
  # Until the update, the new library refuses the old schema with a clear error.
  psql_db "$old" -c "DO \$\$ BEGIN
      PERFORM vasttile.heat_pyramid_tile('up_points', 10, 511, 340);
      RAISE EXCEPTION 'a $CURRENT library served a $version schema without ALTER EXTENSION UPDATE';
    EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;
    END \$\$" >/dev/null
  psql_db "$old" -c "ALTER EXTENSION vasttile UPDATE" 2>"$OUT/update.log" >/dev/null \
    || { cat "$OUT/update.log" >&2; exit 1; }
  # The pyramid whose table was dropped under the old version is reported and gone.
  grep -q "whose table no longer exists: 'up_gone'" "$OUT/update.log" \
    || { cat "$OUT/update.log" >&2; echo "the update did not report the pyramid of a dropped table" >&2; exit 1; }
  [ "$(psql_db "$old" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vasttile'")" = "$CURRENT" ] \
    || { echo "ALTER EXTENSION vasttile UPDATE did not reach $CURRENT" >&2; exit 1; }
  # (1) Every object serves the tiles it served before the update.
  changed="$(psql_db "$old" -tAc "SELECT string_agg(format('%s %s/%s/%s', b.what, b.z, b.x, b.y), ', ')
                                  FROM upgrade_tiles_before b FULL JOIN upgrade_tiles() a USING (what, z, x, y)
                                  WHERE a.tile IS DISTINCT FROM b.tile")"
  [ -z "$changed" ] || { echo "tiles changed by the update: $changed" >&2; exit 1; }
  # The same objects made by a fresh install serve the same tiles too.
  psql_db "$fresh" -c "CREATE EXTENSION vasttile" -o /dev/null -f tests/upgrade/objects.sql
  same_in_both before "$version and a fresh $CURRENT draw different tiles from the same objects" \
    -tAc "SELECT what, z, x, y, md5(tile) FROM upgrade_tiles_before ORDER BY 1, 2, 3, 4"
  # (2) The schema and the definitions equal a fresh install's (again after the changes below).
  # Stored tiles are compared by what they hold, not by their bytes: tiles written by an older
  # release keep their encoding (counts, summaries and levels compressed since 0.2.0).
  same_in_both schema-before "the schema after ALTER EXTENSION UPDATE differs from a fresh $CURRENT install" \
    -f tests/upgrade/describe.sql
  same_in_both definitions "the definitions moved by the update differ from a fresh install's" \
    -tAc "SELECT name, source, owner, options, base_zoom, tile_size, built_at IS NOT NULL FROM vasttile.heat_pyramids ORDER BY 1" \
    -c "SELECT name, source, owner, id_column, polygon_column, feature_bits FROM vasttile.skeleton_layers ORDER BY 1" \
    -c "SELECT pyramid, z, x, y, md5(vasttile.heat_pyramid_counts(pyramid, z, x, y)::bytea), md5(vasttile.heat_pyramid_tile(pyramid, z, x, y)) FROM vasttile.heat_pyramid_tiles ORDER BY 1, 2, 3, 4" \
    -c "SELECT pyramid, sign, count(*) FROM vasttile.heat_pyramid_log GROUP BY 1, 2 ORDER BY 1, 2" \
    -c "SELECT layer, z, x, y, size, md5(skeleton) FROM vasttile.skeleton_cache ORDER BY 1, 2, 3, 4, 5"
  # (3) Both keep working the same way: refreshes, cache invalidation, drops.
  same_in_both after "after the update, objects behave differently from a fresh install's" \
    -f tests/upgrade/after.sql
  grep -q "refreshed tiles changed" "$OUT/$old.after" \
    || { echo "after.sql did not run to its end" >&2; exit 1; }
  # (4) The schema still equals a fresh install's.
  same_in_both schema "the schema after ALTER EXTENSION UPDATE differs from a fresh $CURRENT install" \
    -f tests/upgrade/describe.sql
  log "upgrade $version -> $CURRENT: $(wc -l <"$OUT/$old.before") tiles identical, schema identical ($(wc -l <"$OUT/$old.schema") lines)"
done
