"""get_notion_character at 100,000 characters per user (issue 21): p50/p95 over the benchmark's mix of
exact names, first-name prefixes, substrings and one-letter typos, for several versions of the function
in the same run, on the same rows, interleaved query by query.

    python benches/lookup_mix.py [--dsn DSN] [--queries 400] [--fill] LABEL=SQLFILE[@GITREV] ...

Each SQLFILE (sql/read.sql, or the upgrade script) has its get_notion_character definition taken out,
renamed notion_sync.lookup_LABEL and created in the database; `old=sql/read.sql@main new=sql/read.sql`
compares main with the work tree. --fill writes alice's and bob's characters the way benches/bench.py's
"natural" read-path corpus does (tests/cluster/harness.py fill_read_path: same names), creating the
characters table and its indexes from sql/schema.sql first when notion_sync is not installed (a bare
PostgreSQL with pg_trgm and btree_gin is enough: the function is plain SQL). The names looked up are
harness._queries' natural ones (same seed: the first 100 are the benchmark's). Also reports how many
lookups returned something else than the first version did."""
import argparse
import pathlib
import random
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import psycopg  # noqa: E402
from harness import natural_characters, natural_lookup  # noqa: E402


def source(spec):
    path, _, rev = spec.partition("@")
    if rev:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    return (ROOT / path).read_text()


def lookup_block(text, label):
    """The DO block that defines get_notion_character, renamed lookup_<label>."""
    for m in re.finditer(r"^DO \$do\$.*?^\$do\$;", text, re.S | re.M):
        if "get_notion_character(" in m.group(0):
            block = m.group(0).replace("notion_sync.get_notion_character(", f"notion_sync.lookup_{label}(")
            return block.replace("CREATE FUNCTION notion_sync.lookup_", "CREATE OR REPLACE FUNCTION notion_sync.lookup_")
    raise SystemExit(f"no get_notion_character DO block in {label}")


def characters_table(conn):
    """notion_sync.notion_characters_sync as sql/schema.sql creates it (table and every index)."""
    schema = (ROOT / "sql" / "schema.sql").read_text()
    table = re.search(r"^CREATE TABLE notion_sync\.notion_characters_sync \(.*?^\);", schema, re.S | re.M).group(0)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    conn.execute("CREATE SCHEMA IF NOT EXISTS notion_sync")
    conn.execute(table)
    t = "notion_characters_sync"
    conn.execute(f"CREATE INDEX {t}_db_idx ON notion_sync.{t} (user_id, notion_database_id)")
    conn.execute(f"CREATE INDEX {t}_search_idx ON notion_sync.{t} USING gin (user_id, search_vector)")
    conn.execute(f"CREATE INDEX {t}_updated_idx ON notion_sync.{t} (user_id, updated_at DESC)")
    conn.execute(f"CREATE INDEX {t}_name_trgm_idx ON notion_sync.{t} USING gin (pg_catalog.lower(name) gin_trgm_ops)")
    idx = re.search(r"^CREATE INDEX notion_characters_sync_name_idx.*?;", schema, re.S | re.M).group(0)
    conn.execute(idx)


def fill(conn, n=100_000):
    """The characters of harness.fill_read_path(corpus="natural"), alice's and bob's."""
    have = conn.execute("SELECT to_regclass('notion_sync.notion_characters_sync')").fetchone()[0]
    if have is None:
        characters_table(conn)
    conn.execute("TRUNCATE notion_sync.notion_characters_sync")
    conn.execute("SELECT setseed(0.42)")
    for user in ("alice", "bob"):
        natural_characters(conn, user, n)
    conn.execute("VACUUM ANALYZE notion_sync.notion_characters_sync")


def names(conn, queries):
    """(name, kind) as harness._queries draws them for the natural corpus (same seed, same draws)."""
    rnd = random.Random(7)
    out = []
    for i in range(queries):
        k = rnd.randrange(1, 100_000)
        out.append(natural_lookup(conn, k, rnd, i)[::-1])
    return out


def pct(v, p):
    v = sorted(v)
    return v[max(0, int(len(v) * p) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default="host=127.0.0.1 port=55499 user=postgres dbname=postgres")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--fill", action="store_true")
    ap.add_argument("variants", nargs="+", help="LABEL=SQLFILE[@GITREV]")
    a = ap.parse_args()
    with psycopg.connect(a.dsn, autocommit=True) as conn:
        if a.fill:
            fill(conn)
        labels = []
        for v in a.variants:
            label, _, spec = v.partition("=")
            conn.execute(lookup_block(source(spec), label))
            labels.append(label)
        mix = names(conn, a.queries)
        t = {lb: {} for lb in labels}
        results = {lb: [] for lb in labels}
        for rnd_pass in ("warm", "timed"):
            for i, (name, kind) in enumerate(mix):
                # Each version first as often as the others.
                order = labels[i % len(labels):] + labels[:i % len(labels)]
                for lb in order:
                    calls = [(kind, 20)] + ([("exact, p_limit 1", 1)] if kind == "exact" else [])
                    for k, limit in calls:
                        t0 = time.perf_counter()
                        rows = conn.execute(f"SELECT * FROM notion_sync.lookup_{lb}('alice', %s, %s)",
                                            (name, limit)).fetchall()
                        ms = (time.perf_counter() - t0) * 1000
                        if rnd_pass == "timed":
                            t[lb].setdefault(k, []).append(ms)
                            if limit == 20:
                                t[lb].setdefault("all", []).append(ms)
                                results[lb].append([(r[1], round(r[5], 4)) for r in rows])
                if rnd_pass == "warm" and i >= 19:
                    break
        print(f"{len(mix)} lookups per version, 100,000 characters per user (alice, bob), p_limit 20 "
              f"unless said; ms")
        kinds = ["all", "exact", "exact, p_limit 1", "prefix", "substring", "typo"]
        print(f"{'version':12}" + "".join(f"{k + ' p50/p95':>26}" for k in kinds))
        for lb in labels:
            print(f"{lb:12}" + "".join(f"{statistics.median(t[lb][k]):>14.2f} /{pct(t[lb][k], 0.95):>9.2f}"
                                       for k in kinds))
        first = labels[0]
        for lb in labels[1:]:
            diff = [(mix[i], results[first][i], results[lb][i]) for i in range(len(mix))
                    if results[first][i] != results[lb][i]]
            by_kind = {}
            for (_, kind), _, _ in diff:
                by_kind[kind] = by_kind.get(kind, 0) + 1
            print(f"{lb}: {len(diff)} of {len(mix)} lookups returned other rows than {first} {by_kind}")
            for (name, kind), r0, r1 in diff[:3]:
                print(f"  {kind} {name!r}: {first} {r0[:6]}... ({len(r0)}) / {lb} {r1[:6]}... ({len(r1)})")


if __name__ == "__main__":
    main()
