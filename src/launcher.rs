//! One scheduler per database of the cluster (with `shared_preload_libraries = 'notion_sync'`).
//!
//! A static background worker, `notion_sync launcher`, lists the databases of the cluster and starts
//! a dynamic background worker, `notion_sync scheduler` (`worker::notion_sync_worker_main`, the
//! database's oid as its argument), for each of them. A scheduler whose database has no
//! `notion_sync` extension says so in its slot of the table below and exits 0; the launcher probes
//! that database again `notion_sync.launcher_naptime` later. A scheduler that exits otherwise
//! (an ERROR, SIGTERM from `pg_terminate_backend`) is started again 5 s later. When the extension
//! is dropped, the scheduler notices within a second and exits 0. `notion_sync.database`, when set,
//! restricts all of this to the one database it names.
//!
//! How the launcher finds the databases: it connects to no database (`BackgroundWorkerInitializeConnection(NULL)`)
//! and reads the shared catalog `pg_database` with a heap scan, as TimescaleDB's launcher does.
//! Connecting to `postgres` and using SPI would be shorter, but that database may be dropped or
//! renamed, and a connected launcher would keep `DROP DATABASE postgres` from running.
//!
//! The slot table (shared memory, [`SLOTS`] databases) is how the launcher and the schedulers
//! talk, and what `notion_sync.schedulers` shows: per database its scheduler's pid, state and the
//! counters the scheduler reports with [`report`].

use crate::gucs;
use crate::progress::alive;
use crate::storage;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker,
    SignalWakeFlags,
};
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_shmem_init, pg_sys, PgMemoryContexts};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Databases the table can show (a cluster with more still gets its schedulers; see `Launcher`).
const SLOTS: usize = 64;
const NAME: usize = 64;
/// How long after a scheduler's error exit the launcher starts it again.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// How often a running scheduler checks that its extension is still installed: at every round of
/// an idle scheduler (which waits 1 s), so a DROP EXTENSION is seen before the next round's queries
/// fail on missing tables (one small catalog read per second).
const CHECK_EVERY: Duration = Duration::from_millis(900);

/// A scheduler's state, as its slot holds it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Free = 0,
    /// Registered by the launcher; the process has not reported yet.
    Starting,
    /// The extension is installed at the library's version: schedules and webhooks are served.
    Running,
    /// The extension is at another version (until `ALTER EXTENSION notion_sync UPDATE`).
    Waiting,
    /// Probed: the database has no extension; probed again after `launcher_naptime`.
    NoExtension,
    /// The scheduler stopped because the extension was dropped (until the next probe).
    Stopped,
    /// The scheduler exited with an error; started again 5 s after.
    Restarting,
    /// `max_worker_processes` left no slot; tried again after `launcher_naptime`.
    NoWorkerSlot,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Starting,
            2 => State::Running,
            3 => State::Waiting,
            4 => State::NoExtension,
            5 => State::Stopped,
            6 => State::Restarting,
            7 => State::NoWorkerSlot,
            _ => State::Free,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Free => "free",
            State::Starting => "starting",
            State::Running => "running",
            State::Waiting => "waiting",
            State::NoExtension => "no extension",
            State::Stopped => "stopped",
            State::Restarting => "restarting",
            State::NoWorkerSlot => "no worker slot",
        }
    }

    /// A scheduler process is (or should be) alive in this state.
    fn live(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Waiting)
    }
}

#[derive(Copy, Clone)]
struct Slot {
    /// The database's oid; 0 = free.
    db: u32,
    name: [u8; NAME],
    /// The scheduler's pid; 0 = none.
    pid: i32,
    /// The scheduler's index in `ProcGlobal->allProcs`, for its latch; -1 = none.
    procno: i32,
    state: u8,
    /// When the state last changed (a `TimestampTz`).
    since: i64,
    running_syncs: i32,
    in_flight: i32,
    waiting: i32,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            db: 0,
            name: [0; NAME],
            pid: 0,
            procno: -1,
            state: 0,
            since: 0,
            running_syncs: 0,
            in_flight: 0,
            waiting: 0,
        }
    }
}

impl Slot {
    fn state(&self) -> State {
        State::from_u8(self.state)
    }

    fn set_state(&mut self, state: State) {
        if self.state() != state {
            self.state = state as u8;
            self.since = unsafe { pg_sys::GetCurrentTimestamp() };
        }
        if !state.live() {
            self.pid = 0;
            self.procno = -1;
            self.running_syncs = 0;
            self.in_flight = 0;
            self.waiting = 0;
        }
    }
}

#[derive(Copy, Clone)]
pub struct Table {
    slots: [Slot; SLOTS],
}

impl Default for Table {
    fn default() -> Self {
        Table {
            slots: [Slot::default(); SLOTS],
        }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Table {}

static TABLE: PgLwLock<Table> = unsafe { PgLwLock::new(c"notion_sync_schedulers") };
static SHARED: AtomicBool = AtomicBool::new(false);

fn shared() -> bool {
    SHARED.load(Ordering::Relaxed)
}

/// Called from `_PG_init`: with shared_preload_libraries, reserves the slot table and registers
/// the launcher (restarted by the postmaster 5 s after it exits with an error).
pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    pg_shmem_init!(TABLE);
    SHARED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new("notion_sync launcher")
        .set_type("notion_sync launcher")
        .set_function("notion_sync_launcher_main")
        .set_library("notion_sync")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

fn text(s: &str) -> [u8; NAME] {
    let mut out = [0u8; NAME];
    let mut end = s.len().min(NAME - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

fn untext(b: &[u8; NAME]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(NAME);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Applies `f` to the slot of database `db`, if it has one.
fn with_slot<R>(db: pg_sys::Oid, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
    if !shared() {
        return None;
    }
    let mut t = TABLE.exclusive();
    t.slots.iter_mut().find(|s| s.db == db.to_u32()).map(f)
}

/// The slot of `db`, taken if it has none (None when the table is full).
fn claim(db: pg_sys::Oid, name: &str) -> bool {
    if !shared() {
        return false;
    }
    let mut t = TABLE.exclusive();
    if t.slots.iter().any(|s| s.db == db.to_u32()) {
        return true;
    }
    match t.slots.iter_mut().find(|s| s.db == 0) {
        Some(s) => {
            *s = Slot {
                db: db.to_u32(),
                name: text(name),
                ..Slot::default()
            };
            true
        }
        None => false,
    }
}

fn release(db: pg_sys::Oid) {
    with_slot(db, |s| *s = Slot::default());
}

fn my_db() -> pg_sys::Oid {
    unsafe { pg_sys::MyDatabaseId }
}

fn my_pid() -> i32 {
    unsafe { pg_sys::MyProcPid }
}

/// The latch owner of the scheduler of `db` (`shmem::wake_worker` sets it at a webhook's commit).
pub fn scheduler_procno(db: pg_sys::Oid) -> Option<i32> {
    if !shared() {
        return None;
    }
    let t = TABLE.share();
    t.slots
        .iter()
        .find(|s| s.db == db.to_u32() && s.state().live() && s.procno >= 0)
        .map(|s| s.procno)
}

thread_local! {
    static LAST_REPORT: Cell<(i32, i32, i32)> = const { Cell::new((-1, -1, -1)) };
    static NEXT_CHECK: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The scheduler's figures for `notion_sync.schedulers`: syncs running, Notion requests in flight
/// and requests waiting for the budget. Cheap to call every round: the table is written only when
/// a figure changed.
pub fn report(running_syncs: i32, in_flight: i32, waiting: i32) {
    let now = (running_syncs, in_flight, waiting);
    if LAST_REPORT.with(|c| c.replace(now)) == now {
        return;
    }
    let me = my_pid();
    with_slot(my_db(), |s| {
        if s.pid == me {
            s.running_syncs = running_syncs;
            s.in_flight = in_flight;
            s.waiting = waiting;
        }
    });
}

/// The installed version of the extension in this database, in a transaction of its own.
fn installed_version() -> Option<String> {
    BackgroundWorker::transaction(storage::installed_version).unwrap_or_else(|e| {
        warning!("notion_sync scheduler: reading pg_extension: {e}");
        Some(String::new())
    })
}

fn state_for(version: &str) -> State {
    if version == storage::LIBRARY_VERSION {
        State::Running
    } else {
        State::Waiting
    }
}

/// Exits 0, the way the launcher reads as "probe again after the naptime".
fn exit_quietly(state: State) -> ! {
    let me = my_pid();
    with_slot(my_db(), |s| {
        if s.pid == me || s.pid == 0 {
            s.set_state(state);
        }
    });
    unsafe { pg_sys::proc_exit(0) }
}

/// The start of a scheduler (`notion_sync_worker_main`): connects to the database whose oid the
/// launcher passed, takes its slot and exits 0 at once when the database has no extension.
/// Returns the database's name.
pub fn start_scheduler(arg: pg_sys::Datum) -> String {
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    let name = database_name(db);
    let me = my_pid();
    let procno = crate::shmem::my_proc_number();
    // Another scheduler already serves the database (a launcher restarted while it ran): leave
    // it; the launcher adopts it when it sees this one exit.
    let other = with_slot(db, |s| {
        (s.pid != 0 && s.pid != me && s.state().live() && alive(s.pid)).then_some(s.pid)
    })
    .flatten();
    if let Some(pid) = other {
        log!("notion_sync scheduler: database {name:?} is served by process {pid} already");
        unsafe { pg_sys::proc_exit(0) };
    }
    // A probe that finds no extension leaves the slot as it was ("no extension", no pid), so the
    // view does not flicker once per naptime.
    let Some(v) = installed_version() else {
        debug1!("notion_sync scheduler: no notion_sync extension in database {name:?}");
        exit_quietly(State::NoExtension);
    };
    let state = if v.is_empty() {
        State::Starting
    } else {
        state_for(&v)
    };
    with_slot(db, |s| {
        s.pid = me;
        s.procno = procno;
        s.set_state(state);
    });
    NEXT_CHECK.with(|c| c.set(Some(Instant::now() + CHECK_EVERY)));
    name
}

/// Called by the scheduler once per round: about once a second, whether the extension is still installed
/// (exits 0 when it was dropped) and at which version (the slot's `running` / `waiting`).
pub fn check_extension() {
    let now = Instant::now();
    if NEXT_CHECK.with(|c| c.get()).is_some_and(|t| now < t) {
        return;
    }
    NEXT_CHECK.with(|c| c.set(Some(now + CHECK_EVERY)));
    match installed_version() {
        None => {
            log!(
                "notion_sync scheduler: the extension was dropped from database {:?}, stopping",
                database_name(my_db())
            );
            exit_quietly(State::Stopped);
        }
        Some(v) if !v.is_empty() => {
            let me = my_pid();
            with_slot(my_db(), |s| {
                if s.pid == me {
                    s.set_state(state_for(&v));
                }
            });
        }
        Some(_) => {}
    }
}

fn database_name(db: pg_sys::Oid) -> String {
    // SAFETY: get_database_name reads pg_database (a shared catalog) in the current transaction,
    // or in one of its own here.
    unsafe {
        let own = !pg_sys::IsTransactionState();
        if own {
            pg_sys::StartTransactionCommand();
        }
        let p = pg_sys::get_database_name(db);
        let name = if p.is_null() {
            format!("oid {}", db.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        if own {
            pg_sys::CommitTransactionCommand();
        }
        name
    }
}

/// `datconnlimit` of a database whose DROP DATABASE was interrupted (it cannot be connected to).
const DATCONNLIMIT_INVALID_DB: i32 = -2;

/// The databases a scheduler may serve: they allow connections, are not templates, are valid and
/// match `notion_sync.database` when set. A heap scan of pg_database (no database needed).
fn databases() -> Vec<(pg_sys::Oid, String)> {
    let only = gucs::database();
    let mut out = vec![];
    // SAFETY: the usual catalog scan, inside a transaction of its own; the tuples are read
    // before the scan ends.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        let rel = pg_sys::table_open(
            pg_sys::DatabaseRelationId,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tup.is_null() {
                break;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tup);
            let f = &*form;
            if !f.datallowconn || f.datistemplate || f.datconnlimit == DATCONNLIMIT_INVALID_DB {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(f.datname.data.as_ptr())
                .to_string_lossy()
                .into_owned();
            if only.as_ref().is_none_or(|o| *o == name) {
                out.push((f.oid, name));
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pg_sys::CommitTransactionCommand();
    }
    out
}

/// What the launcher knows of one database's scheduler.
enum Worker {
    /// No process: start one at this instant (if the database is still listed).
    Idle(Instant),
    /// Registered by this launcher.
    Registered(DynamicBackgroundWorker),
    /// Found running when this launcher started (a launcher before it started it).
    Adopted(i32),
}

struct Entry {
    name: String,
    /// In the last scan of pg_database.
    listed: bool,
    worker: Worker,
    /// The no-worker-slot WARNING was logged (once per database until a start succeeds).
    warned: bool,
    /// The database has a slot in the table.
    slot: bool,
}

struct Launcher {
    entries: HashMap<u32, Entry>,
    next_scan: Instant,
    warned_full: bool,
    warned_missing: bool,
}

impl Launcher {
    /// Adopts the schedulers that outlived a previous launcher.
    fn new() -> Launcher {
        let mut entries = HashMap::new();
        if shared() {
            let t = TABLE.share();
            for s in t.slots.iter().filter(|s| s.db != 0) {
                let worker = if s.state().live() && s.pid != 0 && alive(s.pid) {
                    Worker::Adopted(s.pid)
                } else {
                    Worker::Idle(Instant::now())
                };
                entries.insert(
                    s.db,
                    Entry {
                        name: untext(&s.name),
                        listed: false,
                        worker,
                        warned: false,
                        slot: true,
                    },
                );
            }
        }
        Launcher {
            entries,
            next_scan: Instant::now(),
            warned_full: false,
            warned_missing: false,
        }
    }

    fn round(&mut self) {
        let now = Instant::now();
        if now >= self.next_scan {
            self.next_scan = now + gucs::launcher_naptime();
            self.scan();
        }
        let oids: Vec<u32> = self.entries.keys().copied().collect();
        for oid in oids {
            self.watch(pg_sys::Oid::from(oid));
        }
    }

    /// Reads pg_database: new databases get an entry (probed now), gone ones are marked.
    fn scan(&mut self) {
        let dbs = databases();
        if let (Some(only), true) = (gucs::database(), dbs.is_empty()) {
            if !self.warned_missing {
                warning!("notion_sync launcher: notion_sync.database names {only:?}, which is not a database that allows connections");
                self.warned_missing = true;
            }
        }
        for e in self.entries.values_mut() {
            e.listed = false;
        }
        for (oid, name) in dbs {
            let e = self.entries.entry(oid.to_u32()).or_insert_with(|| Entry {
                name: name.clone(),
                listed: true,
                worker: Worker::Idle(Instant::now()),
                warned: false,
                slot: false,
            });
            e.listed = true;
            e.name = name;
        }
    }

    /// One database: notices its scheduler's exit, starts one when due, forgets a gone database.
    fn watch(&mut self, oid: pg_sys::Oid) {
        let Some(e) = self.entries.get_mut(&oid.to_u32()) else {
            return;
        };
        let exited = match &e.worker {
            Worker::Registered(h) => match h.pid() {
                Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted) => false,
                Err(BackgroundWorkerStatus::PostmasterDied) => unsafe { pg_sys::proc_exit(1) },
                Err(_) => true,
            },
            Worker::Adopted(pid) => !alive(*pid),
            Worker::Idle(_) => false,
        };
        if exited {
            e.worker = after_exit(oid, &e.name);
        }
        if let Worker::Idle(at) = e.worker {
            if !e.listed {
                if e.slot {
                    release(oid);
                }
                self.entries.remove(&oid.to_u32());
                return;
            }
            if Instant::now() >= at {
                self.start(oid);
            }
        }
    }

    fn start(&mut self, oid: pg_sys::Oid) {
        let e = self.entries.get_mut(&oid.to_u32()).expect("entry");
        if !e.slot {
            e.slot = claim(oid, &e.name);
            if !e.slot && !self.warned_full {
                warning!("notion_sync launcher: more than {SLOTS} databases: notion_sync.schedulers does not show database {:?} and the ones after it", e.name);
                self.warned_full = true;
            }
        }
        let mut label = format!("notion_sync scheduler {}", e.name);
        if label.len() > 90 {
            let mut end = 90;
            while !label.is_char_boundary(end) {
                end -= 1;
            }
            label.truncate(end);
        }
        // The handle is palloc'd: in TopMemoryContext it lives as long as the launcher.
        let loaded = unsafe {
            PgMemoryContexts::TopMemoryContext.switch_to(|_| {
                BackgroundWorkerBuilder::new(&label)
                    .set_type("notion_sync scheduler")
                    .set_function("notion_sync_worker_main")
                    .set_library("notion_sync")
                    .enable_spi_access()
                    .set_restart_time(None)
                    .set_argument(Some(pg_sys::Datum::from(oid)))
                    .set_notify_pid(my_pid())
                    .load_dynamic()
            })
        };
        match loaded {
            Ok(h) => {
                // A probe of a database without the extension keeps showing "no extension".
                with_slot(oid, |s| {
                    if !matches!(s.state(), State::NoExtension | State::Stopped) {
                        s.set_state(State::Starting)
                    }
                });
                e.worker = Worker::Registered(h);
                e.warned = false;
            }
            Err(_) => {
                if !e.warned {
                    warning!(
                        "notion_sync launcher: no background worker slot left for the scheduler of database {:?}; raise max_worker_processes (one per database with notion_sync, plus the launcher, plus what pg_cron and others use); trying again every notion_sync.launcher_naptime",
                        e.name
                    );
                    e.warned = true;
                }
                with_slot(oid, |s| s.set_state(State::NoWorkerSlot));
                e.worker = Worker::Idle(Instant::now() + gucs::launcher_naptime());
            }
        }
    }
}

/// What follows a scheduler's exit, from what it left in its slot: "no extension" or "stopped"
/// (it exited 0) waits for the naptime; anything else was an error, restarted after 5 s. A
/// database without a slot cannot tell: it waits for the longer of the two.
fn after_exit(oid: pg_sys::Oid, name: &str) -> Worker {
    let now = Instant::now();
    let naptime = gucs::launcher_naptime();
    let left = with_slot(oid, |s| {
        let state = s.state();
        if state.live() && s.pid != 0 && alive(s.pid) {
            // Another scheduler took over the slot (see `start_scheduler`).
            return Err(s.pid);
        }
        if state.live() {
            s.set_state(State::Restarting);
        }
        Ok(state)
    });
    match left {
        Some(Err(pid)) => Worker::Adopted(pid),
        Some(Ok(State::NoExtension | State::Stopped)) => Worker::Idle(now + naptime),
        Some(Ok(_)) => {
            log!("notion_sync launcher: the scheduler of database {name:?} exited with an error; starting it again in 5 s");
            Worker::Idle(now + RESTART_AFTER)
        }
        None => Worker::Idle(now + naptime.max(RESTART_AFTER)),
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn notion_sync_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    log!(
        "notion_sync launcher: started ({})",
        gucs::database().map_or("every database".to_string(), |d| format!(
            "database {d:?} only"
        ))
    );
    let mut launcher = Launcher::new();
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        launcher.round();
        // The latch is also set when a scheduler starts or stops (bgw_notify_pid).
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break;
        }
    }
    log!("notion_sync launcher: stopping on SIGTERM");
    // Exit code 1: restarted after 5 s unless the cluster is shutting down. Its schedulers go on;
    // the next launcher adopts them.
    unsafe { pg_sys::proc_exit(1) };
}

/// Internal (SQL: the `notion_sync.schedulers` view): one row per database the launcher serves.
// pgrx reads the row type from the signature: it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn _schedulers() -> TableIterator<
    'static,
    (
        name!(database, String),
        name!(pid, Option<i32>),
        name!(state, String),
        name!(since, Option<TimestampWithTimeZone>),
        name!(running_syncs, i32),
        name!(requests_in_flight, i32),
        name!(requests_waiting, i32),
    ),
> {
    let mut slots: Vec<Slot> = if shared() {
        let t = TABLE.share();
        t.slots.iter().filter(|s| s.db != 0).copied().collect()
    } else {
        vec![]
    };
    slots.sort_by_key(|s| untext(&s.name));
    let rows: Vec<_> = slots
        .into_iter()
        .map(|s| {
            (
                untext(&s.name),
                (s.pid != 0).then_some(s.pid),
                s.state().name().to_string(),
                (s.since != 0)
                    .then(|| TimestampWithTimeZone::try_from(s.since).ok())
                    .flatten(),
                s.running_syncs,
                s.in_flight,
                s.waiting,
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_code() {
        for s in [
            State::Starting,
            State::Running,
            State::Waiting,
            State::NoExtension,
            State::Stopped,
            State::Restarting,
            State::NoWorkerSlot,
        ] {
            assert_eq!(State::from_u8(s as u8), s);
        }
        assert!(State::Running.live() && !State::NoExtension.live());
    }

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40);
        let t = untext(&text(&long));
        assert!(t.len() < NAME && long.starts_with(&t));
    }
}
