//! Progress of the syncs running now, visible from any session (`notion_sync.sync_progress`).
//! A SQL call holds one transaction until it ends, so nothing it writes can be read before; the
//! figures therefore live in shared memory (with `shared_preload_libraries`; without it each backend
//! only sees its own runs). One slot per running sync, claimed at the start of a run and freed when
//! the run ends, however it ends (a `Drop` guard; a slot whose process died is skipped on read).

use pgrx::lwlock::PgLwLock;
use pgrx::pg_shmem_init;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const SLOTS: usize = 128;
const TEXT: usize = 64;

#[derive(Copy, Clone)]
struct Slot {
    /// 0 = free.
    run_id: i64,
    pid: i32,
    user: [u8; TEXT],
    db: [u8; TEXT],
    phase: u8,
    started_us: i64,
    read: i64,
    written: i64,
    skipped: i64,
    failed: i64,
    requests: i64,
    /// Pages the last complete full scan saw (0 = unknown): the base of the estimate.
    expected: i64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            run_id: 0,
            pid: 0,
            user: [0; TEXT],
            db: [0; TEXT],
            phase: 0,
            started_us: 0,
            read: 0,
            written: 0,
            skipped: 0,
            failed: 0,
            requests: 0,
            expected: 0,
        }
    }
}

#[derive(Copy, Clone)]
pub struct Slots {
    slots: [Slot; SLOTS],
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: [Slot::default(); SLOTS],
        }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Slots {}

static SHARED_SLOTS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"notion_sync_progress") };
static SHARED: AtomicBool = AtomicBool::new(false);
/// This backend's slots when not preloaded.
static LOCAL: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// What a run is doing.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Phase {
    /// (0, a slot just claimed, reads as `starting`.)
    Reading = 1,
    Finishing = 2,
}

impl Phase {
    fn name(code: u8) -> &'static str {
        match code {
            1 => "reading",
            2 => "finishing",
            _ => "starting",
        }
    }
}

/// Called from `_PG_init` while shared memory is being reserved.
pub fn init() {
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(SHARED_SLOTS);
        SHARED.store(true, Ordering::Relaxed);
    }
}

fn text(s: &str) -> [u8; TEXT] {
    let mut out = [0u8; TEXT];
    let mut end = s.len().min(TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

fn untext(b: &[u8; TEXT]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(TEXT);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Applies `f` to the slot of `run_id` (shared or local).
fn with_slot(run_id: i64, f: impl FnOnce(&mut Slot)) {
    if SHARED.load(Ordering::Relaxed) {
        let mut s = SHARED_SLOTS.exclusive();
        if let Some(slot) = s.slots.iter_mut().find(|x| x.run_id == run_id) {
            f(slot);
        }
    } else if let Ok(mut l) = LOCAL.lock() {
        if let Some(slot) = l.iter_mut().find(|x| x.run_id == run_id) {
            f(slot);
        }
    }
}

/// A run's claim on a slot; freed on drop.
pub struct Progress {
    run_id: i64,
}

impl Progress {
    /// Claims a slot for a run (none when all are taken: the run goes on, unseen).
    pub fn begin(run_id: i64, user: &str, db: &str, expected: i64) -> Progress {
        let slot = Slot {
            run_id,
            pid: unsafe { pg_sys::MyProcPid },
            user: text(user),
            db: text(db),
            started_us: crate::notion::client::now_us(),
            expected,
            ..Slot::default()
        };
        if SHARED.load(Ordering::Relaxed) {
            let mut s = SHARED_SLOTS.exclusive();
            if let Some(free) = s.slots.iter_mut().find(|x| x.run_id == 0) {
                *free = slot;
            }
        } else if let Ok(mut l) = LOCAL.lock() {
            l.push(slot);
        }
        Progress { run_id }
    }

    /// The figures after a batch: pages read, written, skipped, failed, requests so far.
    pub fn update(
        &self,
        phase: Phase,
        read: i64,
        written: i64,
        skipped: i64,
        failed: i64,
        requests: i64,
    ) {
        with_slot(self.run_id, |s| {
            s.phase = phase as u8;
            s.read = read;
            s.written = written;
            s.skipped = skipped;
            s.failed = failed;
            s.requests = requests;
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if SHARED.load(Ordering::Relaxed) {
            let mut s = SHARED_SLOTS.exclusive();
            if let Some(slot) = s.slots.iter_mut().find(|x| x.run_id == self.run_id) {
                *slot = Slot::default();
            }
        } else if let Ok(mut l) = LOCAL.lock() {
            l.retain(|x| x.run_id != self.run_id);
        }
    }
}

pub(crate) fn alive(pid: i32) -> bool {
    // Signal 0 checks that the process exists; a backend that crashed left its slot behind.
    unsafe { libc_kill(pid, 0) == 0 }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The estimate of the remaining seconds: from the pages the last full scan saw and the rate so
/// far; None while nothing can be known.
pub fn remaining_s(read: i64, expected: i64, elapsed_s: f64) -> Option<f64> {
    if expected <= 0 || read <= 0 || elapsed_s <= 0.0 {
        return None;
    }
    let rate = read as f64 / elapsed_s;
    Some(((expected - read).max(0) as f64 / rate * 10.0).round() / 10.0)
}

/// Internal (SQL: the `notion_sync.sync_progress` view): one row per sync running now.
// pgrx reads the row type from the signature: it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn _sync_progress() -> TableIterator<
    'static,
    (
        name!(run_id, i64),
        name!(pid, i32),
        name!(user_id, String),
        name!(database_id, String),
        name!(phase, String),
        name!(pages_read, i64),
        name!(written, i64),
        name!(skipped, i64),
        name!(failed, i64),
        name!(requests, i64),
        name!(requests_per_s, f64),
        name!(elapsed_s, f64),
        name!(expected_pages, Option<i64>),
        name!(remaining_s, Option<f64>),
    ),
> {
    let slots: Vec<Slot> = if SHARED.load(Ordering::Relaxed) {
        let s = SHARED_SLOTS.share();
        s.slots.iter().filter(|x| x.run_id != 0).copied().collect()
    } else {
        LOCAL.lock().map(|l| l.clone()).unwrap_or_default()
    };
    let now = crate::notion::client::now_us();
    let rows: Vec<_> = slots
        .into_iter()
        .filter(|s| alive(s.pid))
        .map(|s| {
            let elapsed = ((now - s.started_us).max(0) as f64) / 1e6;
            let rps = if elapsed > 0.0 {
                (s.requests as f64 / elapsed * 100.0).round() / 100.0
            } else {
                0.0
            };
            (
                s.run_id,
                s.pid,
                untext(&s.user),
                untext(&s.db),
                Phase::name(s.phase).to_string(),
                s.read,
                s.written,
                s.skipped,
                s.failed,
                s.requests,
                rps,
                (elapsed * 10.0).round() / 10.0,
                (s.expected > 0).then_some(s.expected),
                remaining_s(s.read, s.expected, elapsed),
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_from_the_last_full_scan_and_the_rate() {
        assert_eq!(remaining_s(100, 1000, 10.0), Some(90.0));
        assert_eq!(remaining_s(1200, 1000, 10.0), Some(0.0));
        assert_eq!(remaining_s(0, 1000, 10.0), None);
        assert_eq!(remaining_s(100, 0, 10.0), None);
    }

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40);
        let t = untext(&text(&long));
        assert!(t.len() <= TEXT && long.starts_with(&t));
    }
}
