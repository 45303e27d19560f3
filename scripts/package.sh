#!/usr/bin/env bash
# `make package`: Debian packages of the extension, one per PostgreSQL major:
#   target/packages/postgresql-<major>-notion-sync_<version>_<arch>.deb
# from `cargo pgrx package` (library, control file, install script and every upgrade script), with
# Depends from dpkg-shlibdeps and the server package, built with dpkg-deb.
#   scripts/package.sh            15 (built here) and 17 (built inside the trixie root, scripts/pg17-root.sh)
#   scripts/package.sh 15         one major; where its pg_config is missing, 17 goes through the root
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT="$REPO/target/packages"
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$VERSION" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
MAJORS=("$@"); [ ${#MAJORS[@]} -gt 0 ] || MAJORS=(15 17)

build() {
  local major=$1 pg_config=/usr/lib/postgresql/$1/bin/pg_config
  local name="postgresql-$major-notion-sync" arch target stage log
  arch=$(dpkg --print-architecture)
  target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
  stage="$target/deb/$name"
  log="$target/deb/$name.log"
  echo "== package: $name $VERSION ($arch)"
  PG_MAJOR=$major bash scripts/setup.sh >/dev/null
  rm -rf "$stage"; mkdir -p "$stage" "$OUT"
  cargo pgrx package --pg-config "$pg_config" --out-dir "$stage" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }

  local extdir libdir
  extdir="$stage$("$pg_config" --sharedir)/extension"
  libdir="$stage$("$pg_config" --pkglibdir)"
  [ -f "$libdir/notion_sync.so" ] && [ -f "$extdir/notion_sync.control" ] && [ -f "$extdir/notion_sync--$VERSION.sql" ] ||
    { echo "package.sh: cargo pgrx package output incomplete in $stage" >&2; exit 1; }
  # Every upgrade script of sql/ must be in the package (cargo pgrx copies them; make sure).
  local f
  for f in sql/notion_sync--*--*.sql; do
    [ -e "$f" ] || continue
    [ -f "$extdir/$(basename "$f")" ] || sed "s/@CARGO_VERSION@/$VERSION/g" "$f" >"$extdir/$(basename "$f")"
  done
  strip --strip-unneeded "$libdir/notion_sync.so"

  # Library dependencies as dpkg-shlibdeps sees them (it wants a debian/control to exist).
  local shdeps tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/debian"
  printf 'Source: notion-sync\n\nPackage: %s\nArchitecture: any\n' "$name" >"$tmp/debian/control"
  shdeps=$(cd "$tmp" && dpkg-shlibdeps -O "$libdir/notion_sync.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  rm -rf "$tmp"
  [ -n "$shdeps" ] || shdeps="libc6 (>= $(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//'))"

  mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/$name"
  cp LICENSE "$stage/usr/share/doc/$name/copyright" 2>/dev/null ||
    printf 'notion_sync\nLicense: MIT\n' >"$stage/usr/share/doc/$name/copyright"
  cat >"$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $VERSION
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-notion_sync maintainers <notion-sync@localhost>}
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: postgresql-$major, $shdeps
Recommends: postgresql-$major-cron
Section: database
Priority: optional
Description: Notion databases mirrored inside PostgreSQL $major
 notion_sync is a PostgreSQL extension that calls the Notion API itself and keeps
 Notion databases mirrored in tables (sync, typo-tolerant lookup, full-text search,
 webhooks, a background scheduler). Needs shared_preload_libraries = 'notion_sync'
 for the worker; CREATE EXTENSION notion_sync CASCADE also creates pg_trgm.
CONTROL
  (cd "$stage" && find usr -type f -exec md5sum {} + | sort -k2) >"$stage/DEBIAN/md5sums"
  local deb="$OUT/${name}_${VERSION}_$arch.deb"
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
  echo "   $deb"
  dpkg-deb --field "$deb" Depends Recommends | sed 's/^/   /'
  dpkg-deb --contents "$deb" | awk '{print "   " $6}' | grep -v '/$'
}

for major in "${MAJORS[@]}"; do
  if [ -x "/usr/lib/postgresql/$major/bin/pg_config" ]; then
    build "$major"
  elif [ "$major" = 17 ]; then
    bash scripts/pg17-root.sh bash scripts/package.sh 17
  else
    echo "package.sh: no PostgreSQL $major here (/usr/lib/postgresql/$major/bin/pg_config)" >&2; exit 1
  fi
done
