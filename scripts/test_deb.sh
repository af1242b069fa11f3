#!/usr/bin/env bash
# The Debian package, checked the way a DBA meets it: built by scripts/package_deb.sh, unpacked
# into a clean copy of PostgreSQL's installation (no vasttile files but the package's), a new
# cluster there, CREATE EXTENSION vasttile and every ```sql example of the README.
# PostgreSQL finds its share and lib folders relative to its binaries, so the copy is a
# self-contained prefix: nothing of the system's installation is touched or used.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

DEB="$("$REPO/scripts/package_deb.sh")"
log "checking $(basename "$DEB")"
dpkg-deb --info "$DEB" >/dev/null
contents="$(dpkg-deb -c "$DEB" | awk '{print $6}' | grep -v '/$' | sort)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
for f in "./usr/lib/postgresql/$PG_MAJOR/lib/vasttile.so" \
         "./usr/share/postgresql/$PG_MAJOR/extension/vasttile.control" \
         "./usr/share/postgresql/$PG_MAJOR/extension/vasttile--$VERSION.sql"; do
  grep -qxF "$f" <<<"$contents" || { echo "the package lacks $f" >&2; exit 1; }
done
for f in sql/vasttile--*--*.sql; do
  grep -qxF "./usr/share/postgresql/$PG_MAJOR/extension/$(basename "$f")" <<<"$contents" \
    || { echo "the package lacks the upgrade script $f" >&2; exit 1; }
done

PREFIX="$STATE_DIR/deb-prefix"
DATA="$STATE_DIR/deb-pgdata"
RUN="$STATE_DIR/deb-run"
PORT="${VASTTILE_DEB_PORT:-$((PG_PORT + 4))}"
cleanup() {
  as_pg "$PREFIX/usr/lib/postgresql/$PG_MAJOR/bin/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  $SUDO rm -rf "$PREFIX" "$DATA" "$RUN"
}
cleanup
trap cleanup EXIT
$SUDO install -d -m 755 "$PREFIX/usr/lib/postgresql" "$PREFIX/usr/share/postgresql"
$SUDO cp -a "/usr/lib/postgresql/$PG_MAJOR" "$PREFIX/usr/lib/postgresql/"
$SUDO cp -a "/usr/share/postgresql/$PG_MAJOR" "$PREFIX/usr/share/postgresql/"
$SUDO rm -f "$PREFIX/usr/lib/postgresql/$PG_MAJOR/lib/vasttile.so" \
  "$PREFIX/usr/share/postgresql/$PG_MAJOR/extension/"vasttile*
$SUDO dpkg -x "$DEB" "$PREFIX"
[ "$("$PREFIX/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" --pkglibdir)" = "$PREFIX/usr/lib/postgresql/$PG_MAJOR/lib" ] \
  || { echo "the copied PostgreSQL does not use its own prefix" >&2; exit 1; }

$SUDO install -d -o "$PG_OS_USER" -m 700 "$DATA"
$SUDO install -d -o "$PG_OS_USER" -m 755 "$RUN"
as_pg "$PREFIX/usr/lib/postgresql/$PG_MAJOR/bin/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PREFIX/usr/lib/postgresql/$PG_MAJOR/bin/pg_ctl" -D "$DATA" -l "$RUN/postgres.log" -w \
  -o "-p $PORT -k $RUN -c listen_addresses=''" start >/dev/null
dpsql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres "$@"; }
dpsql -d postgres -c "CREATE DATABASE readme"
dpsql -d readme -c "CREATE EXTENSION vasttile"
[ "$(dpsql -d readme -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vasttile'")" = "$VERSION" ] \
  || { echo "CREATE EXTENSION from the package did not give $VERSION" >&2; exit 1; }
loaded="$(dpsql -d readme -tAc "SELECT vasttile.vcs_key(1, 1)" \
  -c "SELECT count(*) FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\n') l WHERE l LIKE '%$PREFIX/%/vasttile.so'" | tail -1)"
[ "$loaded" -gt 0 ] || { echo "the cluster did not load the package's library" >&2; exit 1; }
paths="$(dpsql -d readme -tAc "SELECT string_agg(source || '->' || target, ' ') FROM pg_extension_update_paths('vasttile') WHERE path IS NOT NULL AND target = '$VERSION'")"
dpsql -d postgres -c "DROP DATABASE readme" -c "CREATE DATABASE readme"
awk '/^```sql$/ {on = 1; next} /^```/ {on = 0} on' README.md | dpsql -d readme -o /dev/null -f -
log "package $(basename "$DEB"): $(du -h "$DEB" | cut -f1), CREATE EXTENSION and the README examples ran; update paths: ${paths:-none}"
