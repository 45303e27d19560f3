"""Fixtures for the real-cluster suite: the fake Notion and a throwaway PostgreSQL 15 cluster with
shared_preload_libraries = 'notion_sync' (the extension must be installed: `make test` does it)."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import psycopg
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = ROOT / ".run"
FAKE_BIN = ROOT / "target" / "release" / "fake_notion"
SAMPLE = ROOT / "tests" / "workspace" / "sample.json"
PGBIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd):
    """Postgres refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Fake:
    def __init__(self, port):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def admin(self, method, path, body=None):
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(f"{self.url}/admin/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def reset(self):
        self.admin("POST", "reset", json.loads(SAMPLE.read_text()))

    def requests(self):
        with urllib.request.urlopen(f"{self.url}/admin/requests", timeout=30) as r:
            return json.loads(r.read())["requests"]


@pytest.fixture(scope="session")
def fake():
    if not FAKE_BIN.exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "fake_notion"], cwd=ROOT, check=True)
    port = free_port()
    RUN.mkdir(exist_ok=True)
    log = open(RUN / "fake-cluster.log", "w")
    proc = subprocess.Popen([str(FAKE_BIN), "--port", str(port), "--workspace", str(SAMPLE)], stdout=log, stderr=log)
    f = Fake(port)
    for _ in range(100):
        try:
            f.admin("GET", "health")
            break
        except OSError:
            time.sleep(0.05)
    yield f
    proc.terminate()
    proc.wait(5)


@pytest.fixture(scope="session")
def cluster(fake):
    data = RUN / "cluster-test"
    if data.exists():
        subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"]),
                       capture_output=True)
        shutil.rmtree(data)
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(RUN, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(as_postgres([str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                "--locale=C.UTF-8"]), check=True, capture_output=True)
    port = free_port()
    with open(data / "postgresql.conf", "a") as c:
        c.write(f"""
port = {port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{data}'
shared_preload_libraries = 'notion_sync'
notion_sync.database = 'postgres'
notion_sync.api_url = '{fake.url}/v1'
notion_sync.requests_per_second = 0
notion_sync.max_retries = 2
logging_collector = off
""")
    subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
                                "-w", "start"]), check=True, capture_output=True)
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS notion_sync CASCADE")
    yield {"dsn": dsn, "port": port, "data": data}
    subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True)


@pytest.fixture
def db(cluster, fake):
    """A superuser connection on a freshly reset fake and empty sync tables."""
    fake.reset()
    fake.admin("DELETE", "faults")
    conn = psycopg.connect(cluster["dsn"], autocommit=True)
    conn.execute("""TRUNCATE notion_sync.tokens, notion_sync.databases, notion_sync.sync_runs CASCADE""")
    for t in ("characters", "worlds", "stories", "chat_sessions", "pages"):
        conn.execute(f"TRUNCATE notion_sync.notion_{t}_sync")
    conn.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
    yield conn
    conn.close()
