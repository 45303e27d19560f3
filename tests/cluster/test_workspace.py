"""The whole workspace, typed (issue 19): discovery of every database the token sees, and typed views
with one column per property, re-created when Notion's schema changes, read under RLS."""
import psycopg
import pytest

from harness import wait_for

CHARS = "a1b2c3d4-0000-4000-8000-0000000000c1"
WORLDS = "a1b2c3d4-0000-4000-8000-0000000000c2"
STORIES = "a1b2c3d4-0000-4000-8000-0000000000c3"
CHARS_DS = "d5000000-0000-4000-8000-0000000000c1"


def many(n, trashed):
    dbs = []
    for i in range(n):
        dbs.append({"id": f"b0000000-0000-4000-8000-{i:012d}", "title": f"Base {i:03d}",
                    "in_trash": i in trashed, "data_sources": [{
                        "id": f"b5000000-0000-4000-8000-{i:012d}", "name": f"Base {i:03d}",
                        "properties": {"Name": {"type": "title"}, "N": {"type": "number"}}, "pages": []}]})
    return {"tokens": {"ntn_demo_alice": ["*"]}, "databases": dbs}


def test_discovery_lists_every_data_source_over_pages_of_search(db, fake):
    fake.reset(many(130, trashed={3, 77}))
    db.execute("SELECT notion_sync.register_database('alice', 'b0000000-0000-4000-8000-000000000005', 'Base 005')")
    fake.admin("DELETE", "requests")
    rows = db.execute("SELECT database_id, data_source_id, title, property_count, in_trash, registered, url, parent"
                      " FROM notion_sync.discover_databases('alice')").fetchall()
    searches = [r for r in fake.requests() if r["path"] == "/v1/search"]
    assert len(rows) == 130 and len(searches) == 2, (len(rows), len(searches))
    assert {r[0] for r in rows if r[4]} == {"b0000000-0000-4000-8000-000000000003",
                                            "b0000000-0000-4000-8000-000000000077"}
    assert [r[0] for r in rows if r[5]] == ["b0000000-0000-4000-8000-000000000005"]
    first = next(r for r in rows if r[2] == "Base 000")
    assert first[1] == "b5000000-0000-4000-8000-000000000000" and first[3] == 2 and first[6].startswith("https://")
    # Registering all of them, trashed ones left out, is one statement (README).
    n = db.execute("SELECT count(notion_sync.register_database('alice', d.database_id, d.title))"
                   " FROM (SELECT DISTINCT ON (database_id) database_id, title"
                   " FROM notion_sync.discover_databases('alice') WHERE NOT in_trash AND NOT registered) d").fetchone()[0]
    assert n == 127
    assert db.execute("SELECT count(*) FROM notion_sync.databases WHERE user_id = 'alice'").fetchone()[0] == 128


def test_discovery_under_2022_06_28_lists_databases(db, fake):
    fake.reset(many(3, trashed={1}))
    db.execute("SET notion_sync.notion_version = '2022-06-28'")
    try:
        rows = db.execute("SELECT database_id, data_source_id, in_trash FROM"
                          " notion_sync.discover_databases('alice') ORDER BY database_id").fetchall()
    finally:
        db.execute("RESET notion_sync.notion_version")
    assert rows == [(f"b0000000-0000-4000-8000-{i:012d}", None, i == 1) for i in range(3)]


def columns(db, view):
    return db.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
                      " AND table_name = %s ORDER BY ordinal_position", (view,)).fetchall()


@pytest.fixture
def typed(db, fake):
    for dbid, name in ((CHARS, "Characters"), (WORLDS, "Worlds"), (STORIES, "Stories")):
        db.execute("SELECT notion_sync.register_database('alice', %s, %s, 'manual')", (dbid, name))
        db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (dbid,))
    yield db
    for v in ("characters_v", "worlds_v", "stories_v"):
        db.execute(f"DROP VIEW IF EXISTS public.{v}")
    db.execute("TRUNCATE notion_sync.typed_views")


def test_typed_views_have_one_typed_column_per_property(typed, fake):
    db = typed
    assert db.execute("SELECT notion_sync.create_typed_view('alice', %s, 'characters_v')",
                      (CHARS,)).fetchone()[0] == '"public"."characters_v"'
    cols = dict(columns(db, "characters_v"))
    assert cols == {"notion_page_id": "text", "url": "text", "in_trash": "boolean",
                    "notion_created_time": "timestamp with time zone",
                    "notion_last_edited_time": "timestamp with time zone",
                    "Name": "text", "Active": "boolean", "Age": "numeric", "Character ID": "text",
                    "Created": "timestamp with time zone", "Creator": "ARRAY", "Description": "text",
                    "Edited": "timestamp with time zone", "Portrait": "ARRAY", "Role": "text", "Traits": "ARRAY",
                    "World": "ARRAY"}
    rows = db.execute('SELECT "Name", "Role", "Age", "Traits", "Active" FROM characters_v ORDER BY "Age"').fetchall()
    stored = db.execute("SELECT name, properties->'Role'->>'value', (properties->'Age'->>'value')::numeric"
                        " FROM notion_sync.notion_characters_sync ORDER BY 3").fetchall()
    assert [r[:3] for r in rows] == stored and len(rows) == 4
    assert all(isinstance(r[3], list) for r in rows)
    db.execute("SELECT notion_sync.create_typed_view('alice', %s, 'worlds_v')", (WORLDS,))
    w = dict(columns(db, "worlds_v"))
    assert w["Founded"] == w["Founded_end"] == "timestamp with time zone"
    assert (w["Climate"], w["Population"], w["Map"], w["Characters"]) == ("text", "numeric", "text", "ARRAY")
    assert w["Character count"] == "numeric", "a rollup takes the type of its stored results"
    assert w["Verified"] == w["Capital"] == "jsonb"
    db.execute("SELECT notion_sync.create_typed_view('alice', %s, 'stories_v')", (STORIES,))
    s = dict(columns(db, "stories_v"))
    assert (s["Author"], s["Last editor"], s["Stage"]) == ("text", "text", "text")
    assert db.execute('SELECT count(*) FROM stories_v WHERE "Author" IS NOT NULL').fetchone()[0] == 2


def test_a_typed_view_follows_schema_changes(typed, fake):
    db = typed
    db.execute("SELECT notion_sync.create_typed_view('alice', %s, 'characters_v')", (CHARS,))
    fake.admin("POST", f"data_sources/{CHARS_DS}/schema",
               {"rename": {"Age": "Years"}, "remove": ["Role"], "add": {"Mood": {"type": "select"}}})
    r = db.execute("SELECT status FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')",
                   (CHARS,)).fetchone()
    cols = dict(columns(db, "characters_v"))
    assert "Years" in cols and "Age" not in cols and "Role" not in cols and cols["Mood"] == "text", (r, cols)
    want = db.execute("SELECT count(*) FROM notion_sync.notion_characters_sync"
                      " WHERE jsonb_typeof(properties->'Years'->'value') = 'number'").fetchone()[0]
    assert want >= 3 and db.execute('SELECT count("Years") FROM characters_v').fetchone()[0] == want


def test_a_typed_view_is_read_under_rls(typed, fake):
    db = typed
    db.execute("SELECT notion_sync.create_typed_view('alice', %s, 'characters_v')", (CHARS,))
    for role, user in (("alice_app", "alice"), ("bob_app", "bob")):
        db.execute(f"DROP ROLE IF EXISTS {role}")
        db.execute(f"CREATE ROLE {role}")
        db.execute("INSERT INTO notion_sync.role_users VALUES (%s, %s) ON CONFLICT DO NOTHING", (role, user))
    try:
        db.execute("SET ROLE alice_app")
        assert db.execute("SELECT count(*) FROM public.characters_v").fetchone()[0] == 4
        db.execute("RESET ROLE")
        db.execute("SET ROLE bob_app")
        assert db.execute("SELECT count(*) FROM public.characters_v").fetchone()[0] == 0
        with pytest.raises(psycopg.Error) as e:
            db.execute("SELECT notion_sync.create_typed_view('bob', %s, 'x_v')", (CHARS,))
        assert e.value.sqlstate == "42501"
    finally:
        db.execute("RESET ROLE")
        db.execute("DELETE FROM notion_sync.role_users WHERE role_name IN ('alice_app', 'bob_app')")
        db.execute("DROP ROLE alice_app")
        db.execute("DROP ROLE bob_app")


def test_a_typed_view_never_replaces_a_table_of_yours(typed):
    typed.execute("CREATE TABLE public.characters_v (x int)")
    try:
        with pytest.raises(psycopg.Error) as e:
            typed.execute("SELECT notion_sync.create_typed_view('alice', %s, 'characters_v')", (CHARS,))
        assert e.value.sqlstate == "42P07"
    finally:
        typed.execute("DROP TABLE public.characters_v")


PDB = "a8000000-0000-4000-8000-0000000000a1"
PDS = "a8500000-0000-4000-8000-0000000000a1"


def test_progress_of_a_long_sync_is_seen_from_another_session(db, fake, cluster):
    import threading
    fake.reset({"tokens": {"ntn_demo_alice": ["*"]}, "databases": [{"id": PDB, "title": "Long", "data_sources": [{
        "id": PDS, "name": "Long", "properties": {"Name": {"type": "title"}}, "pages": []}]}]})
    fake.admin("POST", f"data_sources/{PDS}/generate", {"count": 60, "children": [{"type": "paragraph", "text": "x"}]})
    db.execute("SELECT notion_sync.register_database('alice', %s, 'Long', 'manual')", (PDB,))
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (PDB,))
    fake.admin("POST", "config", {"latency_ms": 40})
    notices = []
    result = {}

    def run():
        with psycopg.connect(cluster["dsn"], autocommit=True) as c:
            c.add_notice_handler(lambda d: notices.append(d.message_primary))
            c.execute("SET notion_sync.progress_notice_pages = 20")
            c.execute("SET notion_sync.content_depth = 1")
            c.execute("UPDATE notion_sync.notion_pages_sync SET content_hash = NULL")  # all read again
            result["r"] = c.execute("SELECT status, total FROM notion_sync.sync_notion_database('alice', %s,"
                                    " NULL, 'full')", (PDB,)).fetchone()

    t = threading.Thread(target=run)
    t.start()
    q = ("SELECT user_id, database_id, phase, pages_read, requests, expected_pages, remaining_s"
         " FROM notion_sync.sync_progress")
    seen = wait_for(lambda: [r for r in db.execute(q).fetchall() if r[3] > 0], 30)
    t.join(60)
    fake.admin("POST", "config", {"latency_ms": 0})
    assert seen, "a row while the sync ran"
    user, dbid, phase, read, requests, expected, remaining = seen[0]
    assert (user, dbid, phase, expected) == ("alice", PDB, "reading", 60) and requests > 0
    assert remaining is not None and remaining >= 0
    assert result["r"] == ("succeeded", 60)
    assert db.execute(q).fetchall() == [], "cleared when the run ended"
    assert len([n for n in notices if "pages read" in n]) == 3, notices
