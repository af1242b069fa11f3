# Shared, idempotent steps for setup.sh, test.sh and bench.sh. Source it; do not run it.
# Every step checks first and skips what is already done, so running twice is cheap.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_CONFIG="$PG_BIN/pg_config"
PGRX_VERSION=0.18.0
VEGA_DATASETS_VERSION=3.2.1

# The local cluster: data, socket and log live under .vasttile/ in the checkout.
STATE_DIR="${VASTTILE_STATE_DIR:-$REPO/.vasttile}"
PGDATA_DIR="$STATE_DIR/pgdata"
SOCKET_DIR="$STATE_DIR/run"
PG_PORT="${VASTTILE_PORT:-28815}"
DATA_DIR="$REPO/data"
OUT_DIR="$REPO/out"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` OS user.
if [ "$(id -u)" = 0 ]; then
  SUDO=""
  PG_OS_USER=postgres
else
  SUDO="sudo"
  PG_OS_USER="$(id -un)"
fi

as_pg() {
  if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@"; else sudo -u "$PG_OS_USER" "$@"; fi
}

ensure_apt_packages() {
  local wanted=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang sudo
                build-essential pkg-config ca-certificates curl "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's package starts a default cluster; we run our own and do not need it.
}

ensure_node() {
  if ! command -v npm >/dev/null 2>&1; then
    log "apt: installing nodejs and npm"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
}

ensure_cargo_pgrx() {
  if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    log "cargo: installing cargo-pgrx $PGRX_VERSION (about 9 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
  fi
  if ! grep -q "pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
    log "cargo pgrx init against Debian's PostgreSQL $PG_MAJOR"
    cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
  fi
}

ensure_toolchain() {
  ensure_apt_packages "$@"
  ensure_cargo_pgrx
}

install_extension() {
  log "building and installing the extension (release)"
  local pkg="$REPO/target/release/vasttile-pg$PG_MAJOR"
  (cd "$REPO" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$pkg" >/dev/null)
  # `install` replaces each file with a new one (a new inode) rather than writing over it:
  # backends that have the old library mapped keep it intact instead of crashing.
  (cd "$pkg" && find . -type f | while read -r f; do
     $SUDO install -D -m "$([ "${f##*.}" = so ] && echo 755 || echo 644)" "$f" "/${f#./}"
   done)
}

# Start (creating if needed) the local cluster.
ensure_cluster() {
  $SUDO mkdir -p "$STATE_DIR"
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    log "initdb $PGDATA_DIR"
    $SUDO install -d -o "$PG_OS_USER" -m 700 "$PGDATA_DIR"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
    cat <<CONF | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCKET_DIR'
shared_buffers = 512MB
max_parallel_workers_per_gather = 2
jit = off
CONF
  fi
  $SUDO install -d -o "$PG_OS_USER" -m 755 "$SOCKET_DIR"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    log "starting PostgreSQL on port $PG_PORT (socket $SOCKET_DIR)"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$SOCKET_DIR/postgres.log" -w start >/dev/null
  fi
}

stop_cluster() {
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
}

# psql against the local cluster: psql_db DB [psql args...]
psql_db() {
  local db="$1"; shift
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

ensure_database() {
  local db="$1"
  if ! psql_db postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql_db postgres -c "CREATE DATABASE \"$db\""
  fi
}

# Files of an npm package, fetched from the registry with `npm pack` into data/NAME/:
# fetch_npm_files NAME VERSION DIR-IN-PACKAGE FILE...  (skipped when all files are there)
fetch_npm_files() {
  local name="$1" version="$2" dir="$3" f missing=0; shift 3
  for f in "$@"; do [ -f "$DATA_DIR/$name/$f" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  ensure_node
  log "npm pack $name@$version"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$DATA_DIR/$name"
  local strip=1
  [ -n "$dir" ] && strip=$(( 2 + $(tr -cd / <<<"$dir" | wc -c) ))
  tar -xzf "$tmp/$name-$version.tgz" -C "$DATA_DIR/$name" --strip-components="$strip" \
    $(for f in "$@"; do printf 'package/%s ' "${dir:+$dir/}$f"; done)
  rm -rf "$tmp"
}

ensure_vega_datasets() {
  fetch_npm_files vega-datasets "$VEGA_DATASETS_VERSION" data zipcodes.csv earthquakes.json unemployment.tsv londonTubeLines.json
}

US_ATLAS_VERSION=3.0.1
ensure_us_atlas() {
  fetch_npm_files us-atlas "$US_ATLAS_VERSION" "" counties-10m.json states-10m.json
}

# The world's countries and land (Natural Earth through TopoJSON): the whole world's edges.
WORLD_ATLAS_VERSION=2.0.2
ensure_world_atlas() {
  fetch_npm_files world-atlas "$WORLD_ATLAS_VERSION" "" countries-50m.json countries-110m.json land-50m.json land-110m.json
}

# Write a bytea query result to a file: save_png DB "SQL returning one bytea" FILE
save_png() {
  local db="$1" sql="$2" file="$3"
  psql_db "$db" -tA -c "SELECT encode(($sql), 'base64')" | base64 -d >"$file"
}

# The tile server (pgrx-examples/tileserver): built with cargo, its page's npm packages
# (MapLibre GL JS) installed from the registry, run in the background with a pid file.
TILESERVER_DIR="$REPO/pgrx-examples/tileserver"
HTTP_PORT="${VASTTILE_HTTP_PORT:-8787}"

ensure_tileserver() {
  log "building the tile server"
  cargo build --release --quiet --manifest-path "$TILESERVER_DIR/Cargo.toml"
  if [ ! -f "$TILESERVER_DIR/web/node_modules/maplibre-gl/dist/maplibre-gl.js" ] \
     || [ ! -d "$TILESERVER_DIR/web/node_modules/puppeteer-core" ]; then
    ensure_node
    log "npm: MapLibre GL JS for the map page"
    (cd "$TILESERVER_DIR/web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# start_tileserver NAME PORT DB [OPTION...]: (re)start a server over database DB, wait until it
# answers.
start_tileserver() {
  local name="$1" port="$2" db="$3"
  shift 3
  local pidfile="$STATE_DIR/$name.pid" logfile="$STATE_DIR/$name.log"
  stop_tileserver "$name"
  # (The server alone goes to the background, its output to the log: nothing holds our stdout.)
  (cd "$TILESERVER_DIR"
   nohup ./target/release/vasttile-tileserver --listen "127.0.0.1:$port" \
      --database "host=$SOCKET_DIR port=$PG_PORT user=postgres dbname=$db" \
      --web web --maplibre web/node_modules/maplibre-gl/dist "$@" </dev/null >"$logfile" 2>&1 &
   echo $! >"$pidfile")
  for _ in $(seq 1 50); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  cat "$logfile" >&2
  echo "the tile server did not start" >&2
  return 1
}

stop_tileserver() {
  local pidfile="$STATE_DIR/$1.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    sleep 0.3
  fi
}
