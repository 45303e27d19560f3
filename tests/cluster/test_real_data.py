"""What real Notion does that the first fake did not (issue 15, tests/fixtures/real/): URLs of hosted files
signed anew on every read, now() formulas, pages read again inside their edit minute, stale file URLs,
mass deletions by accident, pages Postgres would refuse, a dead API, complete rich text, the seed's
stories.description. Each test prints its figure (pytest -s, lines starting with FIGURE)."""
import json
import time

import psycopg
import pytest

DB = "a7000000-0000-4000-8000-0000000000a1"
DS = "a7500000-0000-4000-8000-0000000000a1"
N = 12


def page_id(i):
    return f"a7100000-0000-4000-8000-{i:012d}"


def workspace(n=N, children=True):
    pages = [{"id": page_id(i), "created_time": f"2026-01-01T00:{i:02d}:00Z",
              "last_edited_time": f"2026-01-02T00:{i:02d}:00Z",
              "properties": {"Name": f"Photo {i}", "Photo": [{"hosted": f"p{i}.png"}],
                             "Notes": f"notes {i}"},
              "children": [{"type": "paragraph", "text": f"body of {i}"}] if children else []}
             for i in range(n)]
    return {"tokens": {"ntn_demo_alice": ["*"]}, "databases": [{"id": DB, "title": "Gallery", "data_sources": [{
        "id": DS, "name": "Gallery",
        "properties": {"Name": {"type": "title"}, "Photo": {"type": "files"}, "Notes": {"type": "rich_text"},
                       "Seen": {"type": "formula", "expression": "now()"}},
        "pages": pages}]}]}


@pytest.fixture
def gallery(db, fake):
    fake.reset(workspace())
    # now() differs on every read, as it does in Notion over time.
    fake.admin("POST", "config", {"now_formula_precision_ms": 1})
    yield db
    fake.admin("DELETE", "faults")


def sync(db, mode="full", **settings):
    for k, v in settings.items():
        db.execute(f"SET notion_sync.{k} = {v}")
    try:
        return db.execute("SELECT status, total, created, updated, skipped, deleted, errors FROM"
                          " notion_sync.sync_notion_database('alice', %s, 'Gallery', %s)", (DB, mode)).fetchone()
    finally:
        for k in settings:
            db.execute(f"RESET notion_sync.{k}")


def xmins(db):
    return dict(db.execute("SELECT notion_page_id, xmin::text FROM notion_sync.notion_pages_sync"
                           " WHERE notion_database_id = %s", (DB,)).fetchall())


def requests(fake):
    return [r["path"] for r in fake.requests() if r["path"].startswith("/v1/")]


def test_resigned_urls_and_now_formulas_rewrite_nothing(gallery, fake):
    assert sync(gallery)[:3] == ("succeeded", N, N)
    first = gallery.execute("SELECT properties->'Photo'->'value'->0 FROM notion_sync.notion_pages_sync"
                            " WHERE notion_page_id = %s", (page_id(0),)).fetchone()[0]
    assert first["url"].startswith("https://prod-files-secure.s3.") and "X-Amz-Signature=" in first["url"]
    assert first["expiry_time"], "the expiry is kept next to the URL"
    before = xmins(gallery)
    fake.admin("DELETE", "requests")
    status, total, created, updated, skipped, deleted, _ = sync(gallery)
    paths = requests(fake)
    assert (status, total, created, updated, skipped, deleted) == ("succeeded", N, 0, 0, N, 0)
    assert xmins(gallery) == before, "no row was rewritten"
    # The database, its schema (a formula is there) and one query: no page body read again.
    assert not [p for p in paths if "/blocks/" in p], paths
    print(f"\nFIGURE full re-sync of {N} unchanged pages with hosted files, a now() formula and a body: "
          f"{len(paths)} requests, {updated} rows rewritten (0.1.0: every page's hash changed on every read, "
          f"so {N} rows rewritten and {N} body reads more: {len(paths) - 1 + N} requests)")
    # A real change is still seen: another file.
    fake.admin("PATCH", f"pages/{page_id(3)}", {"properties": {"Photo": [{"hosted": "other.png"}]}})
    assert sync(gallery)[3] == 1


def test_a_webhook_refetch_of_an_unchanged_page_writes_nothing(gallery, fake):
    sync(gallery)
    before = xmins(gallery)
    # apply_page is what the worker runs for a page event; the SQL path runs it in this transaction.
    fake.admin("DELETE", "requests")
    r = sync(gallery, "incremental")
    assert r[3] == 0 and xmins(gallery) == before


def test_pages_read_again_inside_their_edit_minute_are_skipped_when_equal(gallery, fake):
    sync(gallery)
    # Edited now: the edit minute is open, so the next runs must read these pages again.
    for i in range(3):
        fake.admin("PATCH", f"pages/{page_id(i)}", {"properties": {"Notes": f"edited {i}"}})
    first = sync(gallery, "incremental")
    assert first[3] == 3, first
    before = xmins(gallery)
    fake.admin("DELETE", "requests")
    second = sync(gallery, "incremental")
    paths = requests(fake)
    # Read again (bodies included: an edit inside the same minute would not move the timestamp)...
    assert len([p for p in paths if "/blocks/" in p]) == 3, paths
    # ...but equal to what is stored: counted as skipped, nothing written.
    assert second[3] == 0 and second[4] >= 3, second
    assert xmins(gallery) == before


def test_file_url_returns_a_working_url_and_reads_the_page_only_when_expired(gallery, fake):
    sync(gallery)
    q = "SELECT notion_sync.file_url('alice', %s, 'Photo')"
    stored = gallery.execute("SELECT properties->'Photo'->'value'->0->>'url' FROM notion_sync.notion_pages_sync"
                             " WHERE notion_page_id = %s", (page_id(1),)).fetchone()[0]
    fake.admin("DELETE", "requests")
    assert gallery.execute(q, (page_id(1),)).fetchone()[0] == stored
    assert requests(fake) == [], "a valid stored URL costs no request"
    # Once the stored URL expired (a sync does not rewrite a page for a new signature), the next call
    # reads the page: one request.
    gallery.execute("UPDATE notion_sync.notion_pages_sync SET properties = jsonb_set(properties,"
                    " '{Photo,value,0,expiry_time}', '\"2020-01-01T00:00:00.000Z\"') WHERE notion_page_id = %s",
                    (page_id(1),))
    fake.admin("DELETE", "requests")
    fresh = gallery.execute(q, (page_id(1),)).fetchone()[0]
    assert requests(fake) == [f"/v1/pages/{page_id(1)}"]
    assert fresh != stored and "/p1.png?" in fresh
    # The fresh value is stored: the next call is free again.
    fake.admin("DELETE", "requests")
    assert gallery.execute(q, (page_id(1),)).fetchone()[0] == fresh
    assert requests(fake) == []
    # Property by id works too; a property that is not files, or none, says so.
    with pytest.raises(psycopg.Error) as e:
        gallery.execute("SELECT notion_sync.file_url('alice', %s, 'Notes')", (page_id(1),))
    assert e.value.sqlstate == "22023" and "not files" in str(e.value)


def test_file_url_is_only_for_the_callers_own_user(gallery, fake):
    sync(gallery)
    gallery.execute("DROP ROLE IF EXISTS bob_app")
    gallery.execute("CREATE ROLE bob_app")
    gallery.execute("INSERT INTO notion_sync.role_users VALUES ('bob_app', 'bob') ON CONFLICT DO NOTHING")
    try:
        gallery.execute("SET ROLE bob_app")
        with pytest.raises(psycopg.Error) as e:
            gallery.execute("SELECT notion_sync.file_url('alice', %s, 'Photo')", (page_id(1),))
        assert e.value.sqlstate == "42501"
    finally:
        gallery.execute("RESET ROLE")
        gallery.execute("DELETE FROM notion_sync.role_users WHERE role_name = 'bob_app'")
        gallery.execute("DROP ROLE bob_app")


def test_a_mass_deletion_marks_nothing_until_confirmed(db, fake):
    fake.reset(workspace(20, children=False))
    assert sync(db)[2] == 20
    # Three pages gone: an ordinary deletion.
    fake.reset(workspace(17, children=False))
    assert sync(db)[5] == 3
    # Twelve more of the seventeen gone at once (an unshared source, a bad filter...): nothing marked.
    fake.reset(workspace(5, children=False))
    status, total, created, updated, skipped, deleted, errors = sync(db)
    assert (status, deleted) == ("partial", 0)
    error = db.execute("SELECT error FROM notion_sync.sync_errors ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert "12 of 17" in error and "max_delete_fraction" in error, error
    assert db.execute("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE NOT in_trash").fetchone()[0] == 17
    # Confirmed once: they go.
    assert sync(db, max_delete_fraction=1)[5] == 12


def test_a_database_without_data_sources_deletes_nothing(db, fake):
    fake.reset(workspace(5, children=False))
    sync(db)
    fake.admin("POST", "faults", {"faults": [{"kind": "no_data_sources", "path": f"/v1/databases/{DB}"}]})
    status, total, *_, deleted, errors = sync(db)
    assert (status, total, deleted) == ("partial", 0, 0)
    assert db.execute("SELECT count(*) FROM notion_sync.notion_pages_sync WHERE NOT in_trash").fetchone()[0] == 5


@pytest.mark.parametrize("garble", ["timestamp", "title_number", "properties_array", "id"])
def test_a_page_postgres_would_refuse_is_recorded_and_skipped(db, fake, garble):
    fake.reset(workspace(10, children=False))
    fake.admin("POST", "faults", {"faults": [{"kind": "malformed", "garble": garble, "count": 1,
                                              "path": f"/v1/data_sources/{DS}/query"}]})
    status, total, created, *_ = sync(db)
    assert (status, total, created) == ("partial", 10, 9), garble
    err = db.execute("SELECT count(*) FROM notion_sync.sync_errors WHERE database_id = %s", (DB,)).fetchone()[0]
    assert err == 1


def test_a_dead_notion_fails_the_run_fast(db, fake):
    fake.reset(workspace(40))
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 1500, "path": "/v1/blocks/"}]})
    fake.admin("DELETE", "requests")
    t0 = time.monotonic()
    status, total, created, *_ = sync(db, http_timeout_ms=300, max_retries=1)
    secs = time.monotonic() - t0
    blocks = [p for p in requests(fake) if "/blocks/" in p]
    run = db.execute("SELECT error FROM notion_sync.sync_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    print(f"\nFIGURE hung block reads: run {status} after {len(blocks)} block requests in {secs:.1f} s")
    assert status == "failed"
    assert "did not answer within http_timeout_ms = 300 ms for 3 pages in a row" in run, run
    # Three pages, two attempts each: not forty pages of timeouts.
    assert len(blocks) <= 6, blocks


def test_one_slow_page_is_not_a_dead_api(db, fake):
    fake.reset(workspace(10))
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 1500, "count": 2,
                                              "path": f"/v1/blocks/{page_id(4)}"}]})
    status, total, created, *_ = sync(db, http_timeout_ms=300, max_retries=1)
    assert (status, created) == ("partial", 9)


def test_complete_rich_text_is_not_read_again(db, fake):
    segs = [{"type": "text", "text": {"content": f"s{i} "}, "plain_text": f"s{i} "} for i in range(100)]
    ws = workspace(2, children=False)
    ds = ws["databases"][0]["data_sources"][0]
    ds["properties"]["Links"] = {"type": "relation", "data_source_id": DS}
    ds["pages"][0]["properties"]["Notes"] = {"raw": {"type": "rich_text", "rich_text": segs}}
    ds["pages"][0]["properties"]["Links"] = [page_id(1)] * 30
    fake.reset(ws)
    fake.admin("DELETE", "requests")
    sync(db)
    items = [p for p in requests(fake) if "/properties/" in p]
    notes, links = db.execute("SELECT properties->'Notes'->>'value', jsonb_array_length(properties->'Links'->'value')"
                              " FROM notion_sync.notion_pages_sync WHERE notion_page_id = %s",
                              (page_id(0),)).fetchone()
    assert len(notes.split()) == 100 and links == 30
    # Only the relation, which Notion cut at 25 with has_more.
    assert len(items) == 1, items


def test_stories_have_the_seeds_description_and_search_ranks_it(db, fake):
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c3',"
               " 'Stories', 'full')")
    rows = db.execute("SELECT title, description, content FROM notion_sync.notion_stories_sync"
                      " ORDER BY title").fetchall()
    assert rows[0][0] == "A Name for Vex" and rows[0][1].startswith("Vex bargains") and rows[0][2]
    hits = db.execute("SELECT source_table, title FROM notion_sync.search_notion_content('alice', 'bargains')")
    assert ("notion_stories_sync", "A Name for Vex") in hits.fetchall()


def test_unique_ids_are_one_string_form(db, fake):
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c1',"
               " 'Characters', 'full')")
    kinds = db.execute("SELECT DISTINCT jsonb_typeof(properties->'Character ID'->'value')"
                       " FROM notion_sync.notion_characters_sync").fetchall()
    assert kinds == [("string",)], json.dumps(kinds)
