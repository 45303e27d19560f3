"""Starts and stops the fake Notion and a throwaway PostgreSQL cluster with notion_sync preloaded.
Shared by the cluster tests (conftest.py) and the benchmark (benches/bench.py).
The major is PG_MAJOR (default 15), or PGBIN names the server's bin directory; CARGO_TARGET_DIR and
NOTION_SYNC_RUN_DIR (scripts/test.sh sets them) say where the fake's binary and the clusters are."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = ROOT / (os.environ.get("NOTION_SYNC_RUN_DIR") or ".run")
FAKE_BIN = ROOT / (os.environ.get("CARGO_TARGET_DIR") or "target") / "release" / "fake_notion"
SAMPLE = ROOT / "tests" / "workspace" / "sample.json"
PG_MAJOR = os.environ.get("PG_MAJOR", "15")
PGBIN = pathlib.Path(os.environ.get("PGBIN") or f"/usr/lib/postgresql/{PG_MAJOR}/bin")


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
        RUN.mkdir(parents=True, exist_ok=True)
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

    def pg_ctl(self, *args):
        return subprocess.run(as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.data), *args]),
                              capture_output=True, text=True)

    def start(self):
        r = self.pg_ctl("-l", str(self.data / "server.log"), "-w", "start")
        assert r.returncode == 0, r.stderr

    def stop(self, mode="fast"):
        self.pg_ctl("-m", mode, "-w", "stop")

    def postmaster_pid(self):
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def log(self):
        return (self.data / "server.log").read_text(errors="replace")


def wait_for(fn, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
        except psycopg.OperationalError:
            v = None
        if v:
            return v
        time.sleep(step)
    return None


def connect(c):
    return psycopg.connect(c.dsn, autocommit=True)


def fresh_state(fake, conn):
    """A freshly reset fake, empty registry, history and sync tables, and alice's token."""
    fake.reset()
    fake.admin("DELETE", "faults")
    conn.execute("TRUNCATE notion_sync.tokens, notion_sync.databases, notion_sync.sync_runs,"
                 " notion_sync.webhook_events, notion_sync.webhook_secrets, notion_sync.mapped_pages,"
                 " notion_sync.writeback, notion_sync.outbox CASCADE")
    for t in ("characters", "worlds", "stories", "chat_sessions", "pages"):
        conn.execute(f"TRUNCATE notion_sync.notion_{t}_sync")
    conn.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")


def many_users(fake, conn, users, pages, big=None):
    """A workspace of `users` users, each with a token of its own that sees only its own database of
    `pages` generated pages (user 0 gets `big` pages instead when given), the tokens stored and every
    database registered with a schedule that never comes by itself. Returns the user ids; `due(conn)`
    makes them all due at once."""
    def ids(i):
        return f"e{i:07x}-0000-4000-8000-{i:012x}", f"f{i:07x}-0000-4000-8000-{i:012x}"
    ws = {"tokens": {f"ntn_u{i}": [ids(i)[0]] for i in range(users)}, "databases": [
        {"id": ids(i)[0], "title": f"Notes {i}", "data_sources": [{"id": ids(i)[1], "name": f"Notes {i}",
         "properties": {"Name": {"type": "title"}, "Rating": {"type": "number"}}}]} for i in range(users)]}
    fake.reset(ws)
    for i in range(users):
        fake.admin("POST", f"data_sources/{ids(i)[1]}/generate",
                   {"count": big if (i == 0 and big) else pages, "properties": {"Rating": 1},
                    "created_time": "2026-01-01T00:00:00Z", "step_ms": 1000})
    for i in range(users):
        conn.execute("SELECT notion_sync.set_notion_token(%s, %s)", (f"u{i}", f"ntn_u{i}"))
        conn.execute("SELECT notion_sync.register_database(%s, %s, 'Notes', '0 0 1 1 *')", (f"u{i}", ids(i)[0]))
    return [f"u{i}" for i in range(users)]


def due(conn, users=None):
    """Makes the registered databases of `users` (all by default) due now, in one statement."""
    conn.execute("UPDATE notion_sync.databases SET next_run_at = now() - interval '1 s'"
                 " WHERE %s::text[] IS NULL OR user_id = ANY(%s)", (users, users))


def _finished(conn, users):
    rows = conn.execute(
        "SELECT user_id, status, extract(epoch FROM finished_at) FROM notion_sync.sync_runs"
        " WHERE trigger = 'schedule' AND user_id = ANY(%s)", (users,)).fetchall()
    done = {u: t for u, s, t in rows if s == "succeeded"}
    return done if len(done) == len(users) else None


def burst(conn, users, timeout=120):
    """Makes `users` due at once (run history emptied first) and waits until the worker synced every
    one of them; returns each user's seconds from then to the end of its run."""
    conn.execute("DELETE FROM notion_sync.sync_runs")
    t0 = conn.execute("SELECT extract(epoch FROM now())").fetchone()[0]
    due(conn, users)
    done = wait_for(lambda: _finished(conn, users), timeout, step=0.05)
    assert done, conn.execute("SELECT user_id, status, error FROM notion_sync.sync_runs").fetchall()
    return {u: float(t - t0) for u, t in done.items()}


WORDS = ["storm", "harbor", "compass", "lantern", "whale", "forest", "ember", "glacier", "river", "tower",
         "market", "citadel", "orchard", "beacon", "canyon", "meadow"]


SYLLABLES = ["ka", "lo", "ri", "ve", "tan", "mor", "el", "su", "din", "ba", "ro", "ne", "fi", "gu", "hal",
             "zen", "pe", "to", "mi", "sar"]


def _words(k):
    """SQL for k words of 'natural' text: 8,000 words with Zipf frequencies (P(rank r) ~ 1/r), the 50
    commonest left out as English stop words are. `s` (the syllables) and `g` (the row) are in scope."""
    return (f"(SELECT string_agg(s[1 + mod(r, 20)] || s[1 + mod(r / 20, 20)] || s[1 + r / 400], ' ') FROM "
            f"(SELECT floor(50 * exp(random() * ln(160)))::int AS r FROM generate_series(1, {k} + 0 * g)) x)")


def syllables_sql():
    """The FROM item that puts the syllables in scope as `s` (for _words)."""
    return "(SELECT ARRAY[" + ",".join(f"'{s}'" for s in SYLLABLES) + "] AS s) syl"


def natural_characters(conn, user, n):
    """n characters of the natural corpus for `user` (c-1 .. c-n): names of consonants and vowels
    from md5 of the row, a first name of 6 letters and a surname of 7, nearly no full name twice,
    trigrams as varied as real names'; descriptions of 15 words and bodies of 60."""
    letter = "translate(substr(md5(g::text), {i}, 1), '0123456789abcdef', '{to}')"
    cv = ["bcdfghjklmnprstv", "aeiouaeiouaeioua"]
    name = " || ".join(letter.format(i=i, to=cv[i % 2]) for i in range(1, 7))
    surname = " || ".join(letter.format(i=i, to=cv[i % 2]) for i in range(8, 15))
    conn.execute(f"""INSERT INTO notion_sync.notion_characters_sync
        (user_id, notion_database_id, notion_page_id, name, description, body)
        SELECT %s, 'db-c', 'c-' || g, initcap({name}) || ' ' || initcap({surname}), {_words(15)}, {_words(60)}
          FROM generate_series(1, %s) g, {syllables_sql()}""", (user, n))


def natural_lookup(conn, k, rnd, i):
    """The i-th lookup of the natural mix, from alice's character c-k: (kind, name), kinds in turn
    exact, prefix (the first name's first 4 letters), substring (4 letters inside the surname) and a
    one-letter typo."""
    name = conn.execute("SELECT name FROM notion_sync.notion_characters_sync WHERE user_id = 'alice' "
                        "AND notion_page_id = %s", (f"c-{k}",)).fetchone()[0]
    first, last = name.split()
    j = rnd.randrange(1, len(last) - 1)
    return [("exact", name.lower()), ("prefix", first[:4].lower()), ("substring", last[1:5].lower()),
            ("typo", f"{first} {last[:j]}{'x' if last[j] != 'x' else 'y'}{last[j + 1:]}")][i % 4]


def fill_read_path(conn, n=100_000, corpus="narrow", page_users=()):
    """n characters and n generic pages for 'alice' (plus as many for 'bob', and n pages for each of
    `page_users`), written directly: the read path's plans and timings at scale without syncing them
    first.

    corpus "narrow": names and texts from a 16-word vocabulary, so every query matches 6-40% of the
    rows: the worst case for ranking. "natural": titles of 4 words, descriptions of 15 and bodies of
    60 from the Zipf vocabulary above, names of two words; a query word is then in about 1-3% of the
    rows, as a middle-frequency English word is."""
    if corpus == "natural":
        conn.execute("SELECT setseed(0.42)")
        syl = syllables_sql()
        for user in ("alice", "bob", *page_users):
            if user in ("alice", "bob"):
                natural_characters(conn, user, n)
            conn.execute(f"""INSERT INTO notion_sync.notion_pages_sync
                (user_id, notion_database_id, notion_page_id, title, description, body)
                SELECT %s, 'db-p', 'p-' || g, initcap({_words(4)}), {_words(15)}, {_words(60)}
                  FROM generate_series(1, %s) g, {syl}""", (user, n))
    else:
        words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
        for user in ("alice", "bob"):
            conn.execute(f"""INSERT INTO notion_sync.notion_characters_sync
                (user_id, notion_database_id, notion_page_id, name, description, body)
                SELECT %s, 'db-c', 'c-' || g, initcap({words}[1 + mod(g, 16)]) || ' ' || substr(md5(g::text), 1, 8),
                       'A character from the ' || {words}[1 + mod(g / 16, 16)], 'Lives near the ' || {words}[1 + mod(g / 256, 16)]
                  FROM generate_series(1, %s) g""", (user, n))
            conn.execute(f"""INSERT INTO notion_sync.notion_pages_sync
                (user_id, notion_database_id, notion_page_id, title, description, body)
                SELECT %s, 'db-p', 'p-' || g, 'Page ' || g || ' ' || {words}[1 + mod(g, 16)],
                       'About the ' || {words}[1 + mod(g / 16, 16)] || ' and the ' || {words}[1 + mod(g / 7, 16)],
                       'Body ' || md5(g::text) || ' ' || {words}[1 + mod(g / 3, 16)]
                  FROM generate_series(1, %s) g""", (user, n))
    # As autovacuum leaves them: statistics, and the GIN indexes' pending lists merged.
    conn.execute("VACUUM ANALYZE notion_sync.notion_characters_sync")
    conn.execute("VACUUM ANALYZE notion_sync.notion_pages_sync")


def _queries(conn, queries, corpus, rnd):
    """(search query, lookup name, lookup kind) triples. Natural: words of a random page's title and a
    random character's name, as a user searches for what is there."""
    out = []
    for i in range(queries):
        if corpus == "natural":
            k = rnd.randrange(1, 100_000)
            title = conn.execute("SELECT title FROM notion_sync.notion_pages_sync WHERE user_id = 'alice' "
                                 "AND notion_page_id = %s", (f"p-{k}",)).fetchone()[0].lower().split()
            a, b = title[0], next((w for w in title[1:] if w != title[0]), title[-1])
            kind, name = natural_lookup(conn, k, rnd, i)
        else:
            a, b = rnd.sample(WORDS, 2)
            kind, name = [("prefix", f"{a} {i:x}"), ("prefix", a[:4]), ("typo", f"{a[:-1]}x")][i % 3]
        out.append(([f"{a} {b}", f'"{a}" -{b}', f"{a} or {b}"][i % 3], name, kind))
    return out


def read_path_timings(conn, queries=100, corpus="narrow"):
    """Search p50/p95 over `queries` web-search queries, character lookup p50/p95 (ms, default
    p_limit of 20), the lookup's p50 per kind of name, and how many of alice's pages and characters a
    search query matched (%)."""
    import random
    import statistics
    rnd = random.Random(7)
    search, lookup, kinds, matched = [], [], {}, []
    total = sum(conn.execute(f"SELECT count(*) FROM notion_sync.notion_{t}_sync WHERE user_id = 'alice'")
                .fetchone()[0] for t in ("pages", "characters"))
    for q, name, kind in _queries(conn, queries, corpus, rnd):
        t0 = time.perf_counter()
        conn.execute("SELECT * FROM notion_sync.search_notion_content('alice', %s, 20)", (q,)).fetchall()
        search.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        conn.execute("SELECT * FROM notion_sync.get_notion_character('alice', %s)", (name,)).fetchall()
        lookup.append((time.perf_counter() - t0) * 1000)
        kinds.setdefault(kind, []).append(lookup[-1])
        if kind == "exact":
            # The call an app makes for one character: p_limit 1 stops after the exact tier.
            t0 = time.perf_counter()
            conn.execute("SELECT * FROM notion_sync.get_notion_character('alice', %s, 1)", (name,)).fetchall()
            kinds.setdefault("exact, p_limit 1", []).append((time.perf_counter() - t0) * 1000)
        matched.append(sum(conn.execute(
            f"SELECT count(*) FROM notion_sync.notion_{t}_sync WHERE user_id = 'alice' AND search_vector @@ "
            "websearch_to_tsquery('english', %s)", (q,)).fetchone()[0] for t in ("pages", "characters")))
    search.sort()
    lookup.sort()
    return {"search_p50_ms": round(statistics.median(search), 1),
            "search_p95_ms": round(search[int(len(search) * 0.95) - 1], 1),
            "lookup_p50_ms": round(statistics.median(lookup), 1),
            "lookup_p95_ms": round(lookup[int(len(lookup) * 0.95) - 1], 1),
            "lookup_p50_by_kind_ms": {k: round(statistics.median(v), 1) for k, v in kinds.items()},
            "search_matched_pct": round(100 * statistics.mean(matched) / total, 1),
            "search_matched_median_pct": round(100 * statistics.median(matched) / total, 2)}
