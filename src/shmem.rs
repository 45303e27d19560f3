//! What backends and the worker share (with `shared_preload_libraries`; without it there is no
//! shared memory and each backend keeps its own budget):
//! - one request budget per Notion token: scheduled runs, manual syncs in any session and webhook
//!   refetches all take from the same bucket;
//! - the worker's latch, so `handle_webhook` can wake it at commit (with one scheduler per
//!   database, the launcher's slot table has each one's; this is the fallback);
//! - the count of rejected webhook deliveries (the rejecting transaction is rolled back, so a
//!   table could not keep it).

use crate::notion::client::{self, bucket_step};
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::PgAtomic;
use pgrx::{pg_shmem_init, pg_sys};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const SLOTS: usize = 64;

#[derive(Copy, Clone, Default)]
struct Slot {
    /// First 8 bytes of SHA-256(token); 0 = free. The token itself never enters shared memory.
    key: u64,
    level: f64,
    last_us: i64,
}

#[derive(Copy, Clone)]
pub struct Buckets {
    slots: [Slot; SLOTS],
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            slots: [Slot::default(); SLOTS],
        }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Buckets {}

static BUCKETS: PgLwLock<Buckets> = unsafe { PgLwLock::new(c"notion_sync_buckets") };
static WORKER_PROC: PgAtomic<AtomicI32> = unsafe { PgAtomic::new(c"notion_sync_worker_proc") };
static REJECTED: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"notion_sync_webhook_rejected") };
/// Webhook commits so far: the worker compares it between the steps of its syncs.
static WAKES: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"notion_sync_webhook_wakes") };
static REJECTED_AT: PgAtomic<AtomicI64> =
    unsafe { PgAtomic::new(c"notion_sync_webhook_rejected_at") };
static SHARED: AtomicBool = AtomicBool::new(false);
/// Per-backend fallbacks when not preloaded.
static LOCAL_REJECTED: AtomicU64 = AtomicU64::new(0);
static LOCAL_REJECTED_AT: AtomicI64 = AtomicI64::new(0);

/// Called from `_PG_init`: reserves shared memory when loaded by shared_preload_libraries.
pub fn init() {
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(BUCKETS);
        pg_shmem_init!(WORKER_PROC = AtomicI32::new(-1));
        pg_shmem_init!(REJECTED);
        pg_shmem_init!(WAKES);
        pg_shmem_init!(REJECTED_AT);
        SHARED.store(true, Ordering::Relaxed);
    }
}

fn shared() -> bool {
    SHARED.load(Ordering::Relaxed)
}

/// The worker announces its latch when it starts.
pub fn register_worker() {
    if shared() {
        WORKER_PROC.get().store(my_proc_number(), Ordering::SeqCst);
    }
}

/// This process's index in `ProcGlobal->allProcs`: `MyProc->pgprocno` up to 16, `MyProcNumber`
/// since 17 (which removed `pgprocno`; `GetPGProcByNumber(n)` is still `&allProcs[n]`).
#[cfg(any(feature = "pg17", feature = "pg18"))]
pub(crate) fn my_proc_number() -> i32 {
    // SAFETY: set by InitProcess before any extension code runs in this process.
    unsafe { pg_sys::MyProcNumber }
}

#[cfg(not(any(feature = "pg17", feature = "pg18")))]
pub(crate) fn my_proc_number() -> i32 {
    // SAFETY: MyProc is this process's PGPROC, valid once the process is initialised.
    unsafe { (*pg_sys::MyProc).pgprocno }
}

/// Sets the worker's latch (it then looks at the webhook queue at once).
pub fn wake_worker() {
    if !shared() {
        return;
    }
    WAKES.get().fetch_add(1, Ordering::SeqCst);
    // The scheduler of this session's database (one per database, src/launcher.rs).
    let n = crate::launcher::scheduler_procno(unsafe { pg_sys::MyDatabaseId })
        .unwrap_or_else(|| WORKER_PROC.get().load(Ordering::SeqCst));
    if n < 0 {
        return;
    }
    // SAFETY: PGPROC entries live in shared memory for the life of the cluster; SetLatch on
    // another process's latch is how Postgres wakes processes.
    unsafe {
        let proc_ = (*pg_sys::ProcGlobal).allProcs.add(n as usize);
        pg_sys::SetLatch(std::ptr::addr_of_mut!((*proc_).procLatch));
    }
}

/// How many webhook commits woke the worker so far (0 without shared memory).
pub fn wakes() -> u64 {
    if shared() {
        WAKES.get().load(Ordering::SeqCst)
    } else {
        0
    }
}

/// Counts a rejected webhook delivery (survives the ERROR that follows).
pub fn count_rejected() {
    let now = client::now_us() / 1_000_000;
    if shared() {
        REJECTED.get().fetch_add(1, Ordering::Relaxed);
        REJECTED_AT.get().store(now, Ordering::Relaxed);
    } else {
        LOCAL_REJECTED.fetch_add(1, Ordering::Relaxed);
        LOCAL_REJECTED_AT.store(now, Ordering::Relaxed);
    }
}

/// (rejected deliveries since the server started, epoch seconds of the last one or 0).
pub fn rejected() -> (u64, i64) {
    if shared() {
        (
            REJECTED.get().load(Ordering::Relaxed),
            REJECTED_AT.get().load(Ordering::Relaxed),
        )
    } else {
        (
            LOCAL_REJECTED.load(Ordering::Relaxed),
            LOCAL_REJECTED_AT.load(Ordering::Relaxed),
        )
    }
}

fn key(token: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(token.as_bytes());
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]).max(1)
}

/// The budget the client uses: shared memory when preloaded, else this process's bucket.
pub fn take(token: &str, rps: f64) -> Option<Duration> {
    if !shared() {
        return client::take_budget(token, rps);
    }
    if rps <= 0.0 {
        return None;
    }
    let k = key(token);
    let now = client::now_us();
    let mut b = BUCKETS.exclusive();
    let i = match b.slots.iter().position(|s| s.key == k) {
        Some(i) => i,
        None => {
            // A new token takes a free slot or the one idle longest (a full bucket by now).
            let i = b
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| if s.key == 0 { i64::MIN } else { s.last_us })
                .map(|(i, _)| i)
                .unwrap_or(0);
            b.slots[i] = Slot {
                key: k,
                level: client::bucket_cap(rps),
                last_us: now,
            };
            i
        }
    };
    let slot = &mut b.slots[i];
    bucket_step(&mut slot.level, &mut slot.last_us, now, rps)
}
