//! `portlog-index-bench`: the open segment's row index as it grows, against the structure it
//! replaced, in the same run (benchmarks.md, "Index growth").
//!
//! ```text
//! portlog-index-bench [--records N] [--numbers N] [--batch 100] [--repeat 3]
//!                     [--lookups 100000] [--seed 42] [--json | --markdown]
//! ```
//!
//! One open segment's index is filled with `--records` generated records (the benches'
//! generator, `--numbers` distinct numbers with its Zipf 0.8 popularity), `--batch` rows at a
//! time as a shard writer publishes them, and each batch is timed: a batch is what an append
//! waits for while the writer holds the index's write lock.
//! * `portlog` is `portlog_engine::log::open_segment::OpenIndex` as it is: the last row of
//!   each number and sub-port in maps split into 256 parts (`log/lastrow.rs`), the rows in
//!   chunks (`log/chunked.rs`);
//! * `one map` is the structure before 2026-12-04, rebuilt here: one `FxHashMap` per key and
//!   `Vec`s, which double (moving every entry) while the lock is held.
//!
//! The two are filled alternately, `--repeat` times each after one untimed run of each;
//! every figure is the median of the runs. Then each gives the rows of `--lookups` numbers drawn from the records (the index's
//! read path: a number's chain of rows, newest first).

use anyhow::{anyhow, bail, Result};
use portlog_benches::args::parse_num;
use portlog_benches::docs::thousands;
use portlog_benches::stats::{median, quantile};
use portlog_benches::{Generator, Record, Templates, WorkloadConfig};
use portlog_engine::log::open_segment::{OpenIndex, RowRef};
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage: portlog-index-bench [--records N] [--numbers N] [--batch 100] [--repeat 3]
                          [--lookups 100000] [--seed 42] [--json | --markdown]

  --records N   rows added to one open segment's index (default 4000000)
  --numbers N   distinct numbers of the workload (default 20000000)
  --batch N     rows added per timed batch, as a writer publishes them (default 100)
  --repeat N    runs of each structure, alternated; every figure is the median (default 3)
  --lookups N   numbers whose rows are then read from each index (default 100000)
  --seed N      workload seed (default 42)
  --json        one JSON object per structure instead of the table
  --markdown    the table as markdown (docs/benchmarks.md)";

#[derive(Debug)]
struct Args {
    records: usize,
    numbers: u64,
    batch: usize,
    repeat: usize,
    lookups: usize,
    seed: u64,
    json: bool,
    markdown: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        records: 4_000_000,
        numbers: 20_000_000,
        batch: 100,
        repeat: 3,
        lookups: 100_000,
        seed: 42,
        json: false,
        markdown: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => a.json = true,
            "--markdown" => a.markdown = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                match flag.as_str() {
                    "--records" => a.records = parse_num(&flag, &v)?,
                    "--numbers" => a.numbers = parse_num(&flag, &v)?,
                    "--batch" => a.batch = parse_num(&flag, &v)?,
                    "--repeat" => a.repeat = parse_num(&flag, &v)?,
                    "--lookups" => a.lookups = parse_num(&flag, &v)?,
                    "--seed" => a.seed = parse_num(&flag, &v)?,
                    _ => bail!("unknown flag {flag:?}\n{USAGE}"),
                }
            }
        }
    }
    if a.records == 0 || a.numbers == 0 || a.batch == 0 || a.repeat == 0 || a.lookups == 0 {
        bail!("--records, --numbers, --batch, --repeat and --lookups must be positive");
    }
    if a.records > u32::MAX as usize - 1 {
        bail!("--records: an open segment's index holds fewer than 2^32 rows");
    }
    if a.json && a.markdown {
        bail!("--json and --markdown exclude each other");
    }
    Ok(a)
}

/// The index before 2026-12-04: one map per key, `Vec`s (the peer).
#[derive(Default)]
struct OneMap {
    rows: Vec<RowRef>,
    prev: Vec<(u32, u32)>,
    last_of_sub_port: FxHashMap<Box<str>, u32>,
    last_of_peer: FxHashMap<u64, u32>,
}

impl OneMap {
    fn add(&mut self, r: &Record, row: RowRef) {
        let i = self.rows.len() as u32;
        self.rows.push(row);
        let prev_sub_port = match self.last_of_sub_port.get_mut(r.sub_port.as_str()) {
            Some(last) => std::mem::replace(last, i),
            None => {
                self.last_of_sub_port.insert(r.sub_port.as_str().into(), i);
                u32::MAX
            }
        };
        let prev_peer = self.last_of_peer.insert(r.peer.as_u64(), i).unwrap_or(u32::MAX);
        self.prev.push((prev_sub_port, prev_peer));
    }
}

/// Either structure, as the harness drives it.
trait Index: Default {
    fn add(&mut self, r: &Record, row: RowRef);
    /// A number's rows, newest first: what a trace's cursor reads from an open segment.
    fn rows_of_peer(&self, peer: u64) -> Vec<RowRef>;
}

impl Index for OneMap {
    fn add(&mut self, r: &Record, row: RowRef) {
        OneMap::add(self, r, row)
    }
    fn rows_of_peer(&self, peer: u64) -> Vec<RowRef> {
        let mut out = Vec::new();
        let mut at = self.last_of_peer.get(&peer).copied().unwrap_or(u32::MAX);
        while let (Some(&row), Some(&(_, prev))) = (self.rows.get(at as usize), self.prev.get(at as usize)) {
            out.push(row);
            if prev >= at {
                break;
            }
            at = prev;
        }
        out
    }
}

impl Index for OpenIndex {
    fn add(&mut self, r: &Record, row: RowRef) {
        OpenIndex::add(self, r, row)
    }
    fn rows_of_peer(&self, peer: u64) -> Vec<RowRef> {
        OpenIndex::rows_of_peer(self, peer)
    }
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
struct Run {
    rows_per_s: f64,
    batch_p50_us: f64,
    batch_p99_us: f64,
    batch_p999_us: f64,
    batch_max_us: f64,
    batches_over_1ms: usize,
    batches_over_10ms: usize,
    lookup_ns: f64,
}

fn run<I: Index>(records: &[Record], batch: usize, probes: &[u64]) -> Run {
    let mut ix = I::default();
    let mut times = Vec::with_capacity(records.len() / batch + 1);
    let mut off = 0u64;
    let all = Instant::now();
    for chunk in records.chunks(batch) {
        let t = Instant::now();
        for r in chunk {
            ix.add(r, RowRef { ts_ms: r.ts_ms, off, len: 160 });
            off += 160;
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rows_per_s = records.len() as f64 / all.elapsed().as_secs_f64();
    let t = Instant::now();
    let found = probes.iter().filter(|&&p| !ix.rows_of_peer(p).is_empty()).count();
    let lookup_ns = t.elapsed().as_secs_f64() * 1e9 / probes.len() as f64;
    assert_eq!(found, probes.len(), "every probed number was added");
    let over = |us: f64| times.iter().filter(|&&t| t > us).count();
    let (over_1ms, over_10ms) = (over(1_000.0), over(10_000.0));
    times.sort_by(f64::total_cmp);
    // A run has at least one batch (records and batch are positive).
    let q = |f: f64| quantile(&times, f).unwrap_or(f64::NAN);
    Run {
        rows_per_s,
        batch_p50_us: q(0.5),
        batch_p99_us: q(0.99),
        batch_p999_us: q(0.999),
        batch_max_us: times[times.len() - 1],
        batches_over_1ms: over_1ms,
        batches_over_10ms: over_10ms,
        lookup_ns,
    }
}

/// The median of each figure over `runs`.
fn medians(runs: &[Run]) -> Run {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    Run {
        rows_per_s: m(|r| r.rows_per_s),
        batch_p50_us: m(|r| r.batch_p50_us),
        batch_p99_us: m(|r| r.batch_p99_us),
        batch_p999_us: m(|r| r.batch_p999_us),
        batch_max_us: m(|r| r.batch_max_us),
        batches_over_1ms: m(|r| r.batches_over_1ms as f64) as usize,
        batches_over_10ms: m(|r| r.batches_over_10ms as f64) as usize,
        lookup_ns: m(|r| r.lookup_ns),
    }
}

fn main() -> Result<()> {
    let a = parse_args(std::env::args().skip(1))?;
    let templates = Arc::new(Templates::load_default()?);
    let cfg = WorkloadConfig { seed: a.seed, numbers: a.numbers, ..WorkloadConfig::default() };
    let records: Vec<Record> = Generator::new(templates, cfg)?.take(a.records).collect();
    let distinct = records.iter().map(|r| r.peer.as_u64()).collect::<std::collections::HashSet<_>>().len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let probes: Vec<u64> = (0..a.lookups).map(|_| records[rng.gen_range(0..records.len())].peer.as_u64()).collect();
    // One untimed run of each first: the allocator's first pages of either are then no
    // newer than the other's.
    run::<OpenIndex>(&records, a.batch, &probes[..1]);
    run::<OneMap>(&records, a.batch, &probes[..1]);
    let (mut now, mut before) = (Vec::new(), Vec::new());
    for i in 0..a.repeat {
        // Alternate which goes first, so that neither always runs on a warmer machine.
        if i % 2 == 0 {
            now.push(run::<OpenIndex>(&records, a.batch, &probes));
            before.push(run::<OneMap>(&records, a.batch, &probes));
        } else {
            before.push(run::<OneMap>(&records, a.batch, &probes));
            now.push(run::<OpenIndex>(&records, a.batch, &probes));
        }
    }
    let rows = [("portlog (parts, chunks)", medians(&now)), ("one map, Vecs (before)", medians(&before))];
    if a.json {
        for (name, r) in &rows {
            println!(
                "{}",
                serde_json::json!({ "index": name, "records": a.records, "distinct_numbers": distinct, "batch": a.batch, "figures": r })
            );
        }
        return Ok(());
    }
    println!(
        "{} rows ({} distinct numbers) added to one open segment's index, {} a batch, each batch timed; then the rows of {} numbers drawn from the records (a number's chain, newest first: the last column, mean per number). Medians of {} alternated runs.",
        thousands(a.records as u64),
        thousands(distinct as u64),
        a.batch,
        thousands(a.lookups as u64),
        a.repeat
    );
    let head = ["index", "rows/s", "batch p50", "p99", "p99.9", "max", "batches > 1 ms", "> 10 ms", "rows of a number"];
    let cells = |r: &Run| {
        [
            format!("{:.1} M", r.rows_per_s / 1e6),
            format!("{:.1} µs", r.batch_p50_us),
            format!("{:.1} µs", r.batch_p99_us),
            format!("{:.0} µs", r.batch_p999_us),
            format!("{:.1} ms", r.batch_max_us / 1e3),
            r.batches_over_1ms.to_string(),
            r.batches_over_10ms.to_string(),
            format!("{:.1} µs", r.lookup_ns / 1e3),
        ]
    };
    if a.markdown {
        println!("\n| {} |", head.join(" | "));
        println!("|---|{}", "---:|".repeat(head.len() - 1));
        for (name, r) in &rows {
            println!("| {name} | {} |", cells(r).join(" | "));
        }
    } else {
        println!("{:<24} {}", head[0], head[1..].iter().map(|h| format!("{h:>15}")).collect::<String>());
        for (name, r) in &rows {
            println!("{name:<24} {}", cells(r).iter().map(|c| format!("{c:>15}")).collect::<String>());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_named() {
        let a =
            parse_args(["--records", "1_000", "--batch", "10", "--markdown"].map(String::from).into_iter()).unwrap();
        assert_eq!((a.records, a.batch, a.markdown, a.repeat), (1_000, 10, true, 3));
        let e = parse_args(["--records", "x"].map(String::from).into_iter()).unwrap_err().to_string();
        assert!(e.contains("--records"), "{e}");
        assert!(parse_args(["--batch", "0"].map(String::from).into_iter()).is_err());
        assert!(parse_args(["--json", "--markdown"].map(String::from).into_iter()).is_err());
    }
}
