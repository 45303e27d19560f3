#!/usr/bin/env bash
# A Debian 13 (trixie) root with PostgreSQL 17, to build and test notion_sync on 17 from this Debian 12
# host (trixie packages on the host itself would replace its libc).
#
#   scripts/pg17-root.sh                 create the root if needed (once, about 3 minutes), then exit
#   scripts/pg17-root.sh CMD [ARG...]    run CMD as root inside it, in the checkout
#
# The root is cached outside the checkout (PG17_ROOT, default /var/cache/notion_sync/trixie-pg17) and
# reused: a second run starts in seconds. Inside it the checkout keeps its own path, the host's
# /root/.cargo and /root/.rustup (Rust toolchain, cargo-pgrx, crate cache) are bound in, and the
# environment selects 17: PG_MAJOR=17, PGRX_HOME=/root/.pgrx of the root (the host's ~/.pgrx is never
# touched), CARGO_TARGET_DIR=<checkout>/target/pg17, NOTION_SYNC_VENV=/opt/notion_sync/venv.
# Every mount is made in a private mount namespace (unshare) and unmounted by a trap on exit, so
# nothing stays mounted on the host, even after kill -9. Needs root.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${PG17_ROOT:-/var/cache/notion_sync/trixie-pg17}"
SUITE=trixie
PKGS="postgresql-17 postgresql-server-dev-17 postgresql-17-cron libclang-dev clang gcc pkg-config libssl-dev python3 python3-venv sudo ca-certificates dpkg-dev"
STAMP="$ROOT/.notion_sync-packages"
log() { printf '== pg17-root: %s\n' "$*" >&2; }
t0=$(date +%s)

[ "$(id -u)" -eq 0 ] || { echo "pg17-root.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }

# Everything below runs in a private mount namespace: its mounts die with it.
if [ -z "${NOTION_SYNC_PG17_NS:-}" ]; then
  NOTION_SYNC_PG17_NS=1 exec unshare --mount --propagation private -- bash "$0" "$@"
fi

# The host's Debian mirror (deb822 or one-line sources), for the same registry.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u != "" && $0 !~ /security/ {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

mounted=()
cleanup() {
  local i
  for (( i = ${#mounted[@]} - 1; i >= 0; i-- )); do
    umount -R "${mounted[$i]}" 2>/dev/null || umount -R -l "${mounted[$i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() {  # bind SRC into the root at the same path (or at $2)
  local dst="$ROOT${2:-$1}"
  mkdir -p "$dst"
  mount --rbind "$1" "$dst"
  mount --make-rprivate "$dst"
  mounted+=("$dst")
}

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9   # one creation at a time; a second run waits here, then reuses the root

if [ ! -f "$ROOT/.notion_sync-base" ]; then
  MIRROR=$(mirror)
  if ! command -v debootstrap >/dev/null; then
    log "apt-get install debootstrap (on the host; only the root gets Debian 13's packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  log "debootstrap $SUITE from $MIRROR into $ROOT (once)"
  rm -rf "$ROOT.partial"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT.partial" "$MIRROR" \
    >"$(dirname "$ROOT")/debootstrap.log" 2>&1 || { tail -30 "$(dirname "$ROOT")/debootstrap.log" >&2; exit 1; }
  # No service starts inside the root; tests start their own clusters.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT.partial/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT.partial/usr/sbin/policy-rc.d"
  # The postgres user with the host's uid/gid: files the tests leave in the shared checkout (.run)
  # belong to the same user on both sides.
  if uid=$(id -u postgres 2>/dev/null) && gid=$(id -g postgres 2>/dev/null); then
    chroot "$ROOT.partial" sh -c "getent group $gid >/dev/null || groupadd -r -g $gid postgres;
      getent passwd $uid >/dev/null || useradd -r -u $uid -g $gid -d /var/lib/postgresql -s /bin/bash postgres" || true
  fi
  touch "$ROOT.partial/.notion_sync-base"
  mv "$ROOT.partial" "$ROOT"
fi

cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
cp -L /etc/hosts "$ROOT/etc/hosts" 2>/dev/null || true   # sudo resolves the host name
mkdir -p "$ROOT/proc"
mount -t proc proc "$ROOT/proc"; mounted+=("$ROOT/proc")
bind /dev
bind /sys

# The host's own trust anchors (for instance a TLS-inspecting proxy's CA), so that registries over
# HTTPS (PyPI, crates.io) verify inside the root as they do on the host.
if [ -d /usr/local/share/ca-certificates ] &&
   ! diff -rq /usr/local/share/ca-certificates "$ROOT/usr/local/share/ca-certificates" >/dev/null 2>&1; then
  rm -rf "$ROOT/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates "$ROOT/usr/local/share/"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
fi

if [ "$(cat "$STAMP" 2>/dev/null)" != "$PKGS" ]; then
  log "apt-get install (in the root): $PKGS"
  chroot "$ROOT" sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends $PKGS >/dev/null &&
    { pg_dropcluster 17 main 2>/dev/null || true; } && apt-get clean"
  echo "$PKGS" >"$STAMP"
  log "root ready in $(( $(date +%s) - t0 )) s"
fi

[ $# -gt 0 ] || { log "ready: $ROOT"; exit 0; }

bind /root/.cargo
bind /root/.rustup
bind "$REPO"
mkdir -p "$ROOT/opt/notion_sync"

envs=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
      PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      PG_MAJOR=17 PGRX_HOME=/root/.pgrx CARGO_TARGET_DIR="$REPO/target/pg17"
      NOTION_SYNC_VENV=/opt/notion_sync/venv)
# Pass the knobs of the test scripts through.
while IFS='=' read -r k _; do
  case "$k" in NOTION_SYNC_PG17_NS|NOTION_SYNC_VENV) ;; NOTION_SYNC_*|PROPTEST_*|PYTEST_*|RUST_*|CARGO_BUILD_JOBS|BENCH_*) envs+=("$k=${!k}") ;;
    # How the host reaches the registries (the same Debian paths exist in the root).
    SSL_CERT_FILE|SSL_CERT_DIR|PIP_CERT|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_INDEX_URL|PIP_EXTRA_INDEX_URL|PIP_DEFAULT_TIMEOUT|http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY)
      envs+=("$k=${!k}") ;;
  esac
done < <(env)
set +e
chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/bash -c 'cd "$0" && exec "$@"' "$REPO" "$@"
rc=$?
set -e
exit $rc
