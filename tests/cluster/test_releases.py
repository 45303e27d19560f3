"""Releases: pg_dump/restore keeps every row, ALTER EXTENSION UPDATE from the frozen 0.1.0 script keeps
the data and gives the schema of a fresh install, and the worker waits while the schema is older than
the library. Every test runs on its own cluster (worker on, its database is 'postgres')."""
import json
import shutil
import subprocess
import uuid

import psycopg
import pytest

from harness import PGBIN, ROOT, RUN, Cluster, as_postgres, wait_for

CHARS = "a1b2c3d4-0000-4000-8000-0000000000c1"
CLIENTS = "a1b2c3d4-0000-4000-8000-0000000000c5"
ARIA = "c0000000-0000-4000-8000-000000000001"
SECRET = "secret_fake_subscription_alice"
# Every database of the sample workspace goes to the table its name picks.
SAMPLE_DBS = {CHARS: "Characters", "a1b2c3d4-0000-4000-8000-0000000000c2": "Worlds",
              "a1b2c3d4-0000-4000-8000-0000000000c3": "Stories",
              "a1b2c3d4-0000-4000-8000-0000000000c4": "Chat Sessions",
              "a1b2c3d4-0000-4000-8000-00000000c0de": "Reading List"}
TABLES = ["tokens", "webhook_secrets", "webhook_events", "role_users", "databases", "sync_runs", "sync_errors",
          "mapped_pages", "notion_characters_sync", "notion_worlds_sync", "notion_stories_sync",
          "notion_chat_sessions_sync", "notion_pages_sync"]
CLIENTS_TABLE = """CREATE TABLE public.clients (id serial PRIMARY KEY, notion_id uuid UNIQUE, name text,
                   contact_email text, monthly_fee numeric, notion_edited timestamptz)"""
CLIENTS_MAP = {"notion_id": "@id", "name": "Name", "contact_email": "Email", "monthly_fee": "Monthly fee",
               "notion_edited": "@last_edited_time"}


def released_scripts():
    """Copies the frozen install scripts (sql/released/, which `cargo pgrx install` leaves out) into
    the server's extension directory, so CREATE EXTENSION ... VERSION '0.1.0' finds them."""
    share = subprocess.run([str(PGBIN / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True)
    ext = share.stdout.strip() + "/extension"
    for f in (ROOT / "sql" / "released").glob("notion_sync--*.sql"):
        shutil.copy(f, ext)


@pytest.fixture
def rel(fake):
    fake.reset()
    fake.admin("DELETE", "faults")
    c = Cluster("cluster-release", {"notion_sync.api_url": f"'{fake.url}/v1'", "notion_sync.requests_per_second": 0,
                                    "notion_sync.max_retries": 2})
    yield c
    c.stop()


def conn(c, dbname="postgres"):
    return psycopg.connect(c.dsn.replace("dbname=postgres", f"dbname={dbname}"), autocommit=True)


def columns(db, table):
    """The table's columns that are stored (generated ones are derived and left out)."""
    return [r[0] for r in db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attgenerated = '' ORDER BY attnum", (f"notion_sync.{table}",))]


def digest(db, table, cols=None):
    """(rows, md5 of every row in the given columns, in a stable order)."""
    cols = cols or columns(db, table)
    sel = ", ".join(f'"{c}"' for c in cols)
    n, h = db.execute(f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), ''))"
                      f" FROM (SELECT {sel} FROM notion_sync.{table}) r").fetchone()
    return n, h


def signed(fake, kind, entity):
    return fake.admin("POST", "webhook", {"type": kind, "entity_id": entity, "secret": SECRET,
                                          "id": str(uuid.uuid4())})


def fill(db, fake):
    """Something in every table: tokens, a verified subscription and an event, a role mapping, every
    sample database synced with content, a table of the user's own, a page error."""
    db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
    db.execute("SELECT notion_sync.set_notion_token('bob', 'ntn_demo_limited')")
    db.execute("INSERT INTO notion_sync.role_users VALUES ('alice_app', 'alice') ON CONFLICT DO NOTHING")
    for dbid, name in SAMPLE_DBS.items():
        db.execute("SELECT notion_sync.register_database('alice', %s, %s, 'manual')", (dbid, name))
        db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (dbid,))
    db.execute("DROP TABLE IF EXISTS public.clients")
    db.execute(CLIENTS_TABLE)
    db.execute("SELECT notion_sync.register_database('alice', %s, 'Clients', 'manual', 'UTC', 'public.clients', %s,"
               " true)", (CLIENTS, json.dumps(CLIENTS_MAP)))
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CLIENTS,))
    # A page error: one result of the Characters query is garbage.
    fake.admin("POST", "faults", {"faults": [{"kind": "malformed", "path": "/v1/data_sources/", "count": 1}]})
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CHARS,))
    fake.admin("DELETE", "faults")
    db.execute("SELECT notion_sync.handle_webhook(%s, NULL, 'alice')", (json.dumps({"verification_token": SECRET}),))
    ev = signed(fake, "page.properties_updated", ARIA)
    db.execute("SELECT notion_sync.handle_webhook(%s, %s)", (ev["body"], ev["signature"]))
    for t in TABLES:
        assert digest(db, t)[0] > 0, f"{t} is empty: the test must fill every table"


def next_sync_is_minimal(db, fake):
    """An incremental sync of every database right after: the fewest requests, nothing written."""
    for dbid in [*SAMPLE_DBS, CLIENTS]:
        fake.admin("DELETE", "requests")
        r = db.execute("SELECT status, created, updated, deleted FROM notion_sync.sync_notion_database("
                       "'alice', %s, NULL, 'incremental')", (dbid,)).fetchone()
        assert r == ("succeeded", 0, 0, 0), (dbid, r)
        paths = [q["path"] for q in fake.requests()]
        # The database retrieve and one query; a page still inside its edit minute may add a read.
        assert len([p for p in paths if "/query" in p]) == 1 and "/v1/databases/" in paths[0], (dbid, paths)


def webhook_verifies(db, fake):
    ev = signed(fake, "page.properties_updated", ARIA)
    r = db.execute("SELECT notion_sync.handle_webhook(%s, %s)", (ev["body"], ev["signature"])).fetchone()[0]
    assert r["status"] == "accepted", r


def test_dump_and_restore_keep_every_row(rel, fake, tmp_path):
    with conn(rel) as db:
        db.execute("CREATE DATABASE app")
    with conn(rel, "app") as db:
        db.execute("CREATE EXTENSION notion_sync CASCADE")
        fill(db, fake)
        before = {t: digest(db, t) for t in TABLES}
        seqs = db.execute("SELECT last_value FROM notion_sync.sync_runs_run_id_seq").fetchone()
    dump = RUN / "app.dump"
    subprocess.run(as_postgres([str(PGBIN / "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(rel.port), "-U",
                                "postgres", "-f", str(dump), "app"]), check=True, capture_output=True)
    with conn(rel) as db:
        db.execute("CREATE DATABASE restored")
    r = subprocess.run(as_postgres([str(PGBIN / "pg_restore"), "--exit-on-error", "-h", "127.0.0.1", "-p",
                                    str(rel.port), "-U", "postgres", "-d", "restored", str(dump)]),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with conn(rel, "restored") as db:
        after = {t: digest(db, t) for t in TABLES}
        assert after == before
        assert db.execute("SELECT last_value FROM notion_sync.sync_runs_run_id_seq").fetchone() == seqs
        assert db.execute("SELECT count(*) FROM public.clients").fetchone()[0] == 3
        next_sync_is_minimal(db, fake)
        webhook_verifies(db, fake)


SCHEMA_QUERY = """
SELECT 'column', format('%s.%s #%s %s %s default=%s gen=%s', c.relname, a.attname,
       row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = 'notion_sync' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'c', 'S')
UNION ALL
SELECT 'relation', format('%s kind=%s rls=%s acl=%s', c.relname, c.relkind, c.relrowsecurity, c.relacl)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'notion_sync'
UNION ALL
SELECT 'constraint', format('%s.%s %s', r.relname, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = 'notion_sync'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'notion_sync'
UNION ALL
SELECT 'policy', format('%s.%s %s %s %s %s', tablename, policyname, cmd, roles, qual, with_check)
  FROM pg_policies WHERE schemaname = 'notion_sync'
UNION ALL
SELECT 'function', format('%s acl=%s def=%s', p.oid::regprocedure, p.proacl, md5(pg_get_functiondef(p.oid)))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'notion_sync'
UNION ALL
SELECT 'view', format('%s %s', c.relname, md5(pg_get_viewdef(c.oid)))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'notion_sync' AND c.relkind = 'v'
UNION ALL
SELECT 'trigger', format('%s %s', tgrelid::regclass, tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'notion_sync' AND NOT tgisinternal
UNION ALL
SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'notion_sync'
UNION ALL
SELECT 'config_dump', format('%s %L', x.c::regclass, e.extcondition[x.i])
  FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY x(c, i) WHERE e.extname = 'notion_sync'
UNION ALL
SELECT 'comment', format('%s %s', pg_describe_object(d.classoid, d.objoid, d.objsubid), md5(d.description))
  FROM pg_description d JOIN pg_depend x ON x.classid = d.classoid AND x.objid = d.objoid AND x.deptype = 'e'
  JOIN pg_extension e ON e.oid = x.refobjid AND e.extname = 'notion_sync'
ORDER BY 1, 2"""


def schema(db):
    return [f"{k}: {v}" for k, v in db.execute(SCHEMA_QUERY)]


def copy_rows(src, dst, table, cols):
    sel = ", ".join(f'"{c}"' for c in cols)
    with src.cursor().copy(f"COPY (SELECT {sel} FROM {table}) TO STDOUT") as out, \
            dst.cursor().copy(f"COPY {table} ({sel}) FROM STDIN") as into:
        for chunk in out:
            into.write(chunk)


def test_upgrade_from_0_1_0_keeps_data_and_gives_the_fresh_schema(rel, fake):
    released_scripts()
    with conn(rel) as db:
        db.execute("CREATE DATABASE fresh")
        db.execute("CREATE DATABASE up")
    with conn(rel, "fresh") as fresh, conn(rel, "up") as up:
        fresh.execute("CREATE EXTENSION notion_sync CASCADE")
        up.execute("CREATE EXTENSION notion_sync VERSION '0.1.0' CASCADE")
        assert up.execute("SELECT extversion FROM pg_extension WHERE extname = 'notion_sync'").fetchone()[0] == "0.1.0"
        # The new library refuses to sync into the old schema, with a message that says what to do.
        up.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
        with pytest.raises(psycopg.Error) as e:
            up.execute("SELECT notion_sync.sync_notion_database('alice', %s)", (CHARS,))
        assert e.value.sqlstate == "55000" and "ALTER EXTENSION notion_sync UPDATE" in str(e.value)
        up.execute("TRUNCATE notion_sync.tokens")
        # Data as 0.1.0 users have it: synced by the engine, copied in the columns 0.1.0 has.
        fill(fresh, fake)
        old_cols = {t: columns(up, t) for t in TABLES}
        up.execute(CLIENTS_TABLE)
        for t in TABLES:
            copy_rows(fresh, up, f"notion_sync.{t}", old_cols[t])
        copy_rows(fresh, up, "public.clients", ["id", "notion_id", "name", "contact_email", "monthly_fee",
                                                "notion_edited"])
        for seq in ("sync_runs_run_id_seq", "sync_errors_id_seq"):
            v = fresh.execute(f"SELECT last_value FROM notion_sync.{seq}").fetchone()[0]
            up.execute(f"SELECT setval('notion_sync.{seq}', {v})")
        before = {t: digest(up, t, old_cols[t]) for t in TABLES}

        up.execute("ALTER EXTENSION notion_sync UPDATE")
        assert up.execute("SELECT extversion FROM pg_extension WHERE extname = 'notion_sync'").fetchone()[0] == "0.2.0"
        assert {t: digest(up, t, old_cols[t]) for t in TABLES} == before
        # Stories got the seed's description from their stored properties, as a fresh sync fills it.
        q = "SELECT notion_page_id, description FROM notion_sync.notion_stories_sync ORDER BY 1"
        assert up.execute(q).fetchall() == fresh.execute(q).fetchall()
        assert all(d for _, d in up.execute(q))
        got, want = schema(up), schema(fresh)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        assert not missing and not extra, f"fresh only: {missing}\nupgraded only: {extra}"

        # The upgraded database works: the next sync makes the minimum requests and rewrites nothing,
        # webhooks verify, search finds the stories by their description.
        next_sync_is_minimal(up, fake)
        webhook_verifies(up, fake)
        hits = up.execute("SELECT source_table, notion_page_id FROM notion_sync.search_notion_content('alice',"
                          " 'bargains')").fetchall()
        assert ("notion_stories_sync", "50000000-0000-4000-8000-000000000002") in hits


def test_worker_waits_for_alter_extension_update(rel, fake):
    released_scripts()
    with conn(rel) as db:
        db.execute("CREATE EXTENSION notion_sync VERSION '0.1.0' CASCADE")
        assert wait_for(lambda: "waiting: the extension is at version 0.1.0 but the library is 0.2.0" in rel.log(), 30)
        db.execute("ALTER EXTENSION notion_sync UPDATE")
        assert wait_for(lambda: "the extension is at 0.2.0, starting" in rel.log(), 30)
        # It then runs schedules as usual.
        db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
        db.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', '* * * * *')", (CHARS,))
        db.execute("UPDATE notion_sync.databases SET next_run_at = now()")
        assert wait_for(lambda: db.execute("SELECT count(*) FROM notion_sync.notion_characters_sync").fetchone()[0]
                        > 0, 60)


def test_digest_helper_sees_a_change(rel):
    """The digests compared above are not blind: one changed value changes them."""
    with conn(rel) as db:
        db.execute("CREATE EXTENSION notion_sync CASCADE")
        db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
        a = digest(db, "tokens")
        db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_other')")
        assert digest(db, "tokens") != a
