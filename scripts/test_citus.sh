#!/usr/bin/env bash
# vasttile on Citus: a coordinator and two workers on loopback (scripts/citus_cluster.sh), the same
# rows as distributed tables and as plain tables on the coordinator (tests/citus/data.sql), and
# every tile kind and layer over both, byte for byte, with coordinator aggregation disabled
# (tests/citus/compare.py, which also reports the rows and bytes that reach the coordinator).
# Then a skeleton layer over a distributed table sees a change made on the workers.
# Runs when Citus is installed into this PostgreSQL (test.sh installs it from ../shared/citus).
# Expects the current build installed (install_extension). scripts/bench.sh runs it with
# VASTTILE_CITUS_RUNS=7 for its timings.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/citus_cluster.sh"
cd "$REPO"

if ! citus_has; then
  log "Citus is not installed into $("$PG_CONFIG" --pkglibdir): no Citus tests"
  exit 0
fi
DB=vasttile_citus
log "Citus cluster: coordinator on port $CITUS_PORT, workers on $((CITUS_PORT + 1)) and $((CITUS_PORT + 2))"
citus_start
citus_database "$DB"
citus_psql "$DB" -o /dev/null -f tests/citus/data.sql
citus_psql "$DB" -o /dev/null <<'SQL'
SELECT vasttile.create_heat_layer('citus_heat', 'pts'), vasttile.create_heat_layer('local_heat', 'pts_local');
SELECT vasttile.create_dot_layer('citus_dots', 'pts'), vasttile.create_dot_layer('local_dots', 'pts_local');
SELECT vasttile.create_access_layer('citus_access', 'pts'), vasttile.create_access_layer('local_access', 'pts_local');
SELECT vasttile.create_skeleton_layer('citus_squares', 'polys'), vasttile.create_skeleton_layer('local_squares', 'polys_local');
SELECT vasttile.create_choropleth_layer('citus_choropleth', 'citus_squares', 'SELECT id, id * 1.5 FROM polys'),
       vasttile.create_choropleth_layer('local_choropleth', 'local_squares', 'SELECT id, id * 1.5 FROM polys_local');
SQL

log "every tile kind on Citus beside one node"
python3 tests/citus/compare.py --host "$CITUS_DIR/run" --port "$CITUS_PORT" --db "$DB" --runs "${VASTTILE_CITUS_RUNS:-3}"

log "a change on the workers reaches the skeleton cache"
# Cache the tile, change one polygon in both tables, and the distributed layer must draw the
# change (its shards' triggers count it on the workers), like the local one.
same="$(citus_psql "$DB" -tA <<'SQL'
SELECT md5(vasttile.skeleton_tile('citus_squares', 3, 1, 3)) = md5(vasttile.skeleton_tile('local_squares', 3, 1, 3));
UPDATE polys SET polygon = (SELECT polygon FROM polys_local WHERE id = 1) WHERE id = 5;
UPDATE polys_local SET polygon = (SELECT polygon FROM polys_local WHERE id = 1) WHERE id = 5;
SELECT md5(vasttile.skeleton_tile('citus_squares', 3, 1, 3)) = md5(vasttile.skeleton_tile('local_squares', 3, 1, 3));
DELETE FROM polys WHERE id = 7;
DELETE FROM polys_local WHERE id = 7;
SELECT md5(vasttile.skeleton_tile('citus_squares', 3, 1, 3)) = md5(vasttile.skeleton_tile('local_squares', 3, 1, 3));
SELECT md5(citus_choropleth(3, 1, 3)) = md5(local_choropleth(3, 1, 3));
SQL
)"
[ "$(echo $same)" = "t t t t" ] || { echo "a distributed skeleton layer served a stale tile: $same" >&2; exit 1; }

log "a table named like a shard, where that shard is not, logs nothing"
# On the coordinator (which holds no shard of big_acts), a table named as one of its shards with
# the pyramid's trigger: writes to it must not reach the pyramid's log. (Citus refuses changes to
# a table named like a shard unless a setting anyone may set is on.)
got="$(citus_psql "$DB" -tA <<'SQL'
SET citus.enable_manual_changes_to_shards = on;
SELECT format('CREATE TABLE public.%I (LIKE big_acts)', 'big_acts_' || min(shardid))
FROM pg_dist_shard WHERE logicalrelid = 'big_acts'::regclass \gexec
SELECT format('CREATE TRIGGER forged AFTER INSERT ON public.%I REFERENCING NEW TABLE AS new_rows
               FOR EACH STATEMENT EXECUTE FUNCTION vasttile.heat_pyramid_log_rows(%L)',
              'big_acts_' || min(shardid), 'citus_big_acts')
FROM pg_dist_shard WHERE logicalrelid = 'big_acts'::regclass \gexec
SELECT format('INSERT INTO public.%I SELECT * FROM big_acts_local LIMIT 5', 'big_acts_' || min(shardid))
FROM pg_dist_shard WHERE logicalrelid = 'big_acts'::regclass \gexec
SELECT count(*) = 0 FROM vasttile.shard_pyramid_log WHERE pyramid = 'citus_big_acts';
SELECT (r ->> 'rows')::int = 0 FROM vasttile.heat_pyramid_refresh('citus_big_acts') r;
SELECT format('DROP TABLE public.%I', 'big_acts_' || min(shardid))
FROM pg_dist_shard WHERE logicalrelid = 'big_acts'::regclass \gexec
SQL
)"
[ "$(echo $got)" = "t t" ] || { echo "a forged shard reached the pyramid's log: $got" >&2; exit 1; }

log "pyramid tiles in a table distributed by tile"
# The extension's tile table distributed by column x: each tile lives on one worker, written and
# read by router queries. A rebuild over the distributed activities must equal the one-node
# pyramid again, and its tiles must be spread over the workers.
got="$(citus_psql "$DB" -tA <<'SQL'
SET citus.coordinator_aggregation_strategy = 'disabled';
SELECT create_distributed_table('vasttile.heat_pyramid_tiles', 'x');
SELECT (vasttile.heat_pyramid_build('citus_big_acts') ->> 'tiles')::int > 0;
SELECT count(*) = count(*) FILTER (WHERE md5(x.counts) = md5(y.counts) AND md5(x.levels) = md5(y.levels)
                                         AND md5(x.summary) = md5(y.summary))
FROM (SELECT * FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'citus_big_acts') x
FULL JOIN (SELECT * FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'local_big_acts') y USING (z, x, y);
SELECT count(*) = 1 FROM pg_dist_partition WHERE logicalrelid = 'vasttile.heat_pyramid_tiles'::regclass AND partmethod = 'h';
SELECT count(*) = 2 AND bool_and(result::int > 0) FROM run_command_on_workers(
    $$SELECT count(*) FROM vasttile.heat_pyramid_tiles WHERE pyramid = 'citus_big_acts'$$);
WITH t AS MATERIALIZED (SELECT z, x, y FROM vasttile.heat_pyramid_tiles
                        WHERE pyramid = 'local_big_acts' AND z = 12 ORDER BY x, y LIMIT 4)
SELECT count(*) = 4 AND bool_and(md5(vasttile.heat_pyramid_tile('citus_big_acts', z, x, y))
                                 = md5(vasttile.heat_pyramid_tile('local_big_acts', z, x, y))) FROM t;
SQL
)"
[ "$(echo $got)" = "t t t t t" ] || { echo "a pyramid stored in the distributed tile table differs: $got" >&2; exit 1; }

log "README: the \`\`\`sql-citus examples"
citus_database vasttile_citus_readme
readme="$(awk '/^```sql-citus/ {on = 1; next} /^```/ {on = 0} on' README.md | citus_psql vasttile_citus_readme -tA -f -)"
grep -qx "incremental|200" <<<"$readme" && grep -qx "incremental|0" <<<"$readme" \
  || { echo "the README's Citus example printed: $readme" >&2; exit 1; }
citus_stop
