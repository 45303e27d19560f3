"""Starts and stops the fake Notion and a throwaway PostgreSQL 15 cluster with notion_sync preloaded.
Shared by the cluster tests (conftest.py) and the benchmark (benches/bench.py)."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

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
    def __init__(self, workspace=SAMPLE, log_name="fake.log"):
        if not FAKE_BIN.exists():
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "fake_notion"], cwd=ROOT, check=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        RUN.mkdir(exist_ok=True)
        log = open(RUN / log_name, "w")
        self.proc = subprocess.Popen([str(FAKE_BIN), "--port", str(self.port), "--workspace", str(workspace)],
                                     stdout=log, stderr=log)
        for _ in range(200):
            try:
                self.admin("GET", "health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fake Notion did not start")

    def admin(self, method, path, body=None):
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(f"{self.url}/admin/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def reset(self, workspace=None):
        self.admin("POST", "reset", workspace if workspace is not None else json.loads(SAMPLE.read_text()))

    def requests(self):
        with urllib.request.urlopen(f"{self.url}/admin/requests", timeout=30) as r:
            return json.loads(r.read())["requests"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class Cluster:
    def __init__(self, name, settings):
        self.data = RUN / name
        if self.data.exists():
            subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate"]),
                           capture_output=True)
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(RUN, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
        subprocess.run(as_postgres([str(PGBIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                    "--locale=C.UTF-8"]), check=True, capture_output=True)
        self.port = free_port()
        conf = {"port": self.port, "listen_addresses": "'127.0.0.1'", "unix_socket_directories": f"'{self.data}'",
                "shared_preload_libraries": "'notion_sync'", "notion_sync.database": "'postgres'", **settings}
        with open(self.data / "postgresql.conf", "a") as c:
            c.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
        subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"),
                                    "-w", "start"]), check=True, capture_output=True)
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def stop(self):
        subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
                       capture_output=True)
