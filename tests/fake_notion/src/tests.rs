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
    call_as(addr, TOKEN, method, path, version, body)
}

/// `call` with another token.
fn call_as(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    version: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
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

// ---- Standalone (wiki) pages: tests/workspace/wiki.json ----

const HANDBOOK: &str = "b0000000-0000-4000-8000-000000000001";
const ONBOARDING: &str = "b0000000-0000-4000-8000-000000000002";
const FIRST_WEEK: &str = "b0000000-0000-4000-8000-000000000003";
const POLICIES: &str = "b0000000-0000-4000-8000-000000000004";
const SCRATCH: &str = "b0000000-0000-4000-8000-000000000005";

fn wiki_seed() -> Value {
    serde_json::from_str(include_str!("../../workspace/wiki.json")).unwrap()
}

fn spawn_wiki() -> String {
    spawn_with(wiki_seed(), Settings::default())
}

fn wiki_get(addr: &str, token: &str, path: &str) -> (u16, Value) {
    call_as(addr, token, "GET", path, "2025-09-03", None)
}

fn search_as(addr: &str, token: &str, body: Value) -> Value {
    let (status, v) = call_as(addr, token, "POST", "/v1/search", "2025-09-03", Some(body));
    assert_eq!(status, 200, "{v}");
    v
}

fn ids(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn titles(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["type"].as_str() {
            Some("child_page") => r["child_page"]["title"].as_str().unwrap().to_string(),
            Some(t) => format!("<{t}>"),
            None => store::plain_text(&r["properties"]["title"]["title"]),
        })
        .collect()
}

#[test]
fn standalone_pages_are_retrieved_with_their_page_or_workspace_parent() {
    let addr = spawn_wiki();
    let (status, v) = wiki_get(&addr, "ntn_wiki", &format!("/v1/pages/{HANDBOOK}"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        keys(&v),
        [
            "archived",
            "cover",
            "created_by",
            "created_time",
            "icon",
            "id",
            "in_trash",
            "is_archived",
            "is_locked",
            "last_edited_by",
            "last_edited_time",
            "object",
            "parent",
            "properties",
            "public_url",
            "request_id",
            "url"
        ]
    );
    assert_eq!(v["object"], "page");
    assert_eq!(v["id"], HANDBOOK);
    assert_eq!(v["parent"], json!({"type": "workspace", "workspace": true}));
    assert_eq!(v["created_time"], "2026-03-02T09:00:00.000Z");
    assert_eq!(v["last_edited_time"], "2026-03-05T16:20:00.000Z");
    assert_eq!(
        v["created_by"],
        json!({"object": "user", "id": "6f1c2a4e-0000-4000-8000-00000000a001"})
    );
    assert_eq!(v["icon"], json!({"type": "emoji", "emoji": "📘"}));
    assert_eq!(v["cover"], Value::Null);
    assert_eq!(v["in_trash"], false);
    assert_eq!(v["archived"], false);
    assert_eq!(v["is_locked"], false);
    assert_eq!(v["public_url"], Value::Null);
    assert_eq!(
        v["properties"],
        json!({"title": {"id": "title", "type": "title", "title": [store::rich_text("Handbook")]}})
    );
    assert_eq!(
        v["url"],
        "https://www.notion.so/Handbook-b0000000000040008000000000000001"
    );
    // A sub-page names its parent page; dashes are optional in the id.
    let (_, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/pages/{}", FIRST_WEEK.replace('-', "")),
    );
    assert_eq!(
        v["parent"],
        json!({"type": "page_id", "page_id": ONBOARDING})
    );
    // 2026-03-11 drops `archived`; 2022-06-28 has no is_archived/is_locked.
    let (_, v) = call_as(
        &addr,
        "ntn_wiki",
        "GET",
        &format!("/v1/pages/{ONBOARDING}"),
        "2026-03-11",
        None,
    );
    assert!(v.get("archived").is_none());
    assert_eq!(v["parent"], json!({"type": "page_id", "page_id": HANDBOOK}));
    let (_, v) = call_as(
        &addr,
        "ntn_wiki",
        "GET",
        &format!("/v1/pages/{ONBOARDING}"),
        "2022-06-28",
        None,
    );
    assert_eq!(v["archived"], false);
    assert!(v.get("is_locked").is_none());
    // The title through the property-item endpoint, paginated like any title.
    let (status, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/pages/{POLICIES}/properties/title"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["title"]["plain_text"], "Policies");
    // Unknown pages and unknown tokens' pages: 404 object_not_found.
    let (status, v) = wiki_get(
        &addr,
        "ntn_wiki",
        "/v1/pages/b0000000-0000-4000-8000-0000000000ff",
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("object_not_found"))
    );
}

#[test]
fn times_are_rounded_and_trashed_pages_still_retrieved() {
    let addr = spawn_wiki();
    let created = admin_call(
        &addr,
        "POST",
        "pages",
        json!({"title": "Draft", "parent_page_id": SCRATCH, "created_time": "2026-04-01T10:11:12.345Z",
               "last_edited_time": "2026-04-01T10:12:59.999Z", "in_trash": true}),
    );
    let id = created["id"].as_str().unwrap();
    let (status, v) = wiki_get(&addr, "ntn_wiki", &format!("/v1/pages/{id}"));
    assert_eq!(status, 200);
    assert_eq!(v["created_time"], "2026-04-01T10:11:00.000Z");
    assert_eq!(v["last_edited_time"], "2026-04-01T10:12:00.000Z");
    assert_eq!(
        (v["in_trash"].clone(), v["archived"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(v["parent"], json!({"type": "page_id", "page_id": SCRATCH}));
}

#[test]
fn a_pages_children_are_its_blocks_then_a_child_page_per_sub_page() {
    let addr = spawn_wiki();
    let (status, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/blocks/{HANDBOOK}/children"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        titles(&v),
        ["<paragraph>", "<paragraph>", "Onboarding", "Policies"]
    );
    assert_eq!(
        v["results"][0]["paragraph"]["rich_text"][0]["plain_text"],
        "Welcome to the company handbook."
    );
    assert_eq!(
        v["results"][0]["parent"],
        json!({"type": "page_id", "page_id": HANDBOOK})
    );
    // The child_page block, as recorded (ultimate-notion block-children): the id is the page's.
    assert_eq!(
        v["results"][2],
        json!({"object": "block", "id": ONBOARDING,
               "parent": {"type": "page_id", "page_id": HANDBOOK},
               "created_time": "2026-03-02T09:10:00.000Z", "last_edited_time": "2026-03-04T11:00:00.000Z",
               "created_by": {"object": "user", "id": store::uuid_from("bot")},
               "last_edited_by": {"object": "user", "id": store::uuid_from("bot")},
               "has_children": true, "in_trash": false,
               "type": "child_page", "child_page": {"title": "Onboarding"}, "archived": false})
    );
    assert_eq!(
        (v["has_more"].clone(), v["next_cursor"].clone()),
        (json!(false), Value::Null)
    );
    // Recursion: the block id is the page id.
    let (_, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/blocks/{ONBOARDING}/children"),
    );
    assert_eq!(
        titles(&v),
        [
            "<heading_2>",
            "<bulleted_list_item>",
            "<bulleted_list_item>",
            "First week"
        ]
    );
    assert_eq!(
        v["results"][3]["parent"],
        json!({"type": "page_id", "page_id": ONBOARDING})
    );
    let (_, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/blocks/{FIRST_WEEK}/children"),
    );
    assert_eq!(titles(&v), ["<to_do>", "<to_do>"]);
    assert_eq!(v["results"][0]["to_do"]["checked"], true);
    // 2026-03-11: no `archived` on child_page blocks either.
    let (_, v) = call_as(
        &addr,
        "ntn_wiki",
        "GET",
        &format!("/v1/blocks/{HANDBOOK}/children"),
        "2026-03-11",
        None,
    );
    assert!(v["results"][3].get("archived").is_none());
    // Pagination over blocks and sub-pages together: the cursor is the next block's (page's) id.
    let (_, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/blocks/{HANDBOOK}/children?page_size=3"),
    );
    assert_eq!(titles(&v), ["<paragraph>", "<paragraph>", "Onboarding"]);
    assert_eq!(
        (v["has_more"].clone(), v["next_cursor"].clone()),
        (json!(true), json!(POLICIES))
    );
    let (_, v) = wiki_get(
        &addr,
        "ntn_wiki",
        &format!("/v1/blocks/{HANDBOOK}/children?page_size=3&start_cursor={POLICIES}"),
    );
    assert_eq!(ids(&v), [POLICIES]);
    assert_eq!(v["has_more"], false);
}

#[test]
fn database_pages_list_their_standalone_sub_pages_too() {
    let mut seed = seed();
    let sub = "b1000000-0000-4000-8000-000000000001";
    seed["pages"] = json!([
        {"id": sub, "title": "Meeting notes", "parent_page_id": PAGE},
        {"id": "b1000000-0000-4000-8000-000000000002", "title": "Agenda", "parent_page_id": sub}
    ]);
    let addr = spawn_with(seed, Settings::default());
    let v = get(&addr, &format!("/v1/blocks/{PAGE}/children"));
    assert_eq!(titles(&v), ["<image>", "<pdf>", "<image>", "Meeting notes"]);
    assert_eq!(
        v["results"][3]["parent"],
        json!({"type": "page_id", "page_id": PAGE})
    );
    let v = get(&addr, &format!("/v1/blocks/{sub}/children"));
    assert_eq!(titles(&v), ["Agenda"]);
    let v = get(&addr, &format!("/v1/pages/{sub}"));
    assert_eq!(v["parent"], json!({"type": "page_id", "page_id": PAGE}));
    // A token that sees the database sees the pages under its pages.
    let mut seed2 = seed_with_db_token();
    seed2["pages"] = json!([{"id": sub, "title": "Meeting notes", "parent_page_id": PAGE}]);
    let addr = spawn_with(seed2, Settings::default());
    let (status, _) = wiki_get(&addr, "ntn_db", &format!("/v1/pages/{sub}"));
    assert_eq!(status, 200);
    let (status, _) = wiki_get(&addr, "ntn_other", &format!("/v1/pages/{sub}"));
    assert_eq!(status, 404);
}

fn seed_with_db_token() -> Value {
    let mut s = seed();
    s["tokens"] = json!({TOKEN: ["*"], "ntn_db": [DB], "ntn_other": ["a1b2c3d4-0000-4000-8000-0000000000ff"]});
    s
}

#[test]
fn a_token_sees_a_page_tree_through_its_root() {
    let addr = spawn_wiki();
    let t = "ntn_wiki_handbook";
    for id in [HANDBOOK, ONBOARDING, FIRST_WEEK, POLICIES] {
        let (status, v) = wiki_get(&addr, t, &format!("/v1/pages/{id}"));
        assert_eq!(status, 200, "{id}: {v}");
        let (status, _) = wiki_get(&addr, t, &format!("/v1/blocks/{id}/children"));
        assert_eq!(status, 200);
    }
    let (status, v) = wiki_get(&addr, t, &format!("/v1/pages/{SCRATCH}"));
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("object_not_found"))
    );
    let (status, _) = wiki_get(&addr, t, &format!("/v1/blocks/{SCRATCH}/children"));
    assert_eq!(status, 404);
    let (status, _) = wiki_get(&addr, t, &format!("/v1/pages/{SCRATCH}/properties/title"));
    assert_eq!(status, 404);
    let v = search_as(
        &addr,
        t,
        json!({"filter": {"property": "object", "value": "page"}}),
    );
    let mut got = ids(&v);
    got.sort();
    assert_eq!(got, [HANDBOOK, ONBOARDING, FIRST_WEEK, POLICIES]);
    // A page created under the tree is seen; one moved out of it is not any more.
    let created = admin_call(
        &addr,
        "POST",
        "pages",
        json!({"title": "Benefits", "parent_page_id": POLICIES}),
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(wiki_get(&addr, t, &format!("/v1/pages/{id}")).0, 200);
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{id}"),
        json!({"move_to": {"page_id": SCRATCH}}),
    );
    assert_eq!(wiki_get(&addr, t, &format!("/v1/pages/{id}")).0, 404);
    assert_eq!(
        wiki_get(&addr, "ntn_wiki", &format!("/v1/pages/{id}")).0,
        200
    );
}

#[test]
fn search_for_pages_sorts_by_last_edit_and_paginates() {
    let addr = spawn_wiki();
    let t = "ntn_wiki";
    let filter = json!({"property": "object", "value": "page"});
    let v = search_as(&addr, t, json!({"filter": filter}));
    assert_eq!(
        titles(&v),
        [
            "Scratch",
            "Policies",
            "Handbook",
            "Onboarding",
            "First week"
        ],
        "default: last edited first"
    );
    assert_eq!(v["type"], "page_or_data_source");
    assert_eq!(
        v["results"][0]["parent"],
        json!({"type": "workspace", "workspace": true})
    );
    assert!(v["results"][0].get("request_id").is_none());
    let v = search_as(
        &addr,
        t,
        json!({"filter": filter, "sort": {"timestamp": "last_edited_time", "direction": "ascending"}}),
    );
    assert_eq!(
        titles(&v),
        [
            "First week",
            "Onboarding",
            "Handbook",
            "Policies",
            "Scratch"
        ]
    );
    // Pages of 2 with opaque cursors.
    let mut seen = vec![];
    let mut cursor = Value::Null;
    let mut rounds = 0;
    loop {
        let mut body = json!({"filter": filter, "page_size": 2,
                              "sort": {"timestamp": "last_edited_time", "direction": "descending"}});
        if !cursor.is_null() {
            body["start_cursor"] = cursor.clone();
        }
        let v = search_as(&addr, t, body);
        rounds += 1;
        assert!(v["results"].as_array().unwrap().len() <= 2);
        seen.extend(titles(&v));
        assert_eq!(v["has_more"], !v["next_cursor"].is_null());
        if v["has_more"] == false {
            break;
        }
        cursor = v["next_cursor"].clone();
        assert!(cursor.as_str().unwrap().starts_with("s:"));
    }
    assert_eq!(rounds, 3);
    assert_eq!(
        seen,
        [
            "Scratch",
            "Policies",
            "Handbook",
            "Onboarding",
            "First week"
        ]
    );
    // `query` against titles, case-insensitively.
    let v = search_as(&addr, t, json!({"query": "HAND", "filter": filter}));
    assert_eq!(titles(&v), ["Handbook"]);
    let v = search_as(&addr, t, json!({"query": "week"}));
    assert_eq!(titles(&v), ["First week"]);
    // A data_source filter gives no page; Notion accepts only last_edited_time sorts.
    let v = search_as(
        &addr,
        t,
        json!({"filter": {"property": "object", "value": "data_source"}}),
    );
    assert_eq!(v["results"], json!([]));
    let (status, v) = call_as(
        &addr,
        t,
        "POST",
        "/v1/search",
        "2025-09-03",
        Some(json!({"sort": {"timestamp": "created_time", "direction": "ascending"}})),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("validation_error"))
    );
}

#[test]
fn search_mixes_database_pages_standalone_pages_and_data_sources() {
    let mut seed = seed();
    seed["pages"] = json!([
        {"id": "b1000000-0000-4000-8000-000000000001", "title": "Loose page",
         "last_edited_time": "2026-01-01T00:00:00Z"},
        {"id": "b1000000-0000-4000-8000-000000000002", "title": "Gone",
         "in_trash": true}
    ]);
    let addr = spawn_with(seed, Settings::default());
    let v = search_as(&addr, TOKEN, json!({}));
    let objects: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["object"].as_str().unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert!(objects.contains(&"data_source"));
    let mut got = ids(&search_as(
        &addr,
        TOKEN,
        json!({"filter": {"property": "object", "value": "page"}}),
    ));
    got.sort();
    assert_eq!(got, ["b1000000-0000-4000-8000-000000000001", PAGE]);
    // Data source search as before: only the data source.
    let v = search_as(
        &addr,
        TOKEN,
        json!({"filter": {"property": "object", "value": "data_source"}}),
    );
    assert_eq!(ids(&v), [DS]);
}

#[test]
fn admin_creates_and_edits_standalone_pages() {
    let addr = spawn_wiki();
    let t = "ntn_wiki";
    let created = admin_call(
        &addr,
        "POST",
        "pages",
        json!({"title": "Travel", "parent_page_id": POLICIES, "icon": "✈️",
               "created_time": "2026-03-08T08:00:00Z",
               "children": [{"type": "paragraph", "text": "Book trains."}]}),
    );
    assert_eq!(created["object"], "page");
    assert_eq!(
        created["parent"],
        json!({"type": "page_id", "page_id": POLICIES})
    );
    assert_eq!(created["last_edited_time"], "2026-03-08T08:00:00.000Z");
    let travel = created["id"].as_str().unwrap().to_string();
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{POLICIES}/children"));
    assert_eq!(titles(&v), ["<paragraph>", "Travel"]);
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{travel}/children"));
    assert_eq!(titles(&v), ["<paragraph>"]);
    // An explicit id; a parent that does not exist; an id taken.
    let v = admin_call(
        &addr,
        "POST",
        "pages",
        json!({"id": "b2000000000040008000000000000001", "title": "Top"}),
    );
    assert_eq!(v["id"], "b2000000-0000-4000-8000-000000000001");
    assert_eq!(v["parent"], json!({"type": "workspace", "workspace": true}));
    let (status, _) = call(
        &addr,
        "POST",
        "/admin/pages",
        "",
        Some(json!({"title": "Orphan", "parent_page_id": "b2000000-0000-4000-8000-0000000000ff"})),
    );
    assert_eq!(status, 400);
    let (status, _) = call(
        &addr,
        "POST",
        "/admin/pages",
        "",
        Some(json!({"id": HANDBOOK, "title": "Twice"})),
    );
    assert_eq!(status, 400);
    // PATCH title: only this page's last_edited_time moves.
    let before = wiki_get(&addr, t, &format!("/v1/pages/{POLICIES}")).1;
    let v = admin_call(
        &addr,
        "PATCH",
        &format!("pages/{travel}"),
        json!({"title": "Travel rules", "last_edited_time": "2026-03-09T12:34:56Z"}),
    );
    assert_eq!(v["last_edited_time"], "2026-03-09T12:34:00.000Z");
    let after = wiki_get(&addr, t, &format!("/v1/pages/{POLICIES}")).1;
    assert_eq!(before["last_edited_time"], after["last_edited_time"]);
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{POLICIES}/children"));
    assert_eq!(titles(&v), ["<paragraph>", "Travel rules"]);
    assert_eq!(
        v["results"][1]["last_edited_time"],
        "2026-03-09T12:34:00.000Z"
    );
    // Without a time: now, to the minute; `properties.title` works too; children replaced.
    let t0 = store::round_minute(store::now_ms());
    let v = admin_call(
        &addr,
        "PATCH",
        &format!("pages/{HANDBOOK}"),
        json!({"properties": {"title": "The Handbook"},
               "children": [{"type": "quote", "text": "Read me."}]}),
    );
    let edited = store::parse_time(v["last_edited_time"].as_str().unwrap()).unwrap();
    assert!(edited >= t0 && edited <= store::now_ms(), "{v}");
    assert_eq!(
        v["properties"]["title"]["title"][0]["plain_text"],
        "The Handbook"
    );
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{HANDBOOK}/children"));
    assert_eq!(titles(&v), ["<quote>", "Onboarding", "Policies"]);
    let (_, v) = wiki_get(&addr, t, &format!("/v1/pages/{ONBOARDING}"));
    assert_eq!(
        v["last_edited_time"], "2026-03-04T11:00:00.000Z",
        "sub-pages unchanged"
    );
    let v = search_as(
        &addr,
        t,
        json!({"filter": {"property": "object", "value": "page"}}),
    );
    assert_eq!(titles(&v)[0], "The Handbook", "the edit puts it first");
    // Moves: under another page, to the workspace; never under itself or its sub-pages.
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{ONBOARDING}"),
        json!({"move_to": {"page_id": SCRATCH}}),
    );
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{SCRATCH}/children"));
    assert_eq!(titles(&v), ["<paragraph>", "Onboarding"]);
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{HANDBOOK}/children"));
    assert_eq!(titles(&v), ["<quote>", "Policies"]);
    let (_, v) = wiki_get(&addr, t, &format!("/v1/pages/{ONBOARDING}"));
    assert_eq!(v["parent"], json!({"type": "page_id", "page_id": SCRATCH}));
    for target in [ONBOARDING, FIRST_WEEK] {
        let (status, _) = call(
            &addr,
            "PATCH",
            &format!("/admin/pages/{ONBOARDING}"),
            "",
            Some(json!({"move_to": {"page_id": target}})),
        );
        assert_eq!(status, 400, "under {target}");
    }
    let v = admin_call(
        &addr,
        "PATCH",
        &format!("pages/{ONBOARDING}"),
        json!({"move_to": {"workspace": true}}),
    );
    assert_eq!(v["parent"], json!({"type": "workspace", "workspace": true}));
    // State counts standalone pages.
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{SCRATCH}"),
        json!({"in_trash": true}),
    );
    let (_, st) = call(&addr, "GET", "/admin/state", "", None);
    assert_eq!(
        (
            st["standalone_pages"].clone(),
            st["live_standalone_pages"].clone(),
            st["pages"].clone()
        ),
        (json!(7), json!(6), json!(0))
    );
}

#[test]
fn trashed_sub_pages_leave_children_and_search() {
    let addr = spawn_wiki();
    let t = "ntn_wiki";
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{ONBOARDING}"),
        json!({"in_trash": true}),
    );
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{HANDBOOK}/children"));
    assert_eq!(titles(&v), ["<paragraph>", "<paragraph>", "Policies"]);
    let v = search_as(
        &addr,
        t,
        json!({"filter": {"property": "object", "value": "page"}}),
    );
    assert!(!ids(&v).contains(&ONBOARDING.to_string()), "{v}");
    let v = search_as(&addr, t, json!({"query": "onboarding"}));
    assert_eq!(v["results"], json!([]));
    // Still retrieved, with in_trash; back when restored.
    let (status, v) = wiki_get(&addr, t, &format!("/v1/pages/{ONBOARDING}"));
    assert_eq!((status, v["in_trash"].clone()), (200, json!(true)));
    admin_call(
        &addr,
        "PATCH",
        &format!("pages/{ONBOARDING}"),
        json!({"in_trash": false}),
    );
    let (_, v) = wiki_get(&addr, t, &format!("/v1/blocks/{HANDBOOK}/children"));
    assert_eq!(
        titles(&v),
        ["<paragraph>", "<paragraph>", "Onboarding", "Policies"]
    );
}

#[test]
fn webhook_events_of_standalone_pages_name_their_parent_page_or_the_workspace() {
    let addr = spawn_wiki();
    let ev = webhook(
        &addr,
        json!({"type": "page.content_updated", "entity_id": ONBOARDING}),
    );
    assert_eq!(ev["entity"], json!({"id": ONBOARDING, "type": "page"}));
    assert_eq!(
        ev["data"],
        json!({"parent": {"id": HANDBOOK, "type": "page"}, "updated_blocks": []})
    );
    let ev = webhook(&addr, json!({"type": "page.created", "entity_id": SCRATCH}));
    assert_eq!(
        ev["data"]["parent"],
        json!({"id": store::workspace_id(), "type": "space"})
    );
    // A standalone page under a database page: that page.
    let mut seed = seed();
    seed["pages"] = json!([{"id": "b1000000-0000-4000-8000-000000000001", "title": "Sub", "parent_page_id": PAGE}]);
    let addr = spawn_with(seed, Settings::default());
    let ev = webhook(
        &addr,
        json!({"type": "page.moved", "entity_id": "b1000000-0000-4000-8000-000000000001"}),
    );
    assert_eq!(ev["data"]["parent"], json!({"id": PAGE, "type": "page"}));
}

#[test]
fn seeds_with_pages_are_checked_and_old_seeds_load_unchanged() {
    let bad_parent = json!({"pages": [{"title": "A", "parent_page_id": "b2000000-0000-4000-8000-0000000000ff"}]});
    assert!(store::Store::load(&bad_parent).is_err());
    let cycle = json!({"pages": [
        {"id": "b2000000-0000-4000-8000-000000000001", "title": "A", "parent_page_id": "b2000000-0000-4000-8000-000000000002"},
        {"id": "b2000000-0000-4000-8000-000000000002", "title": "B", "parent_page_id": "b2000000-0000-4000-8000-000000000001"}
    ]});
    assert!(store::Store::load(&cycle).is_err());
    // A parent listed after its sub-page is fine; ids without one are stable across loads.
    let later = json!({"pages": [
        {"title": "Child", "parent_page_id": "b2000000-0000-4000-8000-000000000009"},
        {"id": "b2000000-0000-4000-8000-000000000009", "title": "Parent"}
    ]});
    let a = store::Store::load(&later).unwrap();
    let b = store::Store::load(&later).unwrap();
    assert_eq!(a.wiki_order, b.wiki_order);
    let sample: Value = serde_json::from_str(include_str!("../../workspace/sample.json")).unwrap();
    let st = store::Store::load(&sample).unwrap();
    assert!(st.wiki.is_empty());
    assert!(!st.pages.is_empty());
    let st = store::Store::load(&wiki_seed()).unwrap();
    assert_eq!(st.wiki.len(), 5);
}
