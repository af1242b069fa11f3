#!/usr/bin/env bash
# Benchmarks (not timed tests): each hot path beside its peer in the same run, medians and ratios.
# Needs the set-up of scripts/setup.sh (cluster running, ZIP codes loaded); does it if missing.
source "$(dirname "$0")/lib.sh"
cd "$REPO"
ensure_cluster
if ! psql_db vasttile_demo -tAc "SELECT to_regclass('zipcodes') IS NOT NULL" 2>/dev/null | grep -q t; then
  "$REPO/scripts/setup.sh"
fi
psql_db vasttile_demo -f benches/points.sql
