"""Baseline for the benchmark (issue #9): the sync script an app developer writes today with the official
Python SDK (notion-client) and psycopg, run by benches/bench.py on the same fake Notion and cluster as us.

Written the plain way, neither sabotaged nor tuned:
- `Client(auth=token, base_url=...)` with the SDK defaults (Notion-Version 2025-09-03, 2 retries on
  429/5xx). base_url is the API root *without* `/v1`: the SDK appends `/v1/` itself.
- `databases.retrieve` -> first data source -> `data_sources.query` with page_size 100 and start_cursor
  until has_more is false (the SDK's own `iterate_paginated_api` loop, written out to get batches).
- Each page's properties flattened to plain JSON values (title text, select name, date start...).
- Each batch of 100 upserted with `cursor.executemany(INSERT ... ON CONFLICT DO UPDATE)` and committed:
  the textbook psycopg 3 upsert (psycopg pipelines executemany, so a batch is about one round trip).
- Unchanged re-sync = run it again (it re-reads and re-writes everything). Incremental = a
  `last_edited_time on_or_after` filter from max(stored last_edited_time) - 1 minute, since Notion
  rounds that timestamp to the minute.
- Not done, as in most such scripts: deletions/trash, the 10,000-results-per-query cap, page content.

`requests` counts every HTTP request the SDK sends (retries included) with an httpx event hook.
"""
import datetime
import time

import httpx
import psycopg
from notion_client import Client
from psycopg.types.json import Jsonb

DDL = """CREATE SCHEMA IF NOT EXISTS baseline;
CREATE TABLE IF NOT EXISTS baseline.notion_pages (page_id text PRIMARY KEY, title text, properties jsonb,
    url text, last_edited_time timestamptz, synced_at timestamptz)"""
UPSERT = """INSERT INTO baseline.notion_pages (page_id, title, properties, url, last_edited_time, synced_at)
VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (page_id) DO UPDATE SET title = excluded.title,
    properties = excluded.properties, url = excluded.url, last_edited_time = excluded.last_edited_time,
    synced_at = excluded.synced_at"""


def plain(prop):
    """A property value as plain JSON: what the app reads, not Notion's nested shape."""
    kind = prop["type"]
    v = prop.get(kind)
    if kind in ("title", "rich_text"):
        return "".join(t["plain_text"] for t in v)
    if kind in ("select", "status"):
        return v and v["name"]
    if kind == "multi_select":
        return [o["name"] for o in v]
    if kind in ("people", "relation"):
        return [x["id"] for x in v]
    if kind == "date":
        return v and v["start"]
    if kind == "formula":
        return v.get(v["type"])
    if kind == "files":
        return [f.get(f["type"], {}).get("url") for f in v]
    return v  # number, checkbox, url, email, phone_number, created_time, unique_id...


def row(page):
    props = {name: plain(p) for name, p in page["properties"].items()}
    title = next((props[n] for n, p in page["properties"].items() if p["type"] == "title"), None)
    return page["id"], title, Jsonb(props), page["url"], page["last_edited_time"]


def body(notion, block_id):
    """The page's text as users write it: every block's children, one request per block with
    children, in order, one request after the other."""
    lines, cursor = [], None
    while True:
        resp = notion.blocks.children.list(block_id=block_id, start_cursor=cursor, page_size=100)
        for b in resp["results"]:
            rich = b.get(b["type"], {}).get("rich_text", [])
            lines.append("".join(t.get("plain_text", "") for t in rich))
            if b.get("has_children"):
                lines.append(body(notion, b["id"]))
        if not resp["has_more"]:
            return "\n".join(lines)
        cursor = resp["next_cursor"]


def sync(base_url, token, database_id, dsn, incremental=False, content=False):
    """One run; returns {pages, seconds, requests}. `incremental` only fetches recently edited pages;
    `content` also reads every page's blocks (the text is read, not stored: only the requests count)."""
    requests = 0

    def count(_request):
        nonlocal requests
        requests += 1

    with psycopg.connect(dsn) as conn:
        conn.execute(DDL)
        conn.commit()
        t0 = time.perf_counter()
        notion = Client(auth=token, base_url=base_url, client=httpx.Client(event_hooks={"request": [count]}))
        ds_id = notion.databases.retrieve(database_id=database_id)["data_sources"][0]["id"]
        query = {"data_source_id": ds_id, "page_size": 100}
        since = conn.execute("SELECT max(last_edited_time) FROM baseline.notion_pages").fetchone()[0]
        if incremental and since:
            since -= datetime.timedelta(minutes=1)
            query["filter"] = {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since.isoformat()}}
        pages, cursor = 0, None
        while True:
            resp = notion.data_sources.query(**query, start_cursor=cursor)
            if content:
                for p in resp["results"]:
                    body(notion, p["id"])
            with conn.cursor() as cur:
                cur.executemany(UPSERT, [row(p) for p in resp["results"] if p["object"] == "page"])
            conn.commit()
            pages += len(resp["results"])
            if not resp["has_more"]:
                break
            cursor = resp["next_cursor"]
        notion.close()
        return {"pages": pages, "seconds": time.perf_counter() - t0, "requests": requests}


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for a in ("base_url", "token", "database_id", "dsn"):
        ap.add_argument(a)
    ap.add_argument("--incremental", action="store_true")
    a = ap.parse_args()
    print(json.dumps(sync(a.base_url, a.token, a.database_id, a.dsn, a.incremental)))
