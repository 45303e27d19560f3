"""notion_sync benchmark (`make bench`): full sync, unchanged re-sync and 1%-changed incremental sync
against the fake Notion with no rate limit, in one run on one cluster. Prints a table and writes
benches/results/latest.md. Sizes: BENCH_SIZES (default "1000 10000")."""
import json
import math
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "cluster"))
import psycopg  # noqa: E402
from harness import ROOT, Cluster, Fake  # noqa: E402

DB = "b0000000-0000-4000-8000-0000000000b1"
DS = "b5000000-0000-4000-8000-0000000000b1"
WORKSPACE = {"tokens": {"ntn_bench": ["*"]}, "databases": [{"id": DB, "title": "Bench", "data_sources": [{
    "id": DS, "name": "Bench", "properties": {
        "Name": {"type": "title"}, "Notes": {"type": "rich_text"}, "Rating": {"type": "number"},
        "Tags": {"type": "multi_select", "options": ["a", "b", "c"]}, "Done": {"type": "checkbox"},
        "Due": {"type": "date"}}}]}]}
TEMPLATE = {"Notes": "Some notes about this page, long enough to be realistic text.", "Rating": 4,
            "Tags": ["a", "c"], "Done": True, "Due": "2026-05-01"}


def peak_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(conn, mode):
    t0 = time.perf_counter()
    r = conn.execute("SELECT status, total, created, updated, skipped FROM notion_sync.sync_notion_database("
                     "'bench', %s, 'Bench', %s)", (DB, mode)).fetchone()
    secs = time.perf_counter() - t0
    reqs = conn.execute("SELECT http_requests FROM notion_sync.sync_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    assert r[0] == "succeeded", r
    return r, secs, reqs


def main():
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000 10000").split()]
    fake = Fake(workspace=ROOT / "tests" / "workspace" / "sample.json", log_name="fake-bench.log")
    cluster = Cluster("bench-cluster", {"notion_sync.api_url": f"'{fake.url}/v1'",
                                        "notion_sync.requests_per_second": 0, "notion_sync.content_depth": 0,
                                        "shared_buffers": "'256MB'"})
    rows = []
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION notion_sync CASCADE")
            admin.execute("SELECT notion_sync.set_notion_token('bench', 'ntn_bench')")
        for n in sizes:
            fake.reset(WORKSPACE)
            fake.admin("POST", f"data_sources/{DS}/generate",
                       {"count": n, "properties": TEMPLATE, "created_time": "2026-01-01T00:00:00Z", "step_ms": 1000})
            with psycopg.connect(cluster.dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE notion_sync.notion_pages_sync, notion_sync.databases, notion_sync.sync_runs CASCADE")
                pid = conn.info.backend_pid
                base_kb = peak_kb(pid)
                (_, total, created, _, _), full_s, full_req = run(conn, "full")
                (_, _, _, _, skipped), same_s, same_req = run(conn, "full")
                k = max(1, n // 100)
                ids = [r[0] for r in conn.execute(
                    "SELECT notion_page_id FROM notion_sync.notion_pages_sync ORDER BY random() LIMIT %s", (k,))]
                for pid_ in ids:
                    fake.admin("PATCH", f"pages/{pid_}", {"properties": {"Rating": 5}})
                (_, inc_total, _, inc_updated, _), inc_s, inc_req = run(conn, "incremental")
                peak = peak_kb(pid)
            minimum = math.ceil(k / 100) + 1  # query pages + the database lookup (no content)
            rows.append({"pages": n, "full_pages_per_s": round(total / full_s), "full_requests": full_req,
                         "full_min_requests": math.ceil(n / 100) + 1,
                         "unchanged_pages_per_s": round(skipped / same_s), "changed": k, "incr_updated": inc_updated,
                         "incr_requests": inc_req, "incr_min_requests": minimum, "incr_seconds": round(inc_s, 3),
                         "backend_peak_mb": round(peak / 1024, 1), "backend_start_mb": round(base_kb / 1024, 1)})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        cluster.stop()
        fake.stop()
    head = ["pages", "full sync pages/s", "requests (min)", "unchanged re-sync pages/s", "1% incremental: updated",
            "requests (min)", "seconds", "backend peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['pages']} | {r['full_pages_per_s']} | {r['full_requests']} ({r['full_min_requests']}) | "
                     f"{r['unchanged_pages_per_s']} | {r['incr_updated']}/{r['changed']} | {r['incr_requests']} "
                     f"({r['incr_min_requests']}) | {r['incr_seconds']} | {r['backend_peak_mb']} |")
    table = "\n".join(lines)
    out = (f"notion_sync benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} cores, "
           f"PostgreSQL 15, fake Notion on loopback without rate limit, properties only (content_depth 0)\n\n{table}\n")
    (ROOT / "benches" / "results" / "latest.md").write_text(out)
    print("\n" + out)


if __name__ == "__main__":
    main()
