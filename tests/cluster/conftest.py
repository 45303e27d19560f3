"""Fixtures for the real-cluster suite (the extension must be installed: `make test` does it)."""
import psycopg
import pytest

from harness import Cluster, Fake


@pytest.fixture(scope="session")
def fake():
    f = Fake(log_name="fake-cluster.log")
    yield f
    f.stop()


@pytest.fixture(scope="session")
def cluster(fake):
    c = Cluster("cluster-test", {"notion_sync.api_url": f"'{fake.url}/v1'",
                                 "notion_sync.requests_per_second": 0, "notion_sync.max_retries": 2})
    with psycopg.connect(c.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS notion_sync CASCADE")
    yield {"dsn": c.dsn, "port": c.port, "data": c.data}
    c.stop()


@pytest.fixture
def db(cluster, fake):
    """A superuser connection on a freshly reset fake and empty sync tables."""
    fake.reset()
    fake.admin("DELETE", "faults")
    conn = psycopg.connect(cluster["dsn"], autocommit=True)
    conn.execute("TRUNCATE notion_sync.tokens, notion_sync.databases, notion_sync.sync_runs CASCADE")
    for t in ("characters", "worlds", "stories", "chat_sessions", "pages"):
        conn.execute(f"TRUNCATE notion_sync.notion_{t}_sync")
    conn.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
    yield conn
    conn.close()
