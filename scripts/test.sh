#!/usr/bin/env bash
# All of vasttile's tests, from a fresh machine or a set-up one:
#   1. formatting and clippy (warnings are errors);
#   2. `cargo pgrx test`: the core's #[test]s (property tests, golden PNGs) and the #[pg_test]s
#      of the SQL bindings, in a throwaway cluster run by the `postgres` OS user;
#   3. golden SQL output with pg_regress (tests/pg_regress) against the local cluster, with the
#      release build installed and the ZIP codes loaded;
#   4. every ```sql example of README.md, run in a fresh database.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_toolchain
ensure_vega_datasets
ensure_us_atlas
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --features "pg$PG_MAJOR pg_test" --no-default-features -- -D warnings

log "cargo pgrx test (core #[test] and bindings #[pg_test])"
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
log "README examples"
# Every ```sql block of the README, in order, in a fresh database: they must run without error.
psql_db postgres -c "DROP DATABASE IF EXISTS vasttile_readme" -c "CREATE DATABASE vasttile_readme"
awk '/^```sql/ {on = 1; next} /^```/ {on = 0} on' README.md | psql_db vasttile_readme -o /dev/null -f -

log "all tests passed"
