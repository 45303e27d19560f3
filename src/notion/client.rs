//! The Notion HTTP client: ureq + rustls, pagination, retries with `Retry-After`, a per-token
//! request budget, and waits that keep checking for interrupts (the request runs on a helper thread
//! that never touches Postgres; the calling thread polls and can be cancelled). Every request waits
//! for its turn in `pool` first.

use super::pool::{self, Lane};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Notion answered with an error envelope (or an HTTP error without one).
    Http {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// Connection refused/reset, timeout, TLS failure.
    Transport(String),
    /// A 2xx whose body is not the JSON we expect (truncated, not JSON).
    Decode(String),
    /// A setting makes the request unsafe (plain http to a non-loopback host).
    Config(String),
    /// The sync this request belonged to ended (failed, cancelled) while it waited for its turn.
    Cancelled,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Http {
                status,
                code,
                message,
                request_id,
            } => {
                write!(f, "Notion API {status} {code}: {message}")?;
                if let Some(r) = request_id {
                    write!(f, " (request id {r})")?;
                }
                Ok(())
            }
            ApiError::Transport(m) => write!(f, "cannot reach Notion: {m}"),
            ApiError::Decode(m) => write!(f, "unreadable response from Notion: {m}"),
            ApiError::Config(m) => write!(f, "{m}"),
            ApiError::Cancelled => write!(f, "request cancelled: its sync ended"),
        }
    }
}

impl ApiError {
    /// Whether a read is tried again: rate limits, conflicts, 5xx, transport (D:rl).
    fn retryable(&self) -> bool {
        match self {
            ApiError::Http { status, code, .. } => match status {
                429 | 529 => code != "public_api_request_blocked",
                409 | 500 | 502 | 503 | 504 => true,
                _ => false,
            },
            ApiError::Transport(_) | ApiError::Decode(_) => true,
            ApiError::Config(_) | ApiError::Cancelled => false,
        }
    }

    /// Whether a write is tried again at once: only answers Notion gives before carrying a
    /// request out (429/529 rate limits, 409 conflict). A 5xx or a dropped connection may come
    /// after the write was committed: the caller reads back instead (writeback).
    fn retryable_write(&self) -> bool {
        match self {
            ApiError::Http { status, code, .. } => match status {
                429 | 529 => code != "public_api_request_blocked",
                409 => true,
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether Notion said the request changed nothing: a client error, a rate limit, a conflict.
    pub fn not_applied(&self) -> bool {
        matches!(self, ApiError::Http { status, .. } if (400..500).contains(status) || *status == 529)
            || matches!(self, ApiError::Config(_) | ApiError::Cancelled)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL including `/v1`.
    pub api_url: String,
    pub version: String,
    pub token: String,
    pub timeout: Duration,
    pub max_retries: u32,
    /// Requests per second for this token; 0 = no limit.
    pub rps: f64,
    /// Where the token's bucket lives: this process ([`take_budget`]) or shared memory.
    pub budget: Budget,
    /// Requests of this process in flight at once, at most (see `pool`).
    pub max_in_flight: usize,
}

/// What a waiting client calls on the process's own thread every few ms: CHECK_FOR_INTERRUPTS in
/// a backend, the SIGTERM check in the scheduler.
pub type Interrupt = dyn Fn() + Sync;

fn no_interrupt() {}

/// Takes one request from a token's budget at `rps`, or says how long to wait for one.
pub type Budget = fn(token: &str, rps: f64) -> Option<Duration>;

/// The burst a token's bucket holds (and starts with): one request less than Notion's burst of
/// `rps`, at least 1. The server counts a request when it arrives, and a request sent on time can
/// arrive early relative to the one before it (connection reuse, scheduling, requests in flight
/// side by side); the token kept back absorbs up to 1/rps of such jitter, so a budget at the
/// server's rate gets no 429 (a full burst got one in CI).
pub fn bucket_cap(rps: f64) -> f64 {
    (rps - 1.0).max(1.0)
}

/// One token-bucket step: refills at about `rps` up to `bucket_cap`, then takes one request or
/// returns the wait. `level` starts full; times are microseconds.
pub fn bucket_step(level: &mut f64, last_us: &mut i64, now_us: i64, rps: f64) -> Option<Duration> {
    let cap = bucket_cap(rps);
    // Refilled a little slower than `rps` so that burst + refill never exceed rps x 60 in any 60 s
    // window (Notion's limit is an average per minute).
    let refill = (rps - cap / 60.0).max(rps / 2.0);
    let elapsed = (now_us - *last_us).max(0) as f64 / 1e6;
    *level = (*level + elapsed * refill).min(cap);
    *last_us = now_us;
    if *level >= 1.0 {
        *level -= 1.0;
        None
    } else {
        Some(Duration::from_secs_f64((1.0 - *level) / refill))
    }
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub requests: u64,
    pub retries: u64,
}

impl Stats {
    pub fn add(&mut self, other: Stats) {
        self.requests += other.requests;
        self.retries += other.retries;
    }

    /// What was counted after `before`.
    pub fn since(self, before: Stats) -> Stats {
        Stats {
            requests: self.requests - before.requests,
            retries: self.retries - before.retries,
        }
    }
}

/// Budget per token, shared by every client in this process (used when the library is not
/// preloaded, so there is no shared memory).
static BUCKETS: Mutex<Option<HashMap<String, (f64, i64)>>> = Mutex::new(None);

pub fn take_budget(token: &str, rps: f64) -> Option<Duration> {
    if rps <= 0.0 {
        return None;
    }
    let mut guard = BUCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let now = now_us();
    let (level, last) = map
        .entry(token.to_string())
        .or_insert((bucket_cap(rps), now));
    bucket_step(level, last, now, rps)
}

/// A Notion client. On the process's own thread (`new`) it waits for its turns, answers and
/// backoffs by pumping the `pool` and calling `interrupt` every few ms; on a helper thread
/// (`detached`) it asks its lane for each turn and never touches Postgres.
pub struct Client<'a> {
    cfg: Config,
    agent: ureq::Agent,
    pub stats: Stats,
    interrupt: &'a Interrupt,
    lane: Option<Arc<Lane>>,
    /// A turn taken for this client's first request when it was made (`detached_now`).
    permit: Option<pool::Permit>,
    /// `additional_data.committed_resource_id` of the last error answer: a write Notion carried
    /// out although it answered an error.
    pub committed: Option<String>,
}

/// (status, Retry-After seconds, the body parsed as JSON).
type Exchange = Result<(u16, Option<u64>, Result<Value, serde_json::Error>), ApiError>;

/// Token-free base URL check: https anywhere, plain http only to loopback (tests, the fake).
pub fn check_url(url: &str) -> Result<(), ApiError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let loopback_ip = host
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
        if host == "localhost" || loopback_ip {
            return Ok(());
        }
        if rest.starts_with("[::1]") {
            return Ok(());
        }
    }
    Err(ApiError::Config(format!(
        "notion_sync.api_url must be https (plain http is allowed only to a loopback host), got {url}"
    )))
}

impl<'a> Client<'a> {
    pub fn new(cfg: Config, interrupt: &'a Interrupt) -> Result<Client<'a>, ApiError> {
        check_url(&cfg.api_url)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(cfg.timeout)
            .max_idle_connections_per_host(4)
            .build();
        Ok(Client {
            cfg,
            agent,
            stats: Stats::default(),
            interrupt,
            lane: None,
            permit: None,
            committed: None,
        })
    }

    /// A client for a helper thread: same settings and connections, its turns asked on `lane`.
    pub fn detached(&self, lane: &Arc<Lane>) -> Client<'static> {
        Client {
            cfg: self.cfg.clone(),
            agent: self.agent.clone(),
            stats: Stats::default(),
            interrupt: &no_interrupt,
            lane: Some(lane.clone()),
            permit: None,
            committed: None,
        }
    }

    /// `detached`, its first request's turn taken now when nobody waits for one (see
    /// `pool::try_now`): what a prefetch uses, made on the process's own thread.
    pub fn detached_now(&self, lane: &Arc<Lane>) -> Client<'static> {
        let mut client = self.detached(lane);
        if self.lane.is_none() {
            let cfg = &self.cfg;
            client.permit = pool::try_now(&cfg.token, cfg.rps, cfg.budget, cfg.max_in_flight);
        }
        client
    }

    /// On the process's own thread: grants waiting turns and checks for interrupts, for about
    /// `d` (what a caller does while its helper threads work).
    pub fn idle(&self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            pool::pump(self.cfg.budget, self.cfg.max_in_flight);
            (self.interrupt)();
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(1)));
        }
    }

    /// The lane's turn for one request, or (on the process's own thread) one asked first.
    fn turn(&mut self) -> Result<pool::Permit, ApiError> {
        if let Some(permit) = self.permit.take() {
            return Ok(permit);
        }
        match &self.lane {
            Some(lane) => pool::acquire(lane, &self.cfg.token, self.cfg.rps),
            None => Ok(pool::acquire_here(
                &self.cfg.token,
                self.cfg.rps,
                self.cfg.budget,
                self.cfg.max_in_flight,
                self.interrupt,
            )),
        }
    }

    pub fn version(&self) -> &str {
        &self.cfg.version
    }

    /// Sleeps in short slices so a cancel or SIGTERM is seen within 50 ms (on a helper thread: a
    /// cancelled lane).
    fn sleep(&self, d: Duration) -> Result<(), ApiError> {
        let Some(lane) = &self.lane else {
            self.idle(d);
            return Ok(());
        };
        let end = Instant::now() + d;
        loop {
            if lane.cancelled() {
                return Err(ApiError::Cancelled);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }

    /// Starts one HTTP exchange on a helper thread (which never touches Postgres); the receiver
    /// gets the status, Retry-After and the body already parsed (off the backend's thread too).
    fn send(&self, method: &str, url: &str, body: Option<String>) -> mpsc::Receiver<Exchange> {
        let req = self
            .agent
            .request(method, url)
            .set("Authorization", &format!("Bearer {}", self.cfg.token))
            .set("Notion-Version", &self.cfg.version)
            .set("Accept", "application/json");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let result = match body {
                Some(b) => req.set("Content-Type", "application/json").send_string(&b),
                None => req.call(),
            };
            let out = match result {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                    let status = resp.status();
                    let retry_after = resp
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let mut buf = Vec::new();
                    match resp.into_reader().take(64 << 20).read_to_end(&mut buf) {
                        Ok(_) => {
                            // Invalid UTF-8 is replaced, not fatal.
                            let parsed = serde_json::from_str(&String::from_utf8_lossy(&buf));
                            Ok((status, retry_after, parsed))
                        }
                        Err(e) => Err(ApiError::Transport(format!("reading the body: {e}"))),
                    }
                }
                // A bad certificate will not get better by retrying: fatal, and it says so.
                Err(ureq::Error::Transport(t)) if t.to_string().contains("certificate") => {
                    Err(ApiError::Config(format!(
                        "TLS certificate rejected for notion_sync.api_url: {t}"
                    )))
                }
                Err(ureq::Error::Transport(t)) => Err(ApiError::Transport(t.to_string())),
            };
            let _ = tx.send(out);
        });
        rx
    }

    /// Waits for an exchange; on the process's own thread it pumps and checks for interrupts
    /// every few ms meanwhile.
    fn wait(&self, rx: mpsc::Receiver<Exchange>) -> Exchange {
        loop {
            // A helper thread waits for its answer (bounded by the HTTP timeout) and never pumps:
            // the budget lives in shared memory, which only the process's own thread may touch.
            if self.lane.is_some() {
                return rx
                    .recv()
                    .unwrap_or_else(|_| Err(ApiError::Transport("request thread ended".into())));
            }
            match rx.recv_timeout(Duration::from_millis(2)) {
                Ok(r) => return r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    pool::pump(self.cfg.budget, self.cfg.max_in_flight);
                    (self.interrupt)()
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ApiError::Transport("request thread ended".into()))
                }
            }
        }
    }

    /// A request with the budget, retries and `Retry-After` applied. `path` starts with `/`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.request_with(method, path, body, ApiError::retryable)
    }

    /// A write (PATCH / POST of a page): tried again only after answers that say it was not
    /// carried out; `committed` is set when an error answer names what it committed.
    pub fn write(&mut self, method: &str, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.committed = None;
        self.request_with(method, path, Some(body), ApiError::retryable_write)
    }

    fn request_with(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        retryable: fn(&ApiError) -> bool,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.cfg.api_url.trim_end_matches('/'), path);
        let body = body.map(|b| b.to_string());
        let mut attempt: u32 = 0;
        loop {
            let permit = self.turn()?;
            self.stats.requests += 1;
            let rx = self.send(method, &url, body.clone());
            let exchange = self.wait(rx);
            drop(permit);
            let (err, retry_after) = match exchange {
                Ok((status, retry_after, parsed)) => {
                    if (200..300).contains(&status) {
                        match parsed {
                            Ok(v) if v.is_object() => return Ok(v),
                            Ok(_) => (ApiError::Decode("expected a JSON object".into()), None),
                            Err(e) => (ApiError::Decode(e.to_string()), None),
                        }
                    } else {
                        let v = parsed.unwrap_or(Value::Null);
                        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
                        if let Some(id) = v
                            .pointer("/additional_data/committed_resource_id")
                            .and_then(|i| i.as_str())
                        {
                            self.committed = Some(id.to_string());
                        }
                        let code = v
                            .pointer("/additional_data/rate_limit_reason")
                            .and_then(|r| r.as_str())
                            .filter(|r| *r == "public_api_request_blocked")
                            .map(String::from)
                            .or_else(|| s("code"))
                            .unwrap_or_else(|| format!("http_{status}"));
                        (
                            ApiError::Http {
                                status,
                                code,
                                message: s("message").unwrap_or_default(),
                                request_id: s("request_id"),
                            },
                            retry_after,
                        )
                    }
                }
                Err(e) => (e, None),
            };
            if !retryable(&err) || attempt >= self.cfg.max_retries {
                return Err(err);
            }
            attempt += 1;
            self.stats.retries += 1;
            let wait = match retry_after {
                // Honoured exactly: never earlier than Notion asked.
                Some(s) => Duration::from_secs(s),
                None => backoff(attempt),
            };
            self.sleep(wait)?;
        }
    }

    pub fn get(&mut self, path: &str) -> Result<Value, ApiError> {
        self.request("GET", path, None)
    }

    /// The data sources to read for a database: its `data_sources` (2025-09-03+) or the database itself.
    pub fn sources(&mut self, database_id: &str) -> Result<(String, Vec<String>), ApiError> {
        let db = self.get(&format!("/databases/{database_id}"))?;
        let title = db
            .get("title")
            .and_then(|t| t.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.get("plain_text").and_then(|p| p.as_str()))
                    .collect::<String>()
            })
            .unwrap_or_default();
        if self.cfg.version.as_str() < "2025-09-03" {
            return Ok((title, vec![database_id.to_string()]));
        }
        let ids = db
            .get("data_sources")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.get("id").and_then(|i| i.as_str()).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok((title, ids))
    }

    fn query_path(&self, source_id: &str) -> String {
        if self.cfg.version.as_str() < "2025-09-03" {
            format!("/databases/{source_id}/query")
        } else {
            format!("/data_sources/{source_id}/query")
        }
    }

    /// One page of a query (data source on 2025-09-03+, database on 2022-06-28).
    pub fn query(&mut self, source_id: &str, body: &Value) -> Result<Value, ApiError> {
        let path = self.query_path(source_id);
        self.request("POST", &path, Some(body))
    }

    /// Every item of a paginated property (relations, people at 25, incomplete rollups), and the
    /// last response's `property_item` (where a rollup's value is: its `results` are empty).
    pub fn property_items(
        &mut self,
        page_id: &str,
        property_id: &str,
    ) -> Result<(Vec<Value>, Option<Value>), ApiError> {
        let mut last = None;
        let items = self.get_all_with(
            &format!("/pages/{page_id}/properties/{property_id}"),
            &mut last,
        )?;
        Ok((items, last))
    }

    /// The `properties` of a data source's schema (of the database itself before 2025-09-03).
    pub fn schema(&mut self, source_id: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
        let path = if self.cfg.version.as_str() < "2025-09-03" {
            format!("/databases/{source_id}")
        } else {
            format!("/data_sources/{source_id}")
        };
        let mut v = self.get(&path)?;
        Ok(match v.get_mut("properties").map(Value::take) {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        })
    }

    /// Every database container the token can see, trashed ones included (POST /v1/search with
    /// the `data_source` filter on 2025-09-03+, `database` before), all pages of results.
    pub fn search_containers(&mut self) -> Result<Vec<Value>, ApiError> {
        let value = if self.cfg.version.as_str() < "2025-09-03" {
            "database"
        } else {
            "data_source"
        };
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut body =
                json!({"filter": {"property": "object", "value": value}, "page_size": 100});
            if let Some(c) = &cursor {
                body["start_cursor"] = json!(c);
            }
            let mut v = self.request("POST", "/search", Some(&body))?;
            if let Some(Value::Array(a)) = v.get_mut("results").map(Value::take) {
                out.extend(a);
            }
            cursor = next_cursor(&v);
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// All children of a block (one level), following cursors.
    pub fn children(&mut self, block_id: &str) -> Result<Vec<Value>, ApiError> {
        self.get_all(&format!("/blocks/{block_id}/children"))
    }

    /// The `results` of every page of a paginated GET endpoint. A response that is not a list (a
    /// single property item) is returned as the only item.
    fn get_all(&mut self, base: &str) -> Result<Vec<Value>, ApiError> {
        self.get_all_with(base, &mut None)
    }

    /// `get_all`, keeping the `property_item` of the last list response in `item`.
    fn get_all_with(
        &mut self,
        base: &str,
        item: &mut Option<Value>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("{base}?page_size=100");
            if let Some(c) = &cursor {
                path.push_str(&format!("&start_cursor={}", urlencode(c)));
            }
            let v = self.get(&path)?;
            if v.get("object").and_then(|o| o.as_str()) != Some("list") {
                out.push(v);
                return Ok(out);
            }
            *item = v.get("property_item").cloned();
            out.extend(
                v.get("results")
                    .and_then(|r| r.as_array())
                    .cloned()
                    .unwrap_or_default(),
            );
            cursor = next_cursor(&v);
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// The page body as plain text in reading order, `depth` levels deep.
    pub fn page_text(&mut self, page_id: &str, depth: u32) -> Result<String, ApiError> {
        self.page_text_and_subpages(page_id, depth).map(|(t, _)| t)
    }

    /// The body, and the `child_page` blocks met on the way (the page's sub-pages: their content
    /// is not the page's, the block id is the sub-page's id).
    pub fn page_text_and_subpages(
        &mut self,
        page_id: &str,
        depth: u32,
    ) -> Result<(String, Vec<Value>), ApiError> {
        let (mut lines, mut pages) = (vec![], vec![]);
        self.collect_text(page_id, depth, 0, &mut lines, &mut pages)?;
        Ok((lines.join("\n"), pages))
    }

    fn collect_text(
        &mut self,
        id: &str,
        depth: u32,
        level: usize,
        lines: &mut Vec<String>,
        pages: &mut Vec<Value>,
    ) -> Result<(), ApiError> {
        if depth == 0 {
            return Ok(());
        }
        for block in self.children(id)? {
            if let Some(t) = super::model::block_text(&block) {
                lines.push(format!("{}{}", "  ".repeat(level), t));
            }
            if block.get("type").and_then(|t| t.as_str()) == Some("child_page") {
                pages.push(block);
                continue;
            }
            if super::model::descend(&block) {
                if let Some(child) = block.get("id").and_then(|i| i.as_str()) {
                    let child = child.to_string();
                    self.collect_text(&child, depth - 1, level + 1, lines, pages)?;
                }
            }
        }
        Ok(())
    }

    /// One page of `POST /v1/search` for pages, most recently edited first.
    pub fn search_pages(&mut self, cursor: Option<&str>) -> Result<Value, ApiError> {
        let mut body = json!({"filter": {"property": "object", "value": "page"},
            "sort": {"timestamp": "last_edited_time", "direction": "descending"}, "page_size": 100});
        if let Some(c) = cursor {
            body["start_cursor"] = json!(c);
        }
        self.request("POST", "/search", Some(&body))
    }
}

pub fn next_cursor(v: &Value) -> Option<String> {
    if v.get("has_more").and_then(|h| h.as_bool()) != Some(true) {
        return None;
    }
    v.get("next_cursor")
        .and_then(|c| c.as_str())
        .map(String::from)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Exponential backoff with jitter: base 500 ms doubling, capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let base = 500f64 * 2f64.powi(attempt.min(10) as i32 - 1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = (nanos % 1000) as f64 / 1000.0; // 0..1
    Duration::from_millis((base * (0.5 + jitter)).min(30_000.0) as u64)
}

/// The query body for one window of a scan, sorted ascending by `key` (`created_time` or
/// `last_edited_time`) and starting `on_or_after` `since`, so a capped query can resume from the
/// last minute seen.
pub fn query_body(key: &str, since: Option<&str>, cursor: Option<&str>) -> Value {
    let mut body =
        json!({"page_size": 100, "sorts": [{"timestamp": key, "direction": "ascending"}]});
    if let Some(t) = since {
        body["filter"] = json!({"timestamp": key, key: {"on_or_after": t}});
    }
    if let Some(c) = cursor {
        body["start_cursor"] = json!(c);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_be_plain_http() {
        assert!(check_url("https://api.notion.com/v1").is_ok());
        assert!(check_url("http://127.0.0.1:7000/v1").is_ok());
        assert!(check_url("http://localhost:7000/v1").is_ok());
        assert!(check_url("http://[::1]:7000/v1").is_ok());
        assert!(check_url("http://api.notion.com/v1").is_err());
        assert!(check_url("http://127.0.0.1.evil.com/v1").is_err());
    }

    #[test]
    fn retry_policy() {
        let http = |status: u16, code: &str| ApiError::Http {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        };
        assert!(http(429, "rate_limited").retryable());
        assert!(!http(429, "public_api_request_blocked").retryable());
        assert!(http(529, "service_overload").retryable());
        for s in [500, 502, 503, 504] {
            assert!(http(s, "x").retryable());
        }
        assert!(!http(401, "unauthorized").retryable());
        assert!(!http(404, "object_not_found").retryable());
        assert!(!http(400, "validation_error").retryable());
    }

    #[test]
    fn query_body_windows() {
        let b = query_body(
            "last_edited_time",
            Some("2026-01-01T00:00:00Z"),
            Some("s:abc"),
        );
        assert_eq!(
            b["filter"]["last_edited_time"]["on_or_after"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(b["sorts"][0]["timestamp"], "last_edited_time");
        assert_eq!(b["page_size"], 100);
        assert_eq!(b["start_cursor"], "s:abc");
        assert!(query_body("created_time", None, None)
            .get("filter")
            .is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(750));
        assert!(backoff(20) <= Duration::from_secs(30));
    }

    #[test]
    fn budget_limits_bursts() {
        let tok = "budget-test-token";
        let mut waited = 0;
        for _ in 0..10 {
            if take_budget(tok, 5.0).is_some() {
                waited += 1;
            }
        }
        assert!(
            waited >= 4,
            "a burst of 10 at 5 rps must wait for some: {waited}"
        );
        assert!(take_budget("other", 0.0).is_none());
    }

    #[test]
    fn never_above_the_budget_in_any_60_s_window() {
        // A client that asks as fast as it is allowed, on a simulated clock.
        let (mut level, mut last, mut now) = (2.0, 0i64, 0i64);
        let mut sent = vec![];
        while now < 300_000_000 {
            match bucket_step(&mut level, &mut last, now, 3.0) {
                None => sent.push(now),
                Some(wait) => now += wait.as_micros() as i64 + 1,
            }
        }
        let worst = sent
            .iter()
            .map(|t| {
                sent.iter()
                    .filter(|u| **u >= *t && **u < t + 60_000_000)
                    .count()
            })
            .max()
            .unwrap();
        assert!(worst <= 180, "{worst} requests in a 60 s window at 3 rps");
        assert!(sent.len() as f64 / 300.0 >= 2.9, "sustained rate too low");
    }
}
