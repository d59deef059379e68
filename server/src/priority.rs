//! Background work at a lower CPU priority, so that the check path wins the CPU.
//!
//! The daemon's latency-sensitive work is the check, answered inline on tokio's worker threads.
//! Everything else is throughput work: the engine's shard writers and sealers, RocksDB's
//! background jobs, and what the handlers hand to tokio's blocking pool (ingest validation and
//! group-commit waits, traces, imports, ledger writes, metrics rendering). On a machine whose
//! cores are all busy, the kernel's scheduler shares them by weight: threads `[server]
//! background_nice` steps nicer than the workers (default 10: about a tenth of the weight) give
//! way when a check wakes, and still take every idle cycle. Raising one's own nice value needs
//! no privilege; a value of 0 turns this off.
//!
//! Measured in docs/benchmarks.md ("gRPC load"): the paced unary check's p99 under ingest.

use rustix::process::{getpriority_process, setpriority_process, Pid};
use std::sync::atomic::{AtomicI32, Ordering};

/// Steps of nice value added to background threads (0: none). Set once at start.
static BACKGROUND_NICE: AtomicI32 = AtomicI32::new(0);

/// The nice value the steps count from: the calling thread's when they were set.
static BASE_NICE: AtomicI32 = AtomicI32::new(0);

/// Sets the steps for [`enter_background`] (from `[server] background_nice`), counted from the
/// calling thread's nice value (call it from the main thread, before the runtime starts).
pub fn set_background_nice(steps: i32) {
    BASE_NICE.store(getpriority_process(None).unwrap_or(0), Ordering::Relaxed);
    BACKGROUND_NICE.store(steps.clamp(0, 39), Ordering::Relaxed);
}

/// The current thread's id (Linux: a thread is a task with its own nice value).
fn gettid() -> Pid {
    rustix::thread::gettid()
}

/// Makes thread `tid` `steps` nicer than `base` (capped at 19); returns whether it changed.
/// Never lowers a thread's nice value (that would need privilege, and is not ours to do).
fn lower(tid: Pid, base: i32, steps: i32) -> bool {
    if steps <= 0 {
        return false;
    }
    let want = (base + steps).min(19);
    match getpriority_process(Some(tid)) {
        Ok(cur) if cur < want => setpriority_process(Some(tid), want).is_ok(),
        _ => false,
    }
}

/// The nice value the steps count from (see [`set_background_nice`]).
fn base_nice() -> i32 {
    BASE_NICE.load(Ordering::Relaxed)
}

/// Moves the calling thread to background priority (idempotent). Called first by every task
/// handed to tokio's blocking pool: those threads only ever run background work.
pub fn enter_background() {
    let steps = BACKGROUND_NICE.load(Ordering::Relaxed);
    if steps > 0 {
        lower(gettid(), base_nice(), steps);
    }
}

/// Moves every thread of the process that exists now to background priority, except the
/// calling thread (which goes on to start tokio's workers: they inherit its priority) and the
/// threads named in `keep`. Call once the engine is open, before the runtime starts: the
/// engine's writers, sealers and RocksDB's pool exist by then, and threads they start later
/// inherit their priority. Returns how many threads were moved.
pub fn lower_existing_threads(keep: &[&str]) -> usize {
    let steps = BACKGROUND_NICE.load(Ordering::Relaxed);
    if steps <= 0 {
        return 0;
    }
    let me = gettid();
    let base = base_nice();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    let mut moved = 0;
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()).and_then(Pid::from_raw) else { continue };
        if tid == me {
            continue;
        }
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if keep.iter().any(|k| name.trim_end() == *k) {
            continue;
        }
        moved += usize::from(lower(tid, base, steps));
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of(tid: Pid) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", tid.as_raw_nonzero())).unwrap();
        // Field 19 (nice), counted after the ")" that ends the command name.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn background_threads_are_nicer_and_the_caller_and_kept_threads_are_not() {
        set_background_nice(5);
        let base = base_nice();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let done_rx = std::sync::Arc::new(std::sync::Mutex::new(done_rx));
        let mut handles = Vec::new();
        for name in ["bg-worker", "keep-me"] {
            let (tx, done_rx) = (tx.clone(), done_rx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        tx.send((name, gettid())).unwrap();
                        let _ = done_rx.lock().unwrap().recv();
                    })
                    .unwrap(),
            );
        }
        let tids: std::collections::HashMap<_, _> = (0..2).map(|_| rx.recv().unwrap()).collect();
        assert!(lower_existing_threads(&["keep-me"]) >= 1);
        assert_eq!(nice_of(tids["bg-worker"]), (base + 5).min(19));
        assert_eq!(nice_of(tids["keep-me"]), base);
        assert_eq!(nice_of(gettid()), base);
        // Idempotent: nothing more to move for that thread, and a thread never gets less nice.
        assert!(!lower(tids["bg-worker"], base, 5));
        assert!(!lower(tids["bg-worker"], base, 1));
        drop(done_tx);
        for h in handles {
            h.join().unwrap();
        }
        // A blocking-pool thread moves itself.
        let t = std::thread::spawn(|| {
            enter_background();
            let once = nice_of(gettid());
            enter_background();
            (once, nice_of(gettid()))
        });
        // Twice changes nothing more (the steps count from the main thread's value, not the
        // pool thread's own).
        assert_eq!(t.join().unwrap(), ((base + 5).min(19), (base + 5).min(19)));
        set_background_nice(0);
    }
}
