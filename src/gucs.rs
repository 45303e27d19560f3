//! Settings (`notion_sync.*`). Defined in `_PG_init` of every backend that loads the library, so the
//! SQL functions see them with or without `shared_preload_libraries`.

use crate::notion::client::Config;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::{CStr, CString};
use std::time::Duration;

/// The real API; tests point it at the local fake.
const API_URL_DEFAULT: &CStr = c"https://api.notion.com/v1";
/// The first version with data sources (2022-06-28 still works).
const NOTION_VERSION_DEFAULT: &CStr = c"2025-09-03";
/// Empty: the launcher serves every database of the cluster (a name restricts it to that one).
const DATABASE_DEFAULT: &CStr = c"";
/// How long run history and settled webhook events are kept.
const RUN_RETENTION_DEFAULT: &CStr = c"30 days";

static API_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(API_URL_DEFAULT));
static NOTION_VERSION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(NOTION_VERSION_DEFAULT));
static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(DATABASE_DEFAULT));
static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// How often the launcher looks for new databases and probes those without the extension: each
/// probe is a short-lived scheduler process connecting to the database, so not every second.
static LAUNCHER_NAPTIME_S: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Notion's documented average limit is 3 requests per second per integration.
static REQUESTS_PER_SECOND: GucSetting<f64> = GucSetting::<f64>::new(3.0);
static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
static MAX_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
static MAX_CONCURRENT_REQUESTS: GucSetting<i32> = GucSetting::<i32>::new(16);
/// Levels of the block tree read for a page body; every level costs requests.
static CONTENT_DEPTH: GucSetting<i32> = GucSetting::<i32>::new(3);
/// Share of live rows one full scan may mark deleted (the mass-deletion guard, sync.rs).
static MAX_DELETE_FRACTION: GucSetting<f64> = GucSetting::<f64>::new(0.5);
/// Off by default: psql users of a long first sync opt in (sync_progress shows it anyway).
static PROGRESS_NOTICE_PAGES: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Write-back's master switch (off: changes queue in the outbox, nothing is sent).
static WRITEBACK_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(false);
/// Edits of one page within this window become one PATCH.
static WRITEBACK_DEBOUNCE_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
static RUN_RETENTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(RUN_RETENTION_DEFAULT));

/// The smallest request timeout (the GUC's minimum).
const MIN_TIMEOUT_MS: i32 = 100;

pub fn init() {
    GucRegistry::define_string_guc(
        c"notion_sync.api_url",
        c"Base URL of the Notion API.",
        c"Tests point it at the local fake; only http(s) to api.notion.com or a loopback host makes sense.",
        &API_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"notion_sync.notion_version",
        c"Notion-Version header: 2025-09-03 (data sources) or 2022-06-28.",
        c"",
        &NOTION_VERSION,
        GucContext::Suset,
        GucFlags::default(),
    );
    // A postmaster-level setting can only be defined while shared_preload_libraries loads us.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_string_guc(
            c"notion_sync.database",
            c"The only database the launcher starts a scheduler for; empty = every database of the cluster.",
            c"Every database that allows connections and is not a template gets a scheduler while it has the extension.",
            &DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_bool_guc(
        c"notion_sync.writeback_enabled",
        c"Whether changes made in Postgres are sent to Notion (write-back).",
        c"Off: changes of databases with write-back enabled wait in the outbox; on, the worker sends them.",
        &WRITEBACK_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.writeback_debounce_ms",
        c"Edits of one page within this many milliseconds are sent as one change.",
        c"",
        &WRITEBACK_DEBOUNCE_MS,
        0,
        600_000,
        GucContext::Userset,
        // No unit: the trigger reads the plain number (current_setting would print "1s").
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"notion_sync.worker_enabled",
        c"Whether the background worker starts scheduled runs.",
        c"",
        &WORKER_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.launcher_naptime",
        c"Seconds between two looks of the launcher at pg_database and at databases without the extension.",
        c"A database given the extension gets its scheduler within this time.",
        &LAUNCHER_NAPTIME_S,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"notion_sync.requests_per_second",
        c"Request budget per Notion token (token bucket; 0 = unlimited, for local tests).",
        c"",
        &REQUESTS_PER_SECOND,
        0.0,
        10_000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.http_timeout_ms",
        c"Timeout of one Notion API request.",
        c"",
        &HTTP_TIMEOUT_MS,
        MIN_TIMEOUT_MS,
        600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"notion_sync.max_retries",
        c"Retries for 429/529/5xx/timeouts, honouring Retry-After.",
        c"",
        &MAX_RETRIES,
        0,
        100,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.max_concurrent_requests",
        c"Notion requests one process (a session, the scheduler) has in flight at once, at most.",
        c"Each token stays within notion_sync.requests_per_second; this bounds the sum over tokens.",
        &MAX_CONCURRENT_REQUESTS,
        1,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"notion_sync.max_delete_fraction",
        c"Largest share of a database's live rows one full scan may mark deleted.",
        c"A scan that would mark more (and at least 10 rows, or every row) marks nothing and ends partial; \
          SET notion_sync.max_delete_fraction = 1 for one run confirms a real mass deletion.",
        &MAX_DELETE_FRACTION,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.progress_notice_pages",
        c"A sync called from SQL sends a NOTICE each time this many more pages were read; 0 = none.",
        c"The figures of every running sync are in notion_sync.sync_progress whatever this says.",
        &PROGRESS_NOTICE_PAGES,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"notion_sync.content_depth",
        c"Levels of the block tree read for page content; 0 = no content.",
        c"",
        &CONTENT_DEPTH,
        0,
        20,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"notion_sync.run_retention",
        c"How long sync_runs and sync_errors are kept.",
        c"",
        &RUN_RETENTION,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

fn string(s: &GucSetting<Option<CString>>, default: &CStr) -> String {
    s.get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| default.to_string_lossy().into_owned())
}

pub fn api_url() -> String {
    string(&API_URL, API_URL_DEFAULT)
}

pub fn notion_version() -> String {
    string(&NOTION_VERSION, NOTION_VERSION_DEFAULT)
}

/// The one database the launcher serves, or None for every database.
pub fn database() -> Option<String> {
    Some(string(&DATABASE, DATABASE_DEFAULT)).filter(|d| !d.is_empty())
}

/// `notion_sync.launcher_naptime`.
pub fn launcher_naptime() -> Duration {
    Duration::from_secs(LAUNCHER_NAPTIME_S.get().max(1) as u64)
}

pub fn worker_enabled() -> bool {
    WORKER_ENABLED.get()
}

pub fn requests_per_second() -> f64 {
    REQUESTS_PER_SECOND.get()
}

pub fn http_timeout_ms() -> i32 {
    HTTP_TIMEOUT_MS.get().max(MIN_TIMEOUT_MS)
}

pub fn http_timeout() -> Duration {
    Duration::from_millis(http_timeout_ms() as u64)
}

pub fn max_retries() -> u32 {
    MAX_RETRIES.get().max(0) as u32
}

/// Levels of page body a sync table reads.
pub fn content_depth() -> u32 {
    CONTENT_DEPTH.get().max(0) as u32
}

pub fn writeback_enabled() -> bool {
    WRITEBACK_ENABLED.get()
}

pub fn max_delete_fraction() -> f64 {
    MAX_DELETE_FRACTION.get()
}

/// Pages between two progress NOTICEs of a SQL call; 0 = none.
pub fn progress_notice_pages() -> i64 {
    PROGRESS_NOTICE_PAGES.get().max(0) as i64
}

/// `notion_sync.run_retention` as an interval literal.
pub fn run_retention() -> String {
    string(&RUN_RETENTION, RUN_RETENTION_DEFAULT)
}

/// The Notion client settings for one token.
pub fn max_concurrent_requests() -> usize {
    MAX_CONCURRENT_REQUESTS.get().max(1) as usize
}

pub fn client_config(token: String) -> Config {
    Config {
        api_url: api_url(),
        version: notion_version(),
        token,
        timeout: http_timeout(),
        max_retries: max_retries(),
        rps: requests_per_second(),
        budget: crate::shmem::take,
        max_in_flight: max_concurrent_requests(),
    }
}
