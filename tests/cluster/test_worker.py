"""The background worker on a real cluster (notion_sync and pg_cron preloaded): schedules, SIGHUP,
SIGTERM, SIGKILL, crash safety mid-sync, interleaving, pg_cron. Figures are printed (pytest -s)."""
import datetime
import json
import os
import signal
import time
import urllib.request

import psycopg

from harness import connect, wait_for

CHARS = "a1b2c3d4-0000-4000-8000-0000000000c1"
READING = "a1b2c3d4-0000-4000-8000-00000000c0de"
READING_DS = "d5000000-0000-4000-8000-00000000c0de"
WORKER_PID = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'notion_sync scheduler'"


def scheduled_runs(conn, status=None):
    return conn.execute("SELECT count(*) FROM notion_sync.sync_runs WHERE trigger = 'schedule'"
                        " AND (%s::text IS NULL OR status = %s)", (status, status)).fetchone()[0]


def recent_runs(conn):
    return conn.execute("SELECT run_id, trigger, mode, status, total, created, updated, skipped, error"
                        " FROM notion_sync.sync_runs ORDER BY run_id DESC LIMIT 5").fetchall()


def worker_pid(c):
    with connect(c) as conn:
        r = conn.execute(WORKER_PID).fetchone()
        return r[0] if r else None


def test_a_schedule_runs_by_itself_and_logs_one_line(wcluster, wdb):
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '*/2 * * * * *')", (CHARS,))
    assert wait_for(lambda: scheduled_runs(wdb, "succeeded"), 20)
    assert wdb.execute("SELECT count(*) FROM notion_sync.notion_characters_sync").fetchone()[0] == 4
    st = wdb.execute("SELECT schedule, next_run > now() - interval '3 s', last_status, last_trigger, rows"
                     " FROM notion_sync.sync_status").fetchone()
    assert st == ("*/2 * * * * *", True, "succeeded", "schedule", 4)
    assert "notion_sync: synced Characters (full): total 4, created 4" in wcluster.log()
    # Later runs are incremental from the watermark and write nothing.
    assert wait_for(lambda: wdb.execute(
        "SELECT 1 FROM notion_sync.sync_runs WHERE trigger = 'schedule' AND mode = 'incremental'"
        " AND status = 'succeeded' AND created + updated = 0").fetchone(), 20)


def test_worker_enabled_off_stops_new_runs_without_restart(wcluster, wdb):
    pid = worker_pid(wcluster)
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '* * * * * *')", (CHARS,))
    assert wait_for(lambda: scheduled_runs(wdb), 10)
    wdb.execute("ALTER SYSTEM SET notion_sync.worker_enabled = off")
    wdb.execute("SELECT pg_reload_conf()")
    time.sleep(1.5)
    before = scheduled_runs(wdb)
    time.sleep(4)
    assert scheduled_runs(wdb) == before, "runs started while worker_enabled = off"
    wdb.execute("ALTER SYSTEM RESET notion_sync.worker_enabled")
    wdb.execute("SELECT pg_reload_conf()")
    assert wait_for(lambda: scheduled_runs(wdb) > before, 10)
    assert worker_pid(wcluster) == pid, "the worker restarted instead of reloading"


def test_sigkill_worker_comes_back_and_postmaster_survives(wcluster, wdb):
    pid, postmaster = worker_pid(wcluster), wcluster.postmaster_pid()
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: (p := worker_pid(wcluster)) and p != pid and p, 30)
    back = time.monotonic() - t0
    print(f"\nFIGURE worker back after SIGKILL: {back:.1f} s")
    assert new, "the worker did not come back"
    assert wcluster.postmaster_pid() == postmaster
    assert back < 10


def edit_all(fake, ids):
    for i in ids:
        fake.admin("PATCH", f"pages/{i}", {"properties": {"Rating": 2}})


def fake_pages(fake, ds):
    """Every page of a data source as the API returns it (id -> last_edited_time)."""
    out, cursor = {}, None
    while True:
        body = {"page_size": 100, **({"start_cursor": cursor} if cursor else {})}
        req = urllib.request.Request(f"{fake.url}/v1/data_sources/{ds}/query", data=json.dumps(body).encode(),
                                     method="POST", headers={"Authorization": "Bearer ntn_demo_alice",
                                                             "Notion-Version": "2025-09-03",
                                                             "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            page = json.loads(r.read())
        out.update({p["id"]: p["last_edited_time"] for p in page["results"]})
        if not page.get("has_more"):
            return out
        cursor = page["next_cursor"]


def check_consistent(conn, fake):
    """No duplicates, and the watermark is never ahead of the data: every page Notion says was
    last edited before the watermark's minute is stored with that edit (pages of the watermark's
    own minute are re-read by the next run's overlap)."""
    rows = dict(conn.execute("SELECT notion_page_id, notion_last_edited_time FROM notion_sync.notion_pages_sync"
                             " WHERE notion_database_id = %s AND NOT in_trash", (READING,)).fetchall())
    dup = conn.execute("SELECT count(*) - count(DISTINCT notion_page_id) FROM notion_sync.notion_pages_sync"
                       ).fetchone()[0]
    wm = conn.execute("SELECT watermark FROM notion_sync.databases WHERE database_id = %s", (READING,)).fetchone()[0]
    behind = 0
    if wm is not None:
        for pid, edited in fake_pages(fake, READING_DS).items():
            e = datetime.datetime.fromisoformat(edited.replace("Z", "+00:00"))
            if e < wm and rows.get(pid) != e:
                behind += 1
    return len(rows), dup, wm, behind


def test_immediate_shutdown_mid_sync_loses_nothing(wcluster, wdb, fake):
    fake.admin("POST", f"data_sources/{READING_DS}/generate", {"count": 1000, "properties": {"Rating": 1},
                                                            "created_time": "2026-01-01T00:00:00Z", "step_ms": 1000})
    total = len(fake_pages(fake, READING_DS))
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 400, "path": "/query"}]})
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Reading List', '* * * * * *')", (READING,))
    q = "SELECT count(*) FROM notion_sync.notion_pages_sync"
    assert wait_for(lambda: wdb.execute(q).fetchone()[0] >= 200, 30)
    wdb.execute("ALTER SYSTEM SET notion_sync.worker_enabled = off")  # read the state before it resumes
    wdb.close()
    wcluster.stop("immediate")
    wcluster.start()
    fake.admin("DELETE", "faults")
    with connect(wcluster) as conn:
        n, dup, wm, behind = check_consistent(conn, fake)
        print(f"\nFIGURE full sync cut by an immediate shutdown: {n} of {total} pages committed, "
              f"duplicates {dup}, watermark {wm}, pages behind the watermark {behind}")
        assert 0 < n < total and dup == 0 and wm is None and behind == 0
        conn.execute("ALTER SYSTEM RESET notion_sync.worker_enabled")
        conn.execute("SELECT pg_reload_conf()")
        assert wait_for(lambda: conn.execute(
            "SELECT 1 FROM notion_sync.sync_runs WHERE error LIKE 'interrupted%'").fetchone(), 10)
        # The next run completes: nothing lost.
        assert wait_for(lambda: conn.execute(q).fetchone()[0] == total, 30)
        # Now an incremental run in edit order, cut the same way: the watermark moves with each batch.
        conn.execute("UPDATE notion_sync.databases SET last_full_sync_at = now()")
        ids = list(fake_pages(fake, READING_DS))
        edit_all(fake, ids)
        fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 400, "path": "/query"}]})
        updated = "SELECT count(*) FROM notion_sync.notion_pages_sync WHERE properties->'Rating'->>'value' = '2'"
        assert wait_for(lambda: conn.execute(updated).fetchone()[0] >= 200, 60), recent_runs(conn)
        conn.execute("ALTER SYSTEM SET notion_sync.worker_enabled = off")
    wcluster.stop("immediate")
    wcluster.start()
    fake.admin("DELETE", "faults")
    with connect(wcluster) as conn:
        n, dup, wm, behind = check_consistent(conn, fake)
        done = conn.execute(updated).fetchone()[0]
        print(f"FIGURE incremental sync cut by an immediate shutdown: {done} of {total} edits committed, "
              f"duplicates {dup}, watermark {wm}, pages behind the watermark {behind}")
        assert n == total and dup == 0 and behind == 0 and wm is not None
        conn.execute("ALTER SYSTEM RESET notion_sync.worker_enabled")
        conn.execute("SELECT pg_reload_conf()")
        assert wait_for(lambda: conn.execute(updated).fetchone()[0] == total, 30)
        conn.execute("TRUNCATE notion_sync.databases")


def test_sigterm_stops_the_worker_mid_sync_within_a_second(wcluster, wdb, fake):
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 10000, "path": "/query"}]})
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '* * * * * *')", (CHARS,))
    assert wait_for(lambda: scheduled_runs(wdb, "running"), 10)
    time.sleep(0.5)  # inside the slow HTTP request
    pid = worker_pid(wcluster)
    t0 = time.monotonic()
    wdb.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert wait_for(lambda: worker_pid(wcluster) != pid, 10, step=0.02)
    took = time.monotonic() - t0
    print(f"\nFIGURE worker exit after SIGTERM mid-request: {took * 1000:.0f} ms")
    assert took < 5
    fake.admin("DELETE", "faults")
    assert wait_for(lambda: worker_pid(wcluster), 15), "the worker did not restart"


def test_a_huge_database_does_not_starve_a_small_one(wcluster, wdb, fake):
    fake.admin("POST", f"data_sources/{READING_DS}/generate", {"count": 3000, "created_time": "2026-01-01T00:00:00Z"})
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 200, "path": "/query"}]})
    wdb.execute("SELECT notion_sync.set_notion_token('bob', 'ntn_demo_alice')")
    wdb.execute("SELECT notion_sync.register_database('bob', %s, 'Reading List', '*/5 * * * * *')", (READING,))
    time.sleep(1.5)  # bob's run starts first
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '*/5 * * * * *')", (CHARS,))
    q = ("SELECT finished_at FROM notion_sync.sync_runs WHERE user_id = %s AND trigger = 'schedule'"
         " AND status = 'succeeded' ORDER BY run_id LIMIT 1")
    small = wait_for(lambda: wdb.execute(q, ("alice",)).fetchone(), 30)
    big = wait_for(lambda: wdb.execute(q, ("bob",)).fetchone(), 60)
    assert small and big and small[0] < big[0], "the small database waited for the huge one"
    print(f"\nFIGURE small database done {(big[0] - small[0]).total_seconds():.1f} s before the huge one")


def test_every_minute_schedule_and_pg_cron_both_run(wcluster, wdb):
    wdb.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    wdb.execute("SELECT notion_sync.set_notion_token('carol', 'ntn_demo_alice')")
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '* * * * *')", (CHARS,))
    wdb.execute("SELECT notion_sync.register_database('carol', %s, 'Reading List', 'manual')", (READING,))
    wdb.execute("SELECT cron.schedule('notion', '* * * * *', "
                "$$SELECT count(*) FROM notion_sync.sync_all_notion_databases('carol')$$)")
    try:
        t0 = time.monotonic()
        assert wait_for(lambda: scheduled_runs(wdb, "succeeded"), 75), "no scheduled run within 75 s"
        print(f"\nFIGURE '* * * * *' ran after {time.monotonic() - t0:.0f} s")
        assert wait_for(lambda: wdb.execute(
            "SELECT 1 FROM notion_sync.sync_runs WHERE user_id = 'carol' AND status = 'succeeded'").fetchone(), 75)
        assert wdb.execute("SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'").fetchone()[0] >= 1
        assert wdb.execute("SELECT count(*) FROM notion_sync.sync_runs WHERE user_id = 'carol'"
                           " AND trigger = 'schedule'").fetchone()[0] == 0, "a manual database ran by itself"
    finally:
        wdb.execute("SELECT cron.unschedule('notion')")
