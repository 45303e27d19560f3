//! The sync engine: reads a Notion database page by page of 100, skips unchanged pages by hash,
//! completes truncated values, reads bodies of changed pages, upserts in batches, marks deletions
//! after a complete scan, and keeps the watermark behind committed data.

use crate::error::SyncError;
use crate::gucs;
use crate::mapping::{self, Mapping, PageInfo, Source, Special};
use crate::notion::client::{self, ApiError, Client, Config};
use crate::notion::model;
use crate::storage::{self, RunCounts, TableSpec};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Transport failures (timeouts, refused connections, 5xx after the retries) on this many pages in
/// a row end the run: Notion is down or hangs, and going on page by page would take hours.
const DEAD_AFTER: u32 = 3;

/// The mass-deletion guard applies from this many rows (or when a scan saw no page at all).
const GUARD_MIN_ROWS: i64 = 10;

/// Whether an API error says Notion is not answering, rather than something about one page.
fn unreachable(e: &ApiError) -> bool {
    match e {
        ApiError::Transport(_) => true,
        ApiError::Http { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

/// The source (data source, or database under 2022-06-28) a page object names as its parent.
fn parent_source(page: &Value) -> Option<String> {
    page.pointer("/parent/data_source_id")
        .or_else(|| page.pointer("/parent/database_id"))
        .and_then(|v| v.as_str())
        .map(String::from)
}

/// Overlap re-read before the watermark: Notion rounds `last_edited_time` down to the minute, and
/// its query index can lag a little behind an edit.
const OVERLAP_MINUTES: i64 = 2;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, SyncError> {
        match s.trim().to_lowercase().as_str() {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            other => Err(SyncError::InvalidArgument(format!(
                "unknown sync mode {other:?}: use 'full' or 'incremental'"
            ))),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// Accepts a Notion id with or without dashes, or a Notion URL; returns the dashed lowercase form.
pub fn normalize_id(raw: &str) -> Result<String, SyncError> {
    let no_query = raw.split(['?', '#']).next().unwrap_or("");
    let hex: String = no_query
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_lowercase();
    // The id is the last 32 hex characters of the path (URLs carry a title slug before it).
    let tail: String = hex
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.len() < 32 {
        return Err(SyncError::InvalidArgument(format!(
            "{raw:?} is not a Notion database id: expected 32 hex digits (dashes optional) or a Notion URL"
        )));
    }
    Ok(model::dashed(&tail[tail.len() - 32..]))
}

pub struct Outcome {
    pub run_id: i64,
    pub database_id: String,
    pub database_name: String,
    pub mode: &'static str,
    pub counts: RunCounts,
    pub errors: Vec<(Option<String>, String)>,
    /// A failure the caller of `sync_notion_database` should see as an ERROR (bad token, not shared).
    pub raise: Option<SyncError>,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        let mut errors: Vec<Value> = self
            .errors
            .iter()
            .take(100)
            .map(|(p, e)| json!({"page_id": p, "error": e}))
            .collect();
        if let Some(e) = &self.counts.error {
            errors.insert(0, json!({"page_id": null, "error": e}));
        }
        json!({
            "run_id": self.run_id, "database_id": self.database_id, "database_name": self.database_name,
            "mode": self.mode, "status": self.counts.status, "total": self.counts.total,
            "created": self.counts.created, "updated": self.counts.updated, "skipped": self.counts.skipped,
            "deleted": self.counts.deleted, "errors": errors, "duration_ms": self.counts.duration_ms,
        })
    }
}

pub(crate) fn client_config(token: String) -> Config {
    Config {
        api_url: gucs::string(&gucs::API_URL, "https://api.notion.com/v1"),
        version: gucs::string(&gucs::NOTION_VERSION, "2025-09-03"),
        token,
        timeout: Duration::from_millis(gucs::HTTP_TIMEOUT_MS.get().max(100) as u64),
        max_retries: gucs::MAX_RETRIES.get().max(0) as u32,
        rps: gucs::REQUESTS_PER_SECOND.get(),
        budget: crate::shmem::take,
    }
}

fn content_depth() -> u32 {
    gucs::CONTENT_DEPTH.get().max(0) as u32
}

/// Levels of page body to read. A mapped table reads bodies only when it maps `@content` (and
/// then at least one level, whatever content_depth says, since the user asked for the text).
fn depth_for(mapping: Option<&Mapping>, content: bool) -> u32 {
    match (content, mapping) {
        (false, _) => 0,
        (true, Some(m)) if m.wants_content() => content_depth().max(1),
        (true, Some(_)) => 0,
        (true, None) => content_depth(),
    }
}

fn ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Maps errors of the database-level calls to what the user must do.
fn classify(e: ApiError, user: &str, db: &str) -> SyncError {
    match &e {
        ApiError::Http { status: 401, .. } => SyncError::BadToken(user.to_string()),
        ApiError::Http { status: 404, .. } | ApiError::Http { status: 403, .. } => {
            SyncError::NotShared(db.to_string())
        }
        _ => SyncError::Api(e),
    }
}

/// How a run's writes are grouped into transactions.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Txn {
    /// Inside the caller's transaction (the SQL functions): all or nothing, a cancel rolls it back.
    Caller,
    /// The background worker: no transaction open during HTTP; each API page of results (rows and
    /// watermark together) commits in a short transaction of its own.
    PerBatch,
}

impl Txn {
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            Txn::Caller => f(),
            Txn::PerBatch => {
                pgrx::bgworkers::BackgroundWorker::transaction(std::panic::AssertUnwindSafe(f))
            }
        }
    }
}

/// Mutable state of one run.
struct Run<'i> {
    client: Client<'i>,
    txn: Txn,
    spec: &'static TableSpec,
    /// Set for a table of the user's own: rows go there through the column map instead of `spec`.
    mapping: Option<Box<Mapping>>,
    /// Mapped columns whose Notion property is gone (deleted or renamed): reported once per run
    /// and left out of the writes, so their stored values stay.
    missing: Vec<usize>,
    user: String,
    db: String,
    db_name: String,
    depth: u32,
    seen: HashSet<String>,
    total: i64,
    created: i64,
    updated: i64,
    skipped: i64,
    errors: Vec<(Option<String>, String)>,
    max_edited: Option<i64>,
    min_failed_edited: Option<i64>,
    /// Wall clock at the start of the run: a page stamped in the future (clock skew) must not
    /// push the watermark past edits still to come.
    started_ms: i64,
    /// Webhook refetch of properties only: keep the stored body instead of reading blocks.
    keep_body: bool,
    /// Per data source: formula properties whose value changes without an edit (`now()`), left
    /// out of the hash. Read from the schema once per run, only for sources with formulas.
    volatile: HashMap<String, Vec<String>>,
    /// Pages in a row whose reads failed because Notion did not answer (see `DEAD_AFTER`).
    dead_in_a_row: u32,
    /// Nothing of this database was stored when the run started (a first sync): no page can be
    /// unchanged, so stored hashes are not looked up. Planner statistics of a table that was empty
    /// make that lookup a scan per id, which cost a first sync of 10,000 pages 4x its time.
    fresh: bool,
}

impl<'i> Run<'i> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        client: Client<'i>,
        txn: Txn,
        target: &str,
        user: &str,
        db: &str,
        db_name: String,
        mapping: Option<Mapping>,
        depth: u32,
    ) -> Run<'i> {
        Run {
            client,
            txn,
            spec: storage::spec(target),
            mapping: mapping.map(Box::new),
            missing: vec![],
            user: user.to_string(),
            db: db.to_string(),
            db_name,
            depth,
            seen: HashSet::new(),
            total: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            errors: vec![],
            max_edited: None,
            min_failed_edited: None,
            started_ms: chrono::Utc::now().timestamp_millis(),
            keep_body: false,
            volatile: HashMap::new(),
            dead_in_a_row: 0,
            fresh: false,
        }
    }

    /// The notion_sync table holding this run's hashes: its sync table, or `mapped_pages`.
    fn stored_table(&self) -> &'static str {
        match self.mapping {
            Some(_) => "mapped_pages",
            None => self.spec.table,
        }
    }

    /// A page whose API read failed: a page error, unless Notion stopped answering for
    /// `DEAD_AFTER` pages in a row, which ends the run (a page-specific 404 or bad body never does).
    fn read_failed(
        &mut self,
        id: &str,
        edited: Option<i64>,
        what: &str,
        e: ApiError,
    ) -> Result<(), SyncError> {
        if unreachable(&e) {
            self.dead_in_a_row += 1;
            if self.dead_in_a_row >= DEAD_AFTER {
                let timeout = gucs::HTTP_TIMEOUT_MS.get().max(100);
                let why = match &e {
                    ApiError::Transport(m) if m.contains("timed out") || m.contains("imeout") => {
                        format!("Notion did not answer within http_timeout_ms = {timeout} ms")
                    }
                    _ => "Notion did not answer".to_string(),
                };
                return Err(SyncError::Unreachable(format!(
                    "{why} for {n} pages in a row (after {r} retries each); the run stopped. Last error, {what} of page {id}: {e}",
                    n = self.dead_in_a_row,
                    r = gucs::MAX_RETRIES.get().max(0),
                )));
            }
        } else {
            self.dead_in_a_row = 0;
        }
        self.fail_page(Some(id.to_string()), edited, format!("{what}: {e}"));
        Ok(())
    }

    /// Reads, once per run, which formulas of a data source use `now()` (their values change on
    /// every read without an edit). A schema that cannot be read leaves every formula in the hash.
    fn load_volatile(&mut self, source: &str) {
        if self.volatile.contains_key(source) {
            return;
        }
        let path = if self.client.version() < "2025-09-03" {
            format!("/databases/{source}")
        } else {
            format!("/data_sources/{source}")
        };
        let names = match self.client.get(&path) {
            Ok(v) => v
                .get("properties")
                .and_then(|p| p.as_object())
                .map(model::volatile_properties)
                .unwrap_or_default(),
            Err(e) => {
                pgrx::log!(
                    "notion_sync: schema of {source} not read, formulas stay in the hash: {e}"
                );
                vec![]
            }
        };
        self.volatile.insert(source.to_string(), names);
    }

    fn fail_page(&mut self, id: Option<String>, edited: Option<i64>, msg: String) {
        if let Some(e) = edited {
            self.min_failed_edited = Some(self.min_failed_edited.map_or(e, |m| m.min(e)));
        }
        self.errors.push((id, msg));
    }

    /// Processes one API page of query results. In the caller's transaction it runs in a memory
    /// context of its own, deleted afterwards, so what SPI allocates for a batch does not pile up
    /// over a long scan (the worker's transactions free theirs at commit).
    fn batch(&mut self, results: &[Value], watermark: bool) -> Result<(), SyncError> {
        if self.txn == Txn::PerBatch {
            return self.batch_in_context(results, watermark);
        }
        let mut cx = pgrx::PgMemoryContexts::new("notion_sync batch");
        // SAFETY: nothing allocated in `cx` outlives the closure; only Rust values come out.
        unsafe { cx.switch_to(|_| self.batch_in_context(results, watermark)) }
    }

    /// The watermark this run may commit: the newest edit seen, never past a page that failed,
    /// never past the start of the run.
    fn watermark(&self) -> Option<i64> {
        let wm = match (self.max_edited, self.min_failed_edited) {
            (Some(m), Some(f)) => Some(m.min(f)),
            (m, None) => m,
            (None, Some(f)) => Some(f),
        };
        wm.map(|w| w.min(self.started_ms))
    }

    fn batch_in_context(&mut self, results: &[Value], watermark: bool) -> Result<(), SyncError> {
        let mut pages = vec![];
        for r in results {
            let id = r.get("id").and_then(|i| i.as_str()).map(String::from);
            if let Some(id) = &id {
                if !self.seen.insert(id.clone()) {
                    continue; // re-read at a window boundary
                }
            }
            self.total += 1;
            let edited = r
                .get("last_edited_time")
                .and_then(|t| t.as_str())
                .and_then(ms);
            match model::parse_page(r) {
                Ok(p) => {
                    let source = parent_source(r).unwrap_or_default();
                    if p.properties.values().any(|v| v["type"] == "formula") {
                        self.load_volatile(&source);
                    }
                    pages.push((p, source));
                }
                Err(e) => self.fail_page(id, edited, e),
            }
        }
        if pages.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = pages.iter().map(|(p, _)| p.id.clone()).collect();
        let table = self.spec.table;
        let stored = match (self.fresh, &self.mapping) {
            (true, _) => storage::Stored::new(),
            (false, Some(m)) => self
                .txn
                .run(|| storage::mapped::existing(m, &self.user, &ids))?,
            (false, None) => self
                .txn
                .run(|| storage::existing(table, &self.user, &ids))?,
        };
        let mut rows = vec![];
        let mut mapped_rows = vec![];
        let mut edited_of = HashMap::new();
        for (mut page, source) in pages {
            let edited = page.last_edited_time.as_deref().and_then(ms);
            let volatile = self.volatile.get(&source).map_or(&[][..], |v| v.as_slice());
            let page_hash = model::page_hash_with(&page, volatile);
            let hash = match &self.mapping {
                Some(m) => mapping::row_hash(&page_hash, m),
                None => page_hash,
            };
            if let Some(known) = stored.get(&page.id) {
                // Same hash, and synced after the edit minute closed: nothing can have changed.
                let settled = match (known.synced_ms, edited) {
                    (Some(s), Some(e)) => s as i64 >= e + 60_000,
                    _ => true,
                };
                // Never back in time: a late webhook refetch or a stale read of an older version.
                let older =
                    matches!((known.edited_ms, edited), (Some(k), Some(e)) if (e as f64) < k);
                if (known.hash.as_deref() == Some(hash.as_str()) && settled) || older {
                    self.skipped += 1;
                    self.note_edited(edited);
                    continue;
                }
            }
            if let Err(e) = self.complete(&mut page) {
                self.read_failed(&page.id, edited, "completing its properties", e)?;
                continue;
            }
            let body = if self.depth > 0 {
                match self.client.page_text(&page.id, self.depth) {
                    Ok(t) => {
                        self.dead_in_a_row = 0;
                        Some(t)
                    }
                    Err(e) => {
                        self.read_failed(&page.id, edited, "reading the page body", e)?;
                        continue;
                    }
                }
            } else if self.keep_body && self.mapping.is_none() {
                let (table, id) = (self.spec.table, page.id.clone());
                self.txn
                    .run(|| storage::stored_body(table, &self.user, &id))?
            } else {
                None
            };
            if self.mapping.is_some() {
                match self.mapped_row(&page, body.as_deref(), hash) {
                    Ok(r) => {
                        edited_of.insert(page.id.clone(), edited);
                        mapped_rows.push(r);
                    }
                    Err(e) => {
                        self.fail_page(Some(page.id.clone()), edited, e);
                        continue;
                    }
                }
                self.note_edited(edited);
                continue;
            }
            let text = model::text_property(&page, self.spec.text_props)
                .or_else(|| body.clone().filter(|b| !b.trim().is_empty()));
            let desc = self
                .spec
                .desc
                .and_then(|(_, props)| model::text_property(&page, props));
            // An int column: a count Postgres would refuse is left out rather than failing the batch.
            let message_count =
                model::number_property(&page, &["Message Count", "Messages Count", "Messages"])
                    .filter(|n| n.is_finite() && n.abs() <= i32::MAX as f64)
                    .map(|n| n as i64)
                    .or_else(|| {
                        text.as_ref()
                            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as i64)
                    });
            // Moved into the row, not copied (json! would serialise a deep copy of each value).
            let mut row = serde_json::Map::new();
            row.insert("id".into(), Value::String(page.id));
            row.insert("name".into(), Value::String(page.title));
            row.insert("text".into(), text.map_or(Value::Null, Value::String));
            row.insert("descr".into(), desc.map_or(Value::Null, Value::String));
            row.insert(
                "message_count".into(),
                message_count.map_or(Value::Null, Value::from),
            );
            row.insert("properties".into(), Value::Object(page.properties));
            row.insert("hash".into(), Value::String(hash));
            row.insert("url".into(), page.url.map_or(Value::Null, Value::String));
            row.insert(
                "created".into(),
                page.created_time.map_or(Value::Null, Value::String),
            );
            row.insert(
                "edited".into(),
                page.last_edited_time.map_or(Value::Null, Value::String),
            );
            row.insert("body".into(), body.map_or(Value::Null, Value::String));
            rows.push(Value::Object(row));
            self.note_edited(edited);
        }
        let mut skip = self.missing.clone();
        if let (Some(m), true) = (&self.mapping, self.keep_body) {
            skip.extend(
                (0..m.columns.len())
                    .filter(|i| m.columns[*i].source == Source::Special(Special::Content)),
            );
        }
        let offered = (rows.len() + mapped_rows.len()) as i64;
        let (c, u, failed) = self.txn.run(|| {
            let (c, u, failed) = match &self.mapping {
                Some(m) => storage::mapped::upsert(m, &skip, &self.user, &self.db, mapped_rows)?,
                None => {
                    let (c, u) =
                        storage::upsert(self.spec, &self.user, &self.db, &self.db_name, rows)?;
                    (c, u, vec![])
                }
            };
            if watermark {
                // Not past a page that just failed to be written either.
                let failed_min = failed
                    .iter()
                    .filter_map(|(id, _)| edited_of.get(id).copied().flatten())
                    .min();
                let wm = self
                    .watermark()
                    .map(|w| failed_min.map_or(w, |f: i64| w.min(f)))
                    .map(iso);
                if let Some(w) = &wm {
                    storage::set_watermark(&self.user, &self.db, Some(w), false)?;
                }
            }
            Ok::<_, SyncError>((c, u, failed))
        })?;
        // Rows offered but neither created, updated nor failed were equal to what is stored.
        self.skipped += offered - c - u - failed.len() as i64;
        for (id, e) in failed {
            let edited = edited_of.get(&id).copied().flatten();
            self.fail_page(Some(id), edited, e);
        }
        self.created += c;
        self.updated += u;
        Ok(())
    }

    /// One page as a row of the mapped table. A property the map names that the page lacks was
    /// deleted or renamed in Notion: one error for the run, and its column is left alone.
    fn mapped_row(
        &mut self,
        page: &model::Page,
        body: Option<&str>,
        hash: String,
    ) -> Result<storage::mapped::Row, String> {
        let Some(m) = self.mapping.as_deref() else {
            return Err("no column map".into());
        };
        for (i, col) in m.columns.iter().enumerate() {
            if let Source::Property(p) = &col.source {
                if mapping::find_property(page, p).is_none() && !self.missing.contains(&i) {
                    self.missing.push(i);
                    self.errors.push((
                        None,
                        format!(
                            "column \"{}\" of {}: Notion property {p:?} is not in {} any more (deleted or renamed); \
                             the column was left unchanged. Map it by property id to follow renames, \
                             or register the database again without it",
                            col.name, m.table, self.db_name
                        ),
                    ));
                }
            }
        }
        let info = PageInfo {
            page,
            body,
            user: &self.user,
        };
        let values = mapping::row(m, &info, &self.missing)?;
        let has_email = page.properties.values().any(|p| {
            p["type"] == "email" && p["value"].as_str().is_some_and(|e| !e.trim().is_empty())
        });
        Ok(storage::mapped::Row {
            page_id: page.id.clone(),
            values,
            meta: json!({
                "id": page.id, "title": page.title, "url": page.url, "hash": hash,
                "has_content": body.is_some_and(|b| !b.trim().is_empty()), "has_email": has_email,
                "doc": m.searchable.then(|| mapping::search_text(m, &info)),
                "edited": page.last_edited_time,
            }),
        })
    }

    fn note_edited(&mut self, edited: Option<i64>) {
        if let Some(e) = edited {
            self.max_edited = Some(self.max_edited.map_or(e, |m| m.max(e)));
        }
    }

    /// Reads the full value of properties Notion truncated at 25 items.
    fn complete(&mut self, page: &mut model::Page) -> Result<(), ApiError> {
        for (name, pid, kind) in page.truncated.clone() {
            let (items, item) = self.client.property_items(&page.id, &pid)?;
            model::complete_property_with(page, &name, &kind, &items, item.as_ref())
                .map_err(ApiError::Decode)?;
        }
        Ok(())
    }
}

/// Where a scan is: which data source, which window, which cursor. A full scan goes in
/// `created_time` order, an incremental one in `last_edited_time` order (so each committed batch
/// can move the watermark); when the 10,000-result cap ends a query, the next window starts at
/// the last minute of the sort key seen.
struct Scan {
    sources: Vec<String>,
    index: usize,
    key: &'static str,
    since: Option<String>,
    window_from: Option<String>,
    cursor: Option<String>,
    window_max: Option<String>,
    complete: bool,
}

/// One sync of one database, run step by step (one API page of results per step) so the worker
/// can interleave the databases of several users.
pub struct Job<'i> {
    run: Run<'i>,
    scan: Scan,
    run_id: i64,
    mode: Mode,
    hours_back: Option<i32>,
    started: Instant,
    fatal: Option<SyncError>,
    lock: (i32, i32),
}

pub enum Started<'i> {
    Running(Box<Job<'i>>),
    Done(Box<Outcome>),
}

/// Checks arguments and the token, records the run, reads the data sources. `Err` only for bad
/// arguments and missing tokens (nothing recorded); every later failure is recorded in the run.
#[allow(clippy::too_many_arguments)]
pub fn start<'i>(
    user: &str,
    raw_db: &str,
    name: Option<&str>,
    mode: &str,
    hours_back: Option<i32>,
    trigger: &str,
    txn: Txn,
    interrupt: &'i dyn Fn(),
) -> Result<Started<'i>, SyncError> {
    let started = Instant::now();
    let mode = Mode::parse(mode)?;
    if user.trim().is_empty() {
        return Err(SyncError::InvalidArgument(
            "p_user_id must not be empty".into(),
        ));
    }
    let db = normalize_id(raw_db)?;
    if let Some(h) = hours_back {
        if h < 0 {
            return Err(SyncError::InvalidArgument(format!(
                "p_hours_back must be 0 or more, got {h}"
            )));
        }
    }
    let lock = storage::lock_key(user, &db);
    let (token, reg, db_name, target, run_id, locked) = txn.run(|| {
        storage::check_version()?;
        let token =
            storage::token(user)?.ok_or_else(|| SyncError::MissingToken(user.to_string()))?;
        let reg = storage::registration(user, &db)?;
        let db_name = name
            .map(String::from)
            .or_else(|| reg.as_ref().map(|r| r.database_name.clone()))
            .unwrap_or_default();
        let target = match (&reg, name) {
            // A name given to the call picks a sync table, unless the database maps its own.
            (Some(r), _) if r.mapped || name.is_none() => r.target_table.clone(),
            _ => storage::target_for_name(&db_name).to_string(),
        };
        // One run per database at a time: a SQL call waits for a running one (cancellable), the
        // worker skips and records the skip.
        let locked = storage::lock_run(lock, txn == Txn::Caller)?;
        let status = if locked { "running" } else { "skipped" };
        let run_id =
            storage::start_run(user, &db, &db_name, &target, trigger, mode.as_str(), status)?;
        Ok::<_, SyncError>((token, reg, db_name, target, run_id, locked))
    })?;
    let mut ended = Ended {
        run_id,
        user,
        db: &db,
        mode,
        started,
        txn,
        lock: None,
    };
    if !locked {
        let e = "skipped: another sync of this database is still running".to_string();
        return ended
            .finish(db_name, None, Tally::default(), Some(Fatal::Skipped(e)))
            .map(|o| Started::Done(Box::new(o)));
    }
    ended.lock = Some(lock);
    let mut client = match Client::new(client_config(token), interrupt) {
        Ok(c) => c,
        Err(e) => return ended.fail(db_name, None, SyncError::Api(e)),
    };
    let (title, sources) = match client.sources(&db) {
        Ok(s) => s,
        Err(e) => return ended.fail(db_name, Some(&client), classify(e, user, &db)),
    };
    let mut db_name = db_name;
    if db_name.is_empty() {
        db_name = if title.is_empty() { db.clone() } else { title };
    }
    let target = if reg.is_none() && name.is_none() {
        storage::target_for_name(&db_name).to_string()
    } else {
        target
    };
    txn.run(|| {
        storage::ensure_registered(user, &db, &db_name, &target)?;
        storage::set_data_sources(user, &db, &sources)
    })?;
    // A table of the user's own is checked again at every run: it may have changed since.
    let mapping = if reg.as_ref().is_some_and(|r| r.mapped) {
        match txn.run(|| storage::mapped::load(user, &db)) {
            Ok(m) => m,
            Err(e) => return ended.fail(db_name, Some(&client), e),
        }
    } else {
        None
    };
    let depth = depth_for(mapping.as_ref(), true);

    let since = match (
        mode,
        hours_back,
        reg.as_ref().and_then(|r| r.watermark.as_deref()),
    ) {
        (_, Some(h), _) => Some(iso(
            chrono::Utc::now().timestamp_millis() - h as i64 * 3_600_000
        )),
        (Mode::Incremental, None, Some(w)) => ms(w).map(|w| iso(w - OVERLAP_MINUTES * 60_000)),
        _ => None,
    };
    let key = if since.is_some() {
        "last_edited_time"
    } else {
        "created_time"
    };
    let mut run = Run::new(client, txn, &target, user, &db, db_name, mapping, depth);
    // No data source (a missing key, an unshared source, a shape to come) is not an empty
    // database: the scan is incomplete and nothing may be marked deleted.
    let complete = !sources.is_empty();
    if !complete {
        run.errors.push((
            None,
            format!("Notion listed no data source for database {db}: nothing was read and nothing is marked deleted"),
        ));
    }
    let stored = run.stored_table();
    run.fresh = txn.run(|| storage::has_rows(stored, user, &db).map(|h| !h))?;
    Ok(Started::Running(Box::new(Job {
        run,
        scan: Scan {
            sources,
            index: 0,
            key,
            since,
            window_from: None,
            cursor: None,
            window_max: None,
            complete,
        },
        run_id,
        mode,
        hours_back,
        started,
        fatal: None,
        lock,
    })))
}

impl Job<'_> {
    pub fn label(&self) -> String {
        format!("{} ({})", self.run.db_name, self.run.user)
    }

    pub fn syncs(&self, user: &str, db: &str) -> bool {
        self.run.user == user && self.run.db == db
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// Ends the run as failed after an error the engine did not return (a Postgres ERROR).
    pub fn abort(&mut self, message: String) {
        self.fatal = Some(SyncError::Storage(message));
        self.scan.complete = false;
    }

    /// Reads and writes one API page of results. Returns true when the scan is over.
    pub fn step(&mut self) -> bool {
        if self.fatal.is_some() || self.scan.index >= self.scan.sources.len() {
            return true;
        }
        if let Err(e) = self.step_inner() {
            self.fatal = Some(e);
            self.scan.complete = false;
            return true;
        }
        self.scan.index >= self.scan.sources.len()
    }

    fn step_inner(&mut self) -> Result<(), SyncError> {
        let scan = &mut self.scan;
        let source = scan.sources[scan.index].clone();
        let since = scan.window_from.as_deref().or(scan.since.as_deref());
        let body = client::query_body(scan.key, since, scan.cursor.as_deref());
        let mut resp = self
            .run
            .client
            .query(&source, &body)
            .map_err(SyncError::Api)?;
        // Taken, not cloned: a deep copy of 100 pages was a tenth of a sync's CPU.
        let results = match resp.get_mut("results").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => vec![],
        };
        for r in &results {
            if let Some(c) = r.get(scan.key).and_then(|c| c.as_str()) {
                if scan.window_max.as_deref().is_none_or(|m| ms(c) > ms(m)) {
                    scan.window_max = Some(c.to_string());
                }
            }
        }
        // The next page of results is on its way while this one is written.
        if let Some(c) = client::next_cursor(&resp) {
            let next = client::query_body(scan.key, since, Some(&c));
            self.run.client.prefetch_query(&source, &next);
        }
        // An incremental scan of one source reads in edit order: each batch may move the watermark.
        let watermark = self.run.txn == Txn::PerBatch
            && scan.key == "last_edited_time"
            && scan.sources.len() == 1;
        self.run.batch(&results, watermark)?;
        let incomplete = resp
            .pointer("/request_status/type")
            .and_then(|t| t.as_str())
            == Some("incomplete");
        match client::next_cursor(&resp) {
            Some(c) => scan.cursor = Some(c),
            None if incomplete => {
                // The 10,000-result cap: restart from the last minute of the sort key seen.
                let next = scan.window_max.clone();
                if next.is_none() || next == scan.window_from {
                    self.run.errors.push((
                        None,
                        format!("the query cap was reached inside one {} minute; some pages were not read", scan.key),
                    ));
                    scan.complete = false;
                    scan.index += 1;
                } else {
                    scan.window_from = next;
                    scan.cursor = None;
                }
            }
            None => {
                scan.index += 1;
                scan.window_from = None;
                scan.window_max = None;
                scan.cursor = None;
            }
        }
        Ok(())
    }

    /// Deletions, watermark, run row, errors and NOTIFY, in one transaction.
    pub fn finish(self) -> Result<Outcome, SyncError> {
        let Job {
            mut run,
            scan,
            run_id,
            mode,
            hours_back,
            started,
            fatal,
            lock,
        } = self;
        let complete = scan.complete && fatal.is_none();
        let txn = run.txn;
        let deleted = txn.run(|| {
            let mut deleted = 0;
            // Statistics first: the deletion query below is planned on them, and on a table that
            // was empty it was a nested loop over every id (5 of the 6.5 s of a first 10k sync).
            if run.created >= 1000 {
                storage::analyze(run.stored_table())?;
            }
            // Deletions only from a complete, error-free full scan of every source. A run that
            // started with nothing stored wrote every row it has: nothing can be missing.
            let mut full_done = mode == Mode::Full && complete;
            if complete && mode == Mode::Full && hours_back.is_none() && !run.fresh {
                let seen: Vec<String> = run.seen.drain().collect();
                let (live, gone) =
                    storage::deletion_counts(run.stored_table(), &run.user, &run.db, &seen)?;
                if let Some(why) = mass_deletion(live, gone, seen.len()) {
                    run.errors.push((None, why));
                    full_done = false;
                } else if gone > 0 {
                    deleted = match &run.mapping {
                        Some(m) => storage::mapped::mark_deleted(m, &run.user, &run.db, seen)?,
                        None => storage::mark_deleted(run.spec.table, &run.user, &run.db, seen)?,
                    };
                }
            }
            if fatal.is_none() {
                storage::set_watermark(
                    &run.user,
                    &run.db,
                    run.watermark().map(iso).as_deref(),
                    full_done,
                )?;
            }
            Ok::<_, SyncError>(deleted)
        });
        let (deleted, fatal) = match deleted {
            Ok(d) => (d, fatal),
            Err(e) => (0, fatal.or(Some(e))),
        };
        let tally = Tally {
            counts: (run.total, run.created, run.updated, run.skipped, deleted),
            errors: std::mem::take(&mut run.errors),
        };
        let ended = Ended {
            run_id,
            user: &run.user,
            db: &run.db,
            mode,
            started,
            txn,
            lock: Some(lock),
        };
        ended.finish(
            run.db_name.clone(),
            Some(&run.client),
            tally,
            fatal.map(Fatal::from),
        )
    }
}

/// The mass-deletion guard: Some(reason) when a complete scan would mark more than
/// `notion_sync.max_delete_fraction` of the live rows deleted (from `GUARD_MIN_ROWS` rows on), or
/// every row while it saw no page at all. Nothing is marked then; SET the fraction to 1 for one
/// run to confirm a real mass deletion.
fn mass_deletion(live: i64, gone: i64, seen: usize) -> Option<String> {
    let max = gucs::MAX_DELETE_FRACTION.get();
    let too_many = (seen == 0 || gone >= GUARD_MIN_ROWS) && gone as f64 > max * live as f64;
    (gone > 0 && max < 1.0 && too_many).then(|| {
        format!(
            "the full scan would mark {gone} of {live} live rows deleted, more than notion_sync.max_delete_fraction = {max}: \
             nothing was marked deleted. If these pages really were deleted or unshared in Notion, confirm once with \
             SET notion_sync.max_delete_fraction = 1 and a full sync"
        )
    })
}

/// The registered database of `user` that a webhook's id names: a database id, one of its data
/// source ids, or (one request, remembered) a data source whose parent Notion says is one.
pub fn resolve_database(
    user: &str,
    id: &str,
    txn: Txn,
    client: &mut Client,
) -> Result<Option<String>, SyncError> {
    let Ok(id) = normalize_id(id) else {
        return Ok(None);
    };
    if let Some(db) = txn.run(|| storage::database_for(user, &id))? {
        return Ok(Some(db));
    }
    if client.version() < "2025-09-03" {
        return Ok(None);
    }
    let source = match client.get(&format!("/data_sources/{id}")) {
        Ok(v) => v,
        Err(ApiError::Http {
            status: 404 | 400 | 403,
            ..
        }) => return Ok(None),
        Err(e) => return Err(SyncError::Api(e)),
    };
    let Some(db) = source
        .pointer("/parent/database_id")
        .and_then(|d| d.as_str())
        .and_then(|d| normalize_id(d).ok())
    else {
        return Ok(None);
    };
    txn.run(|| {
        if storage::registration(user, &db)?.is_none() {
            return Ok(None);
        }
        storage::add_data_source(user, &db, &id)?;
        Ok(Some(db))
    })
}

/// The registered database a `data_source.*` / `database.*` event is about: its entity (a data
/// source or a database), else its parent (a database; a page parent matches nothing).
pub fn database_for_event(
    user: &str,
    ids: &[&str],
    txn: Txn,
    interrupt: &dyn Fn(),
) -> Result<Option<String>, SyncError> {
    for id in ids {
        if let Ok(id) = normalize_id(id) {
            if let Some(db) = txn.run(|| storage::database_for(user, &id))? {
                return Ok(Some(db));
            }
        }
    }
    let Some(token) = txn.run(|| storage::token(user))? else {
        return Ok(None);
    };
    let mut client = Client::new(client_config(token), interrupt).map_err(SyncError::Api)?;
    for id in ids {
        if let Some(db) = resolve_database(user, id, txn, &mut client)? {
            return Ok(Some(db));
        }
    }
    Ok(None)
}

/// A webhook's page refetch: reads the page as Notion has it now and upserts it into its
/// database's table (blocks re-read only when `content`), or marks it in trash when Notion has
/// it in trash or no longer shows it. An older event can never overwrite newer data: the page is
/// read fresh, and the upsert never replaces a row with an older `last_edited_time`.
pub fn apply_page(
    user: &str,
    page_id: &str,
    content: bool,
    txn: Txn,
    interrupt: &dyn Fn(),
) -> Result<String, SyncError> {
    let page_id = normalize_id(page_id)?;
    let token = txn
        .run(|| storage::token(user))?
        .ok_or_else(|| SyncError::MissingToken(user.to_string()))?;
    let mut client = Client::new(client_config(token), interrupt).map_err(SyncError::Api)?;
    let page = match client.get(&format!("/pages/{page_id}")) {
        Ok(p) => p,
        Err(ApiError::Http { status: 404, .. }) => {
            let n = txn.run(|| storage::trash_page(user, &page_id))?;
            return Ok(format!("gone from Notion: {n} row(s) marked in trash"));
        }
        Err(ApiError::Http { status: 403, .. }) => {
            return Err(SyncError::NotSharedPage(page_id.clone()))
        }
        Err(e) => return Err(classify(e, user, &page_id)),
    };
    // Under 2025-09-03 a page's parent may name only its data source.
    let parent = page
        .pointer("/parent/database_id")
        .or_else(|| page.pointer("/parent/data_source_id"))
        .and_then(|d| d.as_str())
        .map(String::from);
    let Some(parent) = parent else {
        return Ok("ignored: the page is not in a database".into());
    };
    let Some(db) = resolve_database(user, &parent, txn, &mut client)? else {
        return Ok(format!(
            "ignored: database {parent} is not registered for {user}"
        ));
    };
    let Some(reg) = txn.run(|| storage::registration(user, &db))? else {
        return Ok(format!(
            "ignored: database {db} is not registered for {user}"
        ));
    };
    let trashed = page.get("in_trash").or_else(|| page.get("archived")) == Some(&Value::Bool(true));
    if trashed {
        let n = txn.run(|| storage::trash_page(user, &page_id))?;
        return Ok(format!("in trash in Notion: {n} row(s) marked in trash"));
    }
    let mapping = if reg.mapped {
        txn.run(|| storage::mapped::load(user, &db))?
    } else {
        None
    };
    let depth = depth_for(mapping.as_ref(), content);
    let mut run = Run::new(
        client,
        txn,
        &reg.target_table,
        user,
        &db,
        reg.database_name.clone(),
        mapping,
        depth,
    );
    run.keep_body = !content;
    run.batch(std::slice::from_ref(&page), false)?;
    if let Some((_, e)) = run.errors.first() {
        return Err(SyncError::Storage(format!("page {page_id}: {e}")));
    }
    Ok(format!(
        "{}: created {}, updated {}, unchanged {}",
        reg.target_table, run.created, run.updated, run.skipped
    ))
}

/// One sync of one database inside the caller's transaction (the SQL functions).
pub fn sync_database(
    user: &str,
    raw_db: &str,
    name: Option<&str>,
    mode: &str,
    hours_back: Option<i32>,
    trigger: &str,
) -> Result<Outcome, SyncError> {
    let interrupt = || {
        pgrx::check_for_interrupts!();
    };
    match start(
        user,
        raw_db,
        name,
        mode,
        hours_back,
        trigger,
        Txn::Caller,
        &interrupt,
    )? {
        Started::Done(o) => Ok(*o),
        Started::Running(mut job) => {
            while !job.step() {}
            job.finish()
        }
    }
}

/// Counts (total, created, updated, skipped, deleted) and per-page errors of a run.
#[derive(Default)]
struct Tally {
    counts: (i64, i64, i64, i64, i64),
    errors: Vec<(Option<String>, String)>,
}

/// Why a run ended early: a sync error, or a skip (another run of the database was going on).
enum Fatal {
    Error(SyncError),
    Skipped(String),
}

impl From<SyncError> for Fatal {
    fn from(e: SyncError) -> Self {
        Fatal::Error(e)
    }
}

/// What every run writes when it ends, however it ends.
struct Ended<'a> {
    run_id: i64,
    user: &'a str,
    db: &'a str,
    mode: Mode,
    started: Instant,
    txn: Txn,
    lock: Option<(i32, i32)>,
}

impl Ended<'_> {
    /// A run that fails before reading any page.
    fn fail<'i>(
        &self,
        db_name: String,
        client: Option<&Client>,
        e: SyncError,
    ) -> Result<Started<'i>, SyncError> {
        self.finish(db_name, client, Tally::default(), Some(Fatal::Error(e)))
            .map(|o| Started::Done(Box::new(o)))
    }

    fn finish(
        &self,
        db_name: String,
        client: Option<&Client>,
        tally: Tally,
        fatal: Option<impl Into<Fatal>>,
    ) -> Result<Outcome, SyncError> {
        let fatal: Option<Fatal> = fatal.map(Into::into);
        let (requests, retries) = client
            .map(|c| (c.stats.requests as i64, c.stats.retries as i64))
            .unwrap_or((0, 0));
        let (total, created, updated, skipped, deleted) = tally.counts;
        let errors = tally.errors;
        let status = match &fatal {
            Some(Fatal::Skipped(_)) => "skipped",
            Some(Fatal::Error(_)) => "failed",
            None if !errors.is_empty() => "partial",
            None => "succeeded",
        };
        let counts = RunCounts {
            status: status.into(),
            database_name: db_name.clone(),
            total,
            created,
            updated,
            skipped,
            deleted,
            errors: errors.len() as i64,
            requests,
            retries,
            duration_ms: self.started.elapsed().as_millis() as i64,
            error: fatal.as_ref().map(|f| match f {
                Fatal::Error(e) => e.to_string(),
                Fatal::Skipped(s) => s.clone(),
            }),
        };
        let (run_id, user, db) = (self.run_id, self.user, self.db);
        self.txn.run(|| {
            storage::finish_run(run_id, &counts)?;
            storage::record_errors(run_id, user, db, &errors)?;
            if created + updated + deleted > 0 {
                storage::notify(
                    &json!({"run_id": run_id, "user_id": user, "database_id": db,
                    "created": created, "updated": updated, "deleted": deleted}),
                )?;
            }
            // The worker's lock is a session lock; a SQL call's ends with its transaction.
            if let (Some(lock), Txn::PerBatch) = (self.lock, self.txn) {
                storage::unlock_run(lock)?;
            }
            Ok::<_, SyncError>(())
        })?;
        pgrx::log!(
            "notion_sync: synced {} ({}): total {}, created {}, updated {}, skipped {}, deleted {}, errors {} in {} ms",
            db_name, self.mode.as_str(), total, created, updated, skipped, deleted, counts.errors, counts.duration_ms
        );
        let raise = match fatal {
            Some(Fatal::Error(
                e @ (SyncError::BadToken(_)
                | SyncError::NotShared(_)
                | SyncError::Target(..)
                | SyncError::Api(ApiError::Config(_))),
            )) => Some(e),
            _ => None,
        };
        Ok(Outcome {
            run_id,
            database_id: db.to_string(),
            database_name: db_name,
            mode: self.mode.as_str(),
            counts,
            errors,
            raise,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_and_without_dashes_and_urls() {
        let want = "a1b2c3d4-0000-4000-8000-0000000000c1";
        assert_eq!(normalize_id(want).unwrap(), want);
        assert!(normalize_id("A1B2C3D4000040008000").is_err());
        assert_eq!(
            normalize_id("a1b2c3d40000400080000000000000c1").unwrap(),
            want
        );
        assert_eq!(
            normalize_id(
                "https://www.notion.so/acme/Characters-a1b2c3d40000400080000000000000c1?v=123"
            )
            .unwrap(),
            want
        );
        assert!(normalize_id("not-an-id").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("FULL").unwrap(), Mode::Full);
        assert!(Mode::parse("everything").is_err());
    }
}
