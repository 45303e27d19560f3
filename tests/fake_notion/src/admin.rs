//! The admin API tests drive the fake with (no auth; the fake listens on 127.0.0.1 only).
//! See tests/fake_notion/README.md for every route.

use crate::api::{Control, Fake, Fault};
use crate::http::{Request, Response};
use crate::store::{self, norm_id, parse_time, Store};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn ok(v: Value) -> Response {
    Response::json(200, &v)
}
fn bad(msg: &str) -> Response {
    Response::json(400, &json!({"error": msg}))
}

/// HMAC-SHA256 of the raw body keyed by the verification token, as Notion signs webhooks.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn handle(fake: &Fake, req: &Request) -> Response {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return bad(&format!("invalid JSON: {e}")),
        }
    };
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), &parts[1..]) {
        ("GET", ["health"]) => ok(json!({"ok": true})),
        ("POST", ["reset"]) | ("POST", ["workspace"]) => match Store::load(&body) {
            Ok(st) => {
                *fake.store.lock().unwrap() = st;
                let mut ctl = fake.ctl.lock().unwrap();
                *ctl = Control::from_settings(&fake.settings);
                ok(json!({"ok": true}))
            }
            Err(e) => bad(&e),
        },
        ("POST", ["load"]) => {
            let Some(path) = body.get("path").and_then(|p| p.as_str()) else {
                return bad("path required");
            };
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
                .and_then(|v| Store::load(&v))
            {
                Ok(mut st) => {
                    let mut old = fake.store.lock().unwrap();
                    st.render = old.render.clone();
                    *old = st;
                    ok(json!({"ok": true}))
                }
                Err(e) => bad(&e),
            }
        }
        ("GET", ["state"]) => {
            let st = fake.store.lock().unwrap();
            let dbs: Vec<Value> = st
                .database_order
                .iter()
                .map(|id| {
                    let db = &st.databases[id];
                    json!({"id": id, "title": db.title, "data_sources": db.data_sources.iter().map(|d| json!({
                        "id": d, "name": st.data_sources[d].name,
                        "pages": st.ds_pages[d].len(),
                        "live_pages": st.ds_pages[d].iter().filter(|p| !st.pages[*p].in_trash).count(),
                        "properties": st.data_sources[d].schema.iter().map(|s| json!({"id": s.id, "name": s.name, "type": s.kind})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>()})
                })
                .collect();
            ok(
                json!({"databases": dbs, "tokens": st.tokens.keys().collect::<Vec<_>>(), "pages": st.pages.len(),
                    "standalone_pages": st.wiki.len(),
                    "live_standalone_pages": st.wiki.values().filter(|w| !w.in_trash).count(),
                    "blocks": st.blocks.len()}),
            )
        }
        ("POST", ["data_sources", ds, "pages"]) => {
            let mut st = fake.store.lock().unwrap();
            match st.create_page(&norm_id(ds), &body) {
                Ok(id) => {
                    let p = st.pages[&id].clone();
                    ok(st.page_json(&p, "2025-09-03", None, false))
                }
                Err(e) => bad(&e),
            }
        }
        ("POST", ["data_sources", ds, "generate"]) => generate(fake, &norm_id(ds), &body),
        ("POST", ["data_sources", ds, "schema"]) => schema_change(fake, &norm_id(ds), &body),
        ("POST", ["pages"]) => {
            let mut st = fake.store.lock().unwrap();
            match st.create_wiki_page(&body, None, true) {
                Ok(id) => {
                    let w = st.wiki[&id].clone();
                    ok(st.wiki_json(&w, "2025-09-03"))
                }
                Err(e) => bad(&e),
            }
        }
        ("PATCH", ["pages", id]) => {
            let id = norm_id(id);
            let mut st = fake.store.lock().unwrap();
            if st.wiki.contains_key(&id) {
                return patch_wiki(&mut st, &id, &body);
            }
            if body.get("move_to").is_some_and(|m| m.is_object()) {
                return bad("a database page moves to another data source (`move_to`: its id), not under a page");
            }
            if body.get("title").is_some() {
                return bad(
                    "`title` is for standalone pages; a database page's title is in `properties`",
                );
            }
            if !st.pages.contains_key(&id) {
                return Response::json(404, &json!({"error": "no such page"}));
            }
            if let Some(props) = body.get("properties").and_then(|p| p.as_object()) {
                if let Err(e) = st.set_values(&id, props) {
                    return bad(&e);
                }
            }
            if let Some(children) = body.get("children").and_then(|c| c.as_array()) {
                let parent = json!({"type":"page_id","page_id":id});
                let ids = st.create_blocks(&parent, children, store::now_ms());
                st.pages.get_mut(&id).unwrap().children = ids;
            }
            let edited = body
                .get("last_edited_time")
                .and_then(|t| t.as_str())
                .and_then(parse_time)
                .unwrap_or_else(store::now_ms);
            let p = st.pages.get_mut(&id).unwrap();
            if let Some(t) = body.get("in_trash").and_then(|t| t.as_bool()) {
                p.in_trash = t;
            }
            if let Some(ds) = body.get("move_to").and_then(|t| t.as_str()) {
                p.data_source_id = norm_id(ds);
            }
            p.edited_ms = edited;
            let moved = p.data_source_id.clone();
            if !st
                .ds_pages
                .get(&moved)
                .map(|l| l.contains(&id))
                .unwrap_or(true)
            {
                st.ds_pages.get_mut(&moved).unwrap().push(id.clone());
            }
            for key in ["cover", "icon"] {
                if let Some(v) = body.get(key) {
                    st.set_media(&id, key, v);
                }
            }
            st.version += 1;
            let p = st.pages[&id].clone();
            ok(st.page_json(&p, "2025-09-03", None, false))
        }
        ("POST", ["faults"]) => {
            let mut ctl = fake.ctl.lock().unwrap();
            ctl.faults = body
                .get("faults")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
                .map(Fault::from_json)
                .collect();
            if let Some(seed) = body.get("seed").and_then(|s| s.as_u64()) {
                ctl.set_seed(seed);
            }
            ok(json!({"faults": ctl.faults.len()}))
        }
        ("DELETE", ["faults"]) => {
            fake.ctl.lock().unwrap().faults.clear();
            ok(json!({"faults": 0}))
        }
        ("POST", ["config"]) => {
            // The store before the control: the order every route locks them in.
            let render = {
                let mut st = fake.store.lock().unwrap();
                if let Some(t) = body.get("file_url_ttl_s").and_then(|v| v.as_i64()) {
                    st.render.file_url_ttl_s = t.max(0);
                }
                if let Some(p) = body
                    .get("now_formula_precision_ms")
                    .and_then(|v| v.as_i64())
                {
                    st.render.now_precision_ms = p.max(1);
                }
                st.render.clone()
            };
            let mut ctl = fake.ctl.lock().unwrap();
            if let Some(r) = body.get("rate_limit_rps").and_then(|v| v.as_f64()) {
                ctl.rps = r;
                ctl.burst = r;
                ctl.reset_buckets();
            }
            if let Some(b) = body.get("rate_limit_burst").and_then(|v| v.as_f64()) {
                ctl.burst = b;
                ctl.reset_buckets();
            }
            if let Some(c) = body.get("query_cap").and_then(|v| v.as_u64()) {
                ctl.query_cap = c as usize;
            }
            if let Some(ms) = body.get("latency_ms").and_then(|v| v.as_u64()) {
                ctl.latency_ms = ms;
            }
            if let Some(ms) = body.get("latency_jitter_ms").and_then(|v| v.as_u64()) {
                ctl.latency_jitter_ms = ms;
            }
            ok(
                json!({"rate_limit_rps": ctl.rps, "rate_limit_burst": ctl.burst, "query_cap": ctl.query_cap,
                "latency_ms": ctl.latency_ms, "latency_jitter_ms": ctl.latency_jitter_ms,
                "file_url_ttl_s": render.file_url_ttl_s,
                "now_formula_precision_ms": render.now_precision_ms}),
            )
        }
        ("GET", ["requests"]) => {
            let ctl = fake.ctl.lock().unwrap();
            let since: usize = req
                .query_one("since")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let list: Vec<Value> = ctl.log.iter().skip(since).cloned().collect();
            ok(json!({"count": ctl.log.len(), "requests": list}))
        }
        ("DELETE", ["requests"]) => {
            fake.ctl.lock().unwrap().log.clear();
            ok(json!({"count": 0}))
        }
        ("POST", ["webhook"]) => webhook(fake, &body),
        _ => Response::json(
            404,
            &json!({"error": format!("no admin route {} {}", req.method, req.path)}),
        ),
    }
}

/// `PATCH /admin/pages/{id}` of a standalone page: `{title?, properties?: {"title": …}, children?,
/// in_trash?, last_edited_time?, move_to?: {"page_id": P} | {"workspace": true} | P, cover?, icon?}`.
/// Bumps this page's `last_edited_time` (to now unless given), not its parent's.
fn patch_wiki(st: &mut Store, id: &str, body: &Value) -> Response {
    let mut title = body.get("title").cloned();
    if let Some(props) = body.get("properties").and_then(|p| p.as_object()) {
        for (k, v) in props {
            if k != "title" {
                return bad(&format!("{k} is not a property that exists."));
            }
            title = Some(v.clone());
        }
    }
    if let Some(t) = &title {
        if !(t.is_string() || t.is_array()) {
            return bad("title should be a string or an array of rich text items");
        }
    }
    let new_parent = match body.get("move_to") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(Some(norm_id(p))),
        Some(m) if m.get("workspace").and_then(|w| w.as_bool()) == Some(true) => Some(None),
        Some(m) => match m.get("page_id").and_then(|p| p.as_str()) {
            Some(p) => Some(Some(norm_id(p))),
            None => return bad("move_to should be {\"page_id\": P} or {\"workspace\": true}"),
        },
    };
    if let Some(Some(p)) = &new_parent {
        if !st.page_exists(p) {
            return bad(&format!("no page {p}"));
        }
        if p == id || st.ancestors(p).is_some_and(|a| a.iter().any(|x| x == id)) {
            return bad("a page cannot move under itself or one of its sub-pages");
        }
    }
    if let Some(children) = body.get("children").and_then(|c| c.as_array()) {
        let parent = json!({"type":"page_id","page_id":id});
        let ids = st.create_blocks(&parent, children, store::now_ms());
        st.wiki.get_mut(id).unwrap().children = ids;
    }
    let edited = body
        .get("last_edited_time")
        .and_then(|t| t.as_str())
        .and_then(parse_time)
        .unwrap_or_else(store::now_ms);
    let w = st.wiki.get_mut(id).unwrap();
    if let Some(t) = &title {
        w.title = store::rich_texts(t);
    }
    if let Some(t) = body.get("in_trash").and_then(|t| t.as_bool()) {
        w.in_trash = t;
    }
    if let Some(p) = new_parent {
        w.parent_page_id = p;
    }
    w.edited_ms = edited;
    for key in ["cover", "icon"] {
        if let Some(v) = body.get(key) {
            let value = store::media_value(v, &format!("{id}:{key}"));
            let w = st.wiki.get_mut(id).unwrap();
            if key == "cover" {
                w.cover = value;
            } else {
                w.icon = value;
            }
        }
    }
    st.version += 1;
    let w = st.wiki[id].clone();
    ok(st.wiki_json(&w, "2025-09-03"))
}

/// Bulk pages for benchmarks: `{"count":N, "prefix":"Page", "properties":{...}, "created_time":iso,
/// "step_ms":n, "children":[blocks]}`. Names are `<prefix> <i>`.
fn generate(fake: &Fake, ds: &str, body: &Value) -> Response {
    let count = body.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
    let prefix = body
        .get("prefix")
        .and_then(|c| c.as_str())
        .unwrap_or("Page");
    let start = body
        .get("created_time")
        .and_then(|t| t.as_str())
        .and_then(parse_time)
        .unwrap_or_else(store::now_ms);
    let step = body.get("step_ms").and_then(|c| c.as_i64()).unwrap_or(1000);
    let mut st = fake.store.lock().unwrap();
    let Some(title) = st
        .data_sources
        .get(ds)
        .and_then(|d| d.schema.iter().find(|s| s.kind == "title"))
        .map(|s| s.name.clone())
    else {
        return bad("no such data source");
    };
    let base = st.ds_pages[ds].len();
    let mut first = None;
    for i in 0..count {
        let mut props = body.get("properties").cloned().unwrap_or(json!({}));
        props[title.as_str()] = json!(format!("{prefix} {}", base as u64 + i));
        let t = store::iso(start + i as i64 * step);
        let mut spec = json!({"properties": props, "created_time": t, "last_edited_time": t});
        if let Some(c) = body.get("children") {
            spec["children"] = c.clone();
        }
        match st.create_page(ds, &spec) {
            Ok(id) => {
                first.get_or_insert(id);
            }
            Err(e) => return bad(&e),
        }
    }
    ok(json!({"created": count, "first_id": first}))
}

/// `{"rename":{"Old":"New"}, "remove":["Name"], "add":{"Name":{"type":"rich_text"}}}`
fn schema_change(fake: &Fake, ds: &str, body: &Value) -> Response {
    let mut st = fake.store.lock().unwrap();
    if !st.data_sources.contains_key(ds) {
        return bad("no such data source");
    }
    let page_ids = st.ds_pages[ds].clone();
    if let Some(m) = body.get("rename").and_then(|r| r.as_object()) {
        for (old, new) in m {
            let new = new.as_str().unwrap_or(old).to_string();
            if let Some(sp) = st
                .data_sources
                .get_mut(ds)
                .unwrap()
                .schema
                .iter_mut()
                .find(|s| &s.name == old)
            {
                sp.name = new.clone();
            }
            for id in &page_ids {
                let p = st.pages.get_mut(id).unwrap();
                if let Some(v) = p.values.remove(old) {
                    p.values.insert(new.clone(), v);
                }
            }
        }
    }
    if let Some(list) = body.get("remove").and_then(|r| r.as_array()) {
        for name in list.iter().filter_map(|n| n.as_str()) {
            st.data_sources
                .get_mut(ds)
                .unwrap()
                .schema
                .retain(|s| s.name != name);
            for id in &page_ids {
                st.pages.get_mut(id).unwrap().values.remove(name);
            }
        }
    }
    if let Some(m) = body.get("add").and_then(|r| r.as_object()) {
        // Reuse the seed loader for the id and config of new properties.
        let seed = json!({"databases":[{"id": "00000000-0000-4000-8000-000000000000", "data_sources":[{"id": ds, "properties": m}]}]});
        if let Ok(tmp) = Store::load(&seed) {
            let added: Vec<_> = tmp.data_sources[ds]
                .schema
                .iter()
                .filter(|s| s.kind != "title" || m.contains_key(&s.name))
                .cloned()
                .collect();
            st.data_sources.get_mut(ds).unwrap().schema.extend(added);
        }
    }
    st.data_sources.get_mut(ds).unwrap().edited_ms = store::now_ms();
    st.version += 1;
    let ds = &st.data_sources[ds];
    ok(st.data_source_json(ds))
}

/// Builds a signed webhook event the way Notion sends it:
/// `{"type":"page.properties_updated","entity_id":"…","secret":"…","id"?,"timestamp"?,"attempt_number"?,
/// "api_version"?, "parent_type"?, "parent"?, "updated_properties"?, "updated_blocks"?}`.
///
/// `data.parent` (Notion's webhook reference; upgrade guide 2025-09-03 step 6, tests/fixtures' page.created):
/// - page in a data source: `{"id": <database>, "type": "database", "data_source_id": <data source>}`
///   (no `data_source_id` when `api_version` is 2022-06-28); `parent_type: "data_source"` gives
///   `{"id": <data source>, "type": "data_source"}` instead.
/// - data source (`data_source.*`; a database id given for one names its first data source):
///   `{"id": <database>, "type": "database"}`; `parent_type: "page"` gives the page the database is in
///   (as the docs example of `data_source.schema_updated` shows).
/// - database: its parent page, or `{"id": <workspace>, "type": "space"}`.
/// - `parent`: any object, verbatim.
fn webhook(fake: &Fake, body: &Value) -> Response {
    let kind = body
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("page.properties_updated");
    let mut entity = body
        .get("entity_id")
        .and_then(|t| t.as_str())
        .map(norm_id)
        .unwrap_or_default();
    let secret = body.get("secret").and_then(|t| t.as_str()).unwrap_or("");
    let api_version = body
        .get("api_version")
        .and_then(|t| t.as_str())
        .unwrap_or("2025-09-03");
    let parent_type = body.get("parent_type").and_then(|t| t.as_str());
    let family = kind.split('.').next().unwrap_or("");
    let st = fake.store.lock().unwrap();
    if family == "data_source" {
        if let Some(db) = st.databases.get(&entity) {
            if let Some(first) = db.data_sources.first() {
                entity = first.clone();
            }
        }
    }
    let container_parent = |db_id: &str| match st.databases.get(db_id).map(|d| &d.parent) {
        Some(p) if p.get("type").and_then(|t| t.as_str()) == Some("page_id") => {
            json!({"id": p["page_id"], "type": "page"})
        }
        _ => json!({"id": store::workspace_id(), "type": "space"}),
    };
    let (entity_type, parent) = if let Some(w) = st.wiki.get(&entity) {
        // A standalone page: its parent page, or the workspace (as for databases).
        let parent = match &w.parent_page_id {
            Some(p) => json!({"id": p, "type": "page"}),
            None => json!({"id": store::workspace_id(), "type": "space"}),
        };
        ("page", parent)
    } else if let Some(p) = st.pages.get(&entity) {
        let ds = &st.data_sources[&p.data_source_id];
        let parent = match parent_type {
            Some("data_source") => json!({"id": ds.id, "type": "data_source"}),
            _ if api_version == "2022-06-28" => json!({"id": ds.database_id, "type": "database"}),
            _ => json!({"id": ds.database_id, "type": "database", "data_source_id": ds.id}),
        };
        ("page", parent)
    } else if let Some(ds) = st.data_sources.get(&entity) {
        let parent = match parent_type {
            Some("page") => match container_parent(&ds.database_id) {
                p if p["type"] == "page" => p,
                _ => {
                    json!({"id": store::uuid_from(&format!("page-of:{}", ds.database_id)), "type": "page"})
                }
            },
            _ => json!({"id": ds.database_id, "type": "database"}),
        };
        ("data_source", parent)
    } else if st.databases.contains_key(&entity) {
        ("database", container_parent(&entity))
    } else {
        let t = match family {
            "page" | "block" | "comment" | "data_source" | "database" => family,
            _ => "database",
        };
        (t, json!({"id": store::workspace_id(), "type": "space"}))
    };
    let parent = body.get("parent").cloned().unwrap_or(parent);
    let mut data = json!({"parent": parent});
    if kind.ends_with(".properties_updated") || kind.ends_with(".schema_updated") {
        data["updated_properties"] = json!([]);
    }
    if kind.ends_with(".content_updated") {
        data["updated_blocks"] = json!([]);
    }
    for key in ["updated_properties", "updated_blocks"] {
        if let Some(v) = body.get(key) {
            data[key] = v.clone();
        }
    }
    let now = store::now_ms();
    let event = json!({
        "id": body.get("id").cloned().unwrap_or_else(|| json!(store::uuid_from(&format!("evt:{entity}:{kind}:{now}")))),
        "timestamp": body.get("timestamp").cloned().unwrap_or_else(|| json!(store::iso(now))),
        "workspace_id": store::workspace_id(),
        "workspace_name": "notion_sync fake workspace",
        "subscription_id": store::uuid_from("subscription"),
        "integration_id": store::uuid_from("integration"),
        "type": kind,
        "authors": [{"id": st.bot_id, "type": "bot"}],
        "attempt_number": body.get("attempt_number").cloned().unwrap_or(json!(1)),
        "api_version": api_version,
        "entity": {"id": entity, "type": entity_type},
        "data": data,
    });
    let raw = serde_json::to_string(&event).unwrap();
    ok(json!({"body": raw, "signature": sign(secret, raw.as_bytes()), "event": event}))
}
