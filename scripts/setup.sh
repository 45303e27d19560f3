#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and demo notion_sync.
# Idempotent: every step checks first and skips what is already done.
# PG_MAJOR (default 15) picks the PostgreSQL major; 17 runs inside the trixie root (scripts/pg17-root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== setup: %s\n' "$*"; }
t0=$(date +%s)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
PG_MAJOR="${PG_MAJOR:-15}"
VENV="${NOTION_SYNC_VENV:-.venv}"

APT_PKGS="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-cron libclang-dev clang sudo pkg-config libssl-dev"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  step "apt-get install$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
else
  step "apt packages present"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q ' 0.18.0'; then
  step "cargo install cargo-pgrx 0.18.0 (about 9 minutes)"
  cargo install cargo-pgrx --version 0.18.0 --locked
else
  step "cargo-pgrx 0.18.0 present"
fi

PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
if ! grep -qs "^pg$PG_MAJOR" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  step "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
  cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
else
  step "cargo pgrx already initialised for pg$PG_MAJOR"
fi

# Python tools for the cluster tests, the SDK fidelity check and the baseline benchmark.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import notion_client, psycopg, pytest' 2>/dev/null; then
  step "python venv ($VENV): notion-client psycopg pytest"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
else
  step "python venv present"
fi
step "done in $(( $(date +%s) - t0 )) s"
