//! The background worker (with `shared_preload_libraries = 'notion_sync'`): runs each registered
//! database on its schedule and applies webhook events and retention. Its thread does every SPI
//! call; the requests of all running syncs are in flight side by side on helper threads, each in
//! its turn (`notion::pool`: round robin over the syncs, each token within its budget, at most
//! `notion_sync.max_concurrent_requests` at once). A step of a sync never waits for Notion: the
//! loop steps every job whose answer came, so a huge database does not starve the others and a
//! webhook event waits for no sync. No transaction is open during HTTP: the engine runs in
//! `Txn::PerBatch` mode, one short transaction per page of results.

use crate::gucs;
use crate::notion::pool;
use crate::storage::schedules::{self, Due};
use crate::storage::{self, queue, runs};
use crate::sync::{Mode, Runs, Started, SyncRequest, Trigger, Txn};
use crate::webhook;
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgTryBuilder};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

fn shutdown_requested() -> bool {
    unsafe { std::ptr::addr_of!(pg_sys::ShutdownRequestPending).read_volatile() != 0 }
}

/// Called every few ms while the worker's thread waits on HTTP (a webhook's page read) or a
/// rate-limit sleep: it goes on granting turns to the requests of the running syncs. No
/// transaction is open then, so exiting right away loses nothing: the runs' committed batches
/// stay, the watermarks are behind them, and the run rows are closed as interrupted when the
/// worker starts again.
fn interrupt() {
    if shutdown_requested() {
        log!("notion_sync worker: stopping on SIGTERM in the middle of a sync");
        unsafe { pg_sys::proc_exit(1) };
    }
    pump();
}

fn pump() -> pool::Load {
    pool::pump(crate::shmem::take, gucs::max_concurrent_requests())
}

fn reload_config() {
    if BackgroundWorker::sighup_received() {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

/// Runs `f` and turns a Postgres ERROR into `Err(message)`, aborting the failed transaction so the
/// worker can go on with the other databases.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    PgTryBuilder::new(AssertUnwindSafe(|| Ok(f())))
        .catch_others(|e| Err(crate::error::caught_message(&e)))
        .execute()
        .inspect_err(|_| unsafe { pg_sys::AbortCurrentTransaction() })
}

fn tx<R>(f: impl FnOnce() -> R) -> R {
    Txn::PerBatch.run(f)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn notion_sync_worker_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Started by the launcher for one database (its oid in `arg`); exits 0 there and then when the
    // database has no extension.
    let dbname = crate::launcher::start_scheduler(arg);
    crate::shmem::register_worker();
    tx(storage::pin_search_path).unwrap_or_else(|e| warning!("notion_sync worker: {e}"));
    log!("notion_sync worker: started for database {dbname:?}");
    // Everything this process writes is Notion's (syncs, webhooks, write-back's answers).
    crate::writeback::worker_applies();
    let mut w = Worker {
        push_due: None,
        push_wakes: 0,
        push_polled: Instant::now(),
        runs: Runs::default(),
        ready: false,
        waiting_for: None,
        next_due_check: Instant::now(),
        next_maintenance: Instant::now(),
        next_events: Instant::now(),
        wakes: 0,
    };
    loop {
        if shutdown_requested() {
            break;
        }
        reload_config();
        crate::launcher::check_extension();
        let wait = match w.tick() {
            Busy::Working => Duration::ZERO,
            Busy::Waiting => Duration::from_millis(1),
            // Idle, but a change's debounce window may end sooner.
            Busy::Idle => w.push_due.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), Duration::from_secs(1))
            }),
        };
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
    }
    log!("notion_sync worker: stopping on SIGTERM");
    // Exit code 1: the launcher starts the worker again after 5 s unless the cluster is shutting
    // down (worker_enabled = off is the way to pause it).
    unsafe { pg_sys::proc_exit(1) };
}

/// What the loop does next: step again at once, look again in a moment, or sleep.
enum Busy {
    Working,
    Waiting,
    Idle,
}

struct Worker {
    runs: Runs<'static>,
    ready: bool,
    /// The installed version the worker waits to see updated (logged once).
    waiting_for: Option<String>,
    next_due_check: Instant,
    next_maintenance: Instant,
    /// When the webhook queue is read next: at once after a commit wakes the worker, else every
    /// second (and at once again while a read found a full batch).
    next_events: Instant,
    /// `shmem::wakes` when the queue was last read.
    wakes: u64,
    /// When the write-back outbox is read next (None: nothing was pending; a commit wakes us).
    push_due: Option<Instant>,
    /// `shmem::wakes` when the outbox was last read.
    push_wakes: u64,
    push_polled: Instant,
}

impl Worker {
    /// One round: turns granted, what is due started, webhook events applied, one step of every
    /// running job (a step that finds its answers not yet in does nothing).
    fn tick(&mut self) -> Busy {
        if !self.ready {
            self.ready = self.wait_for_extension();
            if !self.ready {
                return Busy::Idle;
            }
            close_interrupted();
        }
        pump();
        let now = Instant::now();
        if now >= self.next_due_check && gucs::worker_enabled() {
            self.next_due_check = now + Duration::from_secs(1);
            if let Err(e) = guarded(|| self.start_due()) {
                warning!("notion_sync worker: reading the schedule failed: {e}");
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + Duration::from_secs(3600);
            if let Err(e) = guarded(maintenance) {
                warning!("notion_sync worker: maintenance failed: {e}");
            }
        }
        if now >= self.next_events || crate::shmem::wakes() != self.wakes {
            self.wakes = crate::shmem::wakes();
            self.events();
        }
        self.push_changes(now);
        self.begin_started();
        // Every job whose answers came takes its next stage; a webhook committed meanwhile is
        // applied between two steps, not after the round.
        let mut working = false;
        let mut i = 0;
        while i < self.runs.jobs.len() {
            if crate::shmem::wakes() != self.wakes {
                self.wakes = crate::shmem::wakes();
                self.events();
            }
            let job = &mut self.runs.jobs[i];
            let done = match guarded(|| job.step()) {
                Ok(done) => done,
                Err(e) => {
                    job.abort(e);
                    true
                }
            };
            if done {
                let job = self.runs.jobs.remove(i);
                let label = job.label();
                if let Err(e) = guarded(move || job.finish()) {
                    warning!("notion_sync worker: finishing the run of {label} failed: {e}");
                }
            } else {
                working |= !self.runs.jobs[i].waiting();
                i += 1;
            }
        }
        let load = pool::load();
        let running = (self.runs.jobs.len() + self.runs.starting.len()) as i32;
        crate::launcher::report(running, load.in_flight as i32, load.waiting as i32);
        if working {
            Busy::Working
        } else if self.runs.jobs.is_empty() && self.runs.starting.is_empty() {
            Busy::Idle
        } else {
            Busy::Waiting
        }
    }

    /// Reads the webhook queue now, and again in a second (at once while batches come full).
    fn events(&mut self) {
        let now = Instant::now();
        self.next_events = now + Duration::from_secs(1);
        match guarded(|| self.apply_events()) {
            Ok(true) => self.next_events = now,
            Ok(false) => {}
            Err(e) => warning!("notion_sync worker: reading the webhook queue failed: {e}"),
        }
    }

    /// Sends due write-back changes (one batch) when a commit queued some or one's window ended.
    fn push_changes(&mut self, now: Instant) {
        if !gucs::writeback_enabled() {
            self.push_due = None;
            return;
        }
        let woken = crate::shmem::wakes() != self.push_wakes;
        // With nothing pending, the outbox is still read every 5 s (a change queued while
        // write-back was off, or a lost wake).
        let due = match self.push_due {
            Some(t) => now >= t,
            None => now >= self.push_polled + Duration::from_secs(5),
        };
        if !woken && !due {
            return;
        }
        self.push_wakes = crate::shmem::wakes();
        let next = guarded(|| crate::writeback::push(&interrupt)).unwrap_or_else(|e| {
            warning!("notion_sync worker: write-back failed: {e}");
            Some(5.0)
        });
        let now = Instant::now();
        self.push_due = next.map(|s| now + Duration::from_secs_f64(s.clamp(0.0, 5.0)));
        self.push_polled = now;
    }

    /// Runs whose data sources came in start their scan (or end, recorded, if that failed).
    fn begin_started(&mut self) {
        let mut i = 0;
        while i < self.runs.starting.len() {
            let Some(sources) = self.runs.starting[i].1.take() else {
                i += 1;
                continue;
            };
            let (opening, _) = self.runs.starting.swap_remove(i);
            let label = opening.label();
            let sources = sources.unwrap_or_else(|e| (Err(e), Default::default()));
            match guarded(move || opening.begin(sources)) {
                Ok(Ok(Started::Running(job))) => self.runs.jobs.push(*job),
                Ok(Ok(Started::Done(_))) => {}
                Ok(Err(e)) => warning!("notion_sync worker: {label}: {e}"),
                Err(e) => warning!("notion_sync worker: starting {label} failed: {e}"),
            }
        }
    }

    /// Waits (by returning false) until `CREATE EXTENSION notion_sync` has run in this database at
    /// this library's version (after a package upgrade, until `ALTER EXTENSION notion_sync UPDATE`:
    /// the new engine would write columns the old schema lacks).
    fn wait_for_extension(&mut self) -> bool {
        let installed = guarded(|| tx(storage::installed_version));
        self.next_due_check = Instant::now() + Duration::from_secs(5);
        match installed {
            Ok(Ok(Some(v))) if v == storage::LIBRARY_VERSION => {}
            Ok(Ok(Some(v))) => {
                if self.waiting_for.as_deref() != Some(v.as_str()) {
                    log!(
                        "notion_sync worker: waiting: the extension is at version {v} but the library is {}; run ALTER EXTENSION notion_sync UPDATE",
                        storage::LIBRARY_VERSION
                    );
                    self.waiting_for = Some(v);
                }
                return false;
            }
            _ => return false,
        }
        if self.waiting_for.take().is_some() {
            log!(
                "notion_sync worker: the extension is at {}, starting",
                storage::LIBRARY_VERSION
            );
        }
        self.next_due_check = Instant::now();
        true
    }

    /// Starts every database whose next run is due and sets its following run (in the same short
    /// transaction as the read). A database with a run still going is skipped (the engine records
    /// the skip).
    fn start_due(&mut self) {
        let due = tx(schedules::claim_due).unwrap_or_else(|e| {
            warning!("notion_sync worker: {e}");
            vec![]
        });
        for Due { user, db, full, .. } in due.into_iter().filter(|d| d.due) {
            let mode = if full { Mode::Full } else { Mode::Incremental };
            let runs = &mut self.runs;
            let opened = guarded(|| {
                let req = SyncRequest::new(&user, &db, None, mode, None, Trigger::Schedule)?;
                runs.open(&req, &interrupt)
            });
            match opened {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warning!("notion_sync worker: {user}/{db}: {e}"),
                Err(e) => warning!("notion_sync worker: starting {user}/{db} failed: {e}"),
            }
        }
    }

    /// Applies queued webhook events, oldest Notion timestamp first (the worker is woken at the
    /// commit of `handle_webhook`; it also looks every second); see `webhook::apply`. Returns
    /// whether the batch was full (more may be waiting).
    fn apply_events(&mut self) -> bool {
        const BATCH: usize = 20;
        let events = tx(|| queue::claim_events(BATCH as i64)).unwrap_or_default();
        let full = events.len() >= BATCH;
        for ev in events {
            let result =
                guarded(|| webhook::apply(&ev, &mut self.runs, &interrupt)).and_then(|r| r);
            let settled = webhook::settled(&ev, result);
            tx(|| queue::settle(&ev.id, &settled))
                .unwrap_or_else(|e| warning!("notion_sync worker: webhook event {}: {e}", ev.id));
        }
        full
    }
}

/// Closes runs a previous worker left `running` when it stopped; write-back changes it left in
/// flight are pending again (read back before any write: none is sent twice).
fn close_interrupted() {
    if let Ok(Ok(n)) = guarded(|| tx(crate::storage::outbox::reset_in_flight)) {
        if n > 0 {
            log!("notion_sync worker: {n} write-back change(s) interrupted by a previous stop are pending again");
        }
    }
    if let Ok(Ok(n)) = guarded(|| tx(runs::close_interrupted)) {
        if n > 0 {
            log!("notion_sync worker: closed {n} run(s) interrupted by a previous stop");
        }
    }
}

/// Retention: history older than `notion_sync.run_retention` goes; pages are never deleted
/// because they are old.
fn maintenance() {
    tx(|| runs::expire(&gucs::run_retention()))
        .unwrap_or_else(|e| warning!("notion_sync worker: retention: {e}"));
}
