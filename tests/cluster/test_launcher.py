"""The launcher (src/launcher.rs) on a real cluster: one scheduler per database that has the extension,
each syncing its own registrations; new databases within the naptime, DROP EXTENSION, DROP DATABASE,
pg_terminate_backend, and notion_sync.database restricting it to one database. The tests run in
file order on one cluster (the last one restarts it)."""
import time

import psycopg
import pytest

from harness import Cluster, fresh_state, wait_for

CHARS = "a1b2c3d4-0000-4000-8000-0000000000c1"
WORLDS = "a1b2c3d4-0000-4000-8000-0000000000c2"
SCHEDULERS = ("SELECT datname, pid FROM pg_stat_activity WHERE backend_type = 'notion_sync scheduler'"
              " ORDER BY datname")


@pytest.fixture(scope="module")
def lc(fake):
    c = Cluster("cluster-launcher", {
        "max_worker_processes": 16, "notion_sync.database": "''", "notion_sync.launcher_naptime": 1,
        "notion_sync.api_url": f"'{fake.url}/v1'", "notion_sync.requests_per_second": 0,
        "notion_sync.max_retries": 2, "notion_sync.content_depth": 0})
    with on(c) as conn:
        for db in ("one", "two"):
            conn.execute(f"CREATE DATABASE {db}")
    for db in ("one", "two"):
        with on(c, db) as conn:
            conn.execute("CREATE EXTENSION notion_sync CASCADE")
    yield c
    c.stop()


def on(c, dbname="postgres"):
    return psycopg.connect(c.dsn.replace("dbname=postgres", f"dbname={dbname}"), autocommit=True)


def schedulers(c):
    """{database: pid} of the running scheduler processes."""
    with on(c) as conn:
        return dict(conn.execute(SCHEDULERS).fetchall())


def view(c, dbname="one"):
    """{database: (pid, state)} from notion_sync.schedulers (read in a database with the extension)."""
    with on(c, dbname) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT database, pid, state FROM notion_sync.schedulers")}


def test_each_database_with_the_extension_gets_its_own_scheduler(lc):
    assert wait_for(lambda: set(schedulers(lc)) == {"one", "two"}, 15), schedulers(lc)
    procs = schedulers(lc)
    assert wait_for(lambda: view(lc) == {"one": (procs["one"], "running"), "two": (procs["two"], "running"),
                                         "postgres": (None, "no extension")}, 10), view(lc)
    with on(lc) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'notion_sync launcher'"
                            " AND datname IS NULL").fetchone()[0] == 1
    # The view's other columns: since, and the counters the scheduler reports.
    with on(lc, "two") as conn:
        row = conn.execute("SELECT since <= now(), running_syncs, requests_in_flight, requests_waiting"
                           " FROM notion_sync.schedulers WHERE database = 'two'").fetchone()
        assert row == (True, 0, 0, 0)
    # A database without the extension is probed once per naptime, by a process that exits at once.
    time.sleep(1.5)
    assert "postgres" not in schedulers(lc)


def test_each_scheduler_syncs_its_own_registrations(lc, fake):
    with on(lc, "one") as one, on(lc, "two") as two:
        fresh_state(fake, one)
        two.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
        one.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '* * * * * *')", (CHARS,))
        two.execute("SELECT notion_sync.register_database('alice', %s, 'Worlds', '* * * * * *')", (WORLDS,))

        def synced(conn):
            return conn.execute("SELECT count(*) FROM notion_sync.sync_runs WHERE trigger = 'schedule'"
                                " AND status = 'succeeded'").fetchone()[0]
        assert wait_for(lambda: synced(one) and synced(two), 20)
        count = "SELECT (SELECT count(*) FROM notion_sync.notion_characters_sync), (SELECT count(*) FROM notion_sync.notion_worlds_sync)"
        c1, w1 = one.execute(count).fetchone()
        c2, w2 = two.execute(count).fetchone()
        assert c1 > 0 and w1 == 0 and c2 == 0 and w2 > 0, (c1, w1, c2, w2)
        for conn in (one, two):
            conn.execute("SELECT notion_sync.unregister_database('alice', database_id) FROM notion_sync.databases")


def test_a_new_database_gets_a_scheduler_within_the_naptime(lc):
    with on(lc) as conn:
        conn.execute("CREATE DATABASE three")
    with on(lc, "three") as conn:
        conn.execute("CREATE EXTENSION notion_sync CASCADE")
    t0 = time.monotonic()
    assert wait_for(lambda: "three" in schedulers(lc), 10)
    print(f"\nFIGURE scheduler of a new database after CREATE EXTENSION: {time.monotonic() - t0:.1f} s")
    assert time.monotonic() - t0 < 5
    assert wait_for(lambda: view(lc).get("three", (0, ""))[1] == "running", 5)


def test_drop_extension_stops_the_scheduler_and_a_dropped_database_is_forgotten(lc):
    pid = schedulers(lc)["three"]
    with on(lc, "three") as conn:
        conn.execute("DROP EXTENSION notion_sync")
    assert wait_for(lambda: "three" not in schedulers(lc), 10)
    assert view(lc)["three"][1] in ("stopped", "no extension")
    assert f"the extension was dropped from database \"three\", stopping" in lc.log()
    # Probed again every second, it does not stay.
    time.sleep(2.5)
    assert "three" not in schedulers(lc) and view(lc)["three"] == (None, "no extension")
    with on(lc) as conn:
        # A probe may be connected for a moment; DROP DATABASE waits up to 5 s for it.
        conn.execute("DROP DATABASE three")
    assert wait_for(lambda: "three" not in view(lc), 5), view(lc)
    assert pid not in schedulers(lc).values()


def test_a_terminated_scheduler_is_started_again(lc):
    old = schedulers(lc)["one"]
    with on(lc) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (old,)).fetchone()[0]
    assert wait_for(lambda: view(lc, "two").get("one", (0, ""))[1] == "restarting", 5), view(lc, "two")
    t0 = time.monotonic()
    new = wait_for(lambda: (p := schedulers(lc).get("one")) and p != old and p, 15)
    assert new, "the scheduler did not come back"
    print(f"\nFIGURE scheduler back after pg_terminate_backend: {time.monotonic() - t0:.1f} s after 'restarting'")
    assert wait_for(lambda: view(lc).get("one") == (new, "running"), 5)
    assert schedulers(lc)["two"], "the other database's scheduler was touched"


def test_notion_sync_database_restricts_the_launcher_to_one_database(lc):
    with on(lc) as conn:
        conn.execute("ALTER SYSTEM SET notion_sync.database = 'two'")
    lc.stop()
    lc.start()
    assert wait_for(lambda: set(schedulers(lc)) == {"two"}, 15), schedulers(lc)
    time.sleep(1.5)
    assert set(schedulers(lc)) == {"two"}
    assert set(view(lc, "two")) == {"two"}
    assert 'notion_sync launcher: started (database "two" only)' in lc.log()
    with on(lc) as conn:
        conn.execute("ALTER SYSTEM RESET notion_sync.database")


def test_no_worker_slot_is_shown_and_warned_once(fake):
    # The launcher and the logical replication launcher take both slots: none is left for a scheduler.
    c = Cluster("cluster-launcher-full", {"max_worker_processes": 2, "notion_sync.database": "''",
                                          "notion_sync.launcher_naptime": 1,
                                          "notion_sync.api_url": f"'{fake.url}/v1'"})
    try:
        with on(c) as conn:
            conn.execute("CREATE EXTENSION notion_sync CASCADE")
            assert wait_for(lambda: conn.execute("SELECT pid, state FROM notion_sync.schedulers"
                                                 " WHERE database = 'postgres'").fetchone() == (None, "no worker slot"), 10)
        time.sleep(2.5)
        assert c.log().count("raise max_worker_processes") == 1, c.log()
        assert schedulers(c) == {}
    finally:
        c.stop()
