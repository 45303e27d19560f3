"""Fixtures for the real-cluster suite (the extension must be installed: `make test` does it)."""
import psycopg
import pytest

from harness import Cluster, Fake, connect, fresh_state, wait_for


@pytest.fixture(scope="session")
def fake():
    f = Fake(log_name="fake-cluster.log")
    yield f
    f.stop()


@pytest.fixture(scope="session")
def cluster(fake):
    c = Cluster("cluster-test", {"notion_sync.api_url": f"'{fake.url}/v1'",
                                 "notion_sync.requests_per_second": 0, "notion_sync.max_retries": 2,
                                 # The scheduler has its own cluster (test_worker.py).
                                 "notion_sync.worker_enabled": "off"})
    with psycopg.connect(c.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS notion_sync CASCADE")
    yield {"dsn": c.dsn, "port": c.port, "data": c.data}
    c.stop()


@pytest.fixture
def db(cluster, fake):
    """A superuser connection on a freshly reset fake and empty sync tables."""
    conn = psycopg.connect(cluster["dsn"], autocommit=True)
    fresh_state(fake, conn)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def wcluster(fake):
    c = Cluster("cluster-worker", {
        "shared_preload_libraries": "'notion_sync,pg_cron'", "cron.database_name": "'postgres'",
        "cron.use_background_workers": "on", "max_worker_processes": 16,
        "notion_sync.api_url": f"'{fake.url}/v1'", "notion_sync.requests_per_second": 0,
        "notion_sync.max_retries": 2, "notion_sync.content_depth": 0})
    with psycopg.connect(c.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION notion_sync CASCADE")
        # The launcher probes a database without the extension every notion_sync.launcher_naptime
        # (10 s): the scheduler may have found none at startup and come back only that much later.
        assert wait_for(lambda: conn.execute("SELECT 1 FROM notion_sync.schedulers WHERE database = 'postgres'"
                                             " AND state = 'running'").fetchone(), 30)
    yield c
    c.stop()


@pytest.fixture
def wdb(wcluster, fake):
    conn = connect(wcluster)
    conn.execute("ALTER SYSTEM RESET notion_sync.worker_enabled")
    conn.execute("SELECT pg_reload_conf()")
    quiesce(conn)
    fresh_state(fake, conn)
    yield conn
    conn.close()
    with connect(wcluster) as conn:  # a new one: the test may have restarted the cluster
        conn.execute("TRUNCATE notion_sync.databases")  # no schedules left for the next test
        quiesce(conn)


def quiesce(conn):
    """Waits for runs the worker still has going (they would write into the next test)."""
    wait_for(lambda: conn.execute("SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory'"
                                  " AND classid = 28275 AND objsubid = 2").fetchone()[0], 30)
