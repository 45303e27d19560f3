"""Reliability under the fake's faults (issue: rate limits, retries, timeouts, bad input). Each test
prints its figure (pytest -s, lines starting with FIGURE)."""
import datetime
import os
import time

import pytest

DB = "f0000000-0000-4000-8000-0000000000f1"
DS = "f5000000-0000-4000-8000-0000000000f1"
WORKSPACE = {"tokens": {"ntn_demo_alice": ["*"]}, "databases": [{"id": DB, "title": "Faults", "data_sources": [{
    "id": DS, "name": "Faults", "properties": {"Name": {"type": "title"}, "Rating": {"type": "number"}}}]}]}


@pytest.fixture
def faulty(db, fake):
    fake.reset(WORKSPACE)
    fake.admin("DELETE", "faults")
    yield db
    fake.admin("DELETE", "faults")
    fake.admin("POST", "config", {"rate_limit_rps": 0})


def generate(fake, n, children=None):
    body = {"count": n, "properties": {"Rating": 3}, "created_time": "2026-01-01T00:00:00Z"}
    if children:
        body["children"] = children
    fake.admin("POST", f"data_sources/{DS}/generate", body)


def sync(conn, **settings):
    for k, v in settings.items():
        conn.execute(f"SET notion_sync.{k} = {v}")
    t0 = time.monotonic()
    r = conn.execute("SELECT status, total, created, errors FROM notion_sync.sync_notion_database("
                     "'alice', %s, 'Faults', 'full')", (DB,)).fetchone()
    for k in settings:
        conn.execute(f"RESET notion_sync.{k}")
    return r, time.monotonic() - t0


def log(fake):
    return [(datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r["status"])
            for r in fake.requests() if r["path"].startswith("/v1/")]


def rows(conn):
    return conn.execute("SELECT count(*) FROM notion_sync.notion_pages_sync").fetchone()[0]


def test_429_storm_honours_retry_after(faulty, fake):
    generate(fake, 300)
    fake.admin("DELETE", "requests")
    fake.admin("POST", "faults", {"faults": [{"kind": "status", "status": 429, "retry_after": 1, "count": 20}]})
    (status, total, created, _), secs = sync(faulty, max_retries=25, content_depth=0)
    entries = log(fake)
    early = sum(1 for (t, s), (t2, _) in zip(entries, entries[1:]) if s == 429 and (t2 - t).total_seconds() < 0.999)
    print(f"\nFIGURE 429 storm (20 x Retry-After: 1): requests sent before Retry-After elapsed: {early}, "
          f"pages synced {created}/300 in {secs:.1f} s")
    assert (status, created, early) == ("succeeded", 300, 0)
    assert sum(1 for _, s in entries if s == 429) == 20


def test_flaky_server_loses_nothing(faulty, fake):
    generate(fake, 500, children=[{"type": "paragraph", "text": "Body"}])
    fake.admin("DELETE", "requests")
    fake.admin("POST", "faults", {"seed": 7, "faults": [{"kind": "status", "status": 503, "probability": 0.05},
                                                         {"kind": "drop", "probability": 0.05}]})
    (status, _, created, _), secs = sync(faulty, max_retries=6, content_depth=1)
    entries = log(fake)
    bad = sum(1 for _, s in entries if s != 200)
    retries = faulty.execute("SELECT retries FROM notion_sync.sync_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    print(f"\nFIGURE flaky server (10% 503 or dropped connection) on 500 pages with content: {status}, "
          f"rows {rows(faulty)}/500, {len(entries)} requests, {bad} failed answers logged, {retries} retries, {secs:.1f} s")
    assert (status, created, rows(faulty)) == ("succeeded", 500, 500)
    assert retries > 0


def test_hung_server_fails_the_run_within_timeout_times_attempts(faulty, fake):
    generate(fake, 50)
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 5000}]})
    (status, _, created, errors), secs = sync(faulty, http_timeout_ms=500, max_retries=2, content_depth=0)
    bound = 0.5 * 3 + 0.75 + 1.5  # three attempts, two backoffs (capped at 1.5x their base)
    print(f"\nFIGURE hung server, 500 ms timeout, 2 retries: run {status} after {secs:.2f} s "
          f"(bound {bound:.2f} s), rows {rows(faulty)}")
    assert status == "failed" and rows(faulty) == 0 and "timed out" in str(errors).lower()
    assert secs < bound + 1


def test_garbage_pages_are_recorded_and_skipped(faulty, fake):
    generate(fake, 1000)
    # 5 of the 10 query pages have 5 results each with garbage instead of properties.
    fake.admin("POST", "faults", {"faults": [{"kind": "malformed", "results": 5, "count": 5, "path": "/query"}]})
    (status, total, created, errors), _ = sync(faulty, content_depth=0)
    logged = faulty.execute("SELECT count(*) FROM notion_sync.sync_errors WHERE notion_page_id IS NOT NULL"
                            ).fetchone()[0]
    print(f"\nFIGURE garbage pages 25 of 1,000: {created} synced, {logged} in sync_errors, status {status}")
    assert (status, total, created, logged, len(errors)) == ("partial", 1000, 975, 25, 25)


def test_budget_at_the_servers_rate_gets_no_429(faulty, fake):
    n = int(os.environ.get("FAULT_RATE_REQUESTS", "90"))
    generate(fake, n - 2, children=[{"type": "paragraph", "text": "Body"}])
    fake.admin("POST", "config", {"rate_limit_rps": 3, "rate_limit_burst": 3})
    fake.admin("DELETE", "requests")
    (status, _, created, _), secs = sync(faulty, requests_per_second=3, content_depth=1)
    entries = log(fake)
    limited = sum(1 for _, s in entries if s == 429)
    span = (entries[-1][0] - entries[0][0]).total_seconds()
    rate = (len(entries) - 1) / span
    print(f"\nFIGURE fake at 3 rps, budget 3: {len(entries)} requests, 429s received {limited}, "
          f"sustained {rate:.2f} rps over {span:.0f} s")
    assert status == "succeeded" and limited == 0 and rate >= 2.7
