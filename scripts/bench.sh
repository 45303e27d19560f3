#!/usr/bin/env bash
# `make bench`: builds and installs the extension, then runs benches/bench.py (prints figures).
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_MAJOR="${PG_MAJOR:-15}"
bash scripts/setup.sh
VENV="${NOTION_SYNC_VENV:-.venv}"
mkdir -p .run
cargo build --release -q -p fake_notion
cargo pgrx install --release --pg-config "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" >.run/bench-install.log 2>&1 || { tail -30 .run/bench-install.log; exit 1; }
"$VENV/bin/pip" install -q -r benches/requirements.txt
"$VENV/bin/python" benches/bench.py
