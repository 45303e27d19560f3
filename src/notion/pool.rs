//! Requests in flight side by side, each in its turn (pure Rust; no Postgres on any thread here).
//!
//! A backend or the scheduler reads Notion on helper threads: the pages of a batch (their bodies
//! and truncated properties), the next page of query results, the data sources of a run about to
//! start. Every request of every thread first asks for its turn here and waits for it; only the
//! process's own thread (the one that may call Postgres) grants turns, in `pump`, which it runs
//! while it waits on anything. A turn is given when
//! - fewer than `max_in_flight` requests of this process are in flight (the setting
//!   `notion_sync.max_concurrent_requests`), and
//! - the token's budget (`notion_sync.requests_per_second`, shared by every process through shared
//!   memory) allows one more now.
//!
//! Fairness: turns go round the lanes (one lane per running sync), one turn per lane per round,
//! oldest ask first within a lane; a lane whose token has no budget now is passed over (its token
//! is not asked again before its budget refills). The process's own thread asks first (a webhook's
//! page read, a lookup): its ask is served at the next free slot. So a sync of 100,000 pages and a
//! sync of 10 pages alternate request by request, and the small one waits for at most one turn of
//! every other running sync.

use super::client::{ApiError, Budget};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the requests of one sync queue for their turn. Cancelling it (the sync ended, failed or
/// was cancelled) makes its waiting asks fail at once.
#[derive(Debug)]
pub struct Lane {
    id: u64,
    cancelled: AtomicBool,
}

static NEXT_LANE: AtomicU64 = AtomicU64::new(1);

impl Lane {
    pub fn new() -> Arc<Lane> {
        Arc::new(Lane {
            id: NEXT_LANE.fetch_add(1, Ordering::Relaxed),
            cancelled: AtomicBool::new(false),
        })
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The lane of the process's own thread: asked first.
const OWN_LANE: u64 = 0;

struct Ask {
    lane: u64,
    cancelled: Option<Arc<Lane>>,
    token: String,
    rps: f64,
    grant: mpsc::SyncSender<()>,
}

#[derive(Default)]
struct Gate {
    asks: Vec<Ask>,
    /// The lane served last: the round goes on from the next one.
    last: u64,
    /// Tokens without budget until then.
    not_before: HashMap<String, Instant>,
}

static GATE: Mutex<Option<Gate>> = Mutex::new(None);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn gate() -> MutexGuard<'static, Option<Gate>> {
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A turn: one request in flight until dropped.
#[derive(Debug)]
pub struct Permit(());

impl Drop for Permit {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ask(lane: u64, cancelled: Option<Arc<Lane>>, token: &str, rps: f64) -> mpsc::Receiver<()> {
    let (grant, rx) = mpsc::sync_channel(1);
    gate().get_or_insert_with(Gate::default).asks.push(Ask {
        lane,
        cancelled,
        token: token.to_string(),
        rps,
        grant,
    });
    rx
}

/// On a helper thread: waits for a turn for one request with `token`. Fails when the lane is
/// cancelled.
pub fn acquire(lane: &Arc<Lane>, token: &str, rps: f64) -> Result<Permit, ApiError> {
    let rx = ask(lane.id, Some(lane.clone()), token, rps);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => return Ok(Permit(())),
            Err(mpsc::RecvTimeoutError::Timeout) if !lane.cancelled() => {}
            _ => {
                // A turn granted while the lane was being cancelled is given back.
                if rx.try_recv().is_ok() {
                    drop(Permit(()));
                }
                return Err(ApiError::Cancelled);
            }
        }
    }
}

/// On the process's own thread: asks first, and pumps (and calls `idle`, which checks for
/// interrupts) until the turn comes.
pub fn acquire_here(
    token: &str,
    rps: f64,
    budget: Budget,
    max_in_flight: usize,
    idle: &dyn Fn(),
) -> Permit {
    let rx = ask(OWN_LANE, None, token, rps);
    loop {
        pump(budget, max_in_flight);
        if rx.try_recv().is_ok() {
            return Permit(());
        }
        idle();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// On the process's own thread: a turn at once, when nobody waits for one and a slot and the
/// token's budget allow it (a prefetch takes it, so that the request is in flight while the
/// thread does its SPI work instead of waiting for the next `pump`); None otherwise.
pub fn try_now(token: &str, rps: f64, budget: Budget, max_in_flight: usize) -> Option<Permit> {
    let mut guard = gate();
    let g = guard.get_or_insert_with(Gate::default);
    let now = Instant::now();
    let blocked = g.not_before.get(token).is_some_and(|t| *t > now);
    if !g.asks.is_empty() || blocked || IN_FLIGHT.load(Ordering::SeqCst) >= max_in_flight.max(1) {
        return None;
    }
    if budget(token, rps).is_some() {
        return None;
    }
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    Some(Permit(()))
}

/// What `pump` leaves: requests in flight and asks waiting (for `notion_sync.schedulers`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub in_flight: usize,
    pub waiting: usize,
}

/// Grants turns (only ever on the process's own thread: `budget` may use shared memory).
pub fn pump(budget: Budget, max_in_flight: usize) -> Load {
    let mut guard = gate();
    let g = guard.get_or_insert_with(Gate::default);
    g.asks
        .retain(|a| !a.cancelled.as_ref().is_some_and(|l| l.cancelled()));
    let now = Instant::now();
    g.not_before.retain(|_, t| *t > now);
    while IN_FLIGHT.load(Ordering::SeqCst) < max_in_flight.max(1) {
        let Some(i) = next(g) else { break };
        let a = &g.asks[i];
        if let Some(wait) = budget(&a.token, a.rps) {
            let token = a.token.clone();
            g.not_before.insert(token, now + wait);
            continue;
        }
        let a = g.asks.remove(i);
        // The process's own asks go first without moving the round of the lanes.
        if a.lane != OWN_LANE {
            g.last = a.lane;
        }
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        if a.grant.send(()).is_err() {
            // The asker is gone (its thread ended): the turn is not taken.
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Load {
        in_flight: IN_FLIGHT.load(Ordering::SeqCst),
        waiting: g.asks.len(),
    }
}

/// The ask served next: the process's own first, else the oldest ask of the first lane after the
/// one served last (round robin by lane id), among tokens with budget.
fn next(g: &Gate) -> Option<usize> {
    let eligible = |a: &&Ask| !g.not_before.contains_key(&a.token);
    let mut best: Option<(usize, (bool, u64))> = None;
    for (i, a) in g.asks.iter().enumerate().filter(|(_, a)| eligible(a)) {
        // Own lane first; then lanes after `last` in id order; then the ones up to it.
        let key = (a.lane != OWN_LANE, a.lane.wrapping_sub(g.last + 1));
        if best.is_none_or(|(_, k)| key < k) {
            best = Some((i, key));
        }
    }
    best.map(|(i, _)| i)
}

/// Requests in flight and asks waiting now.
pub fn load() -> Load {
    let waiting = gate().as_ref().map_or(0, |g| g.asks.len());
    Load {
        in_flight: IN_FLIGHT.load(Ordering::SeqCst),
        waiting,
    }
}

/// Work done on a helper thread, its answer taken without blocking by the thread that may call
/// Postgres.
pub struct Flight<T> {
    rx: mpsc::Receiver<T>,
}

impl<T: Send + 'static> Flight<T> {
    pub fn spawn(f: impl FnOnce() -> T + Send + 'static) -> Flight<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        Flight { rx }
    }

    /// The answer when it has come; `Err` when the thread ended without one (it panicked).
    pub fn take(&mut self) -> Option<Result<T, ApiError>> {
        match self.rx.try_recv() {
            Ok(v) => Some(Ok(v)),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Some(Err(ApiError::Transport("a request thread ended".into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(_: &str, _: f64) -> Option<Duration> {
        None
    }

    /// Gate tests share the process-wide gate: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn granted(rx: &mpsc::Receiver<()>) -> bool {
        rx.try_recv().is_ok()
    }

    #[test]
    fn turns_go_round_the_lanes_and_own_asks_first() {
        let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = (Lane::new(), Lane::new());
        // Lane a asks three times, then b once, then the own thread.
        let a_asks: Vec<_> = (0..3)
            .map(|_| ask(a.id, Some(a.clone()), "t", 0.0))
            .collect();
        let b_ask = ask(b.id, Some(b.clone()), "t", 0.0);
        let own = ask(OWN_LANE, None, "t", 0.0);
        // One slot free: the own ask gets it.
        let base = IN_FLIGHT.load(Ordering::SeqCst);
        pump(open, base + 1);
        assert!(granted(&own));
        // Two more slots: one for a, then b (b does not wait behind a's three).
        pump(open, base + 3);
        assert!(granted(&a_asks[0]) && granted(&b_ask));
        assert!(!granted(&a_asks[1]));
        IN_FLIGHT.fetch_sub(3, Ordering::SeqCst);
        a.cancel();
        let load = pump(open, base + 10);
        assert_eq!(load.waiting, 0, "a cancelled lane's asks are dropped");
        assert!(!granted(&a_asks[1]));
    }

    #[test]
    fn a_token_without_budget_is_passed_over() {
        let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        fn only_b(token: &str, _: f64) -> Option<Duration> {
            (token != "b").then(|| Duration::from_secs(1))
        }
        let (a, b) = (Lane::new(), Lane::new());
        let a_ask = ask(a.id, Some(a.clone()), "a", 3.0);
        let b_ask = ask(b.id, Some(b.clone()), "b", 3.0);
        let base = IN_FLIGHT.load(Ordering::SeqCst);
        pump(only_b, base + 5);
        assert!(!granted(&a_ask) && granted(&b_ask));
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        a.cancel();
        pump(open, base + 5);
    }

    #[test]
    fn a_cancelled_lane_fails_its_waiting_request() {
        let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let lane = Lane::new();
        let l = lane.clone();
        let mut f = Flight::spawn(move || acquire(&l, "t", 0.0).map(|_| ()));
        std::thread::sleep(Duration::from_millis(20));
        lane.cancel();
        let started = Instant::now();
        loop {
            if let Some(r) = f.take() {
                assert_eq!(r.unwrap(), Err(ApiError::Cancelled));
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
