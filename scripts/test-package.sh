#!/usr/bin/env bash
# `make test-package`: the .deb of `make package` installed the way a user installs it, on a clean
# extension directory: what `cargo pgrx install` put there is moved aside, `apt-get install ./file.deb`,
# a fresh cluster (shared_preload_libraries = notion_sync), CREATE EXTENSION, a sync against the fake
# Notion, rows checked, `apt-get remove`, files checked gone. What was moved aside is put back at the end.
# Builds the package first (scripts/package.sh), so it tests the current sources.
#   scripts/test-package.sh          15 here, then 17 inside the trixie root (scripts/pg17-root.sh)
#   scripts/test-package.sh 15       one major
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
MAJORS=("$@"); [ ${#MAJORS[@]} -gt 0 ] || MAJORS=(15 17)
[ "$(id -u)" -eq 0 ] || { echo "test-package.sh: needs root (apt-get install)" >&2; exit 1; }

run_one() {
  local major=$1
  local name="postgresql-$major-notion-sync" pgbin="/usr/lib/postgresql/$major/bin"
  local deb
  deb="$REPO/target/packages/${name}_${VERSION}_$(dpkg --print-architecture).deb"
  local extdir libdir
  extdir="$("$pgbin/pg_config" --sharedir)/extension"
  libdir="$("$pgbin/pg_config" --pkglibdir)"
  echo "== test-package: $name $VERSION"
  bash scripts/package.sh "$major" | sed -n '1,2p'   # current sources (quick when the release build is)

  local target="${CARGO_TARGET_DIR:-target}"
  [ -x "$target/release/fake_notion" ] || cargo build --release -q -p fake_notion

  tmp=$(mktemp -d /tmp/notion_sync-test-package.XXXXXX)
  chmod 755 "$tmp"
  data="$tmp/data"; aside="$tmp/aside"; fake_pid=""
  cleanup() {
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
    [ -f "$data/postmaster.pid" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
      apt-get remove -y -qq "$name" >/dev/null 2>&1 || true
    fi
    # Put back what `cargo pgrx install` had installed (other test runs of this checkout use it).
    if [ -d "$aside/ext" ]; then cp -a "$aside/ext/." "$extdir/"; fi
    if [ -d "$aside/lib" ]; then cp -a "$aside/lib/." "$libdir/"; fi
    rm -rf "$tmp"
  }
  trap cleanup EXIT
  fail() { echo "test-package: FAILED: $*" >&2; [ -f "$data/server.log" ] && tail -20 "$data/server.log" >&2; exit 1; }

  # 1. A clean extension directory: an earlier package is removed, files of `cargo pgrx install` moved aside.
  if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
    apt-get remove -y -qq "$name" >/dev/null
  fi
  mkdir -p "$aside/ext" "$aside/lib"
  find "$extdir" -maxdepth 1 -name 'notion_sync*' -exec mv -t "$aside/ext" {} +
  [ -f "$libdir/notion_sync.so" ] && mv "$libdir/notion_sync.so" "$aside/lib/"

  # 2. Install the package as a user would.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$deb" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log"; fail "apt-get install $deb"; }
  [ -f "$libdir/notion_sync.so" ] && [ -f "$extdir/notion_sync--$VERSION.sql" ] || fail "package files missing after install"
  echo "   installed: $(dpkg-query -W -f='${Package} ${Version}' "$name"), $(dpkg -L "$name" | grep -c 'notion_sync') files"

  # 3. A fresh cluster with the library preloaded, and the fake Notion.
  local port fake_port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fake_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$target/release/fake_notion" --port "$fake_port" --workspace tests/workspace/sample.json >"$tmp/fake.log" 2>&1 &
  fake_pid=$!
  mkdir -p "$data"; chown postgres:postgres "$data"
  runuser -u postgres -- "$pgbin/initdb" -D "$data" -U postgres --auth=trust --locale=C.UTF-8 >/dev/null
  cat >>"$data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
shared_preload_libraries = 'notion_sync'
notion_sync.database = 'postgres'
notion_sync.api_url = 'http://127.0.0.1:$fake_port/v1'
notion_sync.requests_per_second = 0
CONF
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w start >/dev/null || fail "cluster did not start"
  psql() { PGOPTIONS='-c client_min_messages=warning' "$pgbin/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

  # 4. The extension from the package, a sync against the fake, rows checked.
  psql -c "CREATE EXTENSION notion_sync CASCADE" || fail "CREATE EXTENSION"
  local v
  v=$(psql -c "SELECT extversion FROM pg_extension WHERE extname = 'notion_sync'")
  [ "$v" = "$VERSION" ] || fail "extversion $v, expected $VERSION"
  psql -c "SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')" >/dev/null
  psql -c "SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c1', 'Characters')" >/dev/null
  local result rows worker
  result=$(psql -F ' ' -c "SELECT status, total FROM notion_sync.sync_notion_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c1', 'Characters', 'full')") ||
    fail "sync"
  rows=$(psql -c "SELECT count(*) FROM notion_sync.notion_characters_sync WHERE user_id = 'alice'")
  worker=$(psql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'notion_sync%'")
  echo "   sync: $result; rows in notion_characters_sync: $rows; worker processes: $worker"
  case "$result" in "succeeded "*) ;; *) fail "sync status: $result" ;; esac
  [ "$rows" -gt 0 ] || fail "no rows synced"
  psql -c "SELECT name FROM notion_sync.get_notion_character('alice', 'aria', 1)" | grep -qi aria || fail "lookup"
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null

  # 5. apt-get remove takes every file away.
  apt-get remove -y -qq "$name" >/dev/null 2>&1 || fail "apt-get remove"
  local left
  left=$(find "$extdir" "$libdir" -maxdepth 1 -name 'notion_sync*' | tr '\n' ' ')
  [ -z "$left" ] || fail "files left after apt-get remove: $left"
  echo "   removed: no notion_sync file left in $extdir or $libdir"
  echo "== test-package: $name ok"
  cleanup; trap - EXIT
}

for major in "${MAJORS[@]}"; do
  if [ -x "/usr/lib/postgresql/$major/bin/pg_config" ]; then
    run_one "$major"
  elif [ "$major" = 17 ]; then
    bash scripts/pg17-root.sh bash scripts/test-package.sh 17
  else
    echo "test-package.sh: no PostgreSQL $major here" >&2; exit 1
  fi
done
