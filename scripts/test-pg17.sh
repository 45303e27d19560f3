#!/usr/bin/env bash
# `make test-pg17`: every layer of scripts/test.sh on PostgreSQL 17, inside the Debian 13 root of
# scripts/pg17-root.sh (created once under /var/cache/notion_sync, reused afterwards). The 17 build
# has its own target dir (target/pg17), pgrx config (in the root) and venv (in the root).
set -euo pipefail
cd "$(dirname "$0")/.."
# The pg tests reach the fake on 17801 whatever NOTION_SYNC_FAKE_PORT says: `cargo pgrx test --runas`
# hands the server only CARGO_* and RUST_* variables. So a 15 and a 17 run cannot overlap.
exec bash scripts/pg17-root.sh env PG_MAJOR=17 bash scripts/test.sh
