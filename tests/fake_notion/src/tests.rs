//! The fake against the shapes recorded from the live API (../shared/notion-fixtures/real): each
//! test starts a server on a free port and talks HTTP to it, as clients do.

use crate::api::{Fake, Settings};
use crate::{admin, http, store};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DB: &str = "a1b2c3d4-0000-4000-8000-0000000000a1";
const DS: &str = "d5000000-0000-4000-8000-0000000000a1";
const PAGE: &str = "c0000000-0000-4000-8000-0000000000a1";
const PARENT_PAGE: &str = "90000000-0000-4000-8000-0000000000a1";
const TOKEN: &str = "ntn_test";

fn seed() -> Value {
    let segments: Vec<Value> = (0..100).map(|i| json!(format!("part {i} "))).collect();
    let rel: Vec<Value> = (0..40)
        .map(|i| json!(format!("f0000000-0000-4000-8000-{i:012}")))
        .collect();
    let users: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("6f1c2a4e-0000-4000-8000-{i:012}"), "name": format!("U{i}")}))
        .collect();
    let people: Vec<Value> = users.iter().map(|u| u["id"].clone()).collect();
    json!({
        "users": users,
        "tokens": {TOKEN: ["*"]},
        "databases": [{
            "id": DB, "title": "Things", "parent_page_id": PARENT_PAGE,
            "data_sources": [{
                "id": DS, "name": "Things",
                "properties": {
                    "Name": {"type": "title"},
                    "Notes": {"type": "rich_text"},
                    "Files": {"type": "files"},
                    "Age": {"type": "formula", "expression": "now()"},
                    "Words": {"type": "formula", "expression": "length(prop(\"Notes\"))"},
                    "Count": {"type": "rollup", "function": "count", "relation_property_name": "Links"},
                    "Links": {"type": "relation"},
                    "Who": {"type": "people"}
                },
                "pages": [{
                    "id": PAGE, "created_time": "2026-01-05T09:10:00Z",
                    "cover": {"hosted": "cover.jpg"}, "icon": "🚀",
                    "properties": {
                        "Name": segments.clone(), "Notes": segments,
                        "Files": [{"hosted": "nr.png"}, {"name": "Report Q1.pdf", "hosted": true},
                                  "https://example.com/a.png"],
                        "Words": 42, "Count": 7, "Links": rel, "Who": people
                    },
                    "children": [
                        {"type": "image", "hosted": "pic.jpg"},
                        {"type": "pdf", "hosted": "doc.pdf"},
                        {"type": "image", "url": "https://example.com/ext.png"}
                    ]
                }]
            }]
        }]
    })
}

fn spawn_with(seed: Value, settings: Settings) -> String {
    let st = store::Store::load(&seed).expect("seed");
    let fake = Arc::new(Fake::new(st, settings));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handler = Arc::new(move |req| fake.handle(req));
    std::thread::spawn(move || http::serve(listener, handler));
    addr
}

fn spawn() -> String {
    spawn_with(seed(), Settings::default())
}

/// One request on its own connection: (status, JSON body).
fn call(addr: &str, method: &str, path: &str, version: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Notion-Version: {version}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn get(addr: &str, path: &str) -> Value {
    let (status, v) = call(addr, "GET", path, "2025-09-03", None);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn admin_call(addr: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, v) = call(addr, method, &format!("/admin/{path}"), "", Some(body));
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn query(addr: &str, version: &str) -> Value {
    let path = if version == "2022-06-28" {
        format!("/v1/databases/{DB}/query")
    } else {
        format!("/v1/data_sources/{DS}/query")
    };
    let (status, v) = call(addr, "POST", &path, version, Some(json!({})));
    assert_eq!(status, 200, "{v}");
    v
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// `(path, [(param, value)])` of a presigned URL.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let (path, q) = url.split_once('?').expect("query string");
    let params = q
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (path.to_string(), params)
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> &'a str {
    &params.iter().find(|(n, _)| n == k).unwrap().1
}

/// The hosted file object in the recorded shape (notion_ruby_mapping page-retrieve-21-types):
/// returns its path and signature.
fn check_hosted(file: &Value, ttl_s: i64) -> (String, String) {
    assert_eq!(keys(file), ["expiry_time", "url"], "{file}");
    let (path, params) = split_url(file["url"].as_str().unwrap());
    assert!(
        path.starts_with("https://prod-files-secure.s3.us-west-2.amazonaws.com/"),
        "{path}"
    );
    let segs: Vec<&str> = path.trim_start_matches("https://").split('/').collect();
    assert_eq!(segs.len(), 4, "host/workspace/file/name: {path}");
    assert_eq!(segs[1], store::workspace_id());
    assert_eq!(store::norm_id(segs[2]), segs[2], "the file is a uuid");
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "X-Amz-Algorithm",
            "X-Amz-Content-Sha256",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
            "x-amz-checksum-mode",
            "x-id"
        ],
        "parameters in the recorded order"
    );
    assert_eq!(param(&params, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    assert_eq!(param(&params, "X-Amz-Content-Sha256"), "UNSIGNED-PAYLOAD");
    assert_eq!(param(&params, "X-Amz-Expires"), ttl_s.to_string());
    assert_eq!(param(&params, "x-id"), "GetObject");
    let sig = param(&params, "X-Amz-Signature");
    assert!(sig.len() == 64 && sig.chars().all(|c| c.is_ascii_hexdigit()));
    let date =
        chrono::NaiveDateTime::parse_from_str(param(&params, "X-Amz-Date"), "%Y%m%dT%H%M%SZ")
            .expect("X-Amz-Date")
            .and_utc()
            .timestamp_millis();
    let now = store::now_ms();
    assert!((now - date).abs() < 5_000, "signed now");
    let expiry = store::parse_time(file["expiry_time"].as_str().unwrap()).unwrap();
    assert!(file["expiry_time"].as_str().unwrap().ends_with('Z'));
    let d = expiry - date - ttl_s * 1000;
    assert!(
        (0..1000).contains(&d),
        "expiry_time = X-Amz-Date + ttl: {d}"
    );
    (path, sig.to_string())
}

#[test]
fn hosted_file_urls_are_presigned_anew_on_every_read() {
    let addr = spawn();
    let read = || get(&addr, &format!("/v1/pages/{PAGE}"));
    let (a, b) = (read(), read());
    let fa = &a["properties"]["Files"]["files"];
    let fb = &b["properties"]["Files"]["files"];
    assert_eq!(fa[0]["name"], "nr.png");
    assert_eq!(fa[0]["type"], "file");
    assert_eq!(fa[1]["name"], "Report Q1.pdf");
    let (pa, sa) = check_hosted(&fa[0]["file"], 3600);
    let (pb, sb) = check_hosted(&fb[0]["file"], 3600);
    assert_eq!(pa, pb, "the file's identity is stable");
    assert!(pa.ends_with("/nr.png"));
    assert_ne!(sa, sb, "a new signature on every read");
    assert!(check_hosted(&fa[1]["file"], 3600)
        .0
        .ends_with("/Report%20Q1.pdf"));
    assert_ne!(check_hosted(&fa[1]["file"], 3600).0, pa);
    // Plain URLs stay external.
    assert_eq!(
        fa[2],
        json!({"name":"a.png","type":"external","external":{"url":"https://example.com/a.png"}})
    );
    // Cover and icon.
    assert_eq!(a["cover"]["type"], "file");
    let (cover, _) = check_hosted(&a["cover"]["file"], 3600);
    assert_eq!(cover, check_hosted(&b["cover"]["file"], 3600).0);
    assert_eq!(a["icon"], json!({"type":"emoji","emoji":"🚀"}));
    // Query results and the property item are signed the same way.
    let q = query(&addr, "2025-09-03");
    let (pq, sq) = check_hosted(
        &q["results"][0]["properties"]["Files"]["files"][0]["file"],
        3600,
    );
    assert_eq!(pq, pa);
    assert_ne!(sq, sa);
    let pid = a["properties"]["Files"]["id"].as_str().unwrap();
    let item = get(&addr, &format!("/v1/pages/{PAGE}/properties/{pid}"));
    assert_eq!(item["object"], "property_item");
    assert_eq!(check_hosted(&item["files"][0]["file"], 3600).0, pa);
    // Blocks: hosted image and pdf, external image.
    let kids = get(&addr, &format!("/v1/blocks/{PAGE}/children"));
    let image = &kids["results"][0]["image"];
    assert_eq!(keys(image), ["caption", "file", "type"]);
    assert_eq!(image["type"], "file");
    let (ia, _) = check_hosted(&image["file"], 3600);
    let again = get(&addr, &format!("/v1/blocks/{PAGE}/children"));
    let (ib, _) = check_hosted(&again["results"][0]["image"]["file"], 3600);
    assert_eq!(ia, ib);
    assert_eq!(kids["results"][1]["pdf"]["type"], "file");
    assert_eq!(kids["results"][2]["image"]["type"], "external");
}

#[test]
fn file_url_ttl_is_configurable() {
    let addr = spawn();
    let cfg = admin_call(&addr, "POST", "config", json!({"file_url_ttl_s": 2}));
    assert_eq!(cfg["file_url_ttl_s"], 2);
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    let file = &page["properties"]["Files"]["files"][0]["file"];
    check_hosted(file, 2);
    let expiry = store::parse_time(file["expiry_time"].as_str().unwrap()).unwrap();
    assert!(expiry - store::now_ms() <= 2_000);
    // A reset returns to Notion's hour.
    admin_call(&addr, "POST", "reset", seed());
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    check_hosted(&page["properties"]["Files"]["files"][0]["file"], 3600);
}

#[test]
fn hosted_files_can_be_set_by_admin_patch() {
    let addr = spawn();
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{PAGE}"),
        json!({"properties": {"Files": [{"hosted": "new.png"}]}, "icon": {"hosted": "icon.png"},
               "cover": "https://example.com/c.jpg"}),
    );
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    assert!(
        check_hosted(&page["properties"]["Files"]["files"][0]["file"], 3600)
            .0
            .ends_with("/new.png")
    );
    check_hosted(&page["icon"]["file"], 3600);
    assert_eq!(
        page["cover"],
        json!({"type":"external","external":{"url":"https://example.com/c.jpg"}})
    );
}

#[test]
fn retrieved_pages_name_only_the_data_source_query_results_both() {
    let addr = spawn();
    for version in ["2025-09-03", "2026-03-11"] {
        let (status, page) = call(&addr, "GET", &format!("/v1/pages/{PAGE}"), version, None);
        assert_eq!(status, 200);
        // As recorded (notion_ruby_mapping page-retrieve-21-types-hosted-file).
        assert_eq!(
            page["parent"],
            json!({"type":"data_source_id","data_source_id":DS})
        );
        // As recorded (…data-source-query-same-page-8-months-later).
        let q = query(&addr, version);
        assert_eq!(
            q["results"][0]["parent"],
            json!({"type":"data_source_id","data_source_id":DS,"database_id":DB})
        );
    }
    let (_, page) = call(
        &addr,
        "GET",
        &format!("/v1/pages/{PAGE}"),
        "2022-06-28",
        None,
    );
    assert_eq!(
        page["parent"],
        json!({"type":"database_id","database_id":DB})
    );
    let q = query(&addr, "2022-06-28");
    assert_eq!(
        q["results"][0]["parent"],
        json!({"type":"database_id","database_id":DB})
    );
}

#[test]
fn data_source_and_database_match_the_recorded_shapes() {
    let addr = spawn();
    let ds = get(&addr, &format!("/v1/data_sources/{DS}"));
    // The key set of notion-sdk-py data-source-retrieve (2025-09-03).
    assert_eq!(
        keys(&ds),
        [
            "archived",
            "cover",
            "created_by",
            "created_time",
            "database_parent",
            "description",
            "icon",
            "id",
            "in_trash",
            "is_inline",
            "last_edited_by",
            "last_edited_time",
            "object",
            "parent",
            "properties",
            "public_url",
            "request_id",
            "title",
            "url"
        ]
    );
    assert_eq!(ds["parent"], json!({"type":"database_id","database_id":DB}));
    assert_eq!(
        ds["database_parent"],
        json!({"type":"page_id","page_id":PARENT_PAGE})
    );
    let db = get(&addr, &format!("/v1/databases/{DB}"));
    // notion-sdk-py database-retrieve-data_sources (2025-09-03).
    assert_eq!(
        keys(&db),
        [
            "archived",
            "cover",
            "created_time",
            "data_sources",
            "description",
            "icon",
            "id",
            "in_trash",
            "is_inline",
            "is_locked",
            "last_edited_time",
            "object",
            "parent",
            "public_url",
            "request_id",
            "title",
            "url"
        ]
    );
    assert_eq!(
        db["parent"],
        json!({"type":"page_id","page_id":PARENT_PAGE})
    );
    assert_eq!(db["data_sources"], json!([{"id": DS, "name": "Things"}]));
    // Without parent_page_id: the workspace.
    let addr = spawn_with(
        json!({"databases": [{"id": DB, "data_sources": [{"id": DS}]}]}),
        Settings::default(),
    );
    let (_, ds) = call(
        &addr,
        "GET",
        &format!("/v1/data_sources/{DS}"),
        "2025-09-03",
        None,
    );
    assert_eq!(
        ds["database_parent"],
        json!({"type":"workspace","workspace":true})
    );
}

fn now_start(v: &Value) -> String {
    assert_eq!(v["type"], "date", "{v}");
    assert_eq!(v["date"]["end"], Value::Null);
    assert_eq!(v["date"]["time_zone"], Value::Null);
    v["date"]["start"].as_str().unwrap().to_string()
}

#[test]
fn now_formulas_are_the_time_of_the_read() {
    let addr = spawn();
    let ds = get(&addr, &format!("/v1/data_sources/{DS}"));
    assert_eq!(
        ds["properties"]["Age"]["formula"],
        json!({"expression":"now()"})
    );
    assert_eq!(
        ds["properties"]["Words"]["formula"],
        json!({"expression":"length(prop(\"Notes\"))"})
    );
    let (_, db) = call(
        &addr,
        "GET",
        &format!("/v1/databases/{DB}"),
        "2022-06-28",
        None,
    );
    assert_eq!(
        db["properties"]["Age"]["formula"],
        json!({"expression":"now()"})
    );

    let before = store::now_ms();
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    let start = now_start(&page["properties"]["Age"]["formula"]);
    // Minute precision with an offset, as recorded: 2025-08-31T10:55:00.000+00:00.
    assert!(start.ends_with(":00.000+00:00"), "{start}");
    let t = store::parse_time(&start).unwrap();
    assert_eq!(t, store::round_minute(t));
    assert!(t <= store::now_ms() && t >= store::round_minute(before));
    // Other formulas keep their stored value.
    assert_eq!(
        page["properties"]["Words"]["formula"],
        json!({"type":"number","number":42})
    );
    let q = query(&addr, "2025-09-03");
    now_start(&q["results"][0]["properties"]["Age"]["formula"]);
    let pid = page["properties"]["Age"]["id"].as_str().unwrap();
    let item = get(&addr, &format!("/v1/pages/{PAGE}/properties/{pid}"));
    now_start(&item["formula"]);
    // Finer precision for tests that must see the value move between two reads.
    admin_call(
        &addr,
        "POST",
        "config",
        json!({"now_formula_precision_ms": 1}),
    );
    let a = now_start(&get(&addr, &format!("/v1/pages/{PAGE}"))["properties"]["Age"]["formula"]);
    std::thread::sleep(Duration::from_millis(5));
    let b = now_start(&get(&addr, &format!("/v1/pages/{PAGE}"))["properties"]["Age"]["formula"]);
    assert_ne!(a, b);
}

#[test]
fn rollups_through_the_property_item_endpoint_are_a_list_with_the_value_aside() {
    let addr = spawn();
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    let rollup = &page["properties"]["Count"];
    assert_eq!(
        rollup["rollup"],
        json!({"type":"number","number":7,"function":"sum"})
    );
    let pid = rollup["id"].as_str().unwrap();
    let item = get(&addr, &format!("/v1/pages/{PAGE}/properties/{pid}"));
    // ultimate-notion property-item-rollup-empty-results.
    assert_eq!(
        keys(&item),
        [
            "has_more",
            "next_cursor",
            "object",
            "property_item",
            "request_id",
            "results",
            "type"
        ]
    );
    let mut item = item;
    item.as_object_mut().unwrap().remove("request_id");
    assert_eq!(
        item,
        json!({"object":"list","results":[],"next_cursor":null,"has_more":false,"type":"property_item",
               "property_item":{"id":pid,"next_url":null,"type":"rollup",
                                "rollup":{"type":"number","number":7,"function":"sum"}}})
    );
}

#[test]
fn title_and_rich_text_are_complete_relation_and_people_cut_at_25() {
    let addr = spawn();
    let page = get(&addr, &format!("/v1/pages/{PAGE}"));
    let props = &page["properties"];
    for name in ["Name", "Notes"] {
        let p = &props[name];
        let kind = p["type"].as_str().unwrap();
        // ultimate-notion page-100-rich-text-items-with-mentions: 100, no has_more.
        assert_eq!(p[kind].as_array().unwrap().len(), 100, "{name}");
        assert_eq!(
            keys(p),
            ["id".to_string(), kind.to_string(), "type".to_string()]
        );
    }
    assert_eq!(props["Links"]["relation"].as_array().unwrap().len(), 25);
    assert_eq!(props["Links"]["has_more"], true);
    assert_eq!(props["Who"]["people"].as_array().unwrap().len(), 25);
    assert!(props["Who"].get("has_more").is_none());
    // The property-item endpoint still paginates title and rich_text.
    let first = get(
        &addr,
        &format!("/v1/pages/{PAGE}/properties/title?page_size=30"),
    );
    assert_eq!(first["results"].as_array().unwrap().len(), 30);
    assert_eq!(first["has_more"], true);
    let mut all = first["results"].as_array().unwrap().clone();
    let mut cursor = first["next_cursor"].as_str().map(String::from);
    while let Some(c) = cursor {
        let next = get(
            &addr,
            &format!("/v1/pages/{PAGE}/properties/title?page_size=30&start_cursor={c}"),
        );
        all.extend(next["results"].as_array().unwrap().iter().cloned());
        cursor = next["next_cursor"].as_str().map(String::from);
    }
    assert_eq!(all.len(), 100);
    assert_eq!(all[99]["title"]["plain_text"], "part 99 ");
    let q = query(&addr, "2025-09-03");
    assert_eq!(
        q["results"][0]["properties"]["Notes"]["rich_text"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn latency_delays_every_v1_response_and_concurrent_requests_overlap() {
    let addr = spawn_with(
        seed(),
        Settings {
            latency_ms: 300,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    admin_call(&addr, "GET", "health", json!({}));
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "admin is not delayed"
    );
    let t0 = Instant::now();
    get(&addr, &format!("/v1/pages/{PAGE}"));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // Errors wait too.
    let t0 = Instant::now();
    assert_eq!(call(&addr, "GET", "/v1/nowhere", "2025-09-03", None).0, 400);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // Six requests at once take about one latency, not six.
    let t0 = Instant::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let a = addr.clone();
            std::thread::spawn(move || get(&a, &format!("/v1/data_sources/{DS}")))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1200),
        "{took:?}"
    );
    // A reset keeps the command line's latency; the admin API changes it.
    admin_call(&addr, "POST", "reset", seed());
    let t0 = Instant::now();
    get(&addr, &format!("/v1/pages/{PAGE}"));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let cfg = admin_call(
        &addr,
        "POST",
        "config",
        json!({"latency_ms": 0, "latency_jitter_ms": 80}),
    );
    assert_eq!(
        (
            cfg["latency_ms"].as_u64(),
            cfg["latency_jitter_ms"].as_u64()
        ),
        (Some(0), Some(80))
    );
    let mut max = Duration::ZERO;
    for _ in 0..8 {
        let t0 = Instant::now();
        get(&addr, &format!("/v1/databases/{DB}"));
        max = max.max(t0.elapsed());
    }
    assert!(
        max < Duration::from_millis(500),
        "no base latency left: {max:?}"
    );
    admin_call(
        &addr,
        "POST",
        "config",
        json!({"latency_ms": 120, "latency_jitter_ms": 0}),
    );
    let t0 = Instant::now();
    get(&addr, &format!("/v1/databases/{DB}"));
    assert!(t0.elapsed() >= Duration::from_millis(120));
}

fn webhook(addr: &str, body: Value) -> Value {
    let mut body = body;
    body["secret"] = json!("secret_abc");
    let out = admin_call(addr, "POST", "webhook", body);
    let raw = out["body"].as_str().unwrap();
    assert_eq!(
        out["signature"].as_str().unwrap(),
        admin::sign("secret_abc", raw.as_bytes())
    );
    let event: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(event, out["event"]);
    event
}

#[test]
fn webhook_events_carry_parents_as_notion_sends_them() {
    let addr = spawn();
    // Page events (upgrade guide 2025-09-03 step 6): the database, with the data source id.
    let ev = webhook(
        &addr,
        json!({"type": "page.properties_updated", "entity_id": PAGE, "updated_properties": ["title"]}),
    );
    assert_eq!(ev["entity"], json!({"id": PAGE, "type": "page"}));
    assert_eq!(
        ev["data"],
        json!({"parent": {"id": DB, "type": "database", "data_source_id": DS},
               "updated_properties": ["title"]})
    );
    assert_eq!(ev["api_version"], "2025-09-03");
    let ev = webhook(&addr, json!({"type": "page.created", "entity_id": PAGE}));
    assert_eq!(
        ev["data"],
        json!({"parent": {"id": DB, "type": "database", "data_source_id": DS}})
    );
    let ev = webhook(
        &addr,
        json!({"type": "page.created", "entity_id": PAGE, "parent_type": "data_source"}),
    );
    assert_eq!(
        ev["data"]["parent"],
        json!({"id": DS, "type": "data_source"})
    );
    let ev = webhook(
        &addr,
        json!({"type": "page.created", "entity_id": PAGE, "api_version": "2022-06-28"}),
    );
    assert_eq!(ev["data"]["parent"], json!({"id": DB, "type": "database"}));
    assert_eq!(ev["api_version"], "2022-06-28");
    // Data source events name the data source; their parent is the database.
    let ev = webhook(
        &addr,
        json!({"type": "data_source.schema_updated", "entity_id": DS,
               "updated_properties": [{"id": "kqLW", "name": "Created at", "action": "created"}]}),
    );
    assert_eq!(ev["entity"], json!({"id": DS, "type": "data_source"}));
    assert_eq!(ev["data"]["parent"], json!({"id": DB, "type": "database"}));
    assert_eq!(ev["data"]["updated_properties"][0]["action"], "created");
    let ev = webhook(
        &addr,
        json!({"type": "data_source.content_updated", "entity_id": DB}),
    );
    assert_eq!(
        ev["entity"],
        json!({"id": DS, "type": "data_source"}),
        "a database id names its data source"
    );
    assert_eq!(
        ev["data"],
        json!({"parent": {"id": DB, "type": "database"}, "updated_blocks": []})
    );
    // As the docs example of data_source.schema_updated: the parent a page.
    let ev = webhook(
        &addr,
        json!({"type": "data_source.schema_updated", "entity_id": DS, "parent_type": "page"}),
    );
    assert_eq!(
        ev["data"]["parent"],
        json!({"id": PARENT_PAGE, "type": "page"})
    );
    // Database events; and any parent verbatim.
    let ev = webhook(&addr, json!({"type": "database.moved", "entity_id": DB}));
    assert_eq!(ev["entity"], json!({"id": DB, "type": "database"}));
    assert_eq!(
        ev["data"]["parent"],
        json!({"id": PARENT_PAGE, "type": "page"})
    );
    let ev = webhook(
        &addr,
        json!({"type": "page.moved", "entity_id": PAGE, "parent": {"id": "x", "type": "block"}}),
    );
    assert_eq!(ev["data"]["parent"], json!({"id": "x", "type": "block"}));
    assert_eq!(ev["workspace_id"], store::workspace_id());
}

#[test]
fn existing_seed_shorthand_still_renders_as_before() {
    let mut seed: Value =
        serde_json::from_str(include_str!("../../workspace/sample.json")).unwrap();
    seed["tokens"][TOKEN] = json!(["*"]);
    let addr = spawn_with(seed, Settings::default());
    let aria = "c0000000-0000-4000-8000-000000000001";
    let (status, page) = call(
        &addr,
        "GET",
        &format!("/v1/pages/{aria}"),
        "2025-09-03",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        page["properties"]["Portrait"]["files"],
        json!([{"name":"aria.png","type":"external","external":{"url":"https://example.com/aria.png"}}])
    );
    assert_eq!(page["cover"], Value::Null);
    assert_eq!(page["icon"], Value::Null);
    assert_eq!(
        page["properties"]["Name"]["title"][0]["plain_text"],
        "Aria Stormwind"
    );
}
