//! The background worker (with `shared_preload_libraries = 'notion_sync'`): runs each registered
//! database on its schedule, interleaving runs one API page at a time so a huge database does not
//! starve the others, and applies retention. It never holds a transaction during HTTP: the engine
//! runs in `Txn::PerBatch` mode, one short transaction per page of results.

use crate::gucs;
use crate::schedule;
use crate::sync::{self, Job, Started, Txn};
use crate::webhook::{self, Action};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgTryBuilder};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new("notion_sync scheduler")
        .set_type("notion_sync scheduler")
        .set_function("notion_sync_worker_main")
        .set_library("notion_sync")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

fn shutdown_requested() -> bool {
    unsafe { std::ptr::addr_of!(pg_sys::ShutdownRequestPending).read_volatile() != 0 }
}

/// Called every 50 ms while the engine waits on HTTP or a rate-limit sleep. No transaction is open
/// then, so exiting right away loses nothing: the run's committed batches stay, the watermark is
/// behind them, and the run row is closed as interrupted when the worker starts again.
fn interrupt() {
    if shutdown_requested() {
        log!("notion_sync worker: stopping on SIGTERM in the middle of a sync");
        unsafe { pg_sys::proc_exit(1) };
    }
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
pub extern "C-unwind" fn notion_sync_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let dbname = gucs::string(&gucs::DATABASE, "postgres");
    BackgroundWorker::connect_worker_to_spi(Some(&dbname), None);
    crate::shmem::register_worker();
    // Every statement of the worker resolves names in pg_catalog first: objects a user created in
    // public (a trojan unnest() or now()) are never picked up.
    tx(|| Spi::run("SET search_path = pg_catalog, pg_temp"))
        .unwrap_or_else(|e| warning!("notion_sync worker: {e}"));
    log!("notion_sync worker: started for database {dbname:?}");
    let mut w = Worker {
        jobs: vec![],
        ready: false,
        waiting_for: None,
        next_due_check: Instant::now(),
        next_maintenance: Instant::now(),
    };
    loop {
        if shutdown_requested() {
            break;
        }
        reload_config();
        let busy = w.tick();
        let wait = if busy {
            Duration::from_millis(1)
        } else {
            Duration::from_secs(1)
        };
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
    }
    log!("notion_sync worker: stopping on SIGTERM");
    // Exit code 1: the postmaster restarts the worker after its restart time unless the cluster
    // is shutting down (worker_enabled = off is the way to pause it).
    unsafe { pg_sys::proc_exit(1) };
}

struct Worker {
    jobs: Vec<Job<'static>>,
    ready: bool,
    /// The installed version the worker waits to see updated (logged once).
    waiting_for: Option<String>,
    next_due_check: Instant,
    next_maintenance: Instant,
}

impl Worker {
    /// One round: start what is due, one step of every running job. Returns whether work is left.
    fn tick(&mut self) -> bool {
        if !self.ready {
            self.ready = self.wait_for_extension();
            if !self.ready {
                return false;
            }
        }
        let now = Instant::now();
        if now >= self.next_due_check && gucs::WORKER_ENABLED.get() {
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
        if let Err(e) = guarded(|| self.apply_events()) {
            warning!("notion_sync worker: reading the webhook queue failed: {e}");
        }
        // Round robin: one API page of results per job per round.
        let mut i = 0;
        while i < self.jobs.len() {
            let job = &mut self.jobs[i];
            let done = match guarded(|| job.step()) {
                Ok(done) => done,
                Err(e) => {
                    job.abort(e);
                    true
                }
            };
            if done {
                let job = self.jobs.remove(i);
                let label = job.label();
                if let Err(e) = guarded(move || job.finish()) {
                    warning!("notion_sync worker: finishing the run of {label} failed: {e}");
                }
            } else {
                i += 1;
            }
        }
        !self.jobs.is_empty()
    }

    /// Waits (by returning false) until `CREATE EXTENSION notion_sync` has run in this database at
    /// this library's version (after a package upgrade, until `ALTER EXTENSION notion_sync UPDATE`:
    /// the new engine would write columns the old schema lacks); then closes runs a previous worker
    /// left `running` when it stopped.
    fn wait_for_extension(&mut self) -> bool {
        let installed = guarded(|| tx(crate::storage::installed_version));
        self.next_due_check = Instant::now() + Duration::from_secs(5);
        match installed {
            Ok(Ok(Some(v))) if v == crate::storage::LIBRARY_VERSION => {}
            Ok(Ok(Some(v))) => {
                if self.waiting_for.as_deref() != Some(v.as_str()) {
                    log!(
                        "notion_sync worker: waiting: the extension is at version {v} but the library is {}; run ALTER EXTENSION notion_sync UPDATE",
                        crate::storage::LIBRARY_VERSION
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
                crate::storage::LIBRARY_VERSION
            );
        }
        self.next_due_check = Instant::now();
        let closed = guarded(|| {
            tx(|| {
                Spi::get_one::<i64>(
                    "WITH c AS (UPDATE notion_sync.sync_runs
                        SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
                            error = 'interrupted: the worker stopped before the run finished; the next run resumes from the watermark'
                      WHERE status = 'running' AND trigger IN ('schedule', 'webhook') RETURNING 1)
                     SELECT count(*) FROM c",
                )
            })
        });
        if let Ok(Ok(Some(n))) = closed {
            if n > 0 {
                log!("notion_sync worker: closed {n} run(s) interrupted by a previous stop");
            }
        }
        true
    }

    /// Starts every database whose next run is due and sets its following run (in the same short
    /// transaction as the read). A database with a run still going is skipped (the engine records
    /// the skip).
    fn start_due(&mut self) {
        let due: Vec<Due> = tx(|| {
            let rows = Spi::connect(|c| {
                c.select(
                    "SELECT user_id, database_id, schedule, timezone,
                            next_run_at IS NOT NULL AND next_run_at <= pg_catalog.now(),
                            last_full_sync_at IS NULL OR last_full_sync_at < pg_catalog.now() - interval '1 day'
                       FROM notion_sync.databases
                      WHERE schedule <> 'manual' AND (next_run_at IS NULL OR next_run_at <= pg_catalog.now())
                      ORDER BY next_run_at NULLS FIRST",
                    None,
                    &[],
                )?
                .map(|row| {
                    let next = schedule::next_run(
                        &row.get::<String>(3)?.unwrap_or_default(),
                        &row.get::<String>(4)?.unwrap_or_default(),
                        chrono::Utc::now(),
                    );
                    Ok(Due {
                        user: row.get::<String>(1)?.unwrap_or_default(),
                        db: row.get::<String>(2)?.unwrap_or_default(),
                        next: next.ok().flatten().map(|t| t.to_rfc3339()),
                        due: row.get::<bool>(5)?.unwrap_or(false),
                        full: row.get::<bool>(6)?.unwrap_or(false),
                    })
                })
                .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
            })?;
            for d in &rows {
                Spi::run_with_args(
                    "UPDATE notion_sync.databases SET next_run_at = $3::timestamptz
                      WHERE user_id = $1 AND database_id = $2",
                    &[
                        d.user.as_str().into(),
                        d.db.as_str().into(),
                        d.next.clone().into(),
                    ],
                )?;
            }
            Ok::<_, pgrx::spi::SpiError>(rows)
        })
        .unwrap_or_else(|e| {
            warning!("notion_sync worker: {e}");
            vec![]
        });
        for Due { user, db, full, .. } in due.into_iter().filter(|d| d.due) {
            let mode = if full { "full" } else { "incremental" };
            let started = guarded(|| {
                sync::start(
                    &user,
                    &db,
                    None,
                    mode,
                    None,
                    "schedule",
                    Txn::PerBatch,
                    &interrupt,
                )
            });
            match started {
                Ok(Ok(Started::Running(job))) => self.jobs.push(*job),
                Ok(Ok(Started::Done(_))) => {}
                Ok(Err(e)) => warning!("notion_sync worker: {user}/{db}: {e}"),
                Err(e) => warning!("notion_sync worker: starting {user}/{db} failed: {e}"),
            }
        }
    }
}

/// A scheduled database read by `start_due`: `due` to run now (else only its first next run is
/// set), `full` when its last complete full scan is older than a day.
struct Due {
    user: String,
    db: String,
    next: Option<String>,
    due: bool,
    full: bool,
}

type Event = (String, String, String, Option<String>, Option<String>, i32);

impl Worker {
    /// Applies queued webhook events, oldest Notion timestamp first (the worker is woken at the
    /// commit of `handle_webhook`; it also looks every second). A failed event is retried with
    /// backoff (2, 4, 8, 16 s) and ends `failed` with its error after 5 attempts.
    fn apply_events(&mut self) {
        let events: Vec<Event> = tx(|| {
            Spi::connect(|c| {
                c.select(
                    "SELECT id, user_id, type, entity_id, parent_id, attempts FROM notion_sync.webhook_events
                      WHERE status = 'pending' AND next_attempt_at <= pg_catalog.now()
                      ORDER BY coalesce(event_time, received_at), received_at LIMIT 20",
                    None,
                    &[],
                )?
                .map(|r| {
                    Ok((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<String>(3)?.unwrap_or_default(),
                        r.get::<String>(4)?,
                        r.get::<String>(5)?,
                        r.get::<i32>(6)?.unwrap_or(0),
                    ))
                })
                .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
            })
        })
        .unwrap_or_default();
        for ev in events {
            let result = guarded(|| self.apply_event(&ev)).and_then(|r| r);
            let (status, note, error) = match result {
                Ok(None) => ("later", None, None),
                Ok(Some(note)) if note.starts_with("ignored") => ("ignored", Some(note), None),
                Ok(Some(note)) => ("done", Some(note), None),
                Err(e) if ev.5 + 1 >= 5 => ("failed", None, Some(e)),
                Err(e) => ("retry", None, Some(e)),
            };
            tx(|| {
                Spi::run_with_args(
                    "UPDATE notion_sync.webhook_events SET
                        status = CASE WHEN $2 IN ('done', 'ignored', 'failed') THEN $2 ELSE 'pending' END,
                        attempts = attempts + CASE WHEN $2 IN ('later') THEN 0 ELSE 1 END,
                        next_attempt_at = pg_catalog.now() + CASE $2 WHEN 'later' THEN interval '2 s'
                            ELSE pg_catalog.make_interval(secs => 2 ^ (attempts + 1)) END,
                        processed_at = CASE WHEN $2 IN ('done', 'ignored', 'failed') THEN pg_catalog.clock_timestamp() END,
                        result = coalesce($3, result), last_error = coalesce($4, last_error)
                      WHERE id = $1",
                    &[ev.0.as_str().into(), status.into(), note.into(), error.into()],
                )
            })
            .unwrap_or_else(|e| warning!("notion_sync worker: webhook event {}: {e}", ev.0));
        }
    }

    /// Ok(Some(note)) when handled, Ok(None) to try again shortly (its database is being synced).
    fn apply_event(&mut self, ev: &Event) -> Result<Option<String>, String> {
        let (_, user, kind, entity, parent, _) = ev;
        let entity = entity.as_deref().unwrap_or_default();
        let page = |content| {
            sync::apply_page(user, entity, content, Txn::PerBatch, &interrupt)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        match webhook::action(kind) {
            Action::Page { content } => page(content),
            // Notion is asked whether the page is in trash: a forged or stale event changes nothing.
            Action::PageDeleted => page(false),
            Action::Database => {
                // A data source event names the data source; its parent is the database.
                let ids: Vec<&str> = [Some(entity), parent.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let found = sync::database_for_event(user, &ids, Txn::PerBatch, &interrupt)
                    .map_err(|e| e.to_string())?;
                let Some(db) = found else {
                    return Ok(Some(format!(
                        "ignored: no registered database for {kind} on {entity}"
                    )));
                };
                if self.jobs.iter().any(|j| j.syncs(user, &db)) {
                    return Ok(None);
                }
                match sync::start(
                    user,
                    &db,
                    None,
                    "incremental",
                    None,
                    "webhook",
                    Txn::PerBatch,
                    &interrupt,
                ) {
                    Ok(Started::Running(job)) => {
                        let note = format!("incremental sync started (run {})", job.run_id());
                        self.jobs.push(*job);
                        Ok(Some(note))
                    }
                    Ok(Started::Done(o)) => Ok(Some(format!(
                        "sync run {} ended at once: {}",
                        o.run_id, o.counts.status
                    ))),
                    Err(e) => Err(e.to_string()),
                }
            }
            Action::Ignore => Ok(Some(format!("ignored: {kind} is not used"))),
        }
    }
}

/// Retention: history older than `notion_sync.run_retention` goes; pages are never deleted
/// because they are old.
fn maintenance() {
    let keep = gucs::string(&gucs::RUN_RETENTION, "30 days");
    tx(|| {
        Spi::run_with_args(
            "DELETE FROM notion_sync.sync_errors WHERE created_at < pg_catalog.now() - $1::interval",
            &[keep.as_str().into()],
        )?;
        Spi::run_with_args(
            "DELETE FROM notion_sync.webhook_events WHERE status <> 'pending'
                AND received_at < pg_catalog.now() - $1::interval",
            &[keep.as_str().into()],
        )?;
        Spi::run_with_args(
            "DELETE FROM notion_sync.sync_runs WHERE status <> 'running'
                AND started_at < pg_catalog.now() - $1::interval",
            &[keep.as_str().into()],
        )
    })
    .unwrap_or_else(|e| warning!("notion_sync worker: retention: {e}"));
}
