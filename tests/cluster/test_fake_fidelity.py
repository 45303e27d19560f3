"""The fake Notion checked with the official Python SDK (notion-client) and raw HTTP: if the real
client can walk it, our extension's tests against it mean something."""
import datetime
import hashlib
import hmac
import json
import pathlib
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from notion_client import APIResponseError, Client
from notion_client.helpers import collect_paginated_api, iterate_paginated_api

CHARACTERS = "a1b2c3d4-0000-4000-8000-0000000000c1"
CHARACTERS_DS = "d5000000-0000-4000-8000-0000000000c1"
STORY = "50000000-0000-4000-8000-000000000001"
ARIA = "c0000000-0000-4000-8000-000000000001"
WORLDS_DS = "d5000000-0000-4000-8000-0000000000c2"
CIRRUS = "e0000000-0000-4000-8000-000000000001"
HERE = pathlib.Path(__file__).resolve().parent
# Bodies recorded from the live API (their README says from where).
REAL = next((d for d in (HERE.parent / "fixtures" / "real", HERE.parents[2] / "shared" / "notion-fixtures" / "real")
             if d.is_dir()), None)


def real(name):
    if REAL is None:
        pytest.skip("no recorded fixtures (tests/fixtures/real or ../shared/notion-fixtures/real)")
    return json.loads((REAL / name).read_text())


@pytest.fixture
def sdk(fake):
    fake.reset()
    fake.admin("DELETE", "faults")
    return Client(auth="ntn_demo_alice", base_url=fake.url, retry=False)


def raw(fake, method, path, body=None, token="ntn_demo_alice", version="2025-09-03"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if version:
        headers["Notion-Version"] = version
    req = urllib.request.Request(fake.url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_sdk_retrieves_database_and_data_source(sdk):
    db = sdk.databases.retrieve(database_id=CHARACTERS)
    assert db["object"] == "database" and db["data_sources"][0]["id"] == CHARACTERS_DS
    assert "properties" not in db
    ds = sdk.data_sources.retrieve(data_source_id=CHARACTERS_DS)
    assert ds["object"] == "data_source"
    assert ds["properties"]["Name"]["type"] == "title"
    assert ds["properties"]["Role"]["select"]["options"][0]["name"] == "Hero"


def test_sdk_paginates_a_query(sdk, fake):
    fake.admin("POST", f"data_sources/{CHARACTERS_DS}/generate", {"count": 7})
    pages = list(iterate_paginated_api(sdk.data_sources.query, data_source_id=CHARACTERS_DS, page_size=2))
    assert len(pages) == 11
    assert len({p["id"] for p in pages}) == 11
    first = sdk.data_sources.query(data_source_id=CHARACTERS_DS, page_size=2)
    assert first["has_more"] and isinstance(first["next_cursor"], str)
    assert first["type"] == "page_or_data_source"


def test_sdk_retrieves_pages_and_block_children(sdk):
    page = sdk.pages.retrieve(page_id=ARIA)
    # GET /v1/pages names only the data source (recorded); query results name the database too.
    assert page["parent"] == {"type": "data_source_id", "data_source_id": CHARACTERS_DS}
    assert page["created_time"].endswith(":00.000Z"), "minute-rounded"
    blocks = collect_paginated_api(sdk.blocks.children.list, block_id=STORY, page_size=3)
    kinds = [b["type"] for b in blocks]
    assert kinds[:2] == ["heading_1", "paragraph"]
    assert {"toggle", "code", "table", "child_page", "callout"} <= set(kinds)
    toggle = next(b for b in blocks if b["type"] == "toggle")
    assert toggle["has_children"]
    inner = sdk.blocks.children.list(block_id=toggle["id"])
    assert inner["results"][1]["type"] == "to_do"


def test_sdk_sees_notion_error_envelopes(fake):
    bad = Client(auth="ntn_nope", base_url=fake.url, retry=False)
    with pytest.raises(APIResponseError) as e:
        bad.databases.retrieve(database_id=CHARACTERS)
    assert e.value.code == "unauthorized" and e.value.status == 401
    limited = Client(auth="ntn_demo_limited", base_url=fake.url, retry=False)
    with pytest.raises(APIResponseError) as e:
        limited.databases.retrieve(database_id=CHARACTERS)
    assert e.value.code == "object_not_found"


def test_versions_and_page_size_are_validated(fake):
    fake.reset()
    status, _, body = raw(fake, "GET", f"/v1/databases/{CHARACTERS}", version=None)
    assert (status, body["code"]) == (400, "missing_version")
    status, _, body = raw(fake, "POST", f"/v1/data_sources/{CHARACTERS_DS}/query", {"page_size": 101})
    assert (status, body["code"]) == (400, "validation_error")
    status, _, body = raw(fake, "POST", f"/v1/databases/{CHARACTERS}/query", {}, version="2022-06-28")
    assert status == 200 and body["type"] == "page_or_database"
    assert body["results"][0]["parent"]["type"] == "database_id"
    status, _, body = raw(fake, "POST", f"/v1/databases/{CHARACTERS}/query", {})
    assert (status, body["code"]) == (400, "invalid_request_url")


def test_timestamp_filters_sorts_and_trash(fake):
    fake.reset()
    q = lambda body: raw(fake, "POST", f"/v1/data_sources/{CHARACTERS_DS}/query", body)[2]
    body = q({"filter": {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": "2026-02-02T08:30:00Z"}}})
    assert len(body["results"]) == 2
    body = q({"filter": {"or": [{"timestamp": "created_time", "created_time": {"before": "2026-01-05T09:11:00Z"}},
                                {"timestamp": "created_time", "created_time": {"after": "2026-01-06T10:00:00Z"}}]}})
    assert len(body["results"]) == 3
    body = q({"sorts": [{"timestamp": "created_time", "direction": "descending"}]})
    created = [p["created_time"] for p in body["results"]]
    assert created == sorted(created, reverse=True)
    status, _, body = raw(fake, "POST", f"/v1/data_sources/{CHARACTERS_DS}/query",
                          {"filter": {"timestamp": "created_time", "property": "x", "created_time": {"after": "2026-01-01"}}})
    assert status == 400
    reading = raw(fake, "POST", "/v1/data_sources/d5000000-0000-4000-8000-00000000c0de/query", {})[2]
    assert all(not p["in_trash"] for p in reading["results"]) and len(reading["results"]) == 2


def test_relations_over_25_are_truncated_and_paginated(fake, sdk):
    ids = [f"f0000000-0000-4000-8000-{i:012d}" for i in range(40)]
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"World": ids}})
    page = sdk.pages.retrieve(page_id=ARIA)
    world = page["properties"]["World"]
    assert len(world["relation"]) == 25 and world["has_more"] is True
    items = collect_paginated_api(sdk.pages.properties.retrieve, page_id=ARIA, property_id=world["id"])
    assert [i["relation"]["id"] for i in items] == ids


def test_query_cap_reports_incomplete(fake):
    fake.reset()
    fake.admin("POST", "config", {"query_cap": 3})
    body = raw(fake, "POST", f"/v1/data_sources/{CHARACTERS_DS}/query", {"page_size": 2})[2]
    assert body["request_status"] == {"type": "incomplete", "incomplete_reason": "query_result_limit_reached"}
    body = raw(fake, "POST", f"/v1/data_sources/{CHARACTERS_DS}/query", {"page_size": 2, "start_cursor": body["next_cursor"]})[2]
    assert len(body["results"]) == 1 and body["has_more"] is False


def test_rate_limit_answers_429_with_retry_after(fake):
    fake.reset()
    fake.admin("POST", "config", {"rate_limit_rps": 2})
    statuses = [raw(fake, "GET", f"/v1/databases/{CHARACTERS}")[0:2] for _ in range(5)]
    limited = [h for s, h in statuses if s == 429]
    assert limited and all(int(h["Retry-After"]) >= 1 for h in limited)
    fake.admin("POST", "config", {"rate_limit_rps": 0})


def test_faults_and_request_log(fake):
    fake.reset()
    fake.admin("DELETE", "requests")
    fake.admin("POST", "faults", {"faults": [{"kind": "status", "status": 529, "count": 1}]})
    assert raw(fake, "GET", f"/v1/databases/{CHARACTERS}")[0] == 529
    assert raw(fake, "GET", f"/v1/databases/{CHARACTERS}")[0] == 200
    log = fake.requests()
    assert [r["status"] for r in log] == [529, 200] and log[0]["method"] == "GET"
    fake.admin("POST", "faults", {"faults": [{"kind": "drop", "count": 1}]})
    with pytest.raises(Exception):
        raw(fake, "GET", f"/v1/databases/{CHARACTERS}")
    fake.admin("DELETE", "faults")


def test_signed_webhook_events(fake):
    fake.reset()
    import hashlib
    import hmac
    ev = fake.admin("POST", "webhook", {"type": "page.properties_updated", "entity_id": ARIA, "secret": "secret_abc"})
    want = "sha256=" + hmac.new(b"secret_abc", ev["body"].encode(), hashlib.sha256).hexdigest()
    assert ev["signature"] == want
    assert ev["event"]["entity"] == {"id": ARIA, "type": "page"}
    assert ev["event"]["data"]["parent"]["data_source_id"] == CHARACTERS_DS


# --- Shapes recorded from the live API (issue 15) -------------------------------------------------

def url_parts(url):
    path, query = url.split("?", 1)
    return path, [kv.split("=", 1) for kv in query.split("&")]


def test_hosted_files_are_presigned_anew_on_every_read_like_the_recording(sdk, fake):
    recorded = real("notion_ruby_mapping__page-retrieve-21-types-hosted-file__2025-09-03.json")
    want = recorded["properties"]["File&MediaTitle"]["files"][0]
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"Portrait": [{"hosted": "nr.png"}, "https://example.com/x.png"]},
                                          "cover": {"hosted": "cover.jpg"}})
    a = sdk.pages.retrieve(page_id=ARIA)
    b = sdk.data_sources.query(data_source_id=CHARACTERS_DS)["results"]
    b = next(p for p in b if p["id"] == ARIA)
    fa, fb = a["properties"]["Portrait"]["files"][0], b["properties"]["Portrait"]["files"][0]
    assert fa.keys() == want.keys() and fa["file"].keys() == want["file"].keys()
    assert (fa["name"], fa["type"]) == ("nr.png", "file")
    (pa, qa), (pb, qb), (pw, qw) = url_parts(fa["file"]["url"]), url_parts(fb["file"]["url"]), url_parts(want["file"]["url"])
    assert [k for k, _ in qa] == [k for k, _ in qw], "the recorded parameters, in the recorded order"
    assert pw.split("/")[:3] == pa.split("/")[:3] and pa.endswith("/nr.png") and len(pa.split("/")) == len(pw.split("/"))
    assert pa == pb, "the path (the file's identity) is stable"
    assert dict(qa)["X-Amz-Signature"] != dict(qb)["X-Amz-Signature"], "signed anew on every read"
    assert dict(qa)["X-Amz-Expires"] == dict(qw)["X-Amz-Expires"] == "3600"
    assert a["properties"]["Portrait"]["files"][1]["type"] == "external"
    assert a["cover"]["type"] == "file" and a["cover"]["file"].keys() == want["file"].keys()
    item = sdk.pages.properties.retrieve(page_id=ARIA, property_id=a["properties"]["Portrait"]["id"])
    assert url_parts(item["files"][0]["file"]["url"])[0] == pa


def test_an_expired_hosted_url_is_replaced_by_a_fresh_one_on_the_next_read(sdk, fake):
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"Portrait": [{"hosted": "nr.png"}]}})
    assert fake.admin("POST", "config", {"file_url_ttl_s": 1})["file_url_ttl_s"] == 1
    first = sdk.pages.retrieve(page_id=ARIA)["properties"]["Portrait"]["files"][0]["file"]
    assert dict(url_parts(first["url"])[1])["X-Amz-Expires"] == "1"
    expiry = datetime.datetime.fromisoformat(first["expiry_time"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expiry - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 0.1)
    assert expiry < datetime.datetime.now(datetime.timezone.utc), "expired"
    fresh = sdk.pages.retrieve(page_id=ARIA)["properties"]["Portrait"]["files"][0]["file"]
    assert fresh["expiry_time"] > first["expiry_time"] and fresh["url"] != first["url"]
    assert url_parts(fresh["url"])[0] == url_parts(first["url"])[0]


def test_hosted_image_blocks_like_the_recording(sdk, fake):
    recorded = real("ultimate-notion__block-children-36-blocks-unsupported__2025-09-03.json")
    want = next(b for b in recorded["results"] if b["type"] == "image")
    fake.admin("PATCH", f"pages/{ARIA}", {"children": [{"type": "image", "hosted": "1004-300x300.jpg"}]})
    got = sdk.blocks.children.list(block_id=ARIA)["results"][0]
    assert got.keys() == want.keys()
    assert got["image"].keys() == want["image"].keys() and got["image"]["type"] == "file"
    assert got["image"]["file"].keys() == want["image"]["file"].keys()


def test_parents_like_the_recordings(sdk):
    retrieved = real("notion_ruby_mapping__page-retrieve-21-types-hosted-file__2025-09-03.json")
    listed = real("notion_ruby_mapping__data-source-query-same-page-8-months-later__2025-09-03.json")["results"][0]
    page = sdk.pages.retrieve(page_id=ARIA)
    assert page["parent"].keys() == retrieved["parent"].keys()
    row = next(p for p in sdk.data_sources.query(data_source_id=CHARACTERS_DS)["results"] if p["id"] == ARIA)
    assert row["parent"] == {"type": "data_source_id", "data_source_id": CHARACTERS_DS, "database_id": CHARACTERS}
    assert row["parent"].keys() == listed["parent"].keys()
    assert row.keys() == listed.keys()
    assert page.keys() - {"request_id"} == listed.keys()
    ds = sdk.data_sources.retrieve(data_source_id=CHARACTERS_DS)
    rec = real("notion-sdk-py__data-source-retrieve__2025-09-03.json")
    assert ds.keys() == rec.keys()
    assert ds["parent"] == {"type": "database_id", "database_id": CHARACTERS}
    assert ds["parent"].keys() == rec["parent"].keys()
    db = sdk.databases.retrieve(database_id=CHARACTERS)
    assert db.keys() == real("notion-sdk-py__database-retrieve-data_sources__2025-09-03.json").keys()


def test_now_formulas_are_computed_at_every_read(sdk, fake):
    schema = real("notion_ruby_mapping__data-source-retrieve-now-formula__2025-09-03.json")["properties"]["FormulaTitle"]
    value = real("notion_ruby_mapping__page-retrieve-21-types-hosted-file__2025-09-03.json")["properties"]["FormulaTitle"]
    fake.admin("POST", f"data_sources/{CHARACTERS_DS}/schema", {"add": {"Now": {"type": "formula", "expression": "now()"}}})
    ds = sdk.data_sources.retrieve(data_source_id=CHARACTERS_DS)
    assert ds["properties"]["Now"].keys() == schema.keys() and ds["properties"]["Now"]["formula"] == schema["formula"]
    got = sdk.pages.retrieve(page_id=ARIA)["properties"]["Now"]
    assert got.keys() == value.keys() and got["formula"].keys() == value["formula"].keys()
    assert got["formula"]["date"].keys() == value["formula"]["date"].keys()
    start = got["formula"]["date"]["start"]
    assert len(start) == len(value["formula"]["date"]["start"]) and start.endswith(":00.000+00:00")
    assert start[:16] in (time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - d)) for d in (0, 60))
    fake.admin("POST", "config", {"now_formula_precision_ms": 1})
    a = sdk.pages.retrieve(page_id=ARIA)["properties"]["Now"]["formula"]["date"]["start"]
    time.sleep(0.01)
    assert sdk.pages.retrieve(page_id=ARIA)["properties"]["Now"]["formula"]["date"]["start"] != a


def test_rollups_through_property_items_like_the_recording(sdk):
    want = real("ultimate-notion__property-item-rollup-empty-results__2025-09-03.json")
    page = sdk.pages.retrieve(page_id=CIRRUS)
    rollup = page["properties"]["Character count"]
    item = sdk.pages.properties.retrieve(page_id=CIRRUS, property_id=rollup["id"])
    assert item.keys() == want.keys()
    assert item["property_item"].keys() == want["property_item"].keys()
    assert (item["object"], item["type"], item["results"], item["has_more"]) == ("list", "property_item", [], False)
    assert item["property_item"]["rollup"] == rollup["rollup"]


def test_title_and_rich_text_complete_relation_cut_like_the_recordings(sdk, fake):
    want = real("ultimate-notion__page-100-rich-text-items-with-mentions__2025-09-03.json")["properties"]
    rel = real("ultimate-notion__page-relation-25-has_more__2025-09-03.json")["properties"]["Items Purchased"]
    parts = [f"word {i} " for i in range(100)]
    ids = [f"f0000000-0000-4000-8000-{i:012d}" for i in range(30)]
    fake.admin("PATCH", f"pages/{ARIA}", {"properties": {"Name": parts, "Description": parts, "World": ids}})
    page = sdk.pages.retrieve(page_id=ARIA)["properties"]
    assert len(page["Name"]["title"]) == len(want["Name"]["title"]) == 100
    assert len(page["Description"]["rich_text"]) == len(want["Description"]["rich_text"]) == 100
    assert page["Name"].keys() == want["Name"].keys() and page["Description"].keys() == want["Description"].keys()
    assert page["World"].keys() == rel.keys() and len(page["World"]["relation"]) == 25 and page["World"]["has_more"]
    items = collect_paginated_api(sdk.pages.properties.retrieve, page_id=ARIA, property_id="title", page_size=40)
    assert "".join(i["title"]["plain_text"] for i in items) == "".join(parts)


def test_latency_flag_and_config_delay_responses_and_overlap(fake):
    import harness
    port = harness.free_port()
    proc = subprocess.Popen([str(harness.FAKE_BIN), "--port", str(port), "--workspace", str(harness.SAMPLE),
                             "--latency-ms", "250"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        slow = Client(auth="ntn_demo_alice", base_url=f"http://127.0.0.1:{port}", retry=False)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/health", timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        t0 = time.perf_counter()
        slow.pages.retrieve(page_id=ARIA)
        assert time.perf_counter() - t0 >= 0.25
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda: Client(auth="ntn_demo_alice", base_url=f"http://127.0.0.1:{port}",
                                                          retry=False).databases.retrieve(database_id=CHARACTERS))
                   for _ in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        took = time.perf_counter() - t0
        assert 0.25 <= took < 1.2, f"6 concurrent requests took {took:.2f} s"
    finally:
        proc.terminate()
        proc.wait(5)
    # On the shared fake, through the admin API.
    fake.reset()
    assert fake.admin("POST", "config", {"latency_ms": 150, "latency_jitter_ms": 50})["latency_ms"] == 150
    t0 = time.perf_counter()
    raw(fake, "GET", f"/v1/databases/{CHARACTERS}")
    assert time.perf_counter() - t0 >= 0.15
    fake.admin("POST", "config", {"latency_ms": 0, "latency_jitter_ms": 0})


def test_webhook_events_like_the_docs_examples(fake):
    fake.reset()
    doc = real("developers.notion.com__webhook-data_source.schema_updated__2025-09-03.docs-example.json")
    ev = fake.admin("POST", "webhook", {"type": "data_source.schema_updated", "entity_id": CHARACTERS_DS,
                                        "secret": "secret_abc", "updated_properties": doc["data"]["updated_properties"]})
    assert ev["signature"] == "sha256=" + hmac.new(b"secret_abc", ev["body"].encode(), hashlib.sha256).hexdigest()
    e = ev["event"]
    assert doc.keys() - {"accessible_by"} <= e.keys()  # accessible_by: public integrations only
    assert e["entity"] == {"id": CHARACTERS_DS, "type": "data_source"}
    assert e["data"]["parent"] == {"id": CHARACTERS, "type": "database"}
    assert e["data"]["updated_properties"] == doc["data"]["updated_properties"]
    e = fake.admin("POST", "webhook", {"type": "data_source.content_updated", "entity_id": CHARACTERS})["event"]
    assert e["entity"] == {"id": CHARACTERS_DS, "type": "data_source"} and "updated_blocks" in e["data"]
    page = fake.admin("POST", "webhook", {"type": "page.properties_updated", "entity_id": ARIA})["event"]
    doc = real("developers.notion.com__webhook-page.properties_updated__docs-example.json")
    assert doc.keys() - {"accessible_by"} <= page.keys() and page["data"].keys() == doc["data"].keys()
    assert page["data"]["parent"] == {"id": CHARACTERS, "type": "database", "data_source_id": CHARACTERS_DS}
    e = fake.admin("POST", "webhook", {"type": "page.created", "entity_id": ARIA, "parent_type": "data_source"})["event"]
    assert e["data"] == {"parent": {"id": CHARACTERS_DS, "type": "data_source"}}
