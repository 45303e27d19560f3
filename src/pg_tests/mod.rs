//! `cargo pgrx test` suite, one file per feature: the sync engine (`sync.rs`), the read path
//! (`read.rs`), tables of the user's own (`mapped.rs`), the sync tables' definition (`tables.rs`).
//! SQL functions run against the fake Notion (tests/fake_notion), which the test command starts
//! on 127.0.0.1:$NOTION_SYNC_FAKE_PORT (17801 by default) before the run. pgrx runs every test in
//! schema `tests`, so each file holds a `#[pg_schema] mod tests`.

use pgrx::prelude::*;
use serde_json::{json, Value};

mod mapped;
mod read;
mod sync;
mod tables;

const SAMPLE: &str = include_str!("../../tests/workspace/sample.json");
pub(super) const CHARACTERS: &str = "a1b2c3d4-0000-4000-8000-0000000000c1";
pub(super) const STORIES: &str = "a1b2c3d4-0000-4000-8000-0000000000c3";
pub(super) const READING: &str = "a1b2c3d4-0000-4000-8000-00000000c0de";
pub(super) const READING_DS: &str = "d5000000-0000-4000-8000-00000000c0de";

pub(super) fn fake() -> String {
    let port = std::env::var("NOTION_SYNC_FAKE_PORT").unwrap_or_else(|_| "17801".into());
    format!("http://127.0.0.1:{port}")
}

pub(super) fn admin(method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}/admin/{path}", fake());
    let resp = ureq::request(method, &url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap_or_else(|e| panic!("fake Notion at {url}: {e} (is it running?)"));
    serde_json::from_str(&resp.into_string().unwrap()).unwrap()
}

pub(super) fn requests() -> Vec<Value> {
    let r = ureq::get(&format!("{}/admin/requests", fake()))
        .call()
        .unwrap();
    let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    v["requests"].as_array().cloned().unwrap_or_default()
}

/// Fresh fake workspace, settings pointed at it, and a token for user `alice`.
pub(super) fn setup() {
    admin("POST", "reset", serde_json::from_str(SAMPLE).unwrap());
    admin("DELETE", "requests", json!({}));
    Spi::run(&format!("SET notion_sync.api_url = '{}/v1'", fake())).unwrap();
    Spi::run("SET notion_sync.requests_per_second = 0").unwrap();
    Spi::run("SET notion_sync.max_retries = 2").unwrap();
    Spi::run("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')").unwrap();
}

pub(super) fn sync(db: &str, name: Option<&str>, mode: &str) -> Value {
    let name = name
        .map(|n| format!("'{n}'"))
        .unwrap_or_else(|| "NULL".into());
    Spi::get_one::<pgrx::JsonB>(&format!(
        "SELECT to_jsonb(r) FROM notion_sync.sync_notion_database('alice', '{db}', {name}, '{mode}') r"
    ))
    .unwrap()
    .unwrap()
    .0
}

pub(super) fn count(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql).unwrap().unwrap_or(-1)
}
