#!/usr/bin/env bash
# The one test command (README: `make test`): pure Rust tests, `cargo pgrx test` against the fake
# Notion, then the real-cluster suite (worker preloaded) and the SDK fidelity check of the fake.
# PG_MAJOR (default 15) picks the PostgreSQL major; `make test-pg17` runs this with PG_MAJOR=17 inside
# the trixie root (scripts/test-pg17.sh), with its own target dir, venv and run dir (.run/pg17).
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_MAJOR="${PG_MAJOR:-15}"
bash scripts/setup.sh
export NOTION_SYNC_FAKE_PORT="${NOTION_SYNC_FAKE_PORT:-17801}"
PGBIN="/usr/lib/postgresql/$PG_MAJOR/bin"
VENV="${NOTION_SYNC_VENV:-.venv}"
TARGET="${CARGO_TARGET_DIR:-target}"
# The default major builds with the default features; another one names its feature.
FEATURES=(); [ "$PG_MAJOR" != 15 ] && FEATURES=(--no-default-features --features "pg$PG_MAJOR")
RUN_DIR="$(pwd)/.run"; [ "$PG_MAJOR" != 15 ] && RUN_DIR="$RUN_DIR/pg$PG_MAJOR"
export NOTION_SYNC_RUN_DIR="$RUN_DIR"
mkdir -p "$RUN_DIR"
failed=0; summary=""
section() { printf '\n== test: %s\n' "$*"; }

section "build the fake Notion"
cargo build --release -q -p fake_notion

section "cargo test (pure Rust: Notion client and model, fake server)"
# The pg tests need a running Postgres: `cargo pgrx test` below runs them.
if { cargo test -q -p fake_notion && cargo test -q -p notion_sync --lib "${FEATURES[@]}" -- --skip pg_tests; } 2>&1 | tee "$RUN_DIR/unit.log"; then summary="$summary\n  cargo test: ok"; else failed=1; summary="$summary\n  cargo test: FAILED"; fi

section "cargo pgrx test pg$PG_MAJOR (SQL functions against the fake on 127.0.0.1:$NOTION_SYNC_FAKE_PORT)"
"$TARGET/release/fake_notion" --port "$NOTION_SYNC_FAKE_PORT" --workspace tests/workspace/sample.json >"$RUN_DIR/fake-pgtest.log" 2>&1 &
fake_pid=$!
trap 'kill $fake_pid 2>/dev/null || true' EXIT
PGDATA_TEST="$RUN_DIR/pgrx-test-data"
install -d -o postgres -g postgres "$RUN_DIR" 2>/dev/null || true
chmod 755 "$RUN_DIR" "$(pwd)/.run"
RUNAS=(); [ "$(id -u)" -eq 0 ] && RUNAS=(--runas postgres --pgdata "$PGDATA_TEST")
# pg tests share one fake: run them one at a time.
if RUST_TEST_THREADS=1 cargo pgrx test "pg$PG_MAJOR" pg_tests "${RUNAS[@]}" 2>&1 | tee "$RUN_DIR/pgtest.log"; then summary="$summary\n  cargo pgrx test: ok"; else failed=1; summary="$summary\n  cargo pgrx test: FAILED"; fi
kill $fake_pid 2>/dev/null || true

section "cluster tests (shared_preload_libraries = notion_sync) and the fake's fidelity with the official SDK"
cargo pgrx install --release --pg-config "$PGBIN/pg_config" >"$RUN_DIR/install.log" 2>&1 || { cat "$RUN_DIR/install.log"; exit 1; }
if "$VENV/bin/pytest" -q tests/cluster 2>&1 | tee "$RUN_DIR/pytest.log"; then summary="$summary\n  pytest: ok"; else failed=1; summary="$summary\n  pytest: FAILED"; fi

printf '\n== test summary (PostgreSQL %s)%b\n' "$PG_MAJOR" "$summary"
# One closing line for every layer together.
python3 - "$RUN_DIR" <<'PY'
import re, sys, pathlib
d = pathlib.Path(sys.argv[1]); p = f = s = 0
for name in ("unit.log", "pgtest.log"):
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", (d / name).read_text(errors="replace")):
        p += int(m[1]); f += int(m[2]); s += int(m[3])
t = (d / "pytest.log").read_text(errors="replace")
for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", t.splitlines()[-1] if t.strip() else ""):
    if k == "passed": p += int(n)
    elif k == "skipped": s += int(n)
    else: f += int(n)
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $failed
