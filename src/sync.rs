//! The sync engine: reads a Notion database page by page of 100, skips unchanged pages by hash,
//! completes truncated values, reads bodies of changed pages, upserts in batches, marks deletions
//! after a complete scan, and keeps the watermark behind committed data.
//!
//! Each API page of results goes through named stages (`Run::select`, `Run::collect`,
//! `Run::store`): parse -> select the changed pages (SPI) -> read what they need (HTTP only, on
//! helper threads, several pages side by side) -> build rows -> write (SPI only). A `Job` runs them
//! as a state machine that never blocks, so the scheduler steps many jobs on its one thread while
//! their requests are in flight; a SQL call drives one job and waits between steps. Every request
//! takes its turn in `notion::pool`. Where rows go is the run's `Target` (storage/sync_table.rs,
//! storage/mapped.rs); what a run records is its `RunRecord` (storage/runs.rs).

use crate::error::SyncError;
use crate::gucs;
use crate::mapping::Mapping;
use crate::notion::client::{self, ApiError, Client, Interrupt, Stats};
use crate::notion::model::{self, Page};
use crate::notion::pool::{Flight, Lane};
use crate::page_tree::{self, Walk, WalkOut};
use crate::storage::mapped::Mapped;
use crate::storage::runs::{self, Fatal, NewRun, RunRecord, RunStatus};
pub use crate::storage::runs::{Counts, Mode, Outcome, Trigger};
use crate::storage::{
    self, Fetched, Known, PageError, Place, Registration, Row, Stored, SyncTable, Target,
};
use crate::typed_view;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Transport failures (timeouts, refused connections, 5xx after the retries) on this many pages in
/// a row end the run: Notion is down or hangs, and going on page by page would take hours.
const DEAD_AFTER: u32 = 3;

/// Pages of one batch read side by side, at most (each reads its truncated properties and its
/// body, one request after another). The token's budget and `max_concurrent_requests` bound the
/// requests; this bounds the threads. At 500 ms a request, 2 in flight already use a budget of 3/s.
const PAGE_READERS: usize = 6;

/// How long a SQL call waits between steps of its job while requests are in flight.
const STEP_WAIT: Duration = Duration::from_millis(1);

/// The mass-deletion guard applies from this many rows (or when a scan saw no page at all).
const GUARD_MIN_ROWS: i64 = 10;

/// Overlap re-read before the watermark: Notion rounds `last_edited_time` down to the minute, and
/// its query index can lag a little behind an edit.
const OVERLAP_MINUTES: i64 = 2;

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

/// Accepts a Notion id with or without dashes, or a Notion URL; returns the dashed lowercase form.
pub fn normalize_id(raw: &str) -> Result<String, SyncError> {
    model::notion_id_or_url(raw).ok_or_else(|| {
        SyncError::InvalidArgument(format!(
            "{raw:?} is not a Notion database id: expected 32 hex digits (dashes optional) or a Notion URL"
        ))
    })
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

/// Maps errors of a page read (a webhook refetch, a file URL): a 403 or 404 is about the page,
/// not a database.
pub(crate) fn page_error(e: ApiError, user: &str, page_id: &str) -> SyncError {
    match e {
        ApiError::Http { status: 401, .. } => SyncError::BadToken(user.to_string()),
        ApiError::Http {
            status: 403 | 404, ..
        } => SyncError::NotSharedPage(page_id.to_string()),
        e => SyncError::Api(e),
    }
}

/// One sync asked for, checked once where it comes in (SQL call, schedule, webhook).
#[derive(Clone)]
pub struct SyncRequest {
    pub user: String,
    /// The database id in its dashed form.
    pub db: String,
    /// A name given to the call: it picks the sync table (unless the database maps its own).
    pub name: Option<String>,
    pub mode: Mode,
    /// Re-read pages edited in the last hours, whatever the watermark says.
    pub hours_back: Option<i32>,
    pub trigger: Trigger,
}

impl SyncRequest {
    /// A request from SQL arguments: 22023 for a bad mode, trigger, user, id or hours.
    pub fn parse(
        user: &str,
        raw_db: &str,
        name: Option<&str>,
        mode: &str,
        hours_back: Option<i32>,
        trigger: &str,
    ) -> Result<SyncRequest, SyncError> {
        let mode = Mode::parse(mode)?;
        let trigger = Trigger::parse(trigger)?;
        SyncRequest::new(user, raw_db, name, mode, hours_back, trigger)
    }

    pub fn new(
        user: &str,
        raw_db: &str,
        name: Option<&str>,
        mode: Mode,
        hours_back: Option<i32>,
        trigger: Trigger,
    ) -> Result<SyncRequest, SyncError> {
        if user.trim().is_empty() {
            return Err(SyncError::InvalidArgument(
                "p_user_id must not be empty".into(),
            ));
        }
        let db = normalize_id(raw_db)?;
        if let Some(h) = hours_back.filter(|h| *h < 0) {
            return Err(SyncError::InvalidArgument(format!(
                "p_hours_back must be 0 or more, got {h}"
            )));
        }
        Ok(SyncRequest {
            user: user.to_string(),
            db,
            name: name.map(String::from),
            mode,
            hours_back,
            trigger,
        })
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
    /// Where this run's helper threads ask for their turns; cancelled when the run is dropped.
    lane: LaneGuard,
    txn: Txn,
    /// Where the rows go: a sync table or a table of the user's own.
    target: Box<dyn Target>,
    user: String,
    db: String,
    depth: u32,
    seen: HashSet<String>,
    counts: Counts,
    errors: Vec<PageError>,
    max_edited: Option<i64>,
    min_failed_edited: Option<i64>,
    /// Wall clock at the start of the run: a page stamped in the future (clock skew) must not
    /// push the watermark past edits still to come.
    started_ms: i64,
    /// Webhook refetch of properties only: keep the stored body instead of reading blocks.
    keep_body: bool,
    /// Pages of a page tree read with their blocks: body and place, taken by stage 2.
    walked: HashMap<String, (String, Place)>,
    /// Per data source: formula properties whose value changes without an edit (`now()`), left
    /// out of the hash. Read from the schema once per run, only for sources with formulas.
    volatile: HashMap<String, Vec<String>>,
    /// The schemas read for that (source -> properties), kept for the typed views at the end.
    schemas: HashMap<String, Map<String, Value>>,
    /// Pages in a row whose reads failed because Notion did not answer (see `DEAD_AFTER`).
    dead_in_a_row: u32,
    /// Nothing of this database was stored when the run started (a first sync): no page can be
    /// unchanged, so stored hashes are not looked up. Planner statistics of a table that was empty
    /// make that lookup a scan per id, which cost a first sync of 10,000 pages 4x its time.
    fresh: bool,
    /// Pages of the scan done (found unchanged, or fetched): what sync_progress shows.
    done: i64,
    /// This run in `notion_sync.sync_progress` (None for a webhook's single page); freed on drop.
    progress: Option<crate::progress::Progress>,
    /// The database's name for NOTICEs, and how many were sent (`progress_notice_pages`).
    label: String,
    noticed: i64,
}

/// Stage 1's output: a page of the results that parsed, and the data source it came from.
struct Parsed {
    page: Page,
    source: String,
}

/// Stage 2's output: a page whose hash differs from the stored one (or that is new).
struct Changed {
    page: Page,
    hash: String,
    edited: Option<i64>,
    /// The stored body, for a properties-only refetch that keeps it (a page tree's: the one read).
    kept_body: Option<String>,
    place: Option<Place>,
}

/// What stage 2 knew of a page being read.
struct Meta {
    hash: String,
    edited: Option<i64>,
    kept_body: Option<String>,
    place: Option<Place>,
}

impl Meta {
    /// The page ready for its target: the body read, else the one kept.
    fn fetched(self, page: Page, body: Option<String>) -> Fetched {
        Fetched {
            page,
            hash: self.hash,
            edited: self.edited,
            body: body.or(self.kept_body),
            place: self.place,
        }
    }
}

enum Slot {
    Reading(Meta),
    Ready(Fetched),
    Failed,
}

/// What a reader thread sends for one page: its index in the batch, the page (its truncated
/// properties completed), its body or the failed step, the requests it took.
type ReadOut = (
    usize,
    Page,
    Result<Option<String>, (&'static str, ApiError)>,
    Stats,
);

/// Stage 3 of a batch in flight: the changed pages in order, those still being read.
struct Reads {
    /// No page of the batch parsed: nothing is written.
    empty: bool,
    slots: Vec<Slot>,
    waiting: usize,
    rx: Option<mpsc::Receiver<ReadOut>>,
}

impl Reads {
    fn none() -> Reads {
        Reads {
            empty: true,
            slots: vec![],
            waiting: 0,
            rx: None,
        }
    }

    /// The pages read, in the order of the results.
    fn fetched(self) -> Vec<Fetched> {
        self.slots
            .into_iter()
            .filter_map(|s| match s {
                Slot::Ready(f) => Some(f),
                _ => None,
            })
            .collect()
    }
}

/// On a reader thread (no Postgres): the full value of properties Notion truncated at 25 items,
/// then the body `depth` levels deep (None at depth 0: the stored one is kept).
fn read_page(
    client: &mut Client,
    page: &mut Page,
    depth: u32,
) -> Result<Option<String>, (&'static str, ApiError)> {
    let what = "completing its properties";
    for (name, pid, kind) in page.truncated.clone() {
        let (items, item) = client
            .property_items(&page.id, &pid)
            .map_err(|e| (what, e))?;
        model::complete_property_with(page, &name, &kind, &items, item.as_ref())
            .map_err(|e| (what, ApiError::Decode(e)))?;
    }
    if depth == 0 {
        return Ok(None);
    }
    client
        .page_text(&page.id, depth)
        .map(Some)
        .map_err(|e| ("reading the page body", e))
}

/// Whether a page of query results has a page with a formula property.
fn has_formulas(resp: &Value) -> bool {
    let pages = resp.get("results").and_then(|r| r.as_array());
    pages.into_iter().flatten().any(|p| {
        let props = p.get("properties").and_then(|v| v.as_object());
        props
            .into_iter()
            .flat_map(|m| m.values())
            .any(|v| v["type"] == "formula")
    })
}

/// A run's lane, cancelled when the run goes: its helper threads stop at their next turn.
struct LaneGuard(Arc<Lane>);

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Same hash, and synced after the edit minute closed: nothing can have changed. Never back in
/// time either: a late webhook refetch or a stale read of an older version is skipped.
fn unchanged(known: &Known, hash: &str, edited: Option<i64>) -> bool {
    let settled = match (known.synced_ms, edited) {
        (Some(s), Some(e)) => s as i64 >= e + 60_000,
        _ => true,
    };
    let older = matches!((known.edited_ms, edited), (Some(k), Some(e)) if (e as f64) < k);
    (known.hash.as_deref() == Some(hash) && settled) || older
}

impl<'i> Run<'i> {
    /// `content`: whether page bodies are read (a properties-only webhook refetch reads none).
    fn new(
        client: Client<'i>,
        txn: Txn,
        target: Box<dyn Target>,
        user: &str,
        db: &str,
        content: bool,
    ) -> Run<'i> {
        Run {
            client,
            lane: LaneGuard(Lane::new()),
            txn,
            depth: target.depth(content),
            target,
            user: user.to_string(),
            db: db.to_string(),
            seen: HashSet::new(),
            counts: Counts::default(),
            errors: vec![],
            max_edited: None,
            min_failed_edited: None,
            started_ms: chrono::Utc::now().timestamp_millis(),
            keep_body: false,
            walked: HashMap::new(),
            volatile: HashMap::new(),
            schemas: HashMap::new(),
            dead_in_a_row: 0,
            fresh: false,
            done: 0,
            progress: None,
            label: String::new(),
            noticed: 0,
        }
    }

    /// Publishes the run's figures (sync_progress) and, in a SQL call with
    /// `notion_sync.progress_notice_pages` set, a NOTICE each time that many more pages were done.
    fn report(&mut self, phase: crate::progress::Phase) {
        let Some(progress) = &self.progress else {
            return;
        };
        let c = &self.counts;
        let (failed, requests) = (self.errors.len() as i64, self.client.stats.requests as i64);
        progress.update(
            phase,
            self.done,
            c.created + c.updated,
            c.skipped,
            failed,
            requests,
        );
        let every = gucs::progress_notice_pages();
        if self.txn == Txn::Caller && every > 0 && self.done / every > self.noticed {
            self.noticed = self.done / every;
            let secs = (chrono::Utc::now().timestamp_millis() - self.started_ms) as f64 / 1000.0;
            pgrx::notice!(
                "notion_sync: {}: {} pages read, {} written, {} unchanged, {failed} failed, {requests} requests in {secs:.1} s",
                self.label, self.done, c.created + c.updated, c.skipped
            );
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
        if !unreachable(&e) {
            self.dead_in_a_row = 0;
            self.fail_page(Some(id.to_string()), edited, format!("{what}: {e}"));
            return Ok(());
        }
        self.dead_in_a_row += 1;
        if self.dead_in_a_row < DEAD_AFTER {
            self.fail_page(Some(id.to_string()), edited, format!("{what}: {e}"));
            return Ok(());
        }
        let why = match &e {
            ApiError::Transport(m) if m.contains("timed out") || m.contains("imeout") => format!(
                "Notion did not answer within http_timeout_ms = {} ms",
                gucs::http_timeout_ms()
            ),
            _ => "Notion did not answer".to_string(),
        };
        Err(SyncError::Unreachable(format!(
            "{why} for {n} pages in a row (after {r} retries each); the run stopped. Last error, {what} of page {id}: {e}",
            n = self.dead_in_a_row,
            r = gucs::max_retries(),
        )))
    }

    /// Reads, once per run, which formulas of a data source use `now()` (their values change on
    /// every read without an edit). A schema that cannot be read leaves every formula in the hash.
    fn load_volatile(&mut self, source: &str) {
        if self.volatile.contains_key(source) {
            return;
        }
        let schema = self.client.schema(source);
        self.learn_schema(source, schema);
    }

    /// Keeps a data source's schema (or that it could not be read) and its `now()` formulas.
    fn learn_schema(&mut self, source: &str, schema: Result<Map<String, Value>, ApiError>) {
        let names = match schema {
            Ok(props) => {
                let names = model::volatile_properties(&props);
                self.schemas.insert(source.to_string(), props);
                names
            }
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

    fn note_edited(&mut self, edited: Option<i64>) {
        if let Some(e) = edited {
            self.max_edited = Some(self.max_edited.map_or(e, |m| m.max(e)));
        }
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

    /// Processes one API page of query results, waiting for its reads (a webhook's page).
    fn batch(&mut self, results: &[Value], watermark: bool) -> Result<(), SyncError> {
        let mut reads = self.select(results)?;
        while !self.collect(&mut reads)? {
            self.client.idle(STEP_WAIT);
        }
        self.store(reads, watermark)
    }

    /// Runs SPI work; in the caller's transaction in a memory context of its own, deleted
    /// afterwards, so what SPI allocates for a batch does not pile up over a long scan (the
    /// worker's transactions free theirs at commit).
    fn spi<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.txn == Txn::PerBatch {
            return f(self);
        }
        let mut cx = pgrx::PgMemoryContexts::new("notion_sync batch");
        // SAFETY: nothing allocated in `cx` outlives the closure; only Rust values come out.
        unsafe { cx.switch_to(|_| f(self)) }
    }

    /// Stages 1-3 of a batch: parse, select the changed pages (SPI), start reading them.
    fn select(&mut self, results: &[Value]) -> Result<Reads, SyncError> {
        let pages = self.parse(results);
        if pages.is_empty() {
            return Ok(Reads::none());
        }
        let changed = self.spi(|run| run.changed(pages))?;
        Ok(self.read(changed))
    }

    /// Stages 4-5: rows and write, once every read of the batch is in.
    fn store(&mut self, reads: Reads, watermark: bool) -> Result<(), SyncError> {
        if reads.empty {
            return Ok(());
        }
        let rows = self.rows(reads.fetched());
        self.spi(|run| run.write(rows, watermark))
    }

    /// Stage 1: the pages of `results` this run has not seen yet (a window boundary re-reads
    /// some), parsed; a malformed one is a page error. Reads a data source's `now()` formulas the
    /// first time one of its pages has formulas.
    fn parse(&mut self, results: &[Value]) -> Vec<Parsed> {
        let mut pages = vec![];
        for r in results {
            let id = r.get("id").and_then(|i| i.as_str()).map(String::from);
            if id.as_ref().is_some_and(|id| !self.seen.insert(id.clone())) {
                continue;
            }
            self.counts.total += 1;
            match model::parse_page(r) {
                Ok(page) => {
                    let source = parent_source(r).unwrap_or_default();
                    if page.properties.values().any(|v| v["type"] == "formula") {
                        self.load_volatile(&source);
                    }
                    pages.push(Parsed { page, source });
                }
                Err(e) => {
                    let edited = r.get("last_edited_time").and_then(|t| t.as_str());
                    self.fail_page(id, edited.and_then(ms), e)
                }
            }
        }
        pages
    }

    /// Stage 2 (SPI): the pages whose hash is not the stored one; the others count as skipped.
    /// A properties-only refetch also reads the body it keeps.
    fn changed(&mut self, pages: Vec<Parsed>) -> Result<Vec<Changed>, SyncError> {
        let ids: Vec<String> = pages.iter().map(|p| p.page.id.clone()).collect();
        let stored = match self.fresh {
            true => Stored::new(),
            false => self.txn.run(|| self.target.existing(&ids))?,
        };
        let mut changed = vec![];
        for Parsed { page, source } in pages {
            let edited = page.last_edited_time.as_deref().and_then(ms);
            let volatile = self.volatile.get(&source).map_or(&[][..], |v| v.as_slice());
            let mut hash = self.target.hash(model::page_hash_with(&page, volatile));
            // A page of a tree: its body and place were read with it, and count in its hash.
            let walked = self.walked.remove(&page.id);
            if let Some((body, place)) = &walked {
                hash = model::hash_text(&format!("{hash}\n{:?}\n{body}", place.path));
            }
            if stored
                .get(&page.id)
                .is_some_and(|k| unchanged(k, &hash, edited))
            {
                self.counts.skipped += 1;
                self.done += 1;
                self.note_edited(edited);
                continue;
            }
            let (kept_body, place) = match walked {
                Some((body, place)) => (Some(body), Some(place)),
                None => (None, None),
            };
            changed.push(Changed {
                page,
                hash,
                edited,
                kept_body,
                place,
            });
        }
        if self.keep_body && self.depth == 0 && !changed.is_empty() {
            let target = &self.target;
            self.txn.run(|| {
                for c in &mut changed {
                    c.kept_body = target.kept_body(&c.page.id)?;
                }
                Ok::<_, SyncError>(())
            })?;
        }
        Ok(changed)
    }

    /// Stage 3 (HTTP only, on helper threads): completes properties Notion truncated and reads
    /// page bodies, up to `PAGE_READERS` pages side by side. Pages that need no request are
    /// ready at once.
    fn read(&mut self, changed: Vec<Changed>) -> Reads {
        let depth = self.depth;
        let mut reads = Reads::none();
        reads.empty = false;
        let mut work = VecDeque::new();
        for (index, c) in changed.into_iter().enumerate() {
            let meta = Meta {
                hash: c.hash,
                edited: c.edited,
                kept_body: c.kept_body,
                place: c.place,
            };
            if depth > 0 || !c.page.truncated.is_empty() {
                work.push_back((index, c.page));
                reads.slots.push(Slot::Reading(meta));
            } else {
                self.done += 1;
                reads.slots.push(Slot::Ready(meta.fetched(c.page, None)));
            }
        }
        reads.waiting = work.len();
        if work.is_empty() {
            return reads;
        }
        let readers = work.len().min(PAGE_READERS);
        let work = Arc::new(Mutex::new(work));
        let (tx, rx) = mpsc::channel();
        for _ in 0..readers {
            let (work, tx) = (work.clone(), tx.clone());
            let mut client = self.client.detached(&self.lane.0);
            std::thread::spawn(move || loop {
                let next = work.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((index, mut page)) = next else {
                    return;
                };
                let before = client.stats;
                let result = read_page(&mut client, &mut page, depth);
                let stats = client.stats.since(before);
                if tx.send((index, page, result, stats)).is_err() {
                    return;
                }
            });
        }
        reads.rx = Some(rx);
        reads
    }

    /// Takes the reads that came in (never waits). True when the batch has all of them. A read
    /// that failed is a page error, unless Notion stopped answering (`read_failed`).
    fn collect(&mut self, reads: &mut Reads) -> Result<bool, SyncError> {
        while reads.waiting > 0 {
            let Some(rx) = &reads.rx else { break };
            let (index, page, result, stats) = match rx.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Empty) => return Ok(false),
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(SyncError::Api(ApiError::Transport(
                        "a page reader thread ended".into(),
                    )))
                }
            };
            reads.waiting -= 1;
            self.client.stats.add(stats);
            self.done += 1;
            let Slot::Reading(meta) = std::mem::replace(&mut reads.slots[index], Slot::Failed)
            else {
                continue;
            };
            match result {
                Ok(body) => {
                    self.dead_in_a_row = 0;
                    reads.slots[index] = Slot::Ready(meta.fetched(page, body));
                }
                Err((what, e)) => {
                    if let Err(fatal) = self.read_failed(&page.id, meta.edited, what, e) {
                        self.lane.0.cancel();
                        return Err(fatal);
                    }
                }
            }
            self.report(crate::progress::Phase::Reading);
        }
        Ok(true)
    }

    /// Stage 4: the rows of the target; a page it cannot take is a page error.
    fn rows(&mut self, fetched: Vec<Fetched>) -> Vec<Row> {
        let mut rows = vec![];
        for page in fetched {
            let (id, edited) = (page.page.id.clone(), page.edited);
            match self.target.row(page, &mut self.errors) {
                Ok(row) => {
                    rows.push(row);
                    self.note_edited(edited);
                }
                Err(e) => self.fail_page(Some(id), edited, e),
            }
        }
        rows
    }

    /// Stage 5 (SPI only): upserts the rows and, with `watermark`, moves the watermark behind them
    /// in the same transaction (never past a row that failed to be written).
    fn write(&mut self, rows: Vec<Row>, watermark: bool) -> Result<(), SyncError> {
        let offered = rows.len() as i64;
        let (keep_body, wm) = (self.keep_body, self.watermark());
        let (target, user, db) = (&mut self.target, &self.user, &self.db);
        let written = self.txn.run(|| {
            let written = target.upsert(rows, keep_body)?;
            let failed_min = written.failed.iter().filter_map(|f| f.1).min();
            let wm = wm.map(|w| failed_min.map_or(w, |f| w.min(f)));
            if let (true, Some(w)) = (watermark, wm) {
                storage::set_watermark(user, db, Some(&iso(w)), false)?;
            }
            Ok::<_, SyncError>(written)
        })?;
        // Rows offered but neither created, updated nor failed were equal to what is stored.
        let failed = written.failed.len() as i64;
        self.counts.skipped += offered - written.created - written.updated - failed;
        for (id, edited, e) in written.failed {
            self.fail_page(Some(id), edited, e);
        }
        self.counts.created += written.created;
        self.counts.updated += written.updated;
        Ok(())
    }

    /// The end of a scan (SPI): statistics, deletions after a `complete` full scan of every page
    /// (`whole`: no hours_back), and the watermark unless the run failed. Returns rows deleted.
    fn conclude(
        &mut self,
        mode: Mode,
        complete: bool,
        whole: bool,
        ok: bool,
    ) -> Result<i64, SyncError> {
        // Statistics first: the deletion query below is planned on them, and on a table that
        // was empty it was a nested loop over every id (5 of the 6.5 s of a first 10k sync).
        if self.counts.created >= 1000 {
            storage::analyze(self.target.stored_table())?;
        }
        // Deletions only from a complete, error-free full scan of every source. A run that
        // started with nothing stored wrote every row it has: nothing can be missing.
        let mut full_done = mode == Mode::Full && complete;
        let mut deleted = 0;
        if full_done && whole && !self.fresh {
            match self.deletions()? {
                Some(n) => deleted = n,
                None => full_done = false,
            }
        }
        if ok {
            let wm = self.watermark().map(iso);
            storage::set_watermark(&self.user, &self.db, wm.as_deref(), full_done)?;
        }
        Ok(deleted)
    }

    /// Marks in trash what a complete full scan did not see, unless the mass-deletion guard
    /// holds: then None, and its reason is a run error.
    fn deletions(&mut self) -> Result<Option<i64>, SyncError> {
        let seen: Vec<String> = self.seen.drain().collect();
        let table = self.target.stored_table();
        let (live, gone) = storage::deletion_counts(table, &self.user, &self.db, &seen)?;
        if let Some(why) = mass_deletion(live, gone, seen.len()) {
            self.errors.push((None, why));
            return Ok(None);
        }
        if gone == 0 {
            return Ok(Some(0));
        }
        self.target.mark_deleted(seen).map(Some)
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

impl Scan {
    /// No data source (a missing key, an unshared source, a shape to come) is not an empty
    /// database: the scan is incomplete and nothing may be marked deleted.
    fn new(sources: Vec<String>, since: Option<String>) -> Scan {
        Scan {
            complete: !sources.is_empty(),
            sources,
            index: 0,
            key: if since.is_some() {
                "last_edited_time"
            } else {
                "created_time"
            },
            since,
            window_from: None,
            cursor: None,
            window_max: None,
        }
    }

    fn done(&self) -> bool {
        self.index >= self.sources.len()
    }

    /// Where the current query starts: its window, else the scan's start.
    fn from(&self) -> Option<String> {
        self.window_from.clone().or_else(|| self.since.clone())
    }

    /// An incremental scan of one source reads in edit order: each batch may move the watermark.
    fn moves_watermark(&self) -> bool {
        self.key == "last_edited_time" && self.sources.len() == 1
    }

    /// Remembers the newest sort key of the results (where a capped query's next window starts).
    fn note_keys(&mut self, results: &[Value]) {
        for r in results {
            if let Some(c) = r.get(self.key).and_then(|c| c.as_str()) {
                if self.window_max.as_deref().is_none_or(|m| ms(c) > ms(m)) {
                    self.window_max = Some(c.to_string());
                }
            }
        }
    }

    /// After a page of results: the next cursor, the next window (the 10,000-result cap), or the
    /// next source. Returns a run error when the cap cannot be got around.
    fn advance(&mut self, resp: &Value) -> Option<String> {
        let incomplete = resp
            .pointer("/request_status/type")
            .and_then(|t| t.as_str())
            == Some("incomplete");
        match client::next_cursor(resp) {
            Some(c) => self.cursor = Some(c),
            // The 10,000-result cap: restart from the last minute of the sort key seen.
            None if incomplete => {
                let next = self.window_max.clone();
                if next.is_none() || next == self.window_from {
                    self.complete = false;
                    self.index += 1;
                    return Some(format!(
                        "the query cap was reached inside one {} minute; some pages were not read",
                        self.key
                    ));
                }
                self.window_from = next;
                self.cursor = None;
            }
            None => {
                self.index += 1;
                self.window_from = None;
                self.window_max = None;
                self.cursor = None;
            }
        }
        None
    }
}

/// The runs a scheduler has going: scanning (`jobs`), and starting (their data sources being read
/// on a helper thread).
#[derive(Default)]
pub struct Runs<'i> {
    pub jobs: Vec<Job<'i>>,
    pub starting: Vec<(Opening<'i>, Flight<SourcesOut>)>,
}

impl<'i> Runs<'i> {
    /// Whether a run of this database is going here.
    pub fn busy(&self, user: &str, db: &str) -> bool {
        self.jobs.iter().any(|j| j.syncs(user, db))
            || self
                .starting
                .iter()
                .any(|(o, _)| o.req.user == user && o.req.db == db)
    }

    /// Records a run and starts reading its data sources (no wait). A database this scheduler
    /// syncs already gets a `skipped` run. Ok(Ok(run id)) when it started.
    pub fn open(
        &mut self,
        req: &SyncRequest,
        interrupt: &'i Interrupt,
    ) -> Result<Result<i64, Box<Outcome>>, SyncError> {
        let busy = self.busy(&req.user, &req.db);
        match open_run(req, Txn::PerBatch, interrupt, busy)? {
            Ok(opening) => {
                let id = opening.record.id;
                let flight = opening.read_sources();
                self.starting.push((opening, flight));
                Ok(Ok(id))
            }
            Err(done) => Ok(Err(done)),
        }
    }
}

/// One sync of one database, run step by step so the worker can interleave the databases of
/// several users: a step never waits for Notion, it looks whether what is in flight has come.
pub struct Job<'i> {
    run: Run<'i>,
    scan: Scan,
    record: RunRecord,
    hours_back: Option<i32>,
    fatal: Option<SyncError>,
    stage: Stage,
    /// A page tree's walk instead of the scan of a database.
    walk: Option<Walk>,
}

/// A page of query results (and, the first time it shows formulas, its data source's schema),
/// read on a helper thread, with the requests it took.
type QueryOut = (
    Result<(Value, Option<Result<Map<String, Value>, ApiError>>), ApiError>,
    Stats,
);

/// Where a job is.
enum Stage {
    /// Nothing in flight: the next step sends the query for where the scan is.
    Idle,
    Query(Flight<QueryOut>),
    /// A batch of a page tree being read (bodies and sub-pages).
    Walk(Flight<WalkOut>),
    /// A page of search results (an incremental walk).
    Search(Flight<(Result<Value, ApiError>, Stats)>),
    /// The changed pages of `resp` being read; the next page of results on its way meanwhile.
    Reading {
        resp: Value,
        reads: Reads,
        next: Option<Flight<QueryOut>>,
        watermark: bool,
    },
}

pub enum Started<'i> {
    Running(Box<Job<'i>>),
    Done(Box<Outcome>),
}

/// What the transaction before any HTTP gives a run.
struct Opened {
    token: String,
    reg: Option<Registration>,
    record: RunRecord,
    /// The target table named in the run row.
    table: String,
    /// A table of the user's own: its column map, checked against the table.
    mapping: Result<Option<Mapping>, SyncError>,
}

/// The table a run writes: a name given to the call picks a sync table, unless the database maps
/// its own; else the registered one.
fn target_table(req: &SyncRequest, reg: Option<&Registration>, db_name: &str) -> String {
    match reg {
        Some(r) if r.mapped.is_some() || req.name.is_none() => r.target_table.clone(),
        _ => storage::target_for_name(db_name).to_string(),
    }
}

fn make_target(
    table: &str,
    mapping: Option<Mapping>,
    user: &str,
    db: &str,
    db_name: &str,
) -> Box<dyn Target> {
    match mapping {
        Some(m) => Box::new(Mapped::new(m, user, db, db_name)),
        None => Box::new(SyncTable::new(table, user, db, db_name)),
    }
}

/// The one transaction before any HTTP: schema version, token, registration, run lock, run row,
/// and (while the lock is held) a mapped table's column map, checked again at every run since the
/// table may have changed.
fn open(req: &SyncRequest, txn: Txn, started: Instant, busy: bool) -> Result<Opened, SyncError> {
    storage::check_version()?;
    let user = req.user.as_str();
    let token = storage::token(user)?.ok_or_else(|| SyncError::MissingToken(user.to_string()))?;
    let reg = storage::registration(user, &req.db)?;
    let db_name = req
        .name
        .clone()
        .or_else(|| reg.as_ref().map(|r| r.database_name.clone()))
        .unwrap_or_default();
    let table = target_table(req, reg.as_ref(), &db_name);
    // One run per database at a time: a SQL call waits for a running one (cancellable), the
    // worker skips and records the skip.
    let lock = runs::lock_key(user, &req.db);
    // `busy`: this scheduler runs it already (its session lock would be taken again).
    let locked = !busy && runs::lock_run(lock, txn == Txn::Caller)?;
    let status = if locked {
        RunStatus::Running
    } else {
        RunStatus::Skipped
    };
    let new = NewRun {
        user,
        db: &req.db,
        db_name: &db_name,
        target: &table,
        mode: req.mode,
        trigger: req.trigger,
        started,
    };
    let mut record = RunRecord::open(new, status)?;
    record.lock = locked.then_some(lock);
    let mapping = match reg.as_ref().and_then(|r| r.mapped.as_ref()) {
        Some(m) if locked => m.check().map(Some),
        _ => Ok(None),
    };
    Ok(Opened {
        token,
        reg,
        record,
        table,
        mapping,
    })
}

/// The one transaction after the data sources are read: registration (a database synced without
/// registering gets schedule `manual`), its data source ids, whether nothing of it is stored, and
/// for a full scan the pages the last complete one read (sync_progress estimates from it).
fn register(
    req: &SyncRequest,
    db_name: &str,
    table: &str,
    sources: &[String],
    stored_table: Option<&'static str>,
) -> Result<(bool, i64), SyncError> {
    storage::ensure_registered(&req.user, &req.db, db_name, table)?;
    storage::set_data_sources(&req.user, &req.db, sources)?;
    let fresh = match stored_table {
        Some(t) => !storage::has_rows(t, &req.user, &req.db)?,
        None => false,
    };
    let expected = match req.mode {
        Mode::Full => runs::last_full_total(&req.user, &req.db)?,
        Mode::Incremental => 0,
    };
    Ok((fresh, expected))
}

/// Where the scan starts: `hours_back`, else an incremental run's watermark less the overlap;
/// None reads everything.
fn since(req: &SyncRequest, reg: Option<&Registration>) -> Option<String> {
    let watermark = reg.and_then(|r| r.watermark.as_deref());
    match (req.mode, req.hours_back, watermark) {
        (_, Some(h), _) => Some(iso(
            chrono::Utc::now().timestamp_millis() - h as i64 * 3_600_000
        )),
        (Mode::Incremental, None, Some(w)) => ms(w).map(|w| iso(w - OVERLAP_MINUTES * 60_000)),
        _ => None,
    }
}

fn done<'i>(o: Outcome) -> Started<'i> {
    Started::Done(Box::new(o))
}

/// A run that fails before reading any page.
fn fail<'i>(
    record: RunRecord,
    txn: Txn,
    client: Option<&Client>,
    e: SyncError,
) -> Result<Started<'i>, SyncError> {
    end_run(record, txn, client, Some(Fatal::Error(e))).map(done)
}

/// A run recorded, its token checked, waiting for its database's data sources (the one request
/// before the scan; the worker reads it on a helper thread).
pub struct Opening<'i> {
    req: SyncRequest,
    reg: Option<Registration>,
    record: RunRecord,
    table: String,
    mapping: Result<Option<Mapping>, SyncError>,
    client: Client<'i>,
    txn: Txn,
    lane: LaneGuard,
    /// Where the scan starts (None: everything).
    since: Option<String>,
}

/// What a run reads before its scan: the database's title and data source ids, or a page tree's
/// name and the pages its walk starts from.
pub struct Sources {
    title: String,
    ids: Vec<String>,
    roots: Vec<Value>,
}

/// The sources read, and the requests it took.
pub type SourcesOut = (Result<Sources, ApiError>, Stats);

/// Reads what `begin` needs (on a helper thread, or the caller's).
fn read_sources(
    client: &mut Client,
    db: &str,
    tree: Option<(u32, bool)>,
) -> Result<Sources, ApiError> {
    match tree {
        None => client.sources(db).map(|(title, ids)| Sources {
            title,
            ids,
            roots: vec![],
        }),
        Some((_, full)) => page_tree::roots(client, db, full).map(|(title, roots)| Sources {
            title,
            ids: vec![],
            roots,
        }),
    }
}

/// Checks the token, records the run. `Err` only for a missing token (and the schema check;
/// nothing recorded); every later failure is recorded in the run. `Done` for a run that ended
/// already (skipped, or no client).
fn open_run<'i>(
    req: &SyncRequest,
    txn: Txn,
    interrupt: &'i Interrupt,
    busy: bool,
) -> Result<Result<Opening<'i>, Box<Outcome>>, SyncError> {
    let opened = txn.run(|| open(req, txn, Instant::now(), busy))?;
    let Opened {
        token,
        reg,
        record,
        table,
        mapping,
    } = opened;
    if record.lock.is_none() {
        let e = "skipped: another sync of this database is still running".to_string();
        return end_run(record, txn, None, Some(Fatal::Skipped(e))).map(|o| Err(Box::new(o)));
    }
    let client = match Client::new(gucs::client_config(token), interrupt) {
        Ok(c) => c,
        Err(e) => {
            let fatal = Some(Fatal::Error(SyncError::Api(e)));
            return end_run(record, txn, None, fatal).map(|o| Err(Box::new(o)));
        }
    };
    let since = since(req, reg.as_ref());
    Ok(Ok(Opening {
        req: req.clone(),
        since,
        reg,
        record,
        table,
        mapping,
        client,
        txn,
        lane: LaneGuard(Lane::new()),
    }))
}

impl<'i> Opening<'i> {
    /// Reads the data sources on a helper thread.
    pub fn read_sources(&self) -> Flight<SourcesOut> {
        let mut client = self.client.detached(&self.lane.0);
        let (db, tree) = (self.req.db.clone(), self.tree());
        Flight::spawn(move || (read_sources(&mut client, &db, tree), client.stats))
    }

    /// Reads the data sources here, waiting (the client counts its requests itself).
    fn sources_here(&mut self) -> SourcesOut {
        let tree = self.tree();
        let sources = read_sources(&mut self.client, &self.req.db, tree);
        (sources, Stats::default())
    }

    /// A page tree: its depth, and whether the run walks it whole (else search finds the edits).
    fn tree(&self) -> Option<(u32, bool)> {
        let depth = self.reg.as_ref()?.page_tree_depth?;
        Some((depth.max(0) as u32, self.since.is_none()))
    }

    pub fn label(&self) -> String {
        format!("{} ({})", self.req.db, self.req.user)
    }

    /// With the data sources read: registration, target, scan. Every failure is recorded in the
    /// run, which is then `Done`.
    pub fn begin(self, sources: SourcesOut) -> Result<Started<'i>, SyncError> {
        let tree = self.tree();
        let Opening {
            req,
            reg,
            mut record,
            table,
            mapping,
            mut client,
            txn,
            lane,
            since,
        } = self;
        client.stats.add(sources.1);
        let Sources { title, ids, roots } = match sources.0 {
            Ok(s) => s,
            Err(e) => return fail(record, txn, Some(&client), classify(e, &req.user, &req.db)),
        };
        let sources = ids;
        if tree.is_some() && !title.is_empty() {
            record.db_name = title.clone();
        }
        if record.db_name.is_empty() {
            record.db_name = if title.is_empty() {
                req.db.clone()
            } else {
                title
            };
        }
        let table = match (&reg, &req.name) {
            (None, None) => storage::target_for_name(&record.db_name).to_string(),
            _ => table,
        };
        let target = mapping.map(|m| make_target(&table, m, &req.user, &req.db, &record.db_name));
        let stored = target.as_ref().ok().map(|t| t.stored_table());
        let (fresh, expected) =
            txn.run(|| register(&req, &record.db_name, &table, &sources, stored))?;
        let target = match target {
            Ok(t) => t,
            Err(e) => return fail(record, txn, Some(&client), e),
        };
        let mut run = Run::new(client, txn, target, &req.user, &req.db, true);
        run.lane = lane;
        run.fresh = fresh;
        let walk = tree.map(|(max_depth, _)| {
            // The body is read with the walk: the engine reads no blocks of its own.
            let content = std::mem::take(&mut run.depth);
            let since_ms = since.as_deref().and_then(ms);
            // An incremental walk starts from search, not from the root.
            let roots = if since_ms.is_some() { vec![] } else { roots };
            Walk::new(roots, max_depth, content, since_ms)
        });
        let scan = match &walk {
            Some(_) => Scan::new(vec![req.db.clone()], None),
            None => Scan::new(sources, since),
        };
        let mut job = Job::new(&req, run, scan, record, expected);
        job.walk = walk;
        Ok(Started::Running(Box::new(job)))
    }
}

/// Checks the token, records the run, reads the data sources (waiting for them). `Err` only for a
/// missing token (and the schema check; nothing recorded); every later failure is recorded in
/// the run.
pub fn start<'i>(
    req: &SyncRequest,
    txn: Txn,
    interrupt: &'i Interrupt,
) -> Result<Started<'i>, SyncError> {
    match open_run(req, txn, interrupt, false)? {
        Err(o) => Ok(Started::Done(o)),
        Ok(mut opening) => {
            let sources = opening.sources_here();
            opening.begin(sources)
        }
    }
}

impl<'i> Job<'i> {
    /// `expected`: pages the last complete full scan read, what sync_progress estimates from.
    fn new(
        req: &SyncRequest,
        mut run: Run<'i>,
        scan: Scan,
        record: RunRecord,
        expected: i64,
    ) -> Job<'i> {
        run.progress = Some(crate::progress::Progress::begin(
            record.id, &req.user, &req.db, expected,
        ));
        run.label = record.db_name.clone();
        if !scan.complete {
            run.errors.push((
                None,
                format!("Notion listed no data source for database {}: nothing was read and nothing is marked deleted", req.db),
            ));
        }
        Job {
            run,
            scan,
            record,
            hours_back: req.hours_back,
            fatal: None,
            stage: Stage::Idle,
            walk: None,
        }
    }

    pub fn label(&self) -> String {
        format!("{} ({})", self.record.db_name, self.record.user)
    }

    pub fn syncs(&self, user: &str, db: &str) -> bool {
        self.record.user == user && self.record.db == db
    }

    /// Ends the run as failed after an error the engine did not return (a Postgres ERROR).
    pub fn abort(&mut self, message: String) {
        self.fatal = Some(SyncError::Storage(message));
        self.scan.complete = false;
    }

    /// One step: sends what is next, or takes what came in and does the SPI work it allows.
    /// Never waits for Notion. Returns true when the scan is over.
    pub fn step(&mut self) -> bool {
        if self.fatal.is_some() {
            return true;
        }
        if let Err(e) = self.advance() {
            self.fatal = Some(e);
            self.scan.complete = false;
            self.run.lane.0.cancel();
            self.stage = Stage::Idle;
            return true;
        }
        self.over() && matches!(self.stage, Stage::Idle)
    }

    /// Whether the scan (or walk) has nothing left to send.
    fn over(&self) -> bool {
        match &self.walk {
            Some(w) => w.done(),
            None => self.scan.done(),
        }
    }

    /// Whether the job waits for Notion (its next step does nothing until an answer comes).
    pub fn waiting(&self) -> bool {
        match &self.stage {
            Stage::Idle => false,
            Stage::Query(_) | Stage::Walk(_) | Stage::Search(_) => true,
            Stage::Reading { reads, .. } => reads.waiting > 0,
        }
    }

    fn advance(&mut self) -> Result<(), SyncError> {
        self.stage = match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::Idle if self.over() => Stage::Idle,
            Stage::Idle if self.walk.is_some() => self.walk_next(),
            Stage::Idle => Stage::Query(self.send_query(self.scan.cursor.clone())),
            Stage::Walk(mut flight) => match flight.take() {
                None => Stage::Walk(flight),
                Some(out) => self.walked(out.map_err(SyncError::Api)?)?,
            },
            Stage::Search(mut flight) => match flight.take() {
                None => Stage::Search(flight),
                Some(out) => self.searched(out.map_err(SyncError::Api)?)?,
            },
            Stage::Query(mut flight) => match flight.take() {
                None => Stage::Query(flight),
                Some(out) => self.results(out.map_err(SyncError::Api)?)?,
            },
            Stage::Reading {
                resp,
                mut reads,
                next,
                watermark,
            } => {
                if !self.run.collect(&mut reads)? {
                    self.stage = Stage::Reading {
                        resp,
                        reads,
                        next,
                        watermark,
                    };
                    return Ok(());
                }
                self.run.store(reads, watermark)?;
                if self.walk.is_none() {
                    if let Some(e) = self.scan.advance(&resp) {
                        self.run.errors.push((None, e));
                    }
                }
                self.run.report(crate::progress::Phase::Reading);
                next.map_or(Stage::Idle, Stage::Query)
            }
        };
        Ok(())
    }

    /// A page tree's next step: a batch of the frontier, else (incremental) the next page of search.
    fn walk_next(&mut self) -> Stage {
        let (run, walk) = (&self.run, self.walk.as_mut().expect("a walk"));
        if let Some(f) = walk.read_next(&run.client, &run.lane.0) {
            return Stage::Walk(f);
        }
        let mut client = run.client.detached(&run.lane.0);
        let cursor = walk.cursor.clone();
        Stage::Search(Flight::spawn(move || {
            (client.search_pages(cursor.as_deref()), client.stats)
        }))
    }

    /// A batch of the tree was read: sub-pages join the frontier, the pages go through the stages
    /// (their bodies known). A page that could not be read leaves its sub-tree unknown: the walk is
    /// then incomplete and marks nothing deleted.
    fn walked(&mut self, out: WalkOut) -> Result<Stage, SyncError> {
        let (results, stats) = out;
        self.run.client.stats.add(stats);
        let walk = self.walk.as_mut().expect("a walk");
        let mut pages = vec![];
        for r in results {
            match r {
                Ok(w) => {
                    walk.note_subpages(&w);
                    if let Some(id) = w.page.get("id").and_then(|i| i.as_str()) {
                        self.run.walked.insert(id.to_string(), (w.body, w.place));
                    }
                    pages.push(w.page);
                }
                Err((id, edited, e)) => {
                    self.scan.complete = false;
                    self.run.read_failed(&id, edited, "reading the page", e)?;
                }
            }
        }
        let reads = self.run.select(&pages)?;
        Ok(Stage::Reading {
            resp: Value::Null,
            reads,
            next: None,
            watermark: false,
        })
    }

    /// A page of search results of an incremental walk: the tree's pages among them are read next.
    fn searched(&mut self, out: (Result<Value, ApiError>, Stats)) -> Result<Stage, SyncError> {
        let (result, stats) = out;
        self.run.client.stats.add(stats);
        let resp = result.map_err(SyncError::Api)?;
        let (user, db) = (self.run.user.clone(), self.run.db.clone());
        let walk = self.walk.as_mut().expect("a walk");
        let more = self
            .run
            .txn
            .run(|| page_tree::take_search(walk, &resp, &user, &db))?;
        walk.searched = !more;
        Ok(Stage::Idle)
    }

    /// Sends the query for the current source and window from `cursor`, on a helper thread; it
    /// also reads the source's schema when the results show formulas and the run has not read it.
    fn send_query(&self, cursor: Option<String>) -> Flight<QueryOut> {
        let scan = &self.scan;
        let source = scan.sources[scan.index].clone();
        let body = client::query_body(scan.key, scan.from().as_deref(), cursor.as_deref());
        let want_schema = !self.run.volatile.contains_key(&source);
        // Its turn taken now if it can be: the next page of results then loads while this one
        // is written, even when nothing pumps meanwhile.
        let mut client = self.run.client.detached_now(&self.run.lane.0);
        Flight::spawn(move || {
            let result = client.query(&source, &body).map(|resp| {
                let schema = (want_schema && has_formulas(&resp)).then(|| client.schema(&source));
                (resp, schema)
            });
            (result, client.stats)
        })
    }

    /// A page of results came: the next one is sent, this one's changed pages start being read.
    fn results(&mut self, out: QueryOut) -> Result<Stage, SyncError> {
        let (result, stats) = out;
        self.run.client.stats.add(stats);
        let (mut resp, schema) = result.map_err(SyncError::Api)?;
        let source = self.scan.sources[self.scan.index].clone();
        if let Some(schema) = schema {
            self.run.learn_schema(&source, schema);
        }
        // Taken, not cloned: a deep copy of 100 pages was a tenth of a sync's CPU.
        let results = match resp.get_mut("results").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => vec![],
        };
        self.scan.note_keys(&results);
        // The next page of results is on its way while this one is read and written.
        let next = client::next_cursor(&resp).map(|c| self.send_query(Some(c)));
        let watermark = self.run.txn == Txn::PerBatch && self.scan.moves_watermark();
        let reads = self.run.select(&results)?;
        Ok(Stage::Reading {
            resp,
            reads,
            next,
            watermark,
        })
    }

    /// Deletions, watermark, run row, errors and NOTIFY.
    pub fn finish(self) -> Result<Outcome, SyncError> {
        let Job {
            mut run,
            scan,
            mut record,
            hours_back,
            fatal,
            walk,
            ..
        } = self;
        let complete = scan.complete && fatal.is_none();
        let (txn, mode, whole) = (run.txn, record.mode, hours_back.is_none());
        run.report(crate::progress::Phase::Finishing);
        // A complete full scan saw the current schema: typed views follow it (HTTP, no transaction),
        // from the schemas this run already read where it read them.
        let table = run.target.stored_table();
        if complete && mode == Mode::Full && table != "mapped_pages" && walk.is_none() {
            let (user, db) = (run.user.clone(), run.db.clone());
            let (client, cached) = (&mut run.client, &run.schemas);
            let mut schema = || typed_view::merged_schema(client, &scan.sources, cached);
            if let Err(e) = typed_view::refresh(&user, &db, table, txn, &mut schema) {
                run.errors
                    .push((None, format!("re-creating the typed views: {e}")));
            }
        }
        let deleted = txn.run(|| run.conclude(mode, complete, whole, fatal.is_none()));
        let (deleted, fatal) = match deleted {
            Ok(d) => (d, fatal),
            Err(e) => (0, fatal.or(Some(e))),
        };
        record.counts = Counts {
            deleted,
            ..run.counts
        };
        record.errors = std::mem::take(&mut run.errors);
        end_run(record, txn, Some(&run.client), fatal.map(Fatal::Error))
    }
}

/// What every run writes when it ends, however it ends, in one transaction: its row, its errors,
/// a NOTIFY, and the worker's lock released.
fn end_run(
    mut record: RunRecord,
    txn: Txn,
    client: Option<&Client>,
    fatal: Option<Fatal>,
) -> Result<Outcome, SyncError> {
    if let Some(c) = client {
        record.counts.requests = c.stats.requests as i64;
        record.counts.retries = c.stats.retries as i64;
    }
    let status = record.status(fatal.as_ref());
    let error = fatal.as_ref().map(Fatal::message);
    txn.run(|| {
        record.close(status, error.as_deref())?;
        // The worker's lock is a session lock; a SQL call's ends with its transaction.
        if let (Some(lock), Txn::PerBatch) = (record.lock, txn) {
            runs::unlock_run(lock)?;
        }
        Ok::<_, SyncError>(())
    })?;
    record.log();
    Ok(record.outcome(status, fatal))
}

/// The mass-deletion guard: Some(reason) when a complete scan would mark more than
/// `notion_sync.max_delete_fraction` of the live rows deleted (from `GUARD_MIN_ROWS` rows on), or
/// every row while it saw no page at all. Nothing is marked then; SET the fraction to 1 for one
/// run to confirm a real mass deletion.
fn mass_deletion(live: i64, gone: i64, seen: usize) -> Option<String> {
    let max = gucs::max_delete_fraction();
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
        .and_then(model::notion_id_or_url)
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

/// What a SQL call checks while it waits on Notion: cancel and statement_timeout.
pub fn sql_interrupt() {
    pgrx::check_for_interrupts!();
}

/// A Notion client with `user`'s token (`28000` without one).
pub fn client_for<'i>(
    user: &str,
    txn: Txn,
    interrupt: &'i Interrupt,
) -> Result<Client<'i>, SyncError> {
    let token = txn
        .run(|| storage::token(user))?
        .ok_or_else(|| SyncError::MissingToken(user.to_string()))?;
    Client::new(gucs::client_config(token), interrupt).map_err(SyncError::Api)
}

/// Re-creates the typed views of a sync-table database whose schema changed (a
/// `data_source.schema_updated` webhook). No request without typed views.
pub fn refresh_typed_views(
    user: &str,
    db: &str,
    txn: Txn,
    interrupt: &Interrupt,
) -> Result<Vec<String>, SyncError> {
    let (reg, has_views) = txn.run(|| {
        Ok::<_, SyncError>((
            storage::registration(user, db)?,
            typed_view::has_views(user, db)?,
        ))
    })?;
    let Some(reg) = reg.filter(|r| r.mapped.is_none() && has_views) else {
        return Ok(vec![]);
    };
    let mut client = client_for(user, txn, interrupt)?;
    let (_, sources) = client.sources(db).map_err(SyncError::Api)?;
    let mut schema = || typed_view::merged_schema(&mut client, &sources, &HashMap::new());
    typed_view::refresh(user, db, &reg.target_table, txn, &mut schema)
}

/// The registered database a `data_source.*` / `database.*` event is about: its entity (a data
/// source or a database), else its parent (a database; a page parent matches nothing).
pub fn database_for_event(
    user: &str,
    ids: &[&str],
    txn: Txn,
    interrupt: &Interrupt,
) -> Result<Option<String>, SyncError> {
    for id in ids {
        if let Ok(id) = normalize_id(id) {
            if let Some(db) = txn.run(|| storage::database_for(user, &id))? {
                return Ok(Some(db));
            }
        }
    }
    let mut client = match client_for(user, txn, interrupt) {
        Ok(c) => c,
        Err(SyncError::MissingToken(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    for id in ids {
        if let Some(db) = resolve_database(user, id, txn, &mut client)? {
            return Ok(Some(db));
        }
    }
    Ok(None)
}

/// The database a page object names as its parent. Under 2025-09-03 a page's parent may name only
/// its data source.
fn page_parent(page: &Value) -> Option<String> {
    page.pointer("/parent/database_id")
        .or_else(|| page.pointer("/parent/data_source_id"))
        .and_then(|d| d.as_str())
        .map(String::from)
}

/// A registered database and, for a table of the user's own, its checked column map.
fn registered_target(
    user: &str,
    db: &str,
) -> Result<Option<(Registration, Option<Mapping>)>, SyncError> {
    let Some(reg) = storage::registration(user, db)? else {
        return Ok(None);
    };
    let mapping = reg.mapped.as_ref().map(|m| m.check()).transpose()?;
    Ok(Some((reg, mapping)))
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
    interrupt: &Interrupt,
) -> Result<String, SyncError> {
    let page_id = normalize_id(page_id)?;
    let mut client = client_for(user, txn, interrupt)?;
    let page = match client.get(&format!("/pages/{page_id}")) {
        Ok(p) => p,
        Err(ApiError::Http { status: 404, .. }) => {
            let n = txn.run(|| storage::trash_page(user, &page_id))?;
            return Ok(format!("gone from Notion: {n} row(s) marked in trash"));
        }
        // A 403 is about the page ("page ... is not shared"), never a database.
        Err(e) => return Err(page_error(e, user, &page_id)),
    };
    apply_fetched(user, &page_id, page, client, txn, content)
}

/// A page object Notion just answered (a write's answer, or its read-back) stored as a webhook's
/// refetch stores it, body kept: the row and its hash follow Notion, so the next sync counts it
/// unchanged (write-back's "no echo").
pub fn store_page(
    user: &str,
    page: Value,
    txn: Txn,
    interrupt: &Interrupt,
) -> Result<String, SyncError> {
    let raw = page.get("id").and_then(|i| i.as_str()).unwrap_or_default();
    let page_id = normalize_id(raw)?;
    let client = client_for(user, txn, interrupt)?;
    apply_fetched(user, &page_id, page, client, txn, false)
}

fn apply_fetched(
    user: &str,
    page_id: &str,
    page: Value,
    mut client: Client,
    txn: Txn,
    content: bool,
) -> Result<String, SyncError> {
    let Some(parent) = page_parent(&page) else {
        return apply_tree_page(user, page_id, page, client, txn);
    };
    let Some(db) = resolve_database(user, &parent, txn, &mut client)? else {
        return Ok(format!(
            "ignored: database {parent} is not registered for {user}"
        ));
    };
    let Some((reg, mapping)) = txn.run(|| registered_target(user, &db))? else {
        return Ok(format!(
            "ignored: database {db} is not registered for {user}"
        ));
    };
    let mut target = make_target(&reg.target_table, mapping, user, &db, &reg.database_name);
    if in_trash(&page) {
        let n = txn.run(|| target.trash(page_id))?;
        return Ok(format!("in trash in Notion: {n} row(s) marked in trash"));
    }
    let mut run = Run::new(client, txn, target, user, &db, content);
    run.keep_body = !content;
    refetched(run, &page, &reg.target_table)
}

/// Whether a page object is in trash (`archived` before 2025-09-03).
fn in_trash(page: &Value) -> bool {
    page.get("in_trash").or_else(|| page.get("archived")) == Some(&Value::Bool(true))
}

/// A webhook's page, read again, through the stages of `run`; what happened, for the event.
fn refetched(mut run: Run, page: &Value, label: &str) -> Result<String, SyncError> {
    run.batch(std::slice::from_ref(page), false)?;
    if let Some((_, e)) = run.errors.first() {
        let id = page.get("id").and_then(|i| i.as_str()).unwrap_or_default();
        return Err(SyncError::Storage(format!("page {id}: {e}")));
    }
    let c = run.counts;
    Ok(format!(
        "{label}: created {}, updated {}, unchanged {}",
        c.created, c.updated, c.skipped
    ))
}

/// A webhook's page outside databases: upserted into the page tree it belongs to (its own row's,
/// else its parent's), its body read again.
fn apply_tree_page(
    user: &str,
    page_id: &str,
    page: Value,
    mut client: Client,
    txn: Txn,
) -> Result<String, SyncError> {
    let parent = page_tree::parent_page(&page);
    if parent.is_none() && !page_tree::top_level(&page) {
        return Ok("ignored: the page sits under a block, in no registered page tree".into());
    }
    let found = txn.run(|| page_tree::tree_of(user, page_id, parent.as_deref()))?;
    let Some((tree, place, depth, max_depth)) = found else {
        return Ok("ignored: the page is in no registered database or page tree".into());
    };
    let Some((reg, _)) = txn.run(|| registered_target(user, &tree))? else {
        return Ok(format!(
            "ignored: page tree {tree} is not registered for {user}"
        ));
    };
    if depth > max_depth {
        return Ok(format!(
            "ignored: deeper than the page tree's depth {max_depth}"
        ));
    }
    let mut target = make_target(&reg.target_table, None, user, &tree, &reg.database_name);
    if in_trash(&page) {
        let n = txn.run(|| target.trash(page_id))?;
        return Ok(format!("in trash in Notion: {n} row(s) marked in trash"));
    }
    // The body is read whatever the event (a page's body and its sub-pages are one read).
    let body = client
        .page_text(page_id, gucs::content_depth().max(1))
        .map_err(|e| page_error(e, user, page_id))?;
    let mut run = Run::new(client, txn, target, user, &tree, false);
    run.walked.insert(page_id.to_string(), (body, place));
    refetched(run, &page, &format!("page tree {tree}"))
}

/// One sync of one database inside the caller's transaction (the SQL functions).
pub fn sync_database(req: &SyncRequest) -> Result<Outcome, SyncError> {
    // What the run writes is Notion's: the write-back triggers leave it alone.
    let _applying = crate::writeback::Applying::begin();
    match start(req, Txn::Caller, &sql_interrupt)? {
        Started::Done(o) => Ok(*o),
        Started::Running(mut job) => {
            while !job.step() {
                if job.waiting() {
                    job.run.client.idle(STEP_WAIT);
                }
            }
            job.finish()
        }
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
