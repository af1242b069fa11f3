#!/usr/bin/env bash
# The bad-input suite (tests/badinput/badinput.sql): every function of schema vasttile, found in
# pg_proc, called with hostile values argument by argument. Fails when any call ends in an
# internal error (SQLSTATE class XX, a panic) or crashes the backend.
#
# Runs against the local cluster (setup.sh) with the installed build, in a fresh database
# (default vasttile_badinput). Environment: BADINPUT_DB, BADINPUT_TIMEOUT (per call, default 2s),
# BADINPUT_SKIP (a regexp of function names not to call).
source "$(dirname "$0")/lib.sh"
cd "$REPO"

DB="${BADINPUT_DB:-vasttile_badinput}"
ensure_cluster
log "bad-input suite in database $DB"
psql_db postgres -c "DROP DATABASE IF EXISTS \"$DB\"" -c "CREATE DATABASE \"$DB\""
psql_db "$DB" -c "CREATE EXTENSION vasttile"
psql_db "$DB" -f tests/badinput/fixtures.sql >/dev/null

status=0
psql_db "$DB" -v timeout="${BADINPUT_TIMEOUT:-2s}" -v skip="${BADINPUT_SKIP:-^\$}" \
  -f tests/badinput/badinput.sql || status=$?
if [ "$status" = 2 ]; then
  # psql lost its connection: the backend crashed on the first case without a result.
  log "the backend crashed (psql status 2); the case it was running:"
  for _ in $(seq 30); do psql_db "$DB" -tAc "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
  psql_db "$DB" -x -c "SELECT c.id, c.signature, c.argname, c.label, c.sql FROM bi_cases c
                        WHERE c.id > (SELECT coalesce(max(id), 0) FROM bi_results)
                        ORDER BY c.id LIMIT 1"
  psql_db "$DB" -tAc "SELECT count(*) || ' cases ran before the crash' FROM bi_results"
  exit 1
elif [ "$status" != 0 ]; then
  log "bad-input suite failed (psql status $status)"
  exit 1
fi
log "bad-input suite passed"
