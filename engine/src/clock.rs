//! The one clock of the engine. Nothing in the engine reads the system time behind its back:
//! record-time checks, sealing and (later) expiry all ask the [`Clock`] it was opened with, so
//! tests can drive time by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time in milliseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time in ms since the epoch.
    fn now_ms(&self) -> i64;

    /// The current time to within about a millisecond, for hot paths where reading the clock
    /// would cost more than the work (the check at "now"). Defaults to [`Clock::now_ms`].
    fn now_ms_coarse(&self) -> i64 {
        self.now_ms()
    }

    /// The atomic [`Clock::now_ms_coarse`] reads, when it is one kept current by a ticker: a
    /// hot path holding it loads the time directly, without a virtual call (the check at "now").
    /// None (the default) when the coarse time is computed.
    fn coarse_cell(&self) -> Option<&'static AtomicI64> {
        None
    }
}

/// The system time, refreshed every half millisecond by a background thread started on first
/// use: a read is one atomic load instead of a `clock_gettime` (about 30 ns on the VMs we run on).
/// On a cache line of its own: the ticker writes it 2,000 times a second, and a neighbour read by
/// the check would pay for every write.
#[repr(align(64))]
struct CoarseCell(AtomicI64);
static COARSE_NOW_MS: CoarseCell = CoarseCell(AtomicI64::new(0));
static COARSE_TICKER: std::sync::Once = std::sync::Once::new();

/// The operating system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock before 1970 is broken; report the epoch rather than a negative time.
            Err(_) => 0,
        }
    }

    fn now_ms_coarse(&self) -> i64 {
        COARSE_TICKER.call_once(|| {
            COARSE_NOW_MS.0.store(SystemClock.now_ms(), Ordering::Release);
            let spawned = std::thread::Builder::new().name("portlog-clock".into()).spawn(|| loop {
                COARSE_NOW_MS.0.store(SystemClock.now_ms(), Ordering::Release);
                std::thread::sleep(std::time::Duration::from_micros(500));
            });
            if spawned.is_err() {
                // No thread: mark the cache unusable so that reads fall back to the clock.
                COARSE_NOW_MS.0.store(i64::MIN, Ordering::Release);
            }
        });
        match COARSE_NOW_MS.0.load(Ordering::Acquire) {
            i64::MIN => self.now_ms(),
            t => t,
        }
    }

    fn coarse_cell(&self) -> Option<&'static AtomicI64> {
        // Starts the ticker; a cell the ticker cannot keep (no thread) is not offered.
        self.now_ms_coarse();
        (COARSE_NOW_MS.0.load(Ordering::Acquire) != i64::MIN).then_some(&COARSE_NOW_MS.0)
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self { now_ms: Arc::new(AtomicI64::new(now_ms)) }
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward (or backward, with a negative delta).
    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_offers_its_coarse_cell_and_keeps_it_current() {
        let cell = SystemClock.coarse_cell().expect("the ticker thread starts");
        let before = SystemClock.now_ms();
        // The ticker refreshes every half millisecond: within 50 ms the cell has caught up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cell.load(Ordering::Acquire) < before {
            assert!(std::time::Instant::now() < deadline, "the coarse cell stopped moving");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!((cell.load(Ordering::Acquire) - SystemClock.now_ms()).abs() < 1_000);
    }

    #[test]
    fn a_manual_clock_has_no_cell_so_hot_paths_ask_it() {
        let c = ManualClock::new(42);
        assert!(c.coarse_cell().is_none());
        c.advance_ms(8);
        assert_eq!(c.now_ms_coarse(), 50);
    }
}
