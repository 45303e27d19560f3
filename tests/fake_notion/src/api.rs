//! The Notion endpoints, as Notion's API reference documents them: auth, versions, pagination, filters, sorts, the
//! query cap, truncation at 25, the per-token rate limit and injected faults.

use crate::http::{percent_decode, Reply, Request, Response};
use crate::store::{self, norm_id, parse_time, round_minute, Store, VERSIONS};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fault rule, set through `/admin/faults`. Matching rules fire in order; the first wins.
#[derive(Clone, Debug)]
pub struct Fault {
    /// `status`, `drop`, `slow`, `truncate`, `malformed`, `invalid_utf8`.
    pub kind: String,
    pub status: u16,
    pub code: Option<String>,
    pub retry_after: Option<u64>,
    pub reason: Option<String>,
    pub delay_ms: u64,
    /// Fires this many more times; negative = without end.
    pub count: i64,
    pub probability: f64,
    pub path: Option<String>,
    pub method: Option<String>,
    /// `malformed`: how many results of a list response to garble (spread evenly; default 1).
    pub results: usize,
    /// `malformed`: what to garble in each result: `properties` (default: a string), `timestamp`
    /// (an ISO-shaped `last_edited_time` that is no date), `title_number` (the title a number),
    /// `id` (not a Notion id), `properties_array` (properties a JSON array).
    pub garble: String,
    /// `commit_then_status` after a `POST /v1/pages`: `additional_data.committed_resource_id` is the
    /// id of the page created.
    pub committed_resource_id: bool,
    /// `additional_data.retry_guidance` (e.g. `PgPoolWaitConnectionTimeout`).
    pub retry_guidance: Option<String>,
    /// The error `message` (default `Injected fault: <code>`).
    pub message: Option<String>,
}

impl Fault {
    pub fn from_json(v: &Value) -> Fault {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let kind = s("kind").unwrap_or_else(|| "status".into());
        // A write that committed and then failed is a 503 by default (Notion's request limits page).
        let default_status = if kind == "commit_then_status" {
            503
        } else {
            500
        };
        Fault {
            status: v
                .get("status")
                .and_then(|x| x.as_u64())
                .unwrap_or(default_status) as u16,
            kind,
            committed_resource_id: v
                .get("committed_resource_id")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            retry_guidance: s("retry_guidance"),
            message: s("message"),
            code: s("code"),
            retry_after: v.get("retry_after").and_then(|x| x.as_u64()),
            reason: s("rate_limit_reason"),
            delay_ms: v.get("delay_ms").and_then(|x| x.as_u64()).unwrap_or(0),
            results: v.get("results").and_then(|x| x.as_u64()).unwrap_or(1) as usize,
            garble: s("garble").unwrap_or_else(|| "properties".into()),
            count: v.get("count").and_then(|x| x.as_i64()).unwrap_or(-1),
            probability: v.get("probability").and_then(|x| x.as_f64()).unwrap_or(1.0),
            path: s("path"),
            method: s("method"),
        }
    }
}

/// Server settings given on the command line; `/admin/reset` returns to them.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub rps: f64,
    pub burst: f64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
}

pub struct Control {
    /// Requests per second per token; 0 = no limit.
    pub rps: f64,
    pub burst: f64,
    /// Every `/v1` response waits this long (plus up to `latency_jitter_ms`) before it is sent.
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    jitter_rng: u64,
    buckets: HashMap<String, (f64, Instant)>,
    pub faults: Vec<Fault>,
    pub log: Vec<Value>,
    pub query_cap: usize,
    rng: u64,
    /// (data source, filter, sorts) -> (store version, ordered page ids)
    cache: HashMap<String, (u64, Arc<Vec<String>>)>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            rps: 0.0,
            burst: 0.0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            jitter_rng: 0x2545F4914F6CDD1D,
            buckets: HashMap::new(),
            faults: vec![],
            log: vec![],
            query_cap: 10_000,
            rng: 0x9E3779B97F4A7C15,
            cache: HashMap::new(),
        }
    }
}

impl Control {
    pub fn from_settings(s: &Settings) -> Control {
        Control {
            rps: s.rps,
            burst: s.burst,
            latency_ms: s.latency_ms,
            latency_jitter_ms: s.latency_jitter_ms,
            ..Default::default()
        }
    }
    /// How long the next `/v1` response waits (its own generator: jitter never shifts faults).
    fn latency(&mut self) -> Duration {
        let mut ms = self.latency_ms;
        if self.latency_jitter_ms > 0 {
            self.jitter_rng ^= self.jitter_rng >> 12;
            self.jitter_rng ^= self.jitter_rng << 25;
            self.jitter_rng ^= self.jitter_rng >> 27;
            let r = self.jitter_rng.wrapping_mul(0x2545F4914F6CDD1D) >> 11;
            ms += r % (self.latency_jitter_ms + 1);
        }
        Duration::from_millis(ms)
    }
    pub fn set_seed(&mut self, seed: u64) {
        self.rng = seed.max(1);
    }
    fn random(&mut self) -> f64 {
        // xorshift64*: reproducible fault sequences for a given seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn reset_buckets(&mut self) {
        self.buckets.clear();
    }
    /// Token bucket: Ok, or the whole seconds to wait (for `Retry-After`).
    fn take(&mut self, token: &str) -> Result<(), u64> {
        if self.rps <= 0.0 {
            return Ok(());
        }
        let cap = self.burst.max(1.0);
        let now = Instant::now();
        let (level, last) = self.buckets.entry(token.to_string()).or_insert((cap, now));
        *level = (*level + now.duration_since(*last).as_secs_f64() * self.rps).min(cap);
        *last = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *level) / self.rps).ceil().max(1.0) as u64)
        }
    }
    fn pick_fault(&mut self, req: &Request) -> Option<Fault> {
        for i in 0..self.faults.len() {
            let f = self.faults[i].clone();
            if f.count == 0 {
                continue;
            }
            if let Some(p) = &f.path {
                if !req.path.contains(p.as_str()) {
                    continue;
                }
            }
            if let Some(m) = &f.method {
                if !m.eq_ignore_ascii_case(&req.method) {
                    continue;
                }
            }
            if f.probability < 1.0 && self.random() >= f.probability {
                continue;
            }
            if f.count > 0 {
                self.faults[i].count -= 1;
            }
            return Some(f);
        }
        None
    }
}

pub struct Fake {
    pub store: Mutex<Store>,
    pub ctl: Mutex<Control>,
    /// The command line's settings, restored by `/admin/reset`.
    pub settings: Settings,
}

impl Fake {
    pub fn new(store: Store, settings: Settings) -> Fake {
        Fake {
            store: Mutex::new(store),
            ctl: Mutex::new(Control::from_settings(&settings)),
            settings,
        }
    }
}

pub fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"object":"error","status":status,"code":code,"message":message,"request_id":request_id()}),
    )
}

pub(crate) fn request_id() -> String {
    store::uuid_from(&format!(
        "req:{}:{:?}",
        store::now_ms(),
        std::thread::current().id()
    ))
}

pub(crate) fn not_found(kind: &str, id: &str) -> Response {
    error(404, "object_not_found", &format!("Could not find {kind} with ID: {id}. Make sure the relevant pages and databases are shared with your integration."))
}

impl Fake {
    pub fn handle(&self, req: Request) -> Reply {
        let started = Instant::now();
        let (reply, status) = self.route(&req);
        if !req.path.starts_with("/admin") {
            // Simulated network and service time: this connection's thread sleeps, no lock held,
            // so concurrent requests overlap as they do against the real API.
            let wait = self.ctl.lock().unwrap().latency();
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        let mut entry = json!({
            "method": req.method, "path": req.path, "status": status,
            "time": store::iso(store::now_ms()),
            "at_ms": store::now_ms(),
            "duration_ms": started.elapsed().as_millis() as u64,
            "token": req.header("authorization").map(|a| a.trim_start_matches("Bearer ").to_string()),
        });
        if matches!(req.method.as_str(), "POST" | "PATCH") && !req.path.starts_with("/admin") {
            // What was sent, for tests of what a client writes (a non-JSON body as a string).
            entry["body"] = if req.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&req.body)
                    .unwrap_or_else(|_| json!(String::from_utf8_lossy(&req.body)))
            };
        }
        if !req.path.starts_with("/admin") {
            self.ctl.lock().unwrap().log.push(entry);
        }
        reply
    }

    fn route(&self, req: &Request) -> (Reply, u16) {
        if req.path.starts_with("/admin") {
            let r = crate::admin::handle(self, req);
            let s = r.status;
            return (Reply::Send(r), s);
        }
        // Faults and rate limits apply after auth, like the real service.
        let token = match req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            Some(t) => t.trim().to_string(),
            None => {
                return send(error(401, "unauthorized", "API token is invalid."));
            }
        };
        if !self.store.lock().unwrap().tokens.contains_key(&token) {
            return send(error(401, "unauthorized", "API token is invalid."));
        }
        let version = match req.header("notion-version") {
            None => {
                return send(error(400, "missing_version", "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`."));
            }
            Some(v) if !VERSIONS.contains(&v) => {
                return send(error(
                    400,
                    "validation_error",
                    &format!(
                        "Notion-Version header failed validation: {v} is not a supported version."
                    ),
                ));
            }
            Some(v) => v.to_string(),
        };
        let fault = {
            let mut ctl = self.ctl.lock().unwrap();
            if let Err(wait) = ctl.take(&token) {
                drop(ctl);
                let r = error(
                    429,
                    "rate_limited",
                    "You have been rate limited. Please try again in a few minutes.",
                )
                .with_header("Retry-After", &wait.to_string());
                return (Reply::Send(r), 429);
            }
            ctl.pick_fault(req)
        };
        if let Some(f) = &fault {
            match f.kind.as_str() {
                "status" => {
                    let r = fault_error(f, None);
                    return (Reply::Send(r), f.status);
                }
                "drop" => return (Reply::Drop, 0),
                "slow" => std::thread::sleep(Duration::from_millis(f.delay_ms)),
                _ => {}
            }
        }
        let mut r = self.notion(req, &token, &version);
        let status = r.status;
        if let Some(f) = fault {
            match f.kind.as_str() {
                // The request was carried out (a write is committed); the answer is lost or an
                // error. A request that failed on its own (a 400) answers as usual.
                "commit_then_drop" if (200..300).contains(&status) => return (Reply::Drop, 0),
                "commit_then_status" if (200..300).contains(&status) => {
                    let created = (req.method == "POST"
                        && req.path.trim_end_matches('/') == "/v1/pages")
                        .then(|| serde_json::from_slice::<Value>(&r.body).ok())
                        .flatten()
                        .and_then(|v| v["id"].as_str().map(String::from));
                    return (Reply::Send(fault_error(&f, created)), f.status);
                }
                "truncate" => {
                    let keep = r.body.len() / 2;
                    return (Reply::Truncate(r, keep), status);
                }
                "malformed" => {
                    if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
                        if let Some(results) = v.get_mut("results").and_then(|x| x.as_array_mut()) {
                            let (len, n) = (results.len(), f.results.max(1));
                            for i in 0..n.min(len) {
                                garble(&mut results[i * len / n], &f.garble);
                            }
                        } else if v.get("properties").is_some() {
                            v["properties"] = json!(42);
                        }
                        r.body = serde_json::to_vec(&v).unwrap();
                    }
                }
                // A database that lists no data source (a missing key, as a future shape might).
                "no_data_sources" => {
                    if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("data_sources");
                        }
                        r.body = serde_json::to_vec(&v).unwrap();
                    }
                }
                "invalid_utf8" => {
                    let at = r.body.len() / 2;
                    r.body.insert(at, 0xFF);
                }
                _ => {}
            }
        }
        let rid = request_id();
        (
            Reply::Send(r.with_header("x-notion-request-id", &rid)),
            status,
        )
    }

    fn notion(&self, req: &Request, token: &str, version: &str) -> Response {
        let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        400,
                        "invalid_json",
                        &format!("Error parsing JSON body: {e}"),
                    )
                }
            }
        };
        let new_api = version != "2022-06-28";
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["v1", "databases", id]) => {
                let st = self.store.lock().unwrap();
                let id = norm_id(id);
                match st.databases.get(&id) {
                    Some(db) if st.can_read_db(token, &id) => {
                        let mut v = st.database_json(db, version);
                        v["request_id"] = json!(request_id());
                        Response::json(200, &v)
                    }
                    _ => not_found("database", &id),
                }
            }
            ("GET", ["v1", "data_sources", id]) if new_api => {
                let st = self.store.lock().unwrap();
                let id = norm_id(id);
                match st.data_sources.get(&id) {
                    Some(ds) if st.can_read_ds(token, &id) => {
                        let mut v = st.data_source_json(ds);
                        v["request_id"] = json!(request_id());
                        Response::json(200, &v)
                    }
                    _ => not_found("data_source", &id),
                }
            }
            ("POST", ["v1", "data_sources", id, "query"]) if new_api => {
                let id = norm_id(id);
                self.query(req, token, version, &id, &body, "page_or_data_source")
            }
            ("POST", ["v1", "databases", id, "query"]) if !new_api => {
                let id = norm_id(id);
                let ds = {
                    let st = self.store.lock().unwrap();
                    match st.databases.get(&id) {
                        Some(db) if st.can_read_db(token, &id) => {
                            if db.data_sources.len() > 1 {
                                return error(400, "validation_error", "Databases with multiple data sources are not supported in this API version.");
                            }
                            db.data_sources[0].clone()
                        }
                        _ => return not_found("database", &id),
                    }
                };
                self.query(req, token, version, &ds, &body, "page_or_database")
            }
            ("GET", ["v1", "pages", id]) => {
                let st = self.store.lock().unwrap();
                let id = norm_id(id);
                if let Some(w) = st.wiki.get(&id) {
                    if !st.can_read_page(token, &id) {
                        return not_found("page", &id);
                    }
                    let mut v = st.wiki_json(w, version);
                    v["request_id"] = json!(request_id());
                    return Response::json(200, &v);
                }
                match st.pages.get(&id) {
                    Some(p) if st.can_read_ds(token, &p.data_source_id) => {
                        let only = req.query.get("filter_properties").map(|v| v.as_slice());
                        let mut v = st.page_json(p, version, only, true);
                        v["request_id"] = json!(request_id());
                        Response::json(200, &v)
                    }
                    _ => not_found("page", &id),
                }
            }
            ("GET", ["v1", "pages", id, "properties", pid]) => {
                self.property_item(req, token, &norm_id(id), pid)
            }
            ("GET", ["v1", "blocks", id, "children"]) => {
                self.children(req, token, version, &norm_id(id))
            }
            ("POST", ["v1", "search"]) => self.search(token, version, &body),
            ("PATCH", ["v1", "pages", id]) => self.update_page(token, version, &norm_id(id), &body),
            ("POST", ["v1", "pages"]) => self.create_page_api(token, version, &body),
            _ => error(400, "invalid_request_url", "Invalid request URL."),
        }
    }

    fn page_size(v: Option<&Value>) -> Result<usize, Response> {
        match v {
            None | Some(Value::Null) => Ok(100),
            Some(x) => match x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())) {
                Some(n) if (1..=100).contains(&n) => Ok(n as usize),
                _ => Err(error(400, "validation_error", &format!("body failed validation: body.page_size should be a number between 1 and 100, instead was `{x}`."))),
            },
        }
    }

    fn query(
        &self,
        req: &Request,
        token: &str,
        version: &str,
        ds_id: &str,
        body: &Value,
        list_type: &str,
    ) -> Response {
        let size = match Self::page_size(body.get("page_size")) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let filter = body.get("filter").cloned().unwrap_or(Value::Null);
        let sorts = body.get("sorts").cloned().unwrap_or(Value::Null);
        let key = format!("{ds_id}|{filter}|{sorts}");
        let st = self.store.lock().unwrap();
        if !st.data_sources.contains_key(ds_id) || !st.can_read_ds(token, ds_id) {
            return not_found("data_source", ds_id);
        }
        let cached = {
            let ctl = self.ctl.lock().unwrap();
            ctl.cache
                .get(&key)
                .filter(|(v, _)| *v == st.version)
                .map(|(_, l)| l.clone())
        };
        let list = match cached {
            Some(l) => l,
            None => {
                let l = match ordered(&st, ds_id, &filter, &sorts) {
                    Ok(l) => Arc::new(l),
                    Err(msg) => return error(400, "validation_error", &msg),
                };
                self.ctl
                    .lock()
                    .unwrap()
                    .cache
                    .insert(key.clone(), (st.version, l.clone()));
                l
            }
        };
        let cap = self.ctl.lock().unwrap().query_cap;
        let offset = match body.get("start_cursor").and_then(|c| c.as_str()) {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some(o) => o,
                None => {
                    return error(
                        400,
                        "validation_error",
                        "body failed validation: body.start_cursor should be a valid cursor.",
                    )
                }
            },
        };
        let limit = list.len().min(cap);
        let end = (offset + size).min(limit);
        let only = req
            .query
            .get("filter_properties[]")
            .or_else(|| req.query.get("filter_properties"))
            .map(|v| v.as_slice());
        let results: Vec<Value> = list[offset.min(end)..end]
            .iter()
            .map(|id| st.page_json(&st.pages[id], version, only, false))
            .collect();
        let has_more = end < limit;
        let mut out = json!({
            "object":"list","results":results,
            "next_cursor": if has_more { json!(encode_cursor(end)) } else { Value::Null },
            "has_more": has_more, "type": list_type, list_type: {},
            "request_id": request_id(),
        });
        if list.len() > cap {
            out["request_status"] =
                json!({"type":"incomplete","incomplete_reason":"query_result_limit_reached"});
        }
        Response::json(200, &out)
    }

    fn property_item(&self, req: &Request, token: &str, page_id: &str, pid: &str) -> Response {
        let st = self.store.lock().unwrap();
        // A standalone page has one property, `title`.
        let (sp, mut full) = if let Some(w) = st.wiki.get(page_id) {
            if !st.can_read_page(token, page_id) {
                return not_found("page", page_id);
            }
            if !store::percent_eq("title", pid) {
                return not_found("property", &percent_decode(pid));
            }
            let sp = store::SchemaProp {
                id: "title".into(),
                name: "title".into(),
                kind: "title".into(),
                config: json!({}),
            };
            (sp, w.title.clone())
        } else {
            let Some(p) = st
                .pages
                .get(page_id)
                .filter(|p| st.can_read_ds(token, &p.data_source_id))
            else {
                return not_found("page", page_id);
            };
            let ds = &st.data_sources[&p.data_source_id];
            let Some(sp) = ds.schema.iter().find(|s| store::percent_eq(&s.id, pid)) else {
                return not_found("property", &percent_decode(pid));
            };
            (sp.clone(), st.value_json(p, sp))
        };
        store::sign_files(&mut full, &st.render);
        if sp.kind == "rollup" {
            // Recorded (ultimate-notion property-item-rollup): a list whose value is in
            // `property_item.rollup`, not in `results`.
            return Response::json(
                200,
                &json!({
                    "object":"list","results":[],"next_cursor":null,"has_more":false,
                    "type":"property_item",
                    "property_item":{"id":sp.id,"next_url":null,"type":"rollup","rollup":full},
                    "request_id":request_id(),
                }),
            );
        }
        if !matches!(
            sp.kind.as_str(),
            "title" | "rich_text" | "relation" | "people"
        ) {
            return Response::json(
                200,
                &json!({"object":"property_item","id":sp.id,"type":sp.kind, sp.kind.as_str(): full,
                    "request_id":request_id()}),
            );
        }
        let size = match Self::page_size(req.query_one("page_size").map(|s| json!(s)).as_ref()) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let offset = match req.query_one("start_cursor") {
            None => 0,
            Some(c) => match decode_cursor(c) {
                Some(o) => o,
                None => {
                    return error(
                        400,
                        "validation_error",
                        "start_cursor should be a valid cursor.",
                    )
                }
            },
        };
        let items = full.as_array().cloned().unwrap_or_default();
        let end = (offset + size).min(items.len());
        let results: Vec<Value> = items[offset.min(end)..end]
            .iter()
            .map(|i| json!({"object":"property_item","id":sp.id,"type":sp.kind, sp.kind.as_str(): i}))
            .collect();
        let has_more = end < items.len();
        let next_url = if has_more {
            json!(format!(
                "https://api.notion.com/v1/pages/{}/properties/{}?start_cursor={}",
                page_id,
                sp.id,
                encode_cursor(end)
            ))
        } else {
            Value::Null
        };
        let mut pi = json!({"id":sp.id,"type":sp.kind,"next_url":next_url});
        pi[sp.kind.as_str()] = json!({});
        Response::json(
            200,
            &json!({
                "object":"list","results":results,
                "next_cursor": if has_more { json!(encode_cursor(end)) } else { Value::Null },
                "has_more":has_more,"type":"property_item","property_item":pi,"request_id":request_id(),
            }),
        )
    }

    fn children(&self, req: &Request, token: &str, version: &str, id: &str) -> Response {
        let st = self.store.lock().unwrap();
        // A page's own blocks, then a `child_page` block per standalone sub-page (not in trash).
        let page_kids = |own: &[String]| {
            let mut kids = own.to_vec();
            kids.extend(st.sub_pages(id).iter().map(|w| w.id.clone()));
            kids
        };
        let kids = if let Some(p) = st.pages.get(id) {
            if !st.can_read_ds(token, &p.data_source_id) {
                return not_found("block", id);
            }
            page_kids(&p.children)
        } else if let Some(w) = st.wiki.get(id) {
            if !st.can_read_page(token, id) {
                return not_found("block", id);
            }
            page_kids(&w.children)
        } else if let Some(b) = st.blocks.get(id) {
            b.children.clone()
        } else {
            return not_found("block", id);
        };
        let size = match Self::page_size(req.query_one("page_size").map(|s| json!(s)).as_ref()) {
            Ok(n) => n,
            Err(r) => return r,
        };
        // Block cursors are the id of the next block, as recorded.
        let offset = match req.query_one("start_cursor") {
            None => 0,
            Some(c) => match kids.iter().position(|k| *k == norm_id(c)) {
                Some(o) => o,
                None => {
                    return error(
                        400,
                        "validation_error",
                        "start_cursor should be a valid block id.",
                    )
                }
            },
        };
        let end = (offset + size).min(kids.len());
        let results: Vec<Value> = kids[offset.min(end)..end]
            .iter()
            .map(|k| match st.blocks.get(k) {
                Some(b) => st.block_json(b, version),
                None => st.child_page_json(&st.wiki[k], version),
            })
            .collect();
        let has_more = end < kids.len();
        Response::json(
            200,
            &json!({
                "object":"list","results":results,
                "next_cursor": if has_more { json!(kids[end]) } else { Value::Null },
                "has_more":has_more,"type":"block","block":{},"request_id":request_id(),
            }),
        )
    }

    fn search(&self, token: &str, version: &str, body: &Value) -> Response {
        let size = match Self::page_size(body.get("page_size")) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let q = body
            .get("query")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_lowercase();
        let want = body
            .get("filter")
            .and_then(|f| f.get("value"))
            .and_then(|v| v.as_str());
        let container = if version == "2022-06-28" {
            "database"
        } else {
            "data_source"
        };
        if let Some(w) = want {
            if w != "page" && w != container {
                return error(400, "validation_error", &format!("body failed validation: body.filter.value should be `\"page\"` or `\"{container}\"`, instead was `\"{w}\"`."));
            }
        }
        let sort = body.get("sort").filter(|s| !s.is_null());
        if let Some(s) = sort {
            let ts = s.get("timestamp").and_then(|t| t.as_str());
            let dir = s.get("direction").and_then(|d| d.as_str());
            if ts != Some("last_edited_time") {
                return error(400, "validation_error", &format!("body failed validation: body.sort.timestamp should be `\"last_edited_time\"`, instead was `{}`.", s.get("timestamp").unwrap_or(&Value::Null)));
            }
            if !matches!(dir, Some("ascending") | Some("descending")) {
                return error(400, "validation_error", &format!("body failed validation: body.sort.direction should be `\"ascending\"` or `\"descending\"`, instead was `{}`.", s.get("direction").unwrap_or(&Value::Null)));
            }
        }
        let st = self.store.lock().unwrap();
        let mut hits: Vec<(i64, Value)> = vec![];
        if want != Some("page") {
            for db_id in &st.database_order {
                if !st.can_read_db(token, db_id) {
                    continue;
                }
                let db = &st.databases[db_id];
                if version == "2022-06-28" {
                    if db.title.to_lowercase().contains(&q) {
                        hits.push((db.edited_ms, st.database_json(db, version)));
                    }
                } else {
                    for d in &db.data_sources {
                        let ds = &st.data_sources[d];
                        if ds.name.to_lowercase().contains(&q) {
                            hits.push((ds.edited_ms, st.data_source_json(ds)));
                        }
                    }
                }
            }
        }
        if want != Some(container) {
            for p in st.pages.values() {
                if !p.in_trash
                    && st.can_read_ds(token, &p.data_source_id)
                    && st.page_title(p).to_lowercase().contains(&q)
                {
                    hits.push((p.edited_ms, st.page_json(p, version, None, false)));
                }
            }
            // Standalone pages; trashed ones are left out, as trashed database pages are.
            for id in &st.wiki_order {
                let w = &st.wiki[id];
                if !w.in_trash
                    && st.can_read_page(token, id)
                    && store::plain_text(&w.title).to_lowercase().contains(&q)
                {
                    hits.push((w.edited_ms, st.wiki_json(w, version)));
                }
            }
        }
        let asc = body
            .get("sort")
            .and_then(|s| s.get("direction"))
            .and_then(|d| d.as_str())
            == Some("ascending");
        hits.sort_by(|a, b| {
            if asc { a.0.cmp(&b.0) } else { b.0.cmp(&a.0) }
                .then_with(|| a.1["id"].as_str().cmp(&b.1["id"].as_str()))
        });
        let offset = body
            .get("start_cursor")
            .and_then(|c| c.as_str())
            .and_then(decode_cursor)
            .unwrap_or(0);
        let end = (offset + size).min(hits.len());
        let has_more = end < hits.len();
        let results: Vec<Value> = hits.drain(offset.min(end)..end).map(|h| h.1).collect();
        let list_type = if version == "2022-06-28" {
            "page_or_database"
        } else {
            "page_or_data_source"
        };
        Response::json(
            200,
            &json!({
                "object":"list","results":results,
                "next_cursor": if has_more { json!(encode_cursor(end)) } else { Value::Null },
                "has_more":has_more,"type":list_type, list_type:{},"request_id":request_id(),
            }),
        )
    }
}

/// The error a `status` or `commit_then_status` fault answers, in Notion's envelope:
/// `additional_data` with `rate_limit_reason`, `retry_after` (with a `Retry-After` header),
/// `retry_guidance` and `committed_resource_id` when the rule asks for them.
fn fault_error(f: &Fault, created: Option<String>) -> Response {
    let code = f.code.clone().unwrap_or_else(|| {
        match f.status {
            429 => "rate_limited",
            500 => "internal_server_error",
            502 => "bad_gateway",
            503 => "service_unavailable",
            504 => "gateway_timeout",
            529 => "service_overload",
            409 => "conflict_error",
            _ => "internal_server_error",
        }
        .to_string()
    });
    let message = f
        .message
        .clone()
        .unwrap_or_else(|| format!("Injected fault: {code}"));
    let mut body = json!({"object":"error","status":f.status,"code":code,"message":message,"request_id":request_id()});
    let mut extra = serde_json::Map::new();
    if let Some(reason) = &f.reason {
        extra.insert("rate_limit_reason".into(), json!(reason));
        if let Some(ra) = f.retry_after {
            extra.insert("retry_after".into(), json!(ra.to_string()));
        }
    }
    if let Some(g) = &f.retry_guidance {
        extra.insert("retry_guidance".into(), json!(g));
    }
    if f.committed_resource_id {
        if let Some(id) = created {
            extra.insert("committed_resource_id".into(), json!(id));
        }
    }
    if !extra.is_empty() {
        body["additional_data"] = Value::Object(extra);
    }
    let mut r = Response::json(f.status, &body);
    if let Some(ra) = f.retry_after {
        r = r.with_header("Retry-After", &ra.to_string());
    }
    r
}

fn send(r: Response) -> (Reply, u16) {
    let s = r.status;
    (Reply::Send(r), s)
}

/// Cursors are opaque strings to clients; inside they carry an offset.
fn encode_cursor(offset: usize) -> String {
    format!(
        "s:{}:{:08x}",
        store::uuid_from(&format!("cursor{offset}")),
        offset
    )
}
fn decode_cursor(c: &str) -> Option<usize> {
    let hex = c.strip_prefix("s:")?.rsplit(':').next()?;
    usize::from_str_radix(hex, 16).ok()
}

/// Page ids of a data source matching `filter`, in `sorts` order (ties broken by id, so order among
/// pages sharing a minute is arbitrary but stable, as observed in Notion).
fn ordered(st: &Store, ds_id: &str, filter: &Value, sorts: &Value) -> Result<Vec<String>, String> {
    let mut out: Vec<&store::Page> = vec![];
    for id in &st.ds_pages[ds_id] {
        let p = &st.pages[id];
        if p.in_trash || p.data_source_id != ds_id {
            continue;
        }
        if filter.is_null() || matches(st, p, filter, 0)? {
            out.push(p);
        }
    }
    let sort_keys: Vec<(String, bool)> = match sorts {
        Value::Null => vec![],
        Value::Array(a) => a
            .iter()
            .map(|s| {
                let key = s
                    .get("timestamp")
                    .or_else(|| s.get("property"))
                    .and_then(|v| v.as_str())
                    .ok_or("body failed validation: sorts[] needs `timestamp` or `property`.")?;
                let desc = s.get("direction").and_then(|d| d.as_str()) == Some("descending");
                Ok((key.to_string(), desc))
            })
            .collect::<Result<_, String>>()?,
        _ => return Err("body failed validation: body.sorts should be an array.".into()),
    };
    out.sort_by(|a, b| {
        for (k, desc) in &sort_keys {
            let o = match k.as_str() {
                "created_time" => round_minute(a.created_ms).cmp(&round_minute(b.created_ms)),
                "last_edited_time" => round_minute(a.edited_ms).cmp(&round_minute(b.edited_ms)),
                prop => sort_value(st, a, prop)
                    .partial_cmp(&sort_value(st, b, prop))
                    .unwrap_or(std::cmp::Ordering::Equal),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        if sort_keys.is_empty() {
            // Notion's default order is newest first.
            return b
                .created_ms
                .cmp(&a.created_ms)
                .then_with(|| a.id.cmp(&b.id));
        }
        a.id.cmp(&b.id)
    });
    Ok(out.into_iter().map(|p| p.id.clone()).collect())
}

#[derive(PartialEq, PartialOrd)]
enum SortVal {
    Num(f64),
    Text(String),
}

fn sort_value(st: &Store, p: &store::Page, prop: &str) -> SortVal {
    let v = p.values.get(prop).cloned().unwrap_or(Value::Null);
    if let Some(n) = v.as_f64() {
        return SortVal::Num(n);
    }
    let _ = st;
    SortVal::Text(match &v {
        Value::Array(_) => store::plain_text(&v),
        Value::Object(o) => o
            .get("name")
            .or_else(|| o.get("start"))
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn matches(st: &Store, p: &store::Page, f: &Value, depth: usize) -> Result<bool, String> {
    for op in ["and", "or"] {
        if let Some(list) = f.get(op) {
            if depth >= 2 {
                return Err("body failed validation: filters may nest at most two levels.".into());
            }
            let list = list
                .as_array()
                .ok_or(format!("body.filter.{op} should be an array."))?;
            let mut acc = op == "and";
            for sub in list {
                let r = matches(st, p, sub, depth + 1)?;
                acc = if op == "and" { acc && r } else { acc || r };
            }
            return Ok(acc);
        }
    }
    if let Some(ts) = f.get("timestamp").and_then(|t| t.as_str()) {
        if f.get("property").is_some() {
            return Err(
                "body failed validation: a timestamp filter must not carry `property`.".into(),
            );
        }
        let value = match ts {
            "created_time" => round_minute(p.created_ms),
            "last_edited_time" => round_minute(p.edited_ms),
            other => {
                return Err(format!(
                    "body failed validation: unknown timestamp `{other}`."
                ))
            }
        };
        let cond = f.get(ts).ok_or(format!(
            "body failed validation: body.filter.{ts} should be defined."
        ))?;
        return date_cond(value, cond);
    }
    if let Some(name) = f.get("property").and_then(|t| t.as_str()) {
        let ds = &st.data_sources[&p.data_source_id];
        let sp = ds
            .schema
            .iter()
            .find(|s| s.name == name || s.id == name)
            .ok_or(format!("Could not find property with name or id: {name}"))?;
        let v = p.values.get(&sp.name).cloned().unwrap_or(Value::Null);
        let obj = f.as_object().unwrap();
        let (kind, cond) = obj
            .iter()
            .find(|(k, _)| *k != "property" && *k != "type")
            .ok_or("body failed validation: property filter needs a condition.")?;
        return match kind.as_str() {
            "checkbox" => Ok(cond.get("equals").map(|e| *e == v).unwrap_or(true)),
            "number" => {
                let n = v.as_f64();
                Ok(match (cond.as_object().and_then(|c| c.iter().next()), n) {
                    (Some((op, x)), Some(n)) => {
                        let x = x.as_f64().unwrap_or(0.0);
                        match op.as_str() {
                            "equals" => n == x,
                            "greater_than" => n > x,
                            "less_than" => n < x,
                            "greater_than_or_equal_to" => n >= x,
                            "less_than_or_equal_to" => n <= x,
                            _ => true,
                        }
                    }
                    (Some((op, _)), None) => op == "is_empty",
                    _ => true,
                })
            }
            "title" | "rich_text" => {
                let text = store::plain_text(&v).to_lowercase();
                Ok(
                    if let Some(c) = cond.get("contains").and_then(|c| c.as_str()) {
                        text.contains(&c.to_lowercase())
                    } else if let Some(e) = cond.get("equals").and_then(|c| c.as_str()) {
                        text == e.to_lowercase()
                    } else {
                        true
                    },
                )
            }
            "select" | "status" => {
                let name = v.get("name").and_then(|n| n.as_str());
                Ok(cond
                    .get("equals")
                    .and_then(|e| e.as_str())
                    .map(|e| name == Some(e))
                    .unwrap_or(true))
            }
            "date" => match v.get("start").and_then(|s| s.as_str()).and_then(parse_time) {
                Some(t) => date_cond(t, cond),
                None => Ok(cond.get("is_empty").is_some()),
            },
            other => Err(format!(
                "body failed validation: filter type `{other}` is not supported by this fake."
            )),
        };
    }
    Err(
        "body failed validation: body.filter should be a timestamp, property or compound filter."
            .into(),
    )
}

fn date_cond(value: i64, cond: &Value) -> Result<bool, String> {
    let obj = cond
        .as_object()
        .ok_or("date filter condition should be an object.")?;
    let mut ok = true;
    for (op, x) in obj {
        let t = || {
            x.as_str().and_then(parse_time).ok_or(format!(
                "body failed validation: `{x}` is not a valid ISO 8601 date."
            ))
        };
        ok &= match op.as_str() {
            "equals" => value == t()?,
            "before" => value < t()?,
            "after" => value > t()?,
            "on_or_before" => value <= t()?,
            "on_or_after" => value >= t()?,
            "is_empty" => false,
            "is_not_empty" => true,
            other => {
                return Err(format!(
                "body failed validation: date operator `{other}` is not supported by this fake."
            ))
            }
        };
    }
    Ok(ok)
}

/// One page object made wrong in the way a `malformed` fault names.
fn garble(page: &mut Value, how: &str) {
    match how {
        "timestamp" => page["last_edited_time"] = json!("2026-13-45T99:99:00.000Z"),
        "id" => page["id"] = json!("not-a-notion-id"),
        "properties_array" => page["properties"] = json!([1, 2, 3]),
        "title_number" => {
            if let Some(props) = page.get_mut("properties").and_then(|p| p.as_object_mut()) {
                for p in props.values_mut() {
                    if p.get("type").and_then(|t| t.as_str()) == Some("title") {
                        p["title"] = json!(7);
                    }
                }
            }
        }
        _ => page["properties"] = json!("\u{0}garbage"),
    }
}
