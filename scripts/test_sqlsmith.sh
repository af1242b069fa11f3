#!/usr/bin/env bash
# sqlsmith (Debian's package) against vasttile: random queries over the bad-input fixtures with
# vasttile first on the search path, for a bounded number of queries. Fails when the server
# loses a backend to a signal (a crash) or stops answering; errors of the queries themselves are
# expected (sqlsmith writes nonsense on purpose).
# Environment: SQLSMITH_QUERIES (default 4000), SQLSMITH_SEED (default 1).
source "$(dirname "$0")/lib.sh"
cd "$REPO"

ensure_apt_packages sqlsmith
ensure_cluster
DB=vasttile_sqlsmith
QUERIES="${SQLSMITH_QUERIES:-4000}"
psql_db postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql_db "$DB" -c "CREATE EXTENSION vasttile" >/dev/null
psql_db "$DB" -f tests/badinput/fixtures.sql >/dev/null
LOG="$SOCKET_DIR/postgres.log"
crashes_before="$(grep -c 'terminated by signal' "$LOG" || true)"
log "sqlsmith: $QUERIES queries, search_path vasttile, statement_timeout 1 s"
status=0
timeout 600 sqlsmith --exclude-catalog --seed="${SQLSMITH_SEED:-1}" --max-queries="$QUERIES" \
  --target="host=$SOCKET_DIR port=$PG_PORT user=postgres dbname=$DB options='-c search_path=vasttile,public -c statement_timeout=1000'" \
  >"$STATE_DIR/sqlsmith.out" 2>&1 || status=$?
tail -c 2000 "$STATE_DIR/sqlsmith.out" | tr '\r' '\n' | grep -v '^$' | tail -12
crashes_after="$(grep -c 'terminated by signal' "$LOG" || true)"
if [ "$crashes_after" != "$crashes_before" ]; then
  grep -B2 -A4 'terminated by signal' "$LOG" | tail -30 >&2
  echo "sqlsmith crashed a backend" >&2
  exit 1
fi
psql_db "$DB" -tAc "SELECT 1" >/dev/null || { echo "the server stopped answering" >&2; exit 1; }
if [ "$status" != 0 ]; then
  echo "sqlsmith ended with status $status" >&2
  exit 1
fi
log "sqlsmith passed: $QUERIES queries, 0 crashes"
