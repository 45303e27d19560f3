"""Write-back (issue 17): changes made in Postgres reach Notion through the outbox and the worker.
Each test proves one point of the issue against the fake: update, create (id written back), trash,
read-only refused, no echo, conflicts under each policy, merged edits, debounce, a create after a
commit-then-503, a 429 storm, a crash with a full outbox, RLS, a mass trash halted, and the
synchronous functions."""
import json
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from harness import connect, wait_for
from test_mapped import ACME, BLUE_FERN, CLIENTS, CLIENTS_DS, CLIENTS_MAP, CLIENTS_TABLE, register

CHARS = "a1b2c3d4-0000-4000-8000-0000000000c1"
CHARS_DS = "d5000000-0000-4000-8000-0000000000c1"
ARIA = "c0000000-0000-4000-8000-000000000001"
ORIN = "c0000000-0000-4000-8000-000000000002"
PIP = "c0000000-0000-4000-8000-000000000004"


def notion(fake, method, path, body=None):
    """The fake's public API as alice's integration sees it."""
    req = urllib.request.Request(fake.url + "/v1" + path, method=method,
                                 headers={"Authorization": "Bearer ntn_demo_alice", "Notion-Version": "2025-09-03",
                                          "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def prop(fake, page, name):
    p = notion(fake, "GET", f"/pages/{page}")["properties"][name]
    v = p[p["type"]]
    if p["type"] in ("title", "rich_text"):
        return "".join(t["plain_text"] for t in v)
    if p["type"] in ("select", "status"):
        return v and v["name"]
    return v


def writes(fake, method="PATCH", path="/v1/pages"):
    return [r for r in fake.requests() if r["method"] == method and r["path"].startswith(path) and r["status"] == 200]


def settled(db, n=1, timeout=30):
    """Waits until the outbox holds no change pending or in flight, and at least n changes."""
    def done():
        pending, total = db.execute("SELECT count(*) FILTER (WHERE status IN ('pending', 'in_flight')), count(*)"
                                    " FROM notion_sync.outbox").fetchone()
        return pending == 0 and total >= n
    assert wait_for(done, timeout, step=0.05), db.execute("SELECT * FROM notion_sync.outbox").fetchall()
    return db.execute("SELECT status, result, error, conflicts, requests, edits FROM notion_sync.outbox"
                      " ORDER BY id").fetchall()


@pytest.fixture
def wb(wdb, fake, wcluster):
    """The worker's cluster with write-back on, a short debounce, and Characters synced and enabled."""
    wdb.execute("ALTER SYSTEM SET notion_sync.writeback_enabled = on")
    wdb.execute("SELECT pg_reload_conf()")
    wdb.execute("SET notion_sync.writeback_debounce_ms = 300")
    wdb.execute("SELECT notion_sync.register_database('alice', %s, 'Characters', 'manual')", (CHARS,))
    wdb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CHARS,))
    yield wdb
    with connect(wcluster) as c:  # a new one: the test may have restarted the cluster
        c.execute("ALTER SYSTEM RESET notion_sync.writeback_enabled")
        c.execute("SELECT pg_reload_conf()")


def enable(db, conflict="notion_wins", db_id=CHARS, **kw):
    args = ", ".join(f"{k} => %({k})s" for k in kw)
    return db.execute(f"SELECT notion_sync.enable_writeback('alice', %(db)s, %(c)s{', ' + args if args else ''})",
                      {"db": db_id, "c": conflict, **kw}).fetchone()[0]


def test_update_reaches_notion_once_and_does_not_echo(wb, fake):
    out = enable(wb)
    assert "Role" in out["writable"] and "Character ID" not in out["writable"]
    fake.admin("DELETE", "requests")
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'Aria of the Winds',"
               " properties = jsonb_set(properties, '{Role,value}', '\"Mentor\"') WHERE notion_page_id = %s", (ARIA,))
    [(status, result, error, _, requests, _)] = settled(wb)
    assert status == "done" and result.startswith("patched 2 properties"), (result, error)
    assert requests == 2  # the read-back and the PATCH
    assert prop(fake, ARIA, "Name") == "Aria of the Winds" and prop(fake, ARIA, "Role") == "Mentor"
    [patch] = writes(fake)
    assert len(patch["body"]["properties"]) == 2 and "title" in patch["body"]["properties"]
    # No echo: the stored row follows Notion's answer, so the next sync finds it unchanged and
    # nothing is queued again.
    r = wb.execute("SELECT updated, skipped FROM notion_sync.sync_notion_database('alice', %s)", (CHARS,)).fetchone()
    assert r[0] == 0 and r[1] >= 1, r
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 1
    run = wb.execute("SELECT mode, status, updated, http_requests FROM notion_sync.sync_runs"
                     " WHERE trigger = 'writeback'").fetchone()
    assert run == ("writeback", "succeeded", 1, 2)


def test_read_only_and_unsupported_refused_at_once(wb):
    enable(wb)
    for path, code in [("'{Character ID,value}', '\"CHR-9\"'", "428C9"), ("'{Created,value}', '\"2020-01-01\"'", "428C9"),
                       ("'{Portrait,value}', '[]'", "0A000")]:
        with pytest.raises(psycopg.Error) as e:
            wb.execute(f"UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties, {path})"
                       " WHERE notion_page_id = %s", (ARIA,))
        assert e.value.sqlstate == code, e.value
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0


def test_not_enabled_is_a_local_edit_and_nothing_queues(wb):
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'x' WHERE notion_page_id = %s", (ARIA,))
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0


def test_rollback_drops_the_change(wb):
    enable(wb)
    with wb.transaction():
        wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'never' WHERE notion_page_id = %s", (ARIA,))
        raise psycopg.Rollback()
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0


def test_mapped_table_update_create_and_delete(wb, fake):
    wb.execute(CLIENTS_TABLE)
    register(wb, CLIENTS_MAP)
    wb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CLIENTS,))
    out = enable(wb, db_id=CLIENTS, p_deletes="trash")
    assert out["creates"] is True and out["data_source_id"] == CLIENTS_DS
    before = len(notion(fake, "POST", f"/data_sources/{CLIENTS_DS}/query", {})["results"])
    wb.execute("UPDATE public.clients SET contact_email = 'billing@acme.test', monthly_fee = 1234.5,"
               " products_services = ARRAY['SEO', 'Ads'] WHERE notion_id = %s", (ACME,))
    wb.execute("INSERT INTO public.clients (name, contact_email, client_since, active)"
               " VALUES ('Newco', 'hi@newco.test', '2026-03-01', true)")
    wb.execute("DELETE FROM public.clients WHERE notion_id = %s", (BLUE_FERN,))
    rows = settled(wb, 3)
    assert [r[0] for r in rows] == ["done"] * 3, rows
    assert prop(fake, ACME, "Email") == "billing@acme.test" and prop(fake, ACME, "Monthly fee") == 1234.5
    assert sorted(o["name"] for o in prop(fake, ACME, "Products/Services")) == ["Ads", "SEO"]
    new_id = wb.execute("SELECT notion_id::text FROM public.clients WHERE name = 'Newco'").fetchone()[0]
    assert new_id, "the created page's id is written back into the @id column"
    assert prop(fake, new_id, "Email") == "hi@newco.test" and prop(fake, new_id, "Client since")["start"] == "2026-03-01"
    [post] = writes(fake, "POST", "/v1/pages")
    assert post["body"]["parent"] == {"data_source_id": CLIENTS_DS}
    assert notion(fake, "GET", f"/pages/{BLUE_FERN}")["in_trash"] is True
    after = len(notion(fake, "POST", f"/data_sources/{CLIENTS_DS}/query", {})["results"])
    assert after == before  # one created, one trashed
    # Nothing echoes: a full sync changes nothing and queues nothing.
    r = wb.execute("SELECT updated, created FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')",
                   (CLIENTS,)).fetchone()
    assert r == (0, 0), r
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 3
    # Read-only columns are refused at once.
    for col, code in [("slug = 'x'", "428C9"), ("notion_edited = now()", "428C9"), ("notion_id = gen_random_uuid()", "428C9")]:
        with pytest.raises(psycopg.Error) as e:
            wb.execute(f"UPDATE public.clients SET {col} WHERE notion_id = %s", (ACME,))
        assert e.value.sqlstate == code, (col, e.value)


@pytest.mark.parametrize("policy", ["notion_wins", "postgres_wins", "manual", "manual, resolved for Notion"])
def test_conflict_under_each_policy(wb, fake, policy):
    resolution = "notion" if policy.endswith("Notion") else "postgres"
    policy = policy.split(",")[0]
    enable(wb, policy)
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"Role": "Villain"}})  # someone in Notion
    fake.admin("DELETE", "requests")
    wb.execute("UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties, '{Role,value}',"
               " '\"Mentor\"') WHERE notion_page_id = %s", (ARIA,))
    [(status, result, _, conflicts, _, _)] = settled(wb)
    assert conflicts["Role"]["base"] == "Hero" and conflicts["Role"]["local"] == "Mentor"
    assert conflicts["Role"]["notion"] == "Villain"
    view = wb.execute("SELECT property, resolution FROM notion_sync.writeback_conflicts").fetchall()
    if policy == "notion_wins":
        assert status == "done" and writes(fake) == []
        assert prop(fake, ARIA, "Role") == "Villain"
        # The local row follows Notion's value.
        assert wb.execute("SELECT properties->'Role'->>'value' FROM notion_sync.notion_characters_sync"
                          " WHERE notion_page_id = %s", (ARIA,)).fetchone()[0] == "Villain"
        assert view == [("Role", "notion_wins")]
    elif policy == "postgres_wins":
        assert status == "done" and len(writes(fake)) == 1
        assert prop(fake, ARIA, "Role") == "Mentor" and view == [("Role", "postgres_wins")]
    else:
        assert status == "conflict" and writes(fake) == [] and view == [("Role", "held")]
        assert wb.execute("SELECT conflicts FROM notion_sync.writeback_status").fetchone()[0] == 1
        cid = wb.execute("SELECT id FROM notion_sync.outbox").fetchone()[0]
        wb.execute("SELECT notion_sync.resolve_writeback('alice', %s, %s)", (cid, resolution))
        [(status, *_)] = settled(wb)
        want = "Mentor" if resolution == "postgres" else "Villain"
        assert status == "done" and prop(fake, ARIA, "Role") == want
        assert len(writes(fake)) == (1 if resolution == "postgres" else 0)
        # Either way the row ends as Notion has it.
        assert wb.execute("SELECT properties->'Role'->>'value' FROM notion_sync.notion_characters_sync"
                          " WHERE notion_page_id = %s", (ARIA,)).fetchone()[0] == want


def test_two_apps_editing_different_properties_merge(wb, fake):
    enable(wb)
    wb.execute("SET notion_sync.writeback_debounce_ms = 1500")
    # Meanwhile in Notion another property changed: not a conflict for these edits.
    fake.admin("PATCH", f"pages/{ORIN}", {"properties": {"Description": "Changed in Notion"}})
    fake.admin("DELETE", "requests")
    wb.execute("UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties, '{Age,value}', '72')"
               " WHERE notion_page_id = %s", (ORIN,))
    with connect_like(wb) as other:
        other.execute("UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties,"
                      " '{Active,value}', 'false') WHERE notion_page_id = %s", (ORIN,))
    [(status, result, _, conflicts, _, edits)] = settled(wb)
    assert status == "done" and conflicts is None and edits == 2, result
    [patch] = writes(fake)
    assert len(patch["body"]["properties"]) == 2
    assert prop(fake, ORIN, "Age") == 72 and prop(fake, ORIN, "Active") is False
    assert prop(fake, ORIN, "Description") == "Changed in Notion"


def connect_like(conn):
    return psycopg.connect(conn.info.dsn, autocommit=True)


def test_ten_quick_updates_become_one_patch(wb, fake):
    enable(wb)
    wb.execute("SET notion_sync.writeback_debounce_ms = 1500")
    fake.admin("DELETE", "requests")
    for age in range(20, 30):
        wb.execute("UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties, '{Age,value}', %s)"
                   " WHERE notion_page_id = %s", (str(age), PIP))
    [(status, _, _, _, _, edits)] = settled(wb)
    assert status == "done" and edits == 10
    assert len(writes(fake)) == 1 and prop(fake, PIP, "Age") == 29


@pytest.mark.parametrize("how", ["committed_resource_id", "key_property", "neither"])
def test_create_after_commit_then_503_makes_one_page(wb, fake, how):
    wb.execute(CLIENTS_TABLE)
    register(wb, CLIENTS_MAP)
    wb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CLIENTS,))
    enable(wb, db_id=CLIENTS, **({"p_key_property": "Name"} if how == "key_property" else {}))
    fake.admin("POST", "faults", {"faults": [{"kind": "commit_then_status", "method": "POST", "path": "/v1/pages",
                                              "count": 1, "committed_resource_id": how == "committed_resource_id"}]})
    before = len(notion(fake, "POST", f"/data_sources/{CLIENTS_DS}/query", {})["results"])
    wb.execute("INSERT INTO public.clients (name) VALUES ('Once Only Ltd')")
    [(status, result, *_)] = settled(wb, timeout=60)
    after = notion(fake, "POST", f"/data_sources/{CLIENTS_DS}/query", {})["results"]
    assert len(after) == before + 1, "never two pages"
    posts = [r for r in fake.requests() if r["method"] == "POST" and r["path"] == "/v1/pages"]
    assert len(posts) == 1, "a create is never posted again after a commit"
    if how == "neither":
        assert status == "ambiguous", result
        assert wb.execute("SELECT ambiguous FROM notion_sync.writeback_status").fetchone()[0] == 1
        page = next(p["id"] for p in after if "Once Only" in json.dumps(p))
        cid = wb.execute("SELECT id FROM notion_sync.outbox").fetchone()[0]
        wb.execute("SELECT notion_sync.resolve_writeback('alice', %s, 'created', %s)", (cid, page))
        [(status, result, *_)] = settled(wb)
    assert status == "done", result
    got = wb.execute("SELECT notion_id::text FROM public.clients WHERE name = 'Once Only Ltd'").fetchone()[0]
    assert got and any(p["id"] == got for p in after)


def test_429_storm_waits_and_sends_once(wb, fake):
    enable(wb)
    fake.admin("POST", "faults", {"faults": [{"kind": "status", "status": 429, "retry_after": 1, "count": 4}]})
    fake.admin("DELETE", "requests")
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'Stormy' WHERE notion_page_id = %s", (ARIA,))
    [(status, result, *_)] = settled(wb, timeout=60)
    assert status == "done", result
    assert len(writes(fake)) == 1 and prop(fake, ARIA, "Name") == "Stormy"
    assert sum(r["status"] == 429 for r in fake.requests()) == 4


def test_crash_with_a_full_outbox_loses_nothing_and_sends_nothing_twice(wb, fake, wcluster):
    enable(wb)
    wb.execute("ALTER SYSTEM SET notion_sync.writeback_enabled = off")
    wb.execute("SELECT pg_reload_conf()")
    pages = [r[0] for r in wb.execute("SELECT notion_page_id FROM notion_sync.notion_characters_sync").fetchall()]
    for i, p in enumerate(pages):
        wb.execute("UPDATE notion_sync.notion_characters_sync SET name = %s WHERE notion_page_id = %s",
                   (f"Crash {i}", p))
    fake.admin("POST", "config", {"latency_ms": 400})
    fake.admin("DELETE", "requests")
    wb.execute("ALTER SYSTEM SET notion_sync.writeback_enabled = on")
    wb.execute("SELECT pg_reload_conf()")
    # Stop while the worker is in the middle of them.
    assert wait_for(lambda: any(r["method"] == "PATCH" for r in fake.requests()), 30, step=0.02)
    wcluster.stop("immediate")
    time.sleep(1)  # what the fake had started is carried out before the restart reads back
    wcluster.start()
    fake.admin("POST", "config", {"latency_ms": 0})
    db = connect(wcluster)
    rows = settled(db, len(pages), timeout=60)
    assert [r[0] for r in rows] == ["done"] * len(pages), rows
    for i, p in enumerate(pages):
        assert prop(fake, p, "Name") == f"Crash {i}"
        assert sum(r["method"] == "PATCH" and p in r["path"] for r in fake.requests()) == 1, p
    db.close()


def test_rls_a_role_cannot_queue_a_change_to_another_users_row(wb):
    enable(wb)
    wb.execute("DROP ROLE IF EXISTS app_alice")
    wb.execute("DROP ROLE IF EXISTS app_bob")
    wb.execute("CREATE ROLE app_alice")
    wb.execute("CREATE ROLE app_bob")
    wb.execute("INSERT INTO notion_sync.role_users VALUES ('app_alice', 'alice'), ('app_bob', 'bob')")
    try:
        with wb.transaction():
            wb.execute("SET LOCAL ROLE app_bob")
            cur = wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'stolen'"
                             " WHERE notion_page_id = %s", (ARIA,))
            assert cur.rowcount == 0  # bob sees no row of alice's
            with pytest.raises(psycopg.Error) as e:
                wb.execute("UPDATE notion_sync.notion_characters_sync SET user_id = 'bob'")
            assert e.value.sqlstate == "42501"
        assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0
        with wb.transaction():
            wb.execute("SET LOCAL ROLE app_alice")
            cur = wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'mine'"
                             " WHERE notion_page_id = %s", (ARIA,))
            assert cur.rowcount == 1
        with wb.transaction():
            wb.execute("SET LOCAL ROLE app_alice")
            with pytest.raises(psycopg.Error) as e:
                wb.execute("SELECT * FROM notion_sync.outbox")
            assert e.value.sqlstate == "42501"  # the outbox is not readable by users
        assert wb.execute("SELECT user_id FROM notion_sync.outbox").fetchall() == [("alice",)]
    finally:
        wb.execute("DELETE FROM notion_sync.role_users")
        wb.execute("DROP OWNED BY app_alice, app_bob")
        wb.execute("DROP ROLE app_alice, app_bob")


def test_a_mass_trash_halts_until_approved(wdb, fake):
    from harness import many_users
    many_users(fake, wdb, 1, 30)
    wdb.execute("ALTER SYSTEM SET notion_sync.writeback_enabled = on")
    wdb.execute("SELECT pg_reload_conf()")
    try:
        db_id = wdb.execute("SELECT database_id FROM notion_sync.databases").fetchone()[0]
        wdb.execute("SELECT * FROM notion_sync.sync_notion_database('u0', %s, NULL, 'full')", (db_id,))
        wdb.execute("SELECT notion_sync.enable_writeback('u0', %s)", (db_id,))
        fake.admin("DELETE", "requests")
        wdb.execute("UPDATE notion_sync.notion_pages_sync SET in_trash = true WHERE notion_page_id IN"
                    " (SELECT notion_page_id FROM notion_sync.notion_pages_sync ORDER BY 1 LIMIT 20)")
        assert wait_for(lambda: wdb.execute("SELECT halted FROM notion_sync.writeback_status").fetchone()[0], 30)
        assert wdb.execute("SELECT halted_changes, pending FROM notion_sync.writeback_status").fetchone() == (20, 0)
        assert writes(fake) == []
        assert wdb.execute("SELECT notion_sync.approve_writeback('u0', %s)", (db_id,)).fetchone()[0] == 20
        rows = settled(wdb, 20, timeout=60)
        assert [r[0] for r in rows] == ["done"] * 20
        assert len(writes(fake)) == 20
    finally:
        wdb.execute("ALTER SYSTEM RESET notion_sync.writeback_enabled")
        wdb.execute("SELECT pg_reload_conf()")


def test_synchronous_functions_give_notions_error_in_the_statement(wb, fake):
    r = wb.execute("SELECT notion_sync.update_page('alice', %s, '{\"Role\": \"Villain\", \"Age\": 20}')",
                   (ARIA,)).fetchone()[0]
    assert r["page_id"] == ARIA and "updated 1" in r["stored"], r
    assert prop(fake, ARIA, "Role") == "Villain"
    assert wb.execute("SELECT properties->'Role'->>'value' FROM notion_sync.notion_characters_sync"
                      " WHERE notion_page_id = %s", (ARIA,)).fetchone()[0] == "Villain"
    created = wb.execute("SELECT notion_sync.create_page('alice', %s, '{\"Name\": \"Nova\", \"Role\": \"Hero\"}')",
                         (CHARS,)).fetchone()[0]
    assert prop(fake, created["page_id"], "Name") == "Nova"
    assert wb.execute("SELECT name FROM notion_sync.notion_characters_sync WHERE notion_page_id = %s",
                      (created["page_id"],)).fetchone() == ("Nova",)
    wb.execute("SELECT notion_sync.trash_page('alice', %s)", (created["page_id"],))
    assert notion(fake, "GET", f"/pages/{created['page_id']}")["in_trash"] is True
    for call, code in [("update_page('alice', '%s', '{\"Character ID\": \"x\"}')" % ARIA, "428C9"),
                       ("update_page('alice', '%s', '{\"Nope\": 1}')" % ARIA, "22023"),
                       ("update_page('alice', 'c0000000-0000-4000-8000-0000000000ff', '{}')", "42704"),
                       ("update_page('alice', '%s', '{\"Role\": \"%s\"}')" % (ARIA, "r" * 101), "22023")]:
        with pytest.raises(psycopg.Error) as e:
            wb.execute("SELECT notion_sync." + call)
        assert e.value.sqlstate == code, (call, e.value)
    # No outbox for the synchronous writes, and nothing they stored echoes.
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0


def edit_during_a_failed_flight(wb, fake, fault):
    """Names ARIA 'First', then 'Second' while the first change is on its way (400 ms a response)
    and its PATCH meets `fault`; returns the one change as settled."""
    enable(wb)
    fake.admin("POST", "config", {"latency_ms": 400})
    fake.admin("POST", "faults", {"faults": [{**fault, "method": "PATCH", "count": 1}]})
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'First' WHERE notion_page_id = %s", (ARIA,))
    assert wait_for(lambda: wb.execute("SELECT status = 'in_flight' FROM notion_sync.outbox").fetchone()[0], 10, 0.01)
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'Second' WHERE notion_page_id = %s", (ARIA,))
    try:
        [row] = settled(wb, timeout=60)
    finally:
        fake.admin("POST", "config", {"latency_ms": 0})
    return row


def test_an_edit_while_a_change_is_in_flight_and_fails_is_folded_in(wb, fake):
    """Change 1 is on its way and gets a 503; the page was edited again meanwhile (change 2). Change 1
    is pending again with change 2 folded in: one change, the last value sent, no false conflict."""
    status, result, error, conflicts, _, edits = edit_during_a_failed_flight(wb, fake, {"kind": "status", "status": 503})
    assert status == "done" and conflicts is None and edits == 2, (result, error)
    assert prop(fake, ARIA, "Name") == "Second"


def test_a_key_that_is_not_unique_is_never_adopted(wb, fake):
    wb.execute(CLIENTS_TABLE)
    register(wb, CLIENTS_MAP)
    wb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CLIENTS,))
    enable(wb, db_id=CLIENTS, p_key_property="Name")
    name = prop(fake, ACME, "Name")
    fake.admin("POST", "faults", {"faults": [{"kind": "commit_then_drop", "method": "POST", "path": "/v1/pages",
                                              "count": 1}]})
    wb.execute("INSERT INTO public.clients (name) VALUES (%s)", (name,))  # a second page with Acme's name
    [(status, result, *_)] = settled(wb, timeout=60)
    assert status == "ambiguous", result
    with pytest.raises(psycopg.Error) as e:
        wb.execute("SELECT notion_sync.enable_writeback('alice', %s, p_key_property => 'Email')", (CHARS,))
    assert e.value.sqlstate == "22023"


def test_long_text_goes_in_pieces_of_2000(wb, fake):
    enable(wb)
    text = "Wind and salt. " * 300  # 4,500 characters: Notion takes at most 2,000 a piece
    fake.admin("DELETE", "requests")
    wb.execute("UPDATE notion_sync.notion_characters_sync SET description = %s WHERE notion_page_id = %s", (text, ARIA))
    [(status, result, error, *_)] = settled(wb)
    assert status == "done", (result, error)
    [patch] = writes(fake)
    [pieces] = [v["rich_text"] for v in patch["body"]["properties"].values()]
    assert [len(p["text"]["content"]) for p in pieces] == [2000, 2000, 500]
    assert prop(fake, ARIA, "Description") == text


def test_notions_refusal_ends_failed_with_its_code_and_request_id(wb, fake):
    enable(wb)
    fake.admin("PATCH", f"pages/{ARIA}", {"in_trash": True})  # trashed in Notion meanwhile
    wb.execute("UPDATE notion_sync.notion_characters_sync SET name = 'Too late' WHERE notion_page_id = %s", (ARIA,))
    [(status, result, error, *_)] = settled(wb)
    assert status == "failed" and "archived" in error, (result, error)
    code, request_id = wb.execute("SELECT notion_code, request_id FROM notion_sync.outbox").fetchone()
    assert code == "validation_error" and request_id
    assert wb.execute("SELECT failed FROM notion_sync.writeback_status").fetchone()[0] == 1


def test_deletes_are_ignored_unless_the_registration_says_trash(wb, fake):
    wb.execute(CLIENTS_TABLE)
    register(wb, CLIENTS_MAP)
    wb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CLIENTS,))
    enable(wb, db_id=CLIENTS)
    wb.execute("DELETE FROM public.clients WHERE notion_id = %s", (ACME,))
    assert wb.execute("SELECT count(*) FROM notion_sync.outbox").fetchone()[0] == 0
    assert notion(fake, "GET", f"/pages/{ACME}")["in_trash"] is False


def test_a_value_of_ours_already_in_notion_after_a_lost_answer_is_no_conflict(wb, fake):
    """Change 1 reaches Notion but its answer is a 503 (committed); the page is edited again meanwhile.
    The folded change starts from the value before change 1: finding change 1's value in Notion is
    ours, not someone else's, so the last value is sent with no conflict."""
    status, result, error, conflicts, _, edits = edit_during_a_failed_flight(wb, fake, {"kind": "commit_then_status"})
    assert status == "done" and conflicts is None and edits == 2, (result, error, conflicts)
    assert prop(fake, ARIA, "Name") == "Second"


def test_a_relation_of_more_than_25_is_read_back_whole(wb, fake):
    """GET /pages gives 25 of 40 relation items; compared with the stored 40, a partial read-back
    would look like someone else's edit."""
    ids = [f"f0000000-0000-4000-8000-{i:012d}" for i in range(40)]
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"World": ids}})
    wb.execute("SELECT * FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')", (CHARS,))
    enable(wb)
    wb.execute("UPDATE notion_sync.notion_characters_sync SET properties = jsonb_set(properties, '{World,value}',"
               " %s::jsonb) WHERE notion_page_id = %s", (json.dumps(ids[:30]), ARIA))
    [(status, result, error, conflicts, *_)] = settled(wb)
    assert status == "done" and conflicts is None, (result, error, conflicts)
    items = notion(fake, "GET", f"/pages/{ARIA}/properties/" + notion(fake, "GET", f"/pages/{ARIA}")["properties"]["World"]["id"])
    assert len(items["results"]) == 30
