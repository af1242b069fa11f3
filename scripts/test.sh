#!/usr/bin/env bash
# All of vasttile's tests, from a fresh machine or a set-up one:
#   1. formatting and clippy (warnings are errors);
#   2. `cargo test` of the core crate (crates/vasttile-core: property tests, golden PNGs, fuzzing
#      of decoders; no PostgreSQL needed), then `cargo pgrx test`: the #[pg_test]s of the SQL
#      bindings, in a throwaway cluster run by the `postgres` OS user;
#   3. golden SQL output with pg_regress (tests/pg_regress) against the local cluster, with the
#      release build installed and the ZIP codes loaded, including the security suite (five
#      roles, row-level security, hostile names); the bad-input suite generated from pg_proc,
#      cancellation timings and sqlsmith (scripts/test_badinput.sh, test_cancel.sh,
#      test_sqlsmith.sh);
#   4. the upgrade test: vasttile 0.1.0 (built from its release commit) with one object of every
#      kind, ALTER EXTENSION vasttile UPDATE, then the same tiles and the schema of a fresh
#      install; released SQL scripts unchanged (scripts/test_upgrade.sh);
#   5. Citus, when it is installed (from ../shared/citus, the Citus source kept beside the
#      project): a coordinator and two workers, every tile kind and layer over distributed tables
#      byte-identical to one node, with the rows reaching the coordinator (scripts/test_citus.sh);
#   6. every ```sql example of README.md, run in a fresh database, and again in a clean
#      PostgreSQL prefix from the Debian package (scripts/test_deb.sh);
#   7. the demo of setup.sh and its tile server: HTTP, headless Chromium on the map page, a 30 s
#      load run and Martin on the same layers (scripts/test_tileserver.sh).
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_toolchain sqlsmith
ensure_vega_datasets
ensure_us_atlas
ensure_world_atlas
# Citus is in no package registry these machines reach: its source and build script sit beside
# the project. build.sh does nothing when it is already installed.
if [ -x "$REPO/../shared/citus/build.sh" ]; then
  "$REPO/../shared/citus/build.sh"
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

# The demo's tile server (setup.sh restarts it at the end) would hold libraries the tests replace.
stop_tileserver tileserver

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --features "pg$PG_MAJOR pg_test" --no-default-features -- -D warnings
log "layout: no import circles among bindings, README names every file"
python3 scripts/check_layout.py
log "tile server: fmt, clippy, unit tests"
cargo fmt --manifest-path pgrx-examples/tileserver/Cargo.toml -- --check
cargo clippy --manifest-path pgrx-examples/tileserver/Cargo.toml --all-targets -- -D warnings
cargo test --manifest-path pgrx-examples/tileserver/Cargo.toml --quiet

log "the core crate: no PostgreSQL in its dependencies, cargo test"
# crates/vasttile-core must build and test without PostgreSQL (no pgrx, no server headers).
core_deps="$(cargo tree -p vasttile-core --all-features -e normal,build --prefix none)"
if grep '^pgrx' <<<"$core_deps" >/dev/null; then
  echo "vasttile-core depends on pgrx" >&2
  exit 1
fi
cargo test -p vasttile-core --all-features --quiet

log "cargo pgrx test (bindings #[test] and #[pg_test])"
$SUDO install -d -o "$PG_OS_USER" -m 700 "$STATE_DIR/pgrx-test"
cargo pgrx test "pg$PG_MAJOR" --runas "$PG_OS_USER" --pgdata "$STATE_DIR/pgrx-test"

install_extension
ensure_cluster
log "pg_regress (tests/pg_regress)"
REGRESS_OUT="$STATE_DIR/regress"
$SUDO install -d -o "$(id -un)" "$REGRESS_OUT"
psql_db postgres -c "DROP DATABASE IF EXISTS vasttile_regress" -c "CREATE DATABASE vasttile_regress"
if ! VASTTILE_REPO="$REPO" PGHOST="$SOCKET_DIR" PGPORT="$PG_PORT" PGUSER=postgres \
  "/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/regress/pg_regress" \
    --use-existing --bindir="$PG_BIN" --dbname=vasttile_regress \
    --inputdir=tests/pg_regress --outputdir="$REGRESS_OUT" --schedule=tests/pg_regress/schedule; then
  cat "$REGRESS_OUT/regression.diffs" >&2 || true
  exit 1
fi
log "concurrent skeleton cache misses"
# Eight sessions ask for the same uncached skeleton at once: each gets the same bytes and the
# cache holds the tile once (a miss renders; the first insert wins, the others are ignored).
psql_db vasttile_regress -c "DELETE FROM vasttile.skeleton_cache WHERE layer = 'counties'" >/dev/null
for i in 1 2 3 4 5 6 7 8; do
  psql_db vasttile_regress -tAc "SELECT md5(vasttile.skeleton_tile('counties', 4, 3, 6))" >"$REGRESS_OUT/concurrent.$i" &
done
wait
[ "$(cat "$REGRESS_OUT"/concurrent.* | sort -u | wc -l)" = 1 ] || { echo "concurrent skeletons differ" >&2; exit 1; }
[ "$(psql_db vasttile_regress -tAc "SELECT count(*) FROM vasttile.skeleton_cache WHERE layer = 'counties' AND z = 4")" = 1 ] \
  || { echo "the cache holds the tile more than once" >&2; exit 1; }

# Untrusted input and bounded work: every function with hostile arguments (no XX000, no crash),
# cancellation of every long call within 250 ms of statement_timeout, and sqlsmith.
"$REPO/scripts/test_badinput.sh"
"$REPO/scripts/test_cancel.sh"
"$REPO/scripts/test_sqlsmith.sh"

# Versions: 0.1.0 updated in place must equal a fresh install.
"$REPO/scripts/test_upgrade.sh"
"$REPO/scripts/test_citus.sh"

log "README examples"
# Every ```sql block of the README, in order, in a fresh database: they must run without error.
psql_db postgres -c "DROP DATABASE IF EXISTS vasttile_readme" -c "CREATE DATABASE vasttile_readme"
awk '/^```sql$/ {on = 1; next} /^```/ {on = 0} on' README.md | psql_db vasttile_readme -o /dev/null -f -
# The same from the Debian package, unpacked into a clean PostgreSQL prefix.
"$REPO/scripts/test_deb.sh"

log "the demo (setup.sh) and its tile server"
"$REPO/scripts/setup.sh" >/dev/null
"$REPO/scripts/test_tileserver.sh"

log "all tests passed"
