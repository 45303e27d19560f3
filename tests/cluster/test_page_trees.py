"""Pages outside databases (register_pages, #19): a page and its sub-pages mirrored into
notion_pages_sync with parent and path, bodies searchable; incremental through search; deletions only
from a complete walk; webhook page events. The fake's wiki workspace (tests/workspace/wiki.json):
Handbook > Onboarding > First week, Handbook > Policies, and a separate top-level page Scratch."""
import json
import pathlib
import uuid

from harness import wait_for

WIKI = json.loads((pathlib.Path(__file__).resolve().parents[1] / "workspace" / "wiki.json").read_text())
HANDBOOK = "b0000000-0000-4000-8000-000000000001"
ONBOARDING = "b0000000-0000-4000-8000-000000000002"
FIRST_WEEK = "b0000000-0000-4000-8000-000000000003"
POLICIES = "b0000000-0000-4000-8000-000000000004"
SCRATCH = "b0000000-0000-4000-8000-000000000005"
WORKSPACE = "00000000-0000-0000-0000-000000000000"


def wiki(fake, conn, token="ntn_wiki"):
    fake.reset(WIKI)
    conn.execute("SELECT notion_sync.set_notion_token('wren', %s)", (token,))


def sync(conn, tree, mode="full"):
    return conn.execute("SELECT status, total, created, updated, skipped, deleted, errors, run_id"
                        " FROM notion_sync.sync_notion_database('wren', %s, NULL, %s)", (tree, mode)).fetchone()


def tree(conn, tree_id=HANDBOOK):
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT title, notion_parent_id, path, in_trash, database_name FROM notion_sync.notion_pages_sync"
        " WHERE user_id = 'wren' AND notion_database_id = %s", (tree_id,)).fetchall()}


def requests(conn, run_id):
    return conn.execute("SELECT http_requests FROM notion_sync.sync_runs WHERE run_id = %s", (run_id,)).fetchone()[0]


def test_a_page_and_its_sub_pages_with_parents_paths_and_bodies(db, fake):
    wiki(fake, db)
    reg = db.execute("SELECT database_id, page_tree_depth, target_table FROM notion_sync.register_pages("
                     "'wren', %s, 'manual')", (HANDBOOK,)).fetchone()
    assert reg == (HANDBOOK, 5, "notion_pages_sync")
    status, total, created, *_, errors, run = sync(db, HANDBOOK)
    assert (status, total, created, errors) == ("succeeded", 4, 4, [])
    # One request for the root page, one block list per page.
    assert requests(db, run) == 5
    t = tree(db)
    assert t == {
        "Handbook": (None, [], False, "Handbook"),
        "Onboarding": (HANDBOOK, ["Handbook"], False, "Handbook"),
        "First week": (ONBOARDING, ["Handbook", "Onboarding"], False, "Handbook"),
        "Policies": (HANDBOOK, ["Handbook"], False, "Handbook"),
    }
    body = db.execute("SELECT body FROM notion_sync.notion_pages_sync WHERE notion_page_id = %s", (ONBOARDING,)
                      ).fetchone()[0]
    assert "Get your laptop" in body and "First week" in body
    hits = db.execute("SELECT title FROM notion_sync.search_notion_content('wren', 'laptop')").fetchall()
    assert hits == [("Onboarding",)]
    st = db.execute("SELECT database_name, last_status, rows FROM notion_sync.sync_status WHERE user_id = 'wren'"
                    ).fetchone()
    assert st[1:] == ("succeeded", 4)
    # Nothing changed: nothing is written again.
    status, total, created, updated, skipped, *_ = sync(db, HANDBOOK)
    assert (status, total, created, updated, skipped) == ("succeeded", 4, 0, 0, 4)


def test_incremental_reads_only_what_was_edited_and_finds_new_sub_pages(db, fake):
    wiki(fake, db)
    db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual')", (HANDBOOK,))
    sync(db, HANDBOOK)
    fake.admin("PATCH", f"pages/{POLICIES}", {"children": [{"type": "paragraph", "text": "Expenses need a receipt."}]})
    new = str(uuid.uuid4())
    fake.admin("POST", "pages", {"id": new, "title": "Travel", "parent_page_id": POLICIES,
                                 "children": [{"type": "paragraph", "text": "Book trains early."}]})
    status, total, created, updated, skipped, _, errors, run = sync(db, HANDBOOK, "incremental")
    assert (status, created, updated, errors) == ("succeeded", 1, 1, [])
    # The root (its title), one page of search, the two pages' blocks: not the whole tree.
    assert requests(db, run) <= 4
    t = tree(db)
    assert t["Travel"][:2] == (POLICIES, ["Handbook", "Policies"])
    assert db.execute("SELECT body FROM notion_sync.notion_pages_sync WHERE notion_page_id = %s", (POLICIES,)
                      ).fetchone()[0].startswith("Expenses need a receipt.")
    # Pages outside the tree are not taken in.
    fake.admin("PATCH", f"pages/{SCRATCH}", {"title": "Scratch 2"})
    sync(db, HANDBOOK, "incremental")
    assert "Scratch 2" not in tree(db)


def test_a_page_moved_in_the_tree_gets_its_new_place_incrementally(db, fake):
    wiki(fake, db)
    db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual')", (HANDBOOK,))
    sync(db, HANDBOOK)
    fake.admin("PATCH", f"pages/{FIRST_WEEK}", {"move_to": {"page_id": POLICIES}})
    status, *_ = sync(db, HANDBOOK, "incremental")
    assert status == "succeeded"
    assert tree(db)["First week"][:2] == (POLICIES, ["Handbook", "Policies"])


def test_deletions_only_from_a_complete_walk(db, fake):
    wiki(fake, db)
    db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual')", (HANDBOOK,))
    sync(db, HANDBOOK)
    fake.admin("PATCH", f"pages/{FIRST_WEEK}", {"in_trash": True})
    # An incremental run never marks anything deleted.
    sync(db, HANDBOOK, "incremental")
    assert tree(db)["First week"][2] is False
    # A walk that could not read a page is incomplete: nothing below it is marked.
    fake.admin("POST", "faults", {"faults": [{"kind": "status", "status": 404, "code": "object_not_found",
                                              "path": f"/blocks/{ONBOARDING}/children", "count": 1}]})
    status, *_ = sync(db, HANDBOOK)
    assert status == "partial" and tree(db)["First week"][2] is False
    status, total, *_, deleted, errors, _ = sync(db, HANDBOOK)
    assert (status, total, deleted) == ("succeeded", 3, 1)
    assert tree(db)["First week"][2] is True


def test_every_page_outside_databases_and_a_depth_limit(db, fake):
    wiki(fake, db)
    db.execute("SELECT notion_sync.register_pages('wren', NULL, 'manual')")
    status, total, created, *_ = sync(db, WORKSPACE)
    assert (status, total, created) == ("succeeded", 5, 5)
    assert set(tree(db, WORKSPACE)) == {"Handbook", "Onboarding", "First week", "Policies", "Scratch"}
    db.execute("TRUNCATE notion_sync.notion_pages_sync, notion_sync.databases")
    db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual', p_max_depth => 1)", (HANDBOOK,))
    sync(db, HANDBOOK)
    assert set(tree(db)) == {"Handbook", "Onboarding", "Policies"}
    # A bad depth is refused with 22023.
    try:
        db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual', p_max_depth => -1)", (HANDBOOK,))
        raise AssertionError("accepted")
    except Exception as e:
        assert getattr(e, "sqlstate", None) == "22023", e


def test_a_token_that_sees_only_the_tree(db, fake):
    wiki(fake, db, token="ntn_wiki_handbook")
    db.execute("SELECT notion_sync.register_pages('wren', %s, 'manual')", (HANDBOOK,))
    assert sync(db, HANDBOOK)[:3] == ("succeeded", 4, 4)


def test_webhook_page_events_apply_to_tree_pages(wdb, fake):
    wiki(fake, wdb)
    wdb.execute("SELECT notion_sync.register_pages('wren', %s, 'manual')", (HANDBOOK,))
    wdb.execute("SELECT * FROM notion_sync.sync_notion_database('wren', %s, NULL, 'full')", (HANDBOOK,))
    wdb.execute("SELECT notion_sync.handle_webhook(%s, NULL, 'wren')", (json.dumps({"verification_token": "s_wren"}),))

    def send(kind, entity):
        ev = fake.admin("POST", "webhook", {"type": kind, "entity_id": entity, "secret": "s_wren",
                                            "id": str(uuid.uuid4())})
        wdb.execute("SELECT notion_sync.handle_webhook(%s, %s)", (ev["body"], ev["signature"]))

    def body(page):
        r = wdb.execute("SELECT body, in_trash FROM notion_sync.notion_pages_sync WHERE notion_page_id = %s",
                        (page,)).fetchone()
        return r
    fake.admin("PATCH", f"pages/{FIRST_WEEK}", {"children": [{"type": "paragraph", "text": "Pair with your buddy."}]})
    send("page.content_updated", FIRST_WEEK)
    assert wait_for(lambda: body(FIRST_WEEK)[0] == "Pair with your buddy.", 10), body(FIRST_WEEK)
    new = str(uuid.uuid4())
    fake.admin("POST", "pages", {"id": new, "title": "Security", "parent_page_id": POLICIES})
    send("page.created", new)
    assert wait_for(lambda: tree(wdb).get("Security"), 10)
    assert tree(wdb)["Security"][:2] == (POLICIES, ["Handbook", "Policies"])
    fake.admin("PATCH", f"pages/{new}", {"in_trash": True})
    send("page.deleted", new)
    assert wait_for(lambda: tree(wdb)["Security"][2] is True, 10)
