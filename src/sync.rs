//! The sync engine: reads a Notion database page by page of 100, skips unchanged pages by hash,
//! completes truncated values, reads bodies of changed pages, upserts in batches, marks deletions
//! after a complete scan, and keeps the watermark behind committed data.

use crate::error::SyncError;
use crate::gucs;
use crate::notion::client::{self, ApiError, Client, Config};
use crate::notion::model;
use crate::storage::{self, RunCounts, TableSpec};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

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
    let h = &tail[tail.len() - 32..];
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
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

fn client_config(token: String) -> Config {
    Config {
        api_url: gucs::string(&gucs::API_URL, "https://api.notion.com/v1"),
        version: gucs::string(&gucs::NOTION_VERSION, "2025-09-03"),
        token,
        timeout: Duration::from_millis(gucs::HTTP_TIMEOUT_MS.get().max(100) as u64),
        max_retries: gucs::MAX_RETRIES.get().max(0) as u32,
        rps: gucs::REQUESTS_PER_SECOND.get(),
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

/// Mutable state of one run.
struct Run<'c, 'i> {
    client: &'c mut Client<'i>,
    spec: &'static TableSpec,
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
}

impl Run<'_, '_> {
    fn fail_page(&mut self, id: Option<String>, edited: Option<i64>, msg: String) {
        if let Some(e) = edited {
            self.min_failed_edited = Some(self.min_failed_edited.map_or(e, |m| m.min(e)));
        }
        self.errors.push((id, msg));
    }

    /// Processes one API page of query results in a memory context of its own, deleted afterwards,
    /// so what SPI allocates for a batch does not pile up over a long scan.
    fn batch(&mut self, results: &[Value]) -> Result<(), SyncError> {
        let mut cx = pgrx::PgMemoryContexts::new("notion_sync batch");
        // SAFETY: nothing allocated in `cx` outlives the closure; only Rust values come out.
        unsafe { cx.switch_to(|_| self.batch_in_context(results)) }
    }

    fn batch_in_context(&mut self, results: &[Value]) -> Result<(), SyncError> {
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
                Ok(p) => pages.push(p),
                Err(e) => self.fail_page(id, edited, e),
            }
        }
        if pages.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = pages.iter().map(|p| p.id.clone()).collect();
        let stored = storage::existing(self.spec.table, &self.user, &ids)?;
        let mut rows = vec![];
        for mut page in pages {
            let edited = page.last_edited_time.as_deref().and_then(ms);
            let hash = model::page_hash(&page);
            if let Some((Some(h), synced)) = stored.get(&page.id) {
                // Same hash, and synced after the edit minute closed: nothing can have changed.
                let settled = match (synced, edited) {
                    (Some(s), Some(e)) => *s as i64 >= e + 60_000,
                    _ => true,
                };
                if *h == hash && settled {
                    self.skipped += 1;
                    self.note_edited(edited);
                    continue;
                }
            }
            if let Err(e) = self.complete(&mut page) {
                self.fail_page(Some(page.id.clone()), edited, e.to_string());
                continue;
            }
            let body = if self.depth > 0 {
                match self.client.page_text(&page.id, self.depth) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.fail_page(
                            Some(page.id.clone()),
                            edited,
                            format!("reading the page body: {e}"),
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            let text = model::text_property(&page, self.spec.text_props)
                .or_else(|| body.clone().filter(|b| !b.trim().is_empty()));
            let message_count =
                model::number_property(&page, &["Message Count", "Messages Count", "Messages"])
                    .map(|n| n as i64)
                    .or_else(|| {
                        text.as_ref()
                            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as i64)
                    });
            rows.push(json!({
                "id": page.id, "name": page.title, "text": text, "message_count": message_count,
                "properties": page.properties, "hash": hash, "url": page.url,
                "created": page.created_time, "edited": page.last_edited_time, "body": body,
            }));
            self.note_edited(edited);
        }
        let (c, u) = storage::upsert(self.spec, &self.user, &self.db, &self.db_name, rows)?;
        self.created += c;
        self.updated += u;
        Ok(())
    }

    fn note_edited(&mut self, edited: Option<i64>) {
        if let Some(e) = edited {
            self.max_edited = Some(self.max_edited.map_or(e, |m| m.max(e)));
        }
    }

    /// Reads the full value of properties Notion truncated at 25 items.
    fn complete(&mut self, page: &mut model::Page) -> Result<(), ApiError> {
        for (name, pid, kind) in page.truncated.clone() {
            let items = self.client.property_items(&page.id, &pid)?;
            model::complete_property(page, &name, &kind, &items).map_err(ApiError::Decode)?;
        }
        Ok(())
    }

    /// Reads one data source. Returns whether the scan saw everything (no cap left unresolved).
    fn scan(&mut self, source: &str, edited_since: Option<&str>) -> Result<bool, SyncError> {
        let mut created_from: Option<String> = None;
        let mut cursor: Option<String> = None;
        let mut window_max_created: Option<String> = None;
        loop {
            let body = client::query_body(edited_since, created_from.as_deref(), cursor.as_deref());
            let resp = self.client.query(source, &body).map_err(SyncError::Api)?;
            let results = resp
                .get("results")
                .and_then(|r| r.as_array())
                .cloned()
                .unwrap_or_default();
            for r in &results {
                if let Some(c) = r.get("created_time").and_then(|c| c.as_str()) {
                    if window_max_created
                        .as_deref()
                        .map(|m| ms(c) > ms(m))
                        .unwrap_or(true)
                    {
                        window_max_created = Some(c.to_string());
                    }
                }
            }
            self.batch(&results)?;
            let incomplete = resp
                .pointer("/request_status/type")
                .and_then(|t| t.as_str())
                == Some("incomplete");
            match client::next_cursor(&resp) {
                Some(c) => cursor = Some(c),
                None if incomplete => {
                    // The 10,000-result cap: restart from the last created minute seen.
                    let next = window_max_created.clone();
                    if next.is_none() || next == created_from {
                        self.errors.push((None, "the query cap was reached inside one created_time minute; some pages were not read".into()));
                        return Ok(false);
                    }
                    created_from = next;
                    cursor = None;
                }
                None => return Ok(true),
            }
        }
    }
}

/// One sync of one database. `Err` only for bad arguments and missing tokens (nothing recorded);
/// every failure after the run started is recorded and returned in the outcome.
pub fn sync_database(
    user: &str,
    raw_db: &str,
    name: Option<&str>,
    mode: &str,
    hours_back: Option<i32>,
    trigger: &str,
) -> Result<Outcome, SyncError> {
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
    let token = storage::token(user)?.ok_or_else(|| SyncError::MissingToken(user.to_string()))?;
    let reg = storage::registration(user, &db)?;
    let mut db_name = name
        .map(String::from)
        .or_else(|| reg.as_ref().map(|r| r.database_name.clone()))
        .unwrap_or_default();
    let target = match (&reg, name) {
        (Some(r), None) => r.target_table.clone(),
        _ => storage::target_for_name(&db_name).to_string(),
    };
    let run_id = storage::start_run(user, &db, &db_name, &target, trigger, mode.as_str())?;

    let interrupt = || {
        pgrx::check_for_interrupts!();
    };
    // A run that fails before reading any page.
    let failed = |db_name: String, client: Option<&Client>, e: SyncError| {
        let tally = Tally::default();
        finish(
            run_id,
            user,
            &db,
            db_name,
            mode,
            started,
            client,
            tally,
            Some(e),
        )
    };
    let mut client = match Client::new(client_config(token), &interrupt) {
        Ok(c) => c,
        Err(e) => return failed(db_name, None, SyncError::Api(e)),
    };
    let (title, sources) = match client.sources(&db) {
        Ok(s) => s,
        Err(e) => return failed(db_name, Some(&client), classify(e, user, &db)),
    };
    if db_name.is_empty() {
        db_name = if title.is_empty() { db.clone() } else { title };
    }
    let target = if reg.is_none() && name.is_none() {
        storage::target_for_name(&db_name).to_string()
    } else {
        target
    };
    storage::ensure_registered(user, &db, &db_name, &target)?;

    let edited_since = match (
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
    let mut run = Run {
        client: &mut client,
        spec: storage::spec(&target),
        user: user.to_string(),
        db: db.clone(),
        db_name: db_name.clone(),
        depth: gucs::CONTENT_DEPTH.get().max(0) as u32,
        seen: HashSet::new(),
        total: 0,
        created: 0,
        updated: 0,
        skipped: 0,
        errors: vec![],
        max_edited: None,
        min_failed_edited: None,
    };
    let mut complete = true;
    let mut fatal: Option<SyncError> = None;
    for source in &sources {
        match run.scan(source, edited_since.as_deref()) {
            Ok(done) => complete &= done,
            Err(e) => {
                fatal = Some(e);
                complete = false;
                break;
            }
        }
    }
    // Deletions only from a complete, error-free full scan of every source.
    let mut deleted = 0;
    if fatal.is_none() && complete && mode == Mode::Full && hours_back.is_none() {
        deleted = storage::mark_deleted(run.spec.table, user, &db, run.seen.drain().collect())?;
    }
    if fatal.is_none() {
        // Never past a page that failed: the next incremental run reads it again.
        let wm = match (run.max_edited, run.min_failed_edited) {
            (Some(m), Some(f)) => Some(m.min(f)),
            (m, None) => m,
            (None, Some(f)) => Some(f),
        };
        storage::set_watermark(
            user,
            &db,
            wm.map(iso).as_deref(),
            mode == Mode::Full && complete,
        )?;
    }
    if run.created >= 1000 {
        storage::analyze(run.spec.table)?;
    }
    let tally = Tally {
        counts: (run.total, run.created, run.updated, run.skipped, deleted),
        errors: std::mem::take(&mut run.errors),
    };
    drop(run);
    finish(
        run_id,
        user,
        &db,
        db_name,
        mode,
        started,
        Some(&client),
        tally,
        fatal,
    )
}

/// Counts (total, created, updated, skipped, deleted) and per-page errors of a run.
#[derive(Default)]
struct Tally {
    counts: (i64, i64, i64, i64, i64),
    errors: Vec<(Option<String>, String)>,
}

#[allow(clippy::too_many_arguments)]
fn finish(
    run_id: i64,
    user: &str,
    db: &str,
    db_name: String,
    mode: Mode,
    started: Instant,
    client: Option<&Client>,
    tally: Tally,
    fatal: Option<SyncError>,
) -> Result<Outcome, SyncError> {
    let (requests, retries) = client
        .map(|c| (c.stats.requests as i64, c.stats.retries as i64))
        .unwrap_or((0, 0));
    let (total, created, updated, skipped, deleted) = tally.counts;
    let errors = tally.errors;
    let status = if fatal.is_some() {
        "failed"
    } else if !errors.is_empty() {
        "partial"
    } else {
        "succeeded"
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
        duration_ms: started.elapsed().as_millis() as i64,
        error: fatal.as_ref().map(|e| e.to_string()),
    };
    storage::finish_run(run_id, &counts)?;
    storage::record_errors(run_id, user, db, &errors)?;
    if created + updated + deleted > 0 {
        storage::notify(
            &json!({"run_id": run_id, "user_id": user, "database_id": db,
            "created": created, "updated": updated, "deleted": deleted}),
        )?;
    }
    pgrx::log!(
        "notion_sync: synced {} ({}): total {}, created {}, updated {}, skipped {}, deleted {}, errors {} in {} ms",
        db_name, mode.as_str(), total, created, updated, skipped, deleted, counts.errors, counts.duration_ms
    );
    let raise = match fatal {
        Some(
            e @ (SyncError::BadToken(_)
            | SyncError::NotShared(_)
            | SyncError::Api(ApiError::Config(_))),
        ) => Some(e),
        _ => None,
    };
    Ok(Outcome {
        run_id,
        database_id: db.to_string(),
        database_name: db_name,
        mode: mode.as_str(),
        counts,
        errors,
        raise,
    })
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
