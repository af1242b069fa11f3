#!/usr/bin/env bash
# A Debian package of the extension for Debian 12's PostgreSQL: `cargo pgrx package` (release
# build) laid out as postgresql-15-vasttile_VERSION-1_ARCH.deb in target/debian/.
#   scripts/package_deb.sh            build it, print its path
#   sudo apt-get install ./target/debian/postgresql-15-vasttile_*.deb   install it
# The package holds the library, the control file, the install script of this version and
# every upgrade script in sql/ (ALTER EXTENSION vasttile UPDATE from older versions).
source "$(dirname "$0")/lib.sh"
cd "$REPO"
# stdout is the package's path alone.
ensure_toolchain >&2

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
ARCH="$(dpkg --print-architecture)"
NAME="postgresql-$PG_MAJOR-vasttile"
STAGE="$REPO/target/debian/${NAME}_$VERSION"
DEB="$REPO/target/debian/${NAME}_$VERSION-1_$ARCH.deb"

log "cargo pgrx package (release)"
rm -rf "$STAGE"
mkdir -p "$REPO/target/debian"
if ! cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$STAGE" >"$REPO/target/debian/package.log" 2>&1; then
  cat "$REPO/target/debian/package.log" >&2
  exit 1
fi
# Only what PostgreSQL loads: the library and the extension's SQL and control files.
find "$STAGE" -type f ! -path "*/lib/postgresql/$PG_MAJOR/lib/vasttile.so" \
  ! -path "*/share/postgresql/$PG_MAJOR/extension/vasttile*" -print -delete >&2
find "$STAGE" -type f -exec chmod 644 {} + && chmod 755 "$STAGE/usr/lib/postgresql/$PG_MAJOR/lib/vasttile.so"
install -d "$STAGE/usr/share/doc/$NAME"
install -m 644 README.md "$STAGE/usr/share/doc/$NAME/README.md"
gzip -9n "$STAGE/usr/share/doc/$NAME/README.md"

install -d "$STAGE/DEBIAN"
PG_VERSION="$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null | cut -d- -f1 || true)"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: $NAME
Version: $VERSION-1
Architecture: $ARCH
Maintainer: vasttile developers <vasttile@localhost>
Section: database
Priority: optional
Depends: postgresql-$PG_MAJOR, libc6 (>= 2.34), libgcc-s1
Installed-Size: $(du -sk "$STAGE/usr" | cut -f1)
Homepage: https://localhost/vasttile
Description: PNG map tiles rendered inside PostgreSQL $PG_MAJOR
 vasttile turns rows of integer VCS coordinates (pixel space of Web Mercator at zoom 23)
 into PNG heat, point, path, choropleth and accessibility tiles straight from SQL, with
 zoom pyramids kept current by triggers. Built against PostgreSQL ${PG_VERSION:-$PG_MAJOR}.
 After installing: CREATE EXTENSION vasttile; (as a superuser).
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
