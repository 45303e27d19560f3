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

// ---- Writes: PATCH /v1/pages/{id}, POST /v1/pages, write faults ----

const WDB: &str = "a1b2c3d4-0000-4000-8000-0000000000b1";
const WDS: &str = "d5000000-0000-4000-8000-0000000000b1";
const WPAGE: &str = "c0000000-0000-4000-8000-0000000000b1";
const WOTHER: &str = "c0000000-0000-4000-8000-0000000000b2";
const WHOME: &str = "b0000000-0000-4000-8000-0000000000b1";
const WUSER: &str = "6f1c2a4e-0000-4000-8000-0000000000b1";

fn write_seed() -> Value {
    json!({
        "users": [{"id": WUSER, "name": "Wren", "email": "wren@example.com"}],
        "tokens": {TOKEN: ["*"], "ntn_other": ["a1b2c3d4-0000-4000-8000-0000000000ff"]},
        "databases": [{
            "id": WDB, "title": "Tasks",
            "data_sources": [{
                "id": WDS, "name": "Tasks",
                "properties": {
                    "Name": {"type": "title"},
                    "Notes": {"type": "rich_text"},
                    "Price": {"type": "number"},
                    "Done": {"type": "checkbox"},
                    "Kind": {"type": "select", "options": ["a", "b"]},
                    "Tags": {"type": "multi_select", "options": ["x", "y"]},
                    "Stage": {"type": "status", "options": ["Not started", "In progress", "Done"]},
                    "When": {"type": "date"},
                    "Site": {"type": "url"},
                    "Mail": {"type": "email"},
                    "Phone": {"type": "phone_number"},
                    "Link": {"type": "relation"},
                    "Owner": {"type": "people"},
                    "Attach": {"type": "files"},
                    "Calc": {"type": "formula", "expression": "prop(\"Price\") * 2"},
                    "Made": {"type": "created_time"},
                    "Ref": {"type": "unique_id", "prefix": "T"}
                },
                "pages": [
                    {"id": WPAGE, "created_time": "2026-01-05T09:10:00Z",
                     "last_edited_time": "2026-01-05T09:10:00Z", "created_by": WUSER,
                     "properties": {"Name": "Buy milk", "Price": 3, "Kind": "a", "Stage": "Not started", "Calc": 6}},
                    {"id": WOTHER, "created_time": "2026-01-05T09:11:00Z",
                     "properties": {"Name": "Other"}}
                ]
            }]
        }],
        "pages": [{"id": WHOME, "title": "Home", "children": [{"type": "paragraph", "text": "Hi"}]}]
    })
}

fn spawn_write() -> String {
    spawn_with(write_seed(), Settings::default())
}

fn patch(addr: &str, id: &str, version: &str, body: Value) -> (u16, Value) {
    call(
        addr,
        "PATCH",
        &format!("/v1/pages/{id}"),
        version,
        Some(body),
    )
}

fn rt(s: &str) -> Value {
    json!([{"type": "text", "text": {"content": s}}])
}

fn prop<'a>(page: &'a Value, name: &str) -> &'a Value {
    let p = &page["properties"][name];
    &p[p["type"].as_str().unwrap()]
}

fn query_page(addr: &str, id: &str) -> Option<Value> {
    let (status, v) = call(
        addr,
        "POST",
        &format!("/v1/data_sources/{WDS}/query"),
        "2025-09-03",
        Some(json!({})),
    );
    assert_eq!(status, 200, "{v}");
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

fn assert_validation(status: u16, v: &Value, message: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        keys(v),
        ["code", "message", "object", "request_id", "status"],
        "{v}"
    );
    assert_eq!(v["object"], "error");
    assert_eq!(v["status"], 400);
    assert_eq!(v["code"], "validation_error");
    assert_eq!(v["message"], message, "{v}");
}

/// Sends a request; the raw bytes of the answer (empty when the connection is dropped).
fn call_raw(addr: &str, method: &str, path: &str, body: Value) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let payload = body.to_string();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Notion-Version: 2025-09-03\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn every_writable_type_round_trips_through_patch_get_and_query() {
    let addr = spawn_write();
    let before = get(&addr, &format!("/v1/pages/{WPAGE}"));
    let body = json!({"properties": {
        "Name": {"title": [{"type": "text", "text": {"content": "Buy oat milk", "link": {"url": "https://example.com/milk"}},
                            "annotations": {"bold": true}}]},
        "Notes": {"type": "rich_text", "rich_text": [{"text": {"content": "two "}}, {"text": {"content": "parts"}}]},
        "Price": {"number": 4.5},
        "Done": {"checkbox": true},
        "Kind": {"select": {"name": "b"}},
        "Tags": {"multi_select": [{"name": "x"}, {"name": "y"}]},
        "Stage": {"status": {"name": "In progress"}},
        "When": {"date": {"start": "2026-02-01", "end": "2026-02-03"}},
        "Site": {"url": "https://example.com"},
        "Mail": {"email": "a@example.com"},
        "Phone": {"phone_number": "+1 234"},
        "Link": {"relation": [{"id": WOTHER.replace('-', "")}]},
        "Owner": {"people": [{"object": "user", "id": WUSER}]},
        "Attach": {"files": [{"name": "spec.pdf", "external": {"url": "https://example.com/spec.pdf"}}]}
    }});
    let (status, answer) = patch(&addr, WPAGE, "2025-09-03", body);
    assert_eq!(status, 200, "{answer}");
    let got = get(&addr, &format!("/v1/pages/{WPAGE}"));
    // The answer is the page object, in the shape of GET /v1/pages/{id}.
    assert_eq!(keys(&answer), keys(&got));
    assert_eq!(answer["properties"], got["properties"]);
    assert_eq!(
        answer["parent"],
        json!({"type":"data_source_id","data_source_id":WDS})
    );
    let queried = query_page(&addr, WPAGE).expect("in the query");
    for page in [&got, &queried] {
        let name = &prop(page, "Name")[0];
        assert_eq!(name["plain_text"], "Buy oat milk");
        assert_eq!(name["href"], "https://example.com/milk");
        assert_eq!(name["text"]["link"]["url"], "https://example.com/milk");
        assert_eq!(name["annotations"]["bold"], true);
        assert_eq!(name["annotations"]["italic"], false);
        assert_eq!(name["annotations"]["color"], "default");
        assert_eq!(store::plain_text(prop(page, "Notes")), "two parts");
        assert_eq!(prop(page, "Price"), &json!(4.5));
        assert_eq!(prop(page, "Done"), &json!(true));
        assert_eq!(prop(page, "Kind")["name"], "b");
        assert_eq!(prop(page, "Kind")["color"], "default");
        let tags: Vec<&str> = prop(page, "Tags")
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["x", "y"]);
        assert_eq!(prop(page, "Stage")["name"], "In progress");
        assert_eq!(
            prop(page, "When"),
            &json!({"start":"2026-02-01","end":"2026-02-03","time_zone":null})
        );
        assert_eq!(prop(page, "Site"), &json!("https://example.com"));
        assert_eq!(prop(page, "Mail"), &json!("a@example.com"));
        assert_eq!(prop(page, "Phone"), &json!("+1 234"));
        assert_eq!(prop(page, "Link"), &json!([{"id": WOTHER}]));
        assert_eq!(page["properties"]["Link"]["has_more"], false);
        assert_eq!(prop(page, "Owner")[0]["id"], WUSER);
        assert_eq!(prop(page, "Owner")[0]["name"], "Wren");
        assert_eq!(
            prop(page, "Attach"),
            &json!([{"name":"spec.pdf","type":"external","external":{"url":"https://example.com/spec.pdf"}}])
        );
        // Untouched properties keep their values.
        assert_eq!(prop(page, "Calc"), &json!({"type":"number","number":6}));
    }
    // Edited now, by the integration's bot, rounded to the minute.
    let edited = got["last_edited_time"].as_str().unwrap();
    assert!(edited.ends_with(":00.000Z"), "{edited}");
    assert!(
        store::parse_time(edited).unwrap()
            > store::parse_time(before["last_edited_time"].as_str().unwrap()).unwrap()
    );
    assert!(store::now_ms() - store::parse_time(edited).unwrap() < 61_000);
    let bot = store::uuid_from("bot");
    assert_eq!(got["last_edited_by"]["id"], bot);
    assert_eq!(got["created_by"]["id"], WUSER);
    // By property id, values cleared with null and empty lists, datetimes with their offset.
    let state = admin_call(&addr, "GET", "state", json!({}));
    let ids: Vec<(String, String)> = state["databases"][0]["data_sources"][0]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let id_of = |n: &str| ids.iter().find(|(name, _)| name == n).unwrap().1.clone();
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {
            id_of("Price"): {"number": null}, id_of("Tags"): {"multi_select": []},
            id_of("Kind"): {"select": null}, id_of("Site"): {"url": null},
            id_of("When"): {"date": {"start": "2026-02-01T10:30:00Z", "time_zone": null}},
            id_of("Stage"): {"status": {"name": "Done"}}
        }}),
    );
    assert_eq!(status, 200, "{v}");
    let got = get(&addr, &format!("/v1/pages/{WPAGE}"));
    assert_eq!(prop(&got, "Price"), &Value::Null);
    assert_eq!(prop(&got, "Tags"), &json!([]));
    assert_eq!(prop(&got, "Kind"), &Value::Null);
    assert_eq!(prop(&got, "Site"), &Value::Null);
    assert_eq!(prop(&got, "When")["start"], "2026-02-01T10:30:00.000+00:00");
    assert_eq!(prop(&got, "Stage")["name"], "Done");
    assert_eq!(store::plain_text(prop(&got, "Name")), "Buy oat milk");
}

#[test]
fn read_only_unknown_and_misshapen_properties_are_refused_and_change_nothing() {
    let addr = spawn_write();
    let before = get(&addr, &format!("/v1/pages/{WPAGE}"));
    let fix_one: String = std::iter::once("body failed validation. Fix one:".to_string())
        .chain(
            [
                "title",
                "rich_text",
                "number",
                "url",
                "select",
                "multi_select",
                "people",
                "email",
                "phone_number",
                "date",
                "checkbox",
                "relation",
                "files",
                "status",
            ]
            .iter()
            .map(|k| {
                format!("body.properties.Calc.{k} should be defined, instead was `undefined`.")
            }),
        )
        .collect::<Vec<_>>()
        .join("\n");
    let cases = [
        // A read-only property sent as it reads (formula, rollup, created_time, unique_id, …).
        (json!({"Calc": {"formula": {"type": "number", "number": 9}}}), fix_one.clone()),
        (json!({"Calc": {"type": "formula", "formula": {"number": 9}}}), fix_one),
        // A writable type aimed at a read-only or another type.
        (json!({"Calc": {"number": 9}}), "Calc is expected to be formula.".into()),
        (json!({"Made": {"date": {"start": "2026-01-01"}}}), "Made is expected to be created_time.".into()),
        (json!({"Ref": {"number": 3}}), "Ref is expected to be unique_id.".into()),
        (json!({"Price": {"rich_text": rt("x")}}), "Price is expected to be number.".into()),
        (json!({"Nope": {"number": 1}}), "Nope is not a property that exists.".into()),
        (
            json!({"Nope": {"number": 1}, "Notes": {"number": 2}, "Price": {"number": 3}}),
            "Nope is not a property that exists. Notes is expected to be rich_text.".into(),
        ),
        (
            json!({"Price": {"number": "3"}}),
            "body failed validation: body.properties.Price.number should be a number or `null`, instead was `\"3\"`.".into(),
        ),
        (
            json!({"Done": {"checkbox": "yes"}}),
            "body failed validation: body.properties.Done.checkbox should be a boolean, instead was `\"yes\"`.".into(),
        ),
        (
            json!({"Notes": {"rich_text": [{"text": {}}]}}),
            "body failed validation: body.properties.Notes.rich_text[0].text.content should be a string, instead was `undefined`.".into(),
        ),
        (
            json!({"Price": {"number": 1, "checkbox": true}}),
            "body failed validation: body.properties.Price.checkbox should be not present, instead was `true`.".into(),
        ),
        (
            json!({"When": {"date": {"start": "soon"}}}),
            "body failed validation: body.properties.When.date.start should be a valid ISO 8601 date string, instead was `\"soon\"`.".into(),
        ),
    ];
    for (props, message) in cases {
        let (status, v) = patch(&addr, WPAGE, "2025-09-03", json!({"properties": props}));
        assert_validation(status, &v, &message);
    }
    let (status, v) = patch(&addr, WPAGE, "2025-09-03", json!({"children": []}));
    assert_validation(
        status,
        &v,
        "body failed validation: body.children should be not present, instead was `[]`.",
    );
    let after = get(&addr, &format!("/v1/pages/{WPAGE}"));
    assert_eq!(after["properties"], before["properties"]);
    assert_eq!(after["last_edited_time"], before["last_edited_time"]);
    assert_eq!(after["last_edited_by"], before["last_edited_by"]);
    // A page the token cannot see, or none at all: 404.
    let (status, v) = call_as(
        &addr,
        "ntn_other",
        "PATCH",
        &format!("/v1/pages/{WPAGE}"),
        "2025-09-03",
        Some(json!({"properties": {"Price": {"number": 1}}})),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("object_not_found")),
        "{v}"
    );
    assert_eq!(
        v["message"],
        format!("Could not find page with ID: {WPAGE}. Make sure the relevant pages and databases are shared with your integration.")
    );
    let (status, _) = patch(
        &addr,
        "c0000000-0000-4000-8000-00000000dead",
        "2025-09-03",
        json!({}),
    );
    assert_eq!(status, 404);
    assert_eq!(
        get(&addr, &format!("/v1/pages/{WPAGE}"))["properties"]["Price"]["number"],
        3
    );
}

#[test]
fn text_over_2000_characters_or_100_items_is_refused() {
    let addr = spawn_write();
    let long = "é".repeat(2001);
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Notes": {"rich_text": [{"text": {"content": long}}]}}}),
    );
    assert_validation(
        status,
        &v,
        "body failed validation: body.properties.Notes.rich_text[0].text.content.length should be ≤ `2000`, instead was `2001`.",
    );
    let items: Vec<Value> = (0..101)
        .map(|i| json!({"text": {"content": format!("{i}")}}))
        .collect();
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Name": {"title": items}}}),
    );
    assert_validation(
        status,
        &v,
        "body failed validation: body.properties.Name.title.length should be ≤ `100`, instead was `101`.",
    );
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Mail": {"email": "a".repeat(201)}}}),
    );
    assert_validation(
        status,
        &v,
        "body failed validation: body.properties.Mail.email.length should be ≤ `200`, instead was `201`.",
    );
    // Exactly at the limits: accepted.
    let items: Vec<Value> = (0..100)
        .map(|_| json!({"text": {"content": "a".repeat(2000)}}))
        .collect();
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Notes": {"rich_text": items}}}),
    );
    assert_eq!(status, 200, "{v}");
    let got = get(&addr, &format!("/v1/pages/{WPAGE}"));
    assert_eq!(store::plain_text(prop(&got, "Notes")).len(), 200_000);
    assert_eq!(store::plain_text(prop(&got, "Name")), "Buy milk");
}

#[test]
fn unknown_select_options_are_created_unknown_status_options_refused() {
    let addr = spawn_write();
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {
            "Kind": {"select": {"name": "brand new"}},
            "Tags": {"multi_select": [{"name": "x"}, {"name": "fresh"}]}
        }}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(prop(&v, "Kind")["name"], "brand new");
    let ds = get(&addr, &format!("/v1/data_sources/{WDS}"));
    let names = |p: &str| -> Vec<String> {
        ds["properties"][p]["select"]
            .get("options")
            .or_else(|| ds["properties"][p]["multi_select"].get("options"))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("Kind"), ["a", "b", "brand new"]);
    assert_eq!(names("Tags"), ["x", "y", "fresh"]);
    // The new option's id is the one the page carries, and the option can be chosen by id.
    let opt = ds["properties"]["Kind"]["select"]["options"][2].clone();
    assert_eq!(prop(&v, "Kind")["id"], opt["id"]);
    let (status, v) = patch(
        &addr,
        WOTHER,
        "2025-09-03",
        json!({"properties": {"Kind": {"select": {"id": opt["id"]}}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(prop(&v, "Kind")["name"], "brand new");
    // An unknown option id is refused (Notion names the property by its id).
    let (status, v) = patch(
        &addr,
        WOTHER,
        "2025-09-03",
        json!({"properties": {"Kind": {"select": {"id": "zzzz"}}}}),
    );
    let kind_id = crate::http::percent_decode(ds["properties"]["Kind"]["id"].as_str().unwrap());
    assert_validation(
        status,
        &v,
        &format!("{kind_id} is an invalid select option \"zzzz\"."),
    );
    // A status option must exist.
    let before = get(&addr, &format!("/v1/pages/{WPAGE}"));
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {
            "Stage": {"status": {"name": "Blocked"}}, "Price": {"number": 99}
        }}),
    );
    assert_validation(
        status,
        &v,
        "Invalid status option. Status option \"Blocked\" does not exist\".",
    );
    let after = get(&addr, &format!("/v1/pages/{WPAGE}"));
    assert_eq!(after["properties"], before["properties"]);
    let ds = get(&addr, &format!("/v1/data_sources/{WDS}"));
    assert_eq!(
        ds["properties"]["Stage"]["status"]["options"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A status cannot be emptied: null gives the first option back.
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Stage": {"status": null}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(prop(&v, "Stage")["name"], "Not started");
}

#[test]
fn created_pages_appear_in_queries_and_as_child_pages() {
    let addr = spawn_write();
    let body = json!({
        "parent": {"data_source_id": WDS},
        "properties": {"Name": {"title": rt("Fresh")}, "Price": {"number": 7}, "Kind": {"select": {"name": "c"}}},
        "children": [
            {"object": "block", "type": "heading_1", "heading_1": {"rich_text": rt("Top")}},
            {"paragraph": {"rich_text": rt("Body"), "color": "blue"}},
            {"to_do": {"rich_text": rt("Check"), "checked": true}},
            {"bulleted_list_item": {"rich_text": rt("Item"), "children": [
                {"numbered_list_item": {"rich_text": rt("Sub")}}
            ]}}
        ],
        "icon": {"type": "emoji", "emoji": "🥛"},
        "cover": {"type": "external", "external": {"url": "https://example.com/c.png"}}
    });
    let (status, page) = call(&addr, "POST", "/v1/pages", "2025-09-03", Some(body));
    assert_eq!(status, 200, "{page}");
    let id = page["id"].as_str().unwrap().to_string();
    assert_eq!(store::norm_id(&id), id);
    assert_ne!(id, WPAGE);
    assert_eq!(page["object"], "page");
    assert_eq!(
        page["parent"],
        json!({"type":"data_source_id","data_source_id":WDS})
    );
    assert_eq!(page["icon"], json!({"type":"emoji","emoji":"🥛"}));
    assert_eq!(
        page["cover"]["external"]["url"],
        "https://example.com/c.png"
    );
    assert_eq!(page["created_by"]["id"], store::uuid_from("bot"));
    assert_eq!(keys(&page), keys(&get(&addr, &format!("/v1/pages/{id}"))));
    // Every property of the schema has a value; the unique id is the next one.
    assert_eq!(prop(&page, "Notes"), &json!([]));
    assert_eq!(prop(&page, "Done"), &json!(false));
    assert_eq!(prop(&page, "Ref")["prefix"], "T");
    assert_eq!(prop(&page, "Ref")["number"], 3);
    let queried = query_page(&addr, &id).expect("the new page is in the query");
    assert_eq!(store::plain_text(prop(&queried, "Name")), "Fresh");
    assert_eq!(prop(&queried, "Price"), &json!(7));
    assert_eq!(prop(&queried, "Kind")["name"], "c");
    let kids = get(&addr, &format!("/v1/blocks/{id}/children"));
    let types: Vec<&str> = kids["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["heading_1", "paragraph", "to_do", "bulleted_list_item"]
    );
    let r = &kids["results"];
    assert_eq!(r[0]["heading_1"]["rich_text"][0]["plain_text"], "Top");
    assert_eq!(r[1]["paragraph"]["color"], "blue");
    assert_eq!(r[2]["to_do"]["checked"], true);
    assert_eq!(r[3]["has_children"], true);
    let sub = get(
        &addr,
        &format!("/v1/blocks/{}/children", r[3]["id"].as_str().unwrap()),
    );
    assert_eq!(
        sub["results"][0]["numbered_list_item"]["rich_text"][0]["plain_text"],
        "Sub"
    );

    // A database parent: on 2022-06-28, and on 2025-09-03 for a database with one data source.
    for version in ["2022-06-28", "2025-09-03"] {
        let (status, page) = call(
            &addr,
            "POST",
            "/v1/pages",
            version,
            Some(
                json!({"parent": {"type": "database_id", "database_id": WDB}, "properties": {"Name": {"title": rt(version)}}}),
            ),
        );
        assert_eq!(status, 200, "{page}");
        let id = page["id"].as_str().unwrap();
        assert!(query_page(&addr, id).is_some());
        if version == "2022-06-28" {
            assert_eq!(
                page["parent"],
                json!({"type":"database_id","database_id":WDB})
            );
        }
    }
    let (status, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2022-06-28",
        Some(json!({"parent": {"data_source_id": WDS}, "properties": {}})),
    );
    assert_validation(status, &v, &format!("body failed validation: body.parent.data_source_id should be not present, instead was `\"{WDS}\"`."));

    // A page parent: a standalone sub-page, listed as a child_page block after the page's blocks.
    let (status, sub) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({
            "parent": {"page_id": WHOME},
            "properties": {"title": {"title": rt("Notes page")}},
            "children": [{"paragraph": {"rich_text": rt("inside")}}]
        })),
    );
    assert_eq!(status, 200, "{sub}");
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(sub["parent"], json!({"type":"page_id","page_id":WHOME}));
    assert_eq!(
        sub["properties"]["title"]["title"][0]["plain_text"],
        "Notes page"
    );
    let kids = get(&addr, &format!("/v1/blocks/{WHOME}/children"));
    assert_eq!(titles(&kids), ["<paragraph>", "Notes page"]);
    assert_eq!(kids["results"][1]["id"], sub_id);
    assert_eq!(kids["results"][1]["type"], "child_page");
    let inside = get(&addr, &format!("/v1/blocks/{sub_id}/children"));
    assert_eq!(
        inside["results"][0]["paragraph"]["rich_text"][0]["plain_text"],
        "inside"
    );
    // Under a database page too.
    let (status, _) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({
            "parent": {"page_id": WPAGE}, "properties": {"title": {"title": rt("Under a row")}}
        })),
    );
    assert_eq!(status, 200);
    assert_eq!(
        titles(&get(&addr, &format!("/v1/blocks/{WPAGE}/children"))),
        ["Under a row"]
    );
    // A standalone page has only `title`; a standalone page's title is PATCHed like a property.
    let (status, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({
            "parent": {"page_id": WHOME}, "properties": {"Price": {"number": 1}}
        })),
    );
    assert_validation(status, &v, "Price is not a property that exists.");
    let (status, v) = patch(
        &addr,
        sub_id,
        "2025-09-03",
        json!({"properties": {"title": {"title": rt("Renamed")}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        titles(&get(&addr, &format!("/v1/blocks/{WHOME}/children"))),
        ["<paragraph>", "Renamed"]
    );
    // Refused creations create nothing.
    let pages = admin_call(&addr, "GET", "state", json!({}))["pages"].clone();
    for bad in [
        json!({"parent": {"data_source_id": WDS}, "properties": {"Name": {"title": [{"text": {"content": "x".repeat(2001)}}]}}}),
        json!({"parent": {"data_source_id": WDS}, "properties": {"Stage": {"status": {"name": "Nope"}}}}),
        json!({"parent": {"data_source_id": WDS}, "children": [{"paragraph": {"rich_text": [{"text": {"content": "x".repeat(2001)}}]}}]}),
        json!({"properties": {}}),
    ] {
        let (status, v) = call(&addr, "POST", "/v1/pages", "2025-09-03", Some(bad));
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("validation_error")),
            "{v}"
        );
    }
    let (_, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({"parent": {"data_source_id": WDS},
        "children": [{"paragraph": {"rich_text": [{"text": {"content": "x".repeat(2001)}}]}}]})),
    );
    assert_eq!(v["message"], "body failed validation: body.children[0].paragraph.rich_text[0].text.content.length should be ≤ `2000`, instead was `2001`.");
    assert_eq!(admin_call(&addr, "GET", "state", json!({}))["pages"], pages);
    let (status, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({"parent": {"data_source_id": "d5000000-0000-4000-8000-00000000dead"}})),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("object_not_found"))
    );
}

#[test]
fn trash_through_patch_in_trash_or_archived() {
    let addr = spawn_write();
    let (status, v) = patch(&addr, WPAGE, "2025-09-03", json!({"in_trash": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["in_trash"].as_bool(), v["archived"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        query_page(&addr, WPAGE).is_none(),
        "trashed pages leave queries"
    );
    assert_eq!(get(&addr, &format!("/v1/pages/{WPAGE}"))["in_trash"], true);
    // A page in trash cannot be edited, unless restored in the same request.
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Price": {"number": 5}}}),
    );
    assert_validation(
        status,
        &v,
        "Can't edit block that is archived. You must unarchive the block before editing.",
    );
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"in_trash": false, "properties": {"Price": {"number": 5}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        query_page(&addr, WPAGE).map(|p| prop(&p, "Price").clone()),
        Some(json!(5))
    );
    // 2022-06-28 names it `archived`; 2026-03-11 refuses that name.
    let (status, v) = patch(&addr, WPAGE, "2022-06-28", json!({"archived": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["archived"], true);
    assert!(query_page(&addr, WPAGE).is_none());
    let (status, v) = patch(&addr, WPAGE, "2026-03-11", json!({"archived": false}));
    assert_validation(
        status,
        &v,
        "body failed validation: body.archived should be not present, instead was `false`.",
    );
    let (status, v) = patch(&addr, WPAGE, "2026-03-11", json!({"in_trash": false}));
    assert_eq!(status, 200, "{v}");
    assert!(v.get("archived").is_none());
    // A standalone page: trashed, it leaves its parent's children.
    let (_, sub) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(json!({"parent": {"page_id": WHOME}, "properties": {"title": {"title": rt("Temp")}}})),
    );
    let sub_id = sub["id"].as_str().unwrap();
    let (status, _) = patch(&addr, sub_id, "2025-09-03", json!({"in_trash": true}));
    assert_eq!(status, 200);
    assert_eq!(
        titles(&get(&addr, &format!("/v1/blocks/{WHOME}/children"))),
        ["<paragraph>"]
    );
    // Icons and covers.
    let (status, v) = patch(
        &addr,
        WHOME,
        "2025-09-03",
        json!({"icon": {"emoji": "🏠"}, "cover": null}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["icon"], json!({"type":"emoji","emoji":"🏠"}));
}

#[test]
fn commit_then_status_applies_the_write_and_answers_an_error() {
    let addr = spawn_write();
    admin_call(
        &addr,
        "POST",
        "faults",
        json!({"faults": [
            {"kind": "commit_then_status", "method": "PATCH", "path": "/v1/pages/", "count": 1}
        ]}),
    );
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Price": {"number": 11}}}),
    );
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["object"], "error");
    assert_eq!(v["code"], "service_unavailable");
    assert!(v["request_id"].is_string());
    assert!(v.get("additional_data").is_none());
    assert_eq!(
        prop(&get(&addr, &format!("/v1/pages/{WPAGE}")), "Price"),
        &json!(11)
    );
    // The rule fired once; the next PATCH answers normally.
    let (status, _) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Price": {"number": 12}}}),
    );
    assert_eq!(status, 200);
    // A POST that committed: the page exists, its id in additional_data when asked for.
    admin_call(
        &addr,
        "POST",
        "faults",
        json!({"faults": [
            {"kind": "commit_then_status", "method": "POST", "path": "/v1/pages", "status": 504,
             "committed_resource_id": true, "retry_guidance": "PgPoolWaitConnectionTimeout", "count": 1}
        ]}),
    );
    let (status, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(
            json!({"parent": {"data_source_id": WDS}, "properties": {"Name": {"title": rt("Ghost")}}}),
        ),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (504, Some("gateway_timeout")),
        "{v}"
    );
    let created = v["additional_data"]["committed_resource_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        v["additional_data"]["retry_guidance"],
        "PgPoolWaitConnectionTimeout"
    );
    let page = query_page(&addr, &created).expect("the page was created");
    assert_eq!(store::plain_text(prop(&page, "Name")), "Ghost");
    // A write that fails on its own is not committed, and answers its own error.
    admin_call(
        &addr,
        "POST",
        "faults",
        json!({"faults": [{"kind": "commit_then_status", "method": "PATCH"}]}),
    );
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Nope": {"number": 1}}}),
    );
    assert_validation(status, &v, "Nope is not a property that exists.");
    // Queries the rule does not match are untouched.
    assert!(query_page(&addr, WPAGE).is_some());
}

#[test]
fn commit_then_drop_applies_the_write_and_closes_the_socket() {
    let addr = spawn_write();
    admin_call(
        &addr,
        "POST",
        "faults",
        json!({"faults": [
            {"kind": "commit_then_drop", "method": "PATCH", "count": 1},
            {"kind": "commit_then_drop", "method": "POST", "path": "/v1/pages", "count": 1}
        ]}),
    );
    let out = call_raw(
        &addr,
        "PATCH",
        &format!("/v1/pages/{WPAGE}"),
        json!({"properties": {"Done": {"checkbox": true}}}),
    );
    assert!(
        out.is_empty(),
        "no answer: {}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        prop(&get(&addr, &format!("/v1/pages/{WPAGE}")), "Done"),
        &json!(true)
    );
    let pages = admin_call(&addr, "GET", "state", json!({}))["pages"]
        .as_u64()
        .unwrap();
    let out = call_raw(
        &addr,
        "POST",
        "/v1/pages",
        json!({"parent": {"data_source_id": WDS}, "properties": {"Name": {"title": rt("Dropped")}}}),
    );
    assert!(out.is_empty());
    assert_eq!(
        admin_call(&addr, "GET", "state", json!({}))["pages"]
            .as_u64()
            .unwrap(),
        pages + 1
    );
    let log = admin_call(&addr, "GET", "requests", json!({}));
    let last = log["requests"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["method"].as_str(), last["status"].as_u64()),
        (Some("POST"), Some(0))
    );
}

#[test]
fn plain_status_faults_on_writes_do_not_apply_them() {
    let addr = spawn_write();
    admin_call(
        &addr,
        "POST",
        "faults",
        json!({"faults": [
            {"kind": "status", "status": 409, "method": "PATCH", "count": 1},
            {"kind": "status", "status": 429, "retry_after": 7, "rate_limit_reason": "public_api_request_rate_limit", "method": "PATCH", "count": 1},
            {"kind": "status", "status": 500, "method": "POST", "path": "/v1/pages", "count": 1}
        ]}),
    );
    let (status, v) = patch(
        &addr,
        WPAGE,
        "2025-09-03",
        json!({"properties": {"Price": {"number": 50}}}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("conflict_error")),
        "{v}"
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    let payload = json!({"properties": {"Price": {"number": 51}}}).to_string();
    write!(s, "PATCH /v1/pages/{WPAGE} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nNotion-Version: 2025-09-03\r\n\
        Content-Length: {}\r\nConnection: close\r\n\r\n{payload}", payload.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 429"), "{out}");
    assert!(out.contains("Retry-After: 7\r\n"), "{out}");
    let body: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(
        body["additional_data"],
        json!({"rate_limit_reason": "public_api_request_rate_limit", "retry_after": "7"})
    );
    let (status, v) = call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(
            json!({"parent": {"data_source_id": WDS}, "properties": {"Name": {"title": rt("Never")}}}),
        ),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (500, Some("internal_server_error"))
    );
    assert_eq!(
        prop(&get(&addr, &format!("/v1/pages/{WPAGE}")), "Price"),
        &json!(3)
    );
    let (_, q) = call(
        &addr,
        "POST",
        &format!("/v1/data_sources/{WDS}/query"),
        "2025-09-03",
        Some(json!({})),
    );
    assert_eq!(q["results"].as_array().unwrap().len(), 2, "nothing created");
}

#[test]
fn the_request_log_keeps_the_bodies_of_writes() {
    let addr = spawn_write();
    admin_call(&addr, "DELETE", "requests", json!({}));
    let sent = json!({"properties": {"Price": {"number": 8}}});
    patch(&addr, WPAGE, "2025-09-03", sent.clone());
    let created =
        json!({"parent": {"data_source_id": WDS}, "properties": {"Name": {"title": rt("Logged")}}});
    call(
        &addr,
        "POST",
        "/v1/pages",
        "2025-09-03",
        Some(created.clone()),
    );
    get(&addr, &format!("/v1/pages/{WPAGE}"));
    let log = admin_call(&addr, "GET", "requests", json!({}));
    let list = log["requests"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["method"], "PATCH");
    assert_eq!(list[0]["path"], format!("/v1/pages/{WPAGE}"));
    assert_eq!(list[0]["status"], 200);
    assert_eq!(list[0]["body"], sent);
    assert_eq!(list[0]["token"], TOKEN);
    for k in ["time", "at_ms", "duration_ms"] {
        assert!(list[0].get(k).is_some(), "{k}");
    }
    assert_eq!(list[1]["body"], created);
    assert!(list[2].get("body").is_none(), "no body for GET");
}
