#!/usr/bin/env bash
# `make bench`: builds and installs the extension, then runs benches/bench.py (prints figures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -q -p fake_notion
cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >.run/bench-install.log 2>&1 || { tail -30 .run/bench-install.log; exit 1; }
.venv/bin/pip install -q -r benches/requirements.txt
.venv/bin/python benches/bench.py
