//! What `/proc` says about processes: bytes they caused to be written to storage, their peak
//! and proportional memory, their children; and a sampler that follows a tree of processes
//! (a PostgreSQL server: the postmaster and its children come and go).

use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `write_bytes` of `/proc/<pid>/io` (`"self"` for this process): bytes whose write-back to
/// storage this process caused, all its threads included, counted when the page is dirtied.
pub fn write_bytes(pid: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/io")).with_context(|| format!("reading /proc/{pid}/io"))?;
    field(&s, "write_bytes:").ok_or_else(|| anyhow!("no write_bytes in /proc/{pid}/io"))
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM:`, `VmRSS:`), in bytes.
pub fn status_bytes(pid: &str, name: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    field(&s, name).map(|kib| kib << 10).ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
}

/// Proportional set size of a process (`Pss:` of `/proc/<pid>/smaps_rollup`), in bytes: its
/// private pages plus its share of pages mapped by several processes (shared memory), so that
/// the sum over a group of processes counts each page once.
pub fn pss_bytes(pid: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    field(&s, "Pss:").map(|kib| kib << 10).ok_or_else(|| anyhow!("no Pss in /proc/{pid}/smaps_rollup"))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    field(&s, "MemTotal:").map(|kib| kib << 10)
}

/// The first number after `name` on the line starting with it.
fn field(s: &str, name: &str) -> Option<u64> {
    s.lines().find_map(|l| l.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
}

/// Pids of every process whose parent is in `roots`, recursively, and the roots.
pub fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after
            // the last ')'.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    out
}

/// What the sampler knows of a process tree.
#[derive(Debug, Default)]
struct Seen {
    /// Last `write_bytes` read of every pid ever seen (a process that exited keeps the value
    /// of its last sample).
    write_bytes: HashMap<u32, u64>,
    /// Largest sum of PSS over the tree at one sample.
    peak_pss: u64,
    samples: u64,
}

/// Follows a process tree from a background thread: every `interval`, the PSS of every process
/// (peak of their sum) and their `write_bytes` (kept per pid, so that a process that exits
/// still counts, up to its last sample). [`TreeSampler::sample`] takes a sample at once.
#[derive(Debug)]
pub struct TreeSampler {
    root: u32,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl TreeSampler {
    /// Starts sampling the tree under `root` every `interval`.
    pub fn start(root: u32, interval: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        sample_into(root, &seen);
        let handle = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("compare-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(interval);
                        sample_into(root, &seen);
                    }
                })
                .ok()
        };
        Self { root, seen, stop, handle }
    }

    /// Samples now.
    pub fn sample(&self) {
        sample_into(self.root, &self.seen);
    }

    /// Sum over every process ever seen of its last `write_bytes`, after a sample.
    pub fn write_bytes(&self) -> u64 {
        self.sample();
        self.seen.lock().map(|s| s.write_bytes.values().sum()).unwrap_or(0)
    }

    /// Largest sum of PSS seen, after a sample; and the number of samples.
    pub fn peak_pss(&self) -> (u64, u64) {
        self.sample();
        self.seen.lock().map(|s| (s.peak_pss, s.samples)).unwrap_or((0, 0))
    }
}

impl Drop for TreeSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sample_into(root: u32, seen: &Mutex<Seen>) {
    let mut pss = 0;
    let mut wb = Vec::new();
    for pid in process_tree(&[root]) {
        let p = pid.to_string();
        // A process may exit between the listing and the read: it keeps its last sample.
        if let Ok(b) = write_bytes(&p) {
            wb.push((pid, b));
        }
        pss += pss_bytes(&p).unwrap_or(0);
    }
    if let Ok(mut s) = seen.lock() {
        s.write_bytes.extend(wb);
        s.peak_pss = s.peak_pss.max(pss);
        s.samples += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(status_bytes("self", "VmHWM:").unwrap() > 0);
        assert!(pss_bytes("self").unwrap() > 0);
        write_bytes("self").unwrap();
        assert!(mem_total_bytes().unwrap() > 0);
    }

    #[test]
    fn follows_a_child() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id();
        assert!(process_tree(&[me]).contains(&child.id()));
        let s = TreeSampler::start(me, Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        let (pss, samples) = s.peak_pss();
        assert!(pss > 0 && samples >= 2, "{pss} {samples}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
