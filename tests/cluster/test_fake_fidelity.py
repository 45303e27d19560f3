"""The fake Notion checked with the official Python SDK (notion-client) and raw HTTP: if the real
client can walk it, our extension's tests against it mean something."""
import json
import time
import urllib.error
import urllib.request

import pytest
from notion_client import APIResponseError, Client
from notion_client.helpers import collect_paginated_api, iterate_paginated_api

CHARACTERS = "a1b2c3d4-0000-4000-8000-0000000000c1"
CHARACTERS_DS = "d5000000-0000-4000-8000-0000000000c1"
STORY = "50000000-0000-4000-8000-000000000001"
ARIA = "c0000000-0000-4000-8000-000000000001"


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
    assert page["parent"] == {"type": "data_source_id", "data_source_id": CHARACTERS_DS, "database_id": CHARACTERS}
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
