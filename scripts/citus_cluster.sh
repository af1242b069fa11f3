#!/usr/bin/env bash
# A Citus cluster on loopback for tests and benchmarks: a coordinator and two workers, each its
# own PostgreSQL (shared_preload_libraries = citus) under .vasttile/citus/, with vasttile
# installed. Sourced by scripts/test_citus.sh and benches; needs Citus (../shared/citus/build.sh).
#   citus_start           initdb (once) and start the three nodes, add the workers
#   citus_stop            stop them
#   citus_psql DB [args]  psql on the coordinator
#   citus_has             true when Citus is installed into this PostgreSQL
# Ports: coordinator $CITUS_PORT (default the local cluster's port + 10), workers +1 and +2.

CITUS_DIR="$STATE_DIR/citus"
CITUS_PORT="${VASTTILE_CITUS_PORT:-$((PG_PORT + 10))}"
CITUS_NODES=(coordinator worker1 worker2)

citus_has() {
  [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]
}

citus_node_port() {
  case "$1" in coordinator) echo "$CITUS_PORT" ;; worker1) echo $((CITUS_PORT + 1)) ;; worker2) echo $((CITUS_PORT + 2)) ;; esac
}

citus_node_psql() {
  local node="$1" db="$2"; shift 2
  PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CITUS_DIR/run" -p "$(citus_node_port "$node")" -U postgres -d "$db" "$@"
}

citus_psql() {
  local db="$1"; shift
  citus_node_psql coordinator "$db" "$@"
}

citus_start() {
  $SUDO install -d -o "$PG_OS_USER" -m 755 "$CITUS_DIR" "$CITUS_DIR/run"
  local node port
  for node in "${CITUS_NODES[@]}"; do
    port="$(citus_node_port "$node")"
    if [ ! -f "$CITUS_DIR/$node/PG_VERSION" ]; then
      $SUDO install -d -o "$PG_OS_USER" -m 700 "$CITUS_DIR/$node"
      as_pg "$PG_BIN/initdb" -D "$CITUS_DIR/$node" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
      cat <<CONF | as_pg tee -a "$CITUS_DIR/$node/postgresql.conf" >/dev/null
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$CITUS_DIR/run'
shared_preload_libraries = 'citus'
shared_buffers = 128MB
max_connections = 100
max_parallel_workers_per_gather = 0
jit = off
citus.shard_count = 4
CONF
    fi
    if ! as_pg "$PG_BIN/pg_ctl" -D "$CITUS_DIR/$node" status >/dev/null 2>&1; then
      as_pg "$PG_BIN/pg_ctl" -D "$CITUS_DIR/$node" -l "$CITUS_DIR/$node.log" -w start >/dev/null
    fi
  done
}

# A database on every node with citus and vasttile, the workers added to the coordinator.
citus_database() {
  local db="$1" node
  for node in "${CITUS_NODES[@]}"; do
    citus_node_psql "$node" postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    citus_node_psql "$node" "$db" -c "CREATE EXTENSION citus" >/dev/null
  done
  citus_psql "$db" -c "SELECT citus_set_coordinator_host('127.0.0.1', $CITUS_PORT)" \
    -c "SELECT citus_add_node('127.0.0.1', $((CITUS_PORT + 1)))" \
    -c "SELECT citus_add_node('127.0.0.1', $((CITUS_PORT + 2)))" \
    -c "CREATE EXTENSION vasttile" >/dev/null
}

citus_stop() {
  local node
  for node in "${CITUS_NODES[@]}"; do
    as_pg "$PG_BIN/pg_ctl" -D "$CITUS_DIR/$node" -m fast stop >/dev/null 2>&1 || true
  done
}
