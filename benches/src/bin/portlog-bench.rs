//! `portlog-bench`: portlog's append path side by side with RocksDB, on the same records.
//!
//! ```text
//! portlog-bench append [--records N] [--threads 1,2,8] [--group 100] [--dir DIR]
//!                      [--json | --markdown] [--seed N] [--numbers N] [--shards N]
//!                      [--sync data|full|none] [--rocksdb-block-kib N] [--repeat N]
//! ```
//!
//! The records are generated once (see `portlog_benches::Generator`) and split round-robin
//! over the threads; each thread appends groups of `--group` records: one `Log::append` call
//! for portlog, one synced `WriteBatch` for RocksDB. Throughput is measured in records/s,
//! append calls/s and MB/s of *logical bytes*: the records' size as JSON lines in the ingest
//! format, one measure for both engines. Space is measured after portlog's `seal_all` and
//! RocksDB's flush and full compaction, as the sum of every file's length in the data
//! directory, and beside it the size of the same JSON lines compressed by zstd -3. Last, the
//! disk's fdatasync floor in the same run (`disk::fsync_floor`): the rate at which one thread
//! can make groups of the same size durable with nothing but a write and an fdatasync each.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::args::parse_num;
use portlog_benches::disk::{dir_bytes, fs_type, fsync_floor, scratch_base, FsyncFloor};
use portlog_benches::rocks::{encode_key, encode_value, options as rocks_options};
use portlog_benches::stats::quantile;
use portlog_benches::{jsonl_zstd_bytes, Generator, Record, Templates, WorkloadConfig};
use portlog_engine::{JournalStats, Log, LogConfig, ManualClock, SyncPolicy};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Instant;

const USAGE: &str = "usage: portlog-bench append [--records N] [--threads 1,2,8] [--group 100] [--dir DIR]
                            [--json | --markdown] [--seed N] [--numbers N] [--shards N]
                            [--sync data|full|none] [--rocksdb-block-kib N] [--repeat N]

  --records N            records to write per run (default 1000000)
  --threads LIST         comma-separated thread counts, one run of each engine per count (default 1,2,8)
  --group N              records per append call / per RocksDB WriteBatch (default 100)
  --dir DIR              where the data directories go (default: the temp dir, or the current
                         directory when the temp dir is a tmpfs); removed afterwards
  --json                 one JSON object per row instead of the table
  --markdown             the table as markdown (docs/benchmarks.md, `./x bench-docs`)
  --seed N               workload seed (default 42)
  --numbers N            distinct numbers of the workload (default 1000000, the generator's)
  --shards N             portlog shards (default: LogConfig's, 4)
  --sync POLICY          portlog sync policy: data (default), full or none
  --no-journal           portlog without its journal: each shard writer syncs its own files
  --journal-mib N        portlog's journal file size in MiB (default: LogConfig's, 64)
  --checkpoint-mib N     portlog's journal bytes between checkpoints in MiB (default 32)
  --journal-buffered     portlog's journal written through the page cache (default: direct I/O)
  --rocksdb-block-kib N  RocksDB block size in KiB (default 4, RocksDB's own default)
  --repeat N             runs per engine and thread count, the engines alternated; each row is
                         the median run by records/s (default 1)";

/// The `append` subcommand's arguments.
#[derive(Debug)]
struct Args {
    records: usize,
    threads: Vec<usize>,
    group: usize,
    dir: Option<PathBuf>,
    json: bool,
    markdown: bool,
    seed: u64,
    numbers: u64,
    shards: Option<u32>,
    sync: SyncPolicy,
    no_journal: bool,
    journal_buffered: bool,
    journal_mib: Option<u64>,
    checkpoint_mib: Option<u64>,
    rocksdb_block_kib: usize,
    repeat: usize,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    match it.next().as_deref() {
        Some("append") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => bail!("unknown subcommand {other:?}\n{USAGE}"),
        None => bail!("a subcommand is needed\n{USAGE}"),
    }
    let mut a = Args {
        records: 1_000_000,
        threads: vec![1, 2, 8],
        group: 100,
        dir: None,
        json: false,
        markdown: false,
        seed: 42,
        numbers: WorkloadConfig::default().numbers,
        shards: None,
        sync: SyncPolicy::Data,
        no_journal: false,
        journal_buffered: false,
        journal_mib: None,
        checkpoint_mib: None,
        rocksdb_block_kib: 4,
        repeat: 1,
    };
    while let Some(flag) = it.next() {
        if flag == "--no-journal" {
            a.no_journal = true;
            continue;
        }
        if flag == "--journal-buffered" {
            a.journal_buffered = true;
            continue;
        }
        if flag == "--json" || flag == "--markdown" {
            a.json |= flag == "--json";
            a.markdown |= flag == "--markdown";
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--records" => a.records = parse_num(&flag, &v)?,
            "--threads" => {
                a.threads = v.split(',').map(|t| parse_num(&flag, t.trim())).collect::<Result<_>>()?;
            }
            "--group" => a.group = parse_num(&flag, &v)?,
            "--dir" => a.dir = Some(PathBuf::from(v)),
            "--seed" => a.seed = parse_num(&flag, &v)?,
            "--numbers" => a.numbers = parse_num(&flag, &v)?,
            "--shards" => a.shards = Some(parse_num(&flag, &v)?),
            "--sync" => {
                a.sync = match v.as_str() {
                    "data" => SyncPolicy::Data,
                    "full" => SyncPolicy::Full,
                    "none" => SyncPolicy::None,
                    _ => bail!("--sync: {v:?} is not data, full or none"),
                }
            }
            "--rocksdb-block-kib" => a.rocksdb_block_kib = parse_num(&flag, &v)?,
            "--repeat" => a.repeat = parse_num(&flag, &v)?,
            "--journal-mib" => a.journal_mib = Some(parse_num(&flag, &v)?),
            "--checkpoint-mib" => a.checkpoint_mib = Some(parse_num(&flag, &v)?),
            _ => bail!("unknown flag {flag:?}\n{USAGE}"),
        }
    }
    if a.records == 0 || a.group == 0 || a.rocksdb_block_kib == 0 || a.numbers == 0 {
        bail!("--records, --group, --numbers and --rocksdb-block-kib must be positive");
    }
    if !(1..=99).contains(&a.repeat) {
        bail!("--repeat: must be 1..=99");
    }
    if a.threads.is_empty() || a.threads.iter().any(|&t| t == 0 || t > 1024) {
        bail!("--threads: each count must be 1..=1024");
    }
    if a.json && a.markdown {
        bail!("--json and --markdown exclude each other");
    }
    Ok(a)
}

/// Where the benchmark ran.
#[derive(Debug, Clone, Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    date: String,
    kernel: String,
    dir: String,
    fs: String,
}

impl Machine {
    fn probe(dir: &Path) -> Self {
        let cpu = portlog_benches::host::cpu_model().unwrap_or_else(|| "unknown".into());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            date: portlog_engine::time::rfc3339_utc8(now_ms),
            kernel: portlog_benches::host::kernel_release().unwrap_or_else(|| "?".into()),
            dir: dir.display().to_string(),
            fs: fs_type(dir).unwrap_or_else(|| "?".into()),
        }
    }
}

/// What one engine run measured.
#[derive(Debug, Clone, Serialize)]
struct Row {
    engine: String,
    threads: usize,
    group: usize,
    records: u64,
    /// JSON-lines size of the records written.
    logical_bytes: u64,
    secs: f64,
    records_per_s: f64,
    appends_per_s: f64,
    /// Logical MB (10^6 bytes) per second.
    mb_per_s: f64,
    /// records/s of this row over RocksDB's with the same thread count.
    vs_rocksdb: f64,
    /// Seconds of portlog's `seal_all` or RocksDB's flush + full compaction.
    post_secs: f64,
    /// Every file of the data directory after sealing / compaction.
    disk_bytes: u64,
    disk_bytes_per_record: f64,
    /// Only the data files: portlog's `.seg`, RocksDB's `.sst`.
    data_bytes_per_record: f64,
    /// Data directory bytes per record before sealing / compaction.
    pre_bytes_per_record: f64,
    jsonl_bytes_per_record: f64,
    jsonl_zstd3_bytes_per_record: f64,
    /// records/s of every run of this engine and thread count (`--repeat`), in run order; the
    /// row's figures are the median one's.
    runs_records_per_s: Vec<f64>,
    /// portlog's group commits in the timed appends of the row's run (`None` for RocksDB, or
    /// with the journal off).
    journal: Option<JournalFigures>,
    /// The latency of one append call (portlog's `Log::append`, RocksDB's synced `write_opt`)
    /// over every call of the row's run.
    latency: Latency,
    machine: Machine,
}

/// Percentiles of the latency of one append call, in µs.
#[derive(Debug, Clone, Copy, Serialize)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// Calls that took over 10 ms.
    over_10ms: usize,
    /// The slowest call's place among its thread's calls (0: the first call, into a new data
    /// directory).
    slowest_call: usize,
}

impl Latency {
    /// From every call's latency in ns, each thread's in the order it made them.
    fn of(per_thread: Vec<Vec<u64>>) -> Self {
        let slowest_call =
            per_thread.iter().flat_map(|t| t.iter().enumerate()).max_by_key(|&(_, &v)| v).map_or(0, |(i, _)| i);
        let mut ns: Vec<u64> = per_thread.into_iter().flatten().collect();
        let over_10ms = ns.iter().filter(|&&v| v > 10_000_000).count();
        ns.sort_unstable();
        let q = |f: f64| quantile(&ns, f).map_or(0.0, |v| v as f64 / 1e3);
        let max_us = ns.last().map_or(0.0, |&v| v as f64 / 1e3);
        Latency { p50_us: q(0.5), p99_us: q(0.99), p999_us: q(0.999), max_us, over_10ms, slowest_call }
    }
}

/// How the journal grouped the appends of one run ([`JournalStats`] over the timed phase).
#[derive(Debug, Clone, Serialize)]
struct JournalFigures {
    frames: u64,
    appends_per_frame: f64,
    records_per_frame: f64,
    /// Mean time of a frame's write and fdatasync, in µs.
    sync_us: f64,
}

impl JournalFigures {
    fn of(j: &JournalStats) -> Self {
        let f = j.frames.max(1) as f64;
        JournalFigures {
            frames: j.frames,
            appends_per_frame: j.appends as f64 / f,
            records_per_frame: j.records as f64 / f,
            sync_us: j.sync_ns as f64 / 1e3 / f,
        }
    }
}

/// Runs `f` on each work item in its own thread, all released at once; returns the wall time
/// from the release until the last one finished, and the latencies (ns) each thread returned.
fn timed_threads<W: Send>(work: Vec<W>, f: impl Fn(W) -> Result<Vec<u64>> + Sync) -> Result<(f64, Vec<Vec<u64>>)> {
    let barrier = Barrier::new(work.len() + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|w| {
                let (b, f) = (&barrier, &f);
                s.spawn(move || {
                    b.wait();
                    f(w)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut first_err = None;
        let mut latencies = Vec::new();
        for h in handles {
            match h.join() {
                Ok(Ok(l)) => latencies.push(l),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow!("a writer thread panicked"));
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        first_err.map_or(Ok((secs, latencies)), Err)
    })
}

/// Indexes of the records of each thread: record `i` goes to thread `i % threads`.
fn split(n: usize, threads: usize) -> Vec<Vec<usize>> {
    (0..threads).map(|t| (t..n).step_by(threads).collect()).collect()
}

/// Raw measurements of one engine run, before they become a [`Row`].
struct Run {
    secs: f64,
    post_secs: f64,
    pre_bytes: u64,
    disk_bytes: u64,
    data_bytes: u64,
    journal: Option<JournalStats>,
    latency: Latency,
}

fn run_portlog(
    records: &[Record],
    threads: usize,
    group: usize,
    dir: &Path,
    cfg: LogConfig,
    now_ms: i64,
) -> Result<Run> {
    let log = Log::open(dir, cfg, Arc::new(ManualClock::new(now_ms)))?;
    // Cloning the records is set-up, not timed: append takes them by value.
    let work: Vec<Vec<Vec<Record>>> = split(records.len(), threads)
        .into_iter()
        .map(|idx| idx.chunks(group).map(|c| c.iter().map(|&i| records[i].clone()).collect()).collect())
        .collect();
    let (secs, ns) = timed_threads(work, |groups| {
        let mut ns = Vec::with_capacity(groups.len());
        for g in groups {
            let t = Instant::now();
            log.append(g)?;
            ns.push(t.elapsed().as_nanos() as u64);
        }
        Ok(ns)
    })?;
    // Before the seal: its checkpoints are not the appends' work.
    let journal = log.stats().journal;
    let pre_bytes = dir_bytes(dir, ".seg")?.total;
    let t = Instant::now();
    log.seal_all()?;
    let post_secs = t.elapsed().as_secs_f64();
    let st = log.stats();
    if st.records != records.len() as u64 || st.open_segments != 0 {
        bail!(
            "portlog holds {} records in {} open segments after seal_all; expected {} and 0",
            st.records,
            st.open_segments,
            records.len()
        );
    }
    log.close();
    let b = dir_bytes(dir, ".seg")?;
    Ok(Run { secs, post_secs, pre_bytes, disk_bytes: b.total, data_bytes: b.data, journal, latency: Latency::of(ns) })
}

fn run_rocksdb(records: &[Record], threads: usize, group: usize, dir: &Path, block_kib: usize) -> Result<Run> {
    let db = DB::open(&rocks_options(LogConfig::default().zstd_level, block_kib << 10), dir)?;
    let (secs, ns) = timed_threads(split(records.len(), threads), |idx| {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut value = Vec::with_capacity(1024);
        let mut ns = Vec::with_capacity(idx.len().div_ceil(group));
        for c in idx.chunks(group) {
            // Timed like portlog's call: building the batch is part of the append.
            let t = Instant::now();
            let mut batch = WriteBatch::default();
            for &i in c {
                value.clear();
                encode_value(&records[i], &mut value);
                batch.put(encode_key(&records[i], i as u64), &value);
            }
            db.write_opt(batch, &wo)?;
            ns.push(t.elapsed().as_nanos() as u64);
        }
        Ok(ns)
    })?;
    let pre_bytes = dir_bytes(dir, ".sst")?.total;
    let t = Instant::now();
    db.flush()?;
    db.compact_range::<&[u8], &[u8]>(None, None);
    let post_secs = t.elapsed().as_secs_f64();
    let held = db.iterator(rocksdb::IteratorMode::Start).count();
    if held != records.len() {
        bail!("RocksDB holds {held} records; expected {}", records.len());
    }
    drop(db);
    let b = dir_bytes(dir, ".sst")?;
    Ok(Run {
        secs,
        post_secs,
        pre_bytes,
        disk_bytes: b.total,
        data_bytes: b.data,
        journal: None,
        latency: Latency::of(ns),
    })
}

fn print_table(rows: &[Row], logical_per_record: f64, zstd_per_record: f64) {
    if let Some(m) = rows.first().map(|r| &r.machine) {
        println!("machine: {} cpus, {}, kernel {}, {}; data on {} ({})", m.nproc, m.cpu, m.kernel, m.date, m.dir, m.fs);
    }
    println!(
        "records: {} ({:.1} logical B/record as JSON lines); zstd -3 of the JSON lines: {:.1} B/record",
        rows.first().map_or(0, |r| r.records),
        logical_per_record,
        zstd_per_record
    );
    println!(
        "{:<34} {:>3} {:>6} {:>11} {:>10} {:>7} {:>8} {:>8} {:>9} {:>9} {:>10}",
        "engine",
        "thr",
        "group",
        "records/s",
        "appends/s",
        "MB/s",
        "vs rocks",
        "post s",
        "B/rec",
        "data B/r",
        "zstd-3 B/r"
    );
    for r in rows {
        println!(
            "{:<34} {:>3} {:>6} {:>11.0} {:>10.0} {:>7.2} {:>8.2} {:>8.2} {:>9.1} {:>9.1} {:>10.1}",
            r.engine,
            r.threads,
            r.group,
            r.records_per_s,
            r.appends_per_s,
            r.mb_per_s,
            r.vs_rocksdb,
            r.post_secs,
            r.disk_bytes_per_record,
            r.data_bytes_per_record,
            r.jsonl_zstd3_bytes_per_record
        );
    }
    if rows.first().is_some_and(|r| r.runs_records_per_s.len() > 1) {
        println!("{}", runs_line(rows));
    }
    if let Some(line) = journal_line(rows) {
        println!("{line}");
    }
    println!("{}", latency_line(rows));
    println!(
        "records/s and MB/s: wall time of the appends, every append durable (fdatasync / WAL sync) before it returns; \
         MB = 10^6 logical bytes (JSON lines). post s: portlog seal_all, RocksDB flush + full compaction. \
         B/rec: every file of the data directory afterwards, apart from portlog's journal (two files of a fixed size, written ahead and reused whatever the number of records); data B/r: .seg / .sst files only."
    );
}

/// The same figures as [`print_table`], as markdown for docs/benchmarks.md.
fn print_markdown(rows: &[Row], logical_per_record: f64, zstd_per_record: f64) {
    use portlog_benches::docs::thousands;
    let Some(first) = rows.first() else { return };
    let m = &first.machine;
    println!("Machine: {} cpus, {}, kernel {}; data on {} ({}).", m.nproc, m.cpu, m.kernel, m.dir, m.fs);
    println!(
        "{} records, {:.1} B/record as JSON lines, {:.1} B/record after zstd -3 of the JSON lines; groups of {} records, every append durable before it returns.",
        thousands(first.records),
        logical_per_record,
        zstd_per_record,
        thousands(first.group as u64)
    );
    println!("| engine | threads | records/s | MB/s (JSON bytes) | vs RocksDB | seal / compaction s | B/record on disk | .seg / .sst B/record | before settling B/record |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let vs = if r.engine.starts_with("rocksdb") { "1".to_string() } else { format!("{:.2}×", r.vs_rocksdb) };
        println!(
            "| {} | {} | {} | {:.1} | {vs} | {:.2} | {:.1} | {:.1} | {:.1} |",
            r.engine,
            r.threads,
            thousands(r.records_per_s.round() as u64),
            r.mb_per_s,
            r.post_secs,
            r.disk_bytes_per_record,
            r.data_bytes_per_record,
            r.pre_bytes_per_record
        );
    }
    if first.runs_records_per_s.len() > 1 {
        println!("{}", runs_line(rows));
        println!();
    }
    if let Some(line) = journal_line(rows) {
        println!("{line}");
        println!();
    }
    println!("{}", latency_line(rows));
    println!();
    println!(
        "MB = 10^6 bytes of the records as JSON lines. Seal / compaction: portlog's seal_all, RocksDB's flush + full compaction, after the timed appends; B/record on disk: every file of the data directory afterwards, apart from portlog's journal (two files of a fixed size, 2 × 64 MiB by default, written ahead and reused whatever the number of records)."
    );
}

/// "1 thread", "8 threads".
fn threads_label(n: usize) -> String {
    format!("{n} thread{}", if n == 1 { "" } else { "s" })
}

impl Row {
    /// "portlog at 8 threads": how the lines under the table name a row.
    fn engine_at_threads(&self) -> String {
        format!("{} at {}", self.engine, threads_label(self.threads))
    }
}

/// With `--repeat`: how many runs each row is the median of, and every run's records/s.
fn runs_line(rows: &[Row]) -> String {
    use portlog_benches::docs::thousands;
    let k = rows.first().map_or(0, |r| r.runs_records_per_s.len());
    let each: Vec<String> = rows
        .iter()
        .map(|r| {
            let rates: Vec<String> = r.runs_records_per_s.iter().map(|x| thousands(x.round() as u64)).collect();
            format!("{}: {}", r.engine_at_threads(), rates.join(" / "))
        })
        .collect();
    format!(
        "Each row is the median of {k} runs by records/s, the two engines alternated run by run (seal and disk figures are that run's). records/s of every run, in order: {}.",
        each.join("; ")
    )
}

/// How portlog's journal grouped the appends in each row's run: frames (one fdatasync each),
/// appends and records a frame, and the mean write + fdatasync of a frame.
fn journal_line(rows: &[Row]) -> Option<String> {
    use portlog_benches::docs::thousands;
    let each: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let j = r.journal.as_ref()?;
            Some(format!(
                "{}: {} frames, {:.2} appends ({:.0} records) a frame, {:.0} µs a frame's write and fdatasync",
                threads_label(r.threads),
                thousands(j.frames),
                j.appends_per_frame,
                j.records_per_frame,
                j.sync_us
            ))
        })
        .collect();
    (!each.is_empty()).then(|| {
        format!(
            "portlog's journal in each row's run (`Log::stats().journal` over the timed appends), {}.",
            each.join("; ")
        )
    })
}

/// The latency of one append call in each row's run: p50, p99, p99.9 and max (with the
/// slowest call's place in its thread), and the calls over 10 ms.
fn latency_line(rows: &[Row]) -> String {
    use portlog_benches::docs::thousands;
    let us = |v: f64| {
        if v >= 10_000.0 {
            format!("{:.0} ms", v / 1e3)
        } else if v >= 1_000.0 {
            format!("{:.1} ms", v / 1e3)
        } else {
            format!("{v:.0} µs")
        }
    };
    let each: Vec<String> = rows
        .iter()
        .map(|r| {
            let l = &r.latency;
            format!(
                "{}: {} / {} / {} / {} (call {}), {} over 10 ms",
                r.engine_at_threads(),
                us(l.p50_us),
                us(l.p99_us),
                us(l.p999_us),
                us(l.max_us),
                thousands(l.slowest_call as u64),
                l.over_10ms
            )
        })
        .collect();
    format!(
        "Latency of one append call in each row's run, p50 / p99 / p99.9 / max (the slowest call's place among its thread's calls, from 0), and the calls over 10 ms: {}.",
        each.join("; ")
    )
}

/// Groups timed by the fdatasync floor (about half a second at this disk's rates).
const FLOOR_GROUPS_MAX: usize = 3_000;

/// The floor as one sentence, with the ratio to RocksDB's one-thread rate when it ran.
fn floor_line(f: &FsyncFloor, group: usize, rocks_1t: Option<f64>) -> String {
    use portlog_benches::docs::thousands;
    let rec = |gps: f64| gps * group as f64;
    let vs = |gps: f64| rocks_1t.map(|r| format!(", {:.2}× RocksDB's 1-thread rate", rec(gps) / r)).unwrap_or_default();
    format!(
        "fdatasync floor of this disk, same run: {} writes of {} B (one group's records as JSON lines), each followed by fdatasync, 1 thread: appending to a file {} groups/s = {} records/s{}; overwriting a prewritten file {} groups/s = {} records/s{}. No engine that makes each group durable with one fdatasync of its own passes these at 1 thread.",
        thousands(f.groups as u64),
        thousands(f.group_bytes as u64),
        thousands(f.append_groups_per_s.round() as u64),
        thousands(rec(f.append_groups_per_s).round() as u64),
        vs(f.append_groups_per_s),
        thousands(f.prewritten_groups_per_s.round() as u64),
        thousands(rec(f.prewritten_groups_per_s).round() as u64),
        vs(f.prewritten_groups_per_s),
    )
}

fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let base = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => scratch_base()?,
    };
    let root = tempfile::Builder::new().prefix("portlog-bench-").tempdir_in(&base)?;
    let machine = Machine::probe(root.path());

    let t = Instant::now();
    let templates = Arc::new(Templates::load_default()?);
    let wl = WorkloadConfig { seed: args.seed, numbers: args.numbers, ..WorkloadConfig::default() };
    let records: Vec<Record> = Generator::new(templates, wl)?.take(args.records).collect();
    let now_ms = records.iter().map(|r| r.ts_ms).max().unwrap_or(0) + 1_000;
    let n = records.len() as u64;
    let (logical, zstd3) = jsonl_zstd_bytes(&records, 3)?;
    eprintln!(
        "generated {n} records in {:.1} s: {:.1} B/record as JSON lines, {:.1} B/record after zstd -3; data in {} ({})",
        t.elapsed().as_secs_f64(),
        logical as f64 / n as f64,
        zstd3 as f64 / n as f64,
        root.path().display(),
        machine.fs
    );

    let mut cfg = LogConfig { sync: args.sync, ..LogConfig::default() };
    if let Some(s) = args.shards {
        cfg.shards = s;
    }
    cfg.journal = !args.no_journal;
    cfg.journal_direct_io = !args.journal_buffered;
    if let Some(m) = args.journal_mib {
        cfg.journal_file_bytes = m << 20;
    }
    if let Some(m) = args.checkpoint_mib {
        cfg.checkpoint_bytes = m << 20;
    }
    let mut label = String::from("portlog");
    if args.shards.is_some() || args.sync != SyncPolicy::Data {
        label = format!("portlog(shards={},sync={:?})", cfg.shards, cfg.sync).to_lowercase();
    }
    if args.no_journal {
        label.push_str("(no journal)");
    }
    if args.journal_buffered {
        label.push_str("(journal buffered)");
    }
    let rocks_label = if args.rocksdb_block_kib == 4 {
        "rocksdb".to_owned()
    } else {
        format!("rocksdb(block={}k)", args.rocksdb_block_kib)
    };

    let mut rows = Vec::new();
    for &threads in &args.threads {
        // Every run of each engine, the engines alternated so that the disk's drifts fall on both.
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..args.repeat {
            for (e, (engine, portlog)) in [(&label, true), (&rocks_label, false)].into_iter().enumerate() {
                let dir = root.path().join(format!("{}-{threads}t", if portlog { "portlog" } else { "rocksdb" }));
                let run = if portlog {
                    run_portlog(&records, threads, args.group, &dir, cfg.clone(), now_ms)?
                } else {
                    run_rocksdb(&records, threads, args.group, &dir, args.rocksdb_block_kib)?
                };
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                eprintln!(
                    "{engine}, {threads} threads: {:.0} records/s, {:.2} MB/s, {:.1} B/record on disk",
                    n as f64 / run.secs,
                    logical as f64 / 1e6 / run.secs,
                    run.disk_bytes as f64 / n as f64
                );
                runs[e].push(run);
            }
        }
        let mut pair = Vec::new();
        for (engine, runs) in [&label, &rocks_label].into_iter().zip(runs) {
            let rates: Vec<f64> = runs.iter().map(|r| n as f64 / r.secs).collect();
            let mut by_rate: Vec<&Run> = runs.iter().collect();
            by_rate.sort_by(|a, b| b.secs.total_cmp(&a.secs));
            let Some(run) = by_rate.get((by_rate.len() - 1) / 2) else { continue };
            let per = |b: u64| b as f64 / n as f64;
            pair.push(Row {
                engine: engine.clone(),
                threads,
                group: args.group,
                records: n,
                logical_bytes: logical,
                secs: run.secs,
                records_per_s: n as f64 / run.secs,
                appends_per_s: n.div_ceil(args.group as u64) as f64 / run.secs,
                mb_per_s: logical as f64 / 1e6 / run.secs,
                vs_rocksdb: 1.0,
                post_secs: run.post_secs,
                disk_bytes: run.disk_bytes,
                disk_bytes_per_record: per(run.disk_bytes),
                data_bytes_per_record: per(run.data_bytes),
                pre_bytes_per_record: per(run.pre_bytes),
                jsonl_bytes_per_record: per(logical),
                jsonl_zstd3_bytes_per_record: per(zstd3),
                runs_records_per_s: rates,
                journal: run.journal.as_ref().map(JournalFigures::of),
                latency: run.latency,
                machine: machine.clone(),
            });
        }
        let rocks_rate = pair[1].records_per_s;
        pair[0].vs_rocksdb = pair[0].records_per_s / rocks_rate;
        rows.extend(pair);
    }

    // The disk's own limit, measured in the same run: one thread, groups of the same size.
    let group_bytes = (logical as f64 / n as f64 * args.group as f64).round() as usize;
    let groups = (n as usize).div_ceil(args.group).clamp(1, FLOOR_GROUPS_MAX);
    let floor = fsync_floor(root.path(), group_bytes, groups)?;
    eprintln!(
        "fdatasync floor ({groups} groups of {group_bytes} B, 1 thread): appending {:.0} groups/s, prewritten {:.0} groups/s",
        floor.append_groups_per_s, floor.prewritten_groups_per_s
    );
    let rocks_1t = rows.iter().find(|r| r.engine == rocks_label && r.threads == 1).map(|r| r.records_per_s);

    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        println!("{}", serde_json::json!({ "fsync_floor": floor, "group": args.group }));
    } else if args.markdown {
        print_markdown(&rows, logical as f64 / n as f64, zstd3 as f64 / n as f64);
        println!();
        println!("{}", floor_line(&floor, args.group, rocks_1t));
    } else {
        print_table(&rows, logical as f64 / n as f64, zstd3 as f64 / n as f64);
        println!("{}", floor_line(&floor, args.group, rocks_1t));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args> {
        parse_args(a.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let a = args(&["append", "--records", "1_000", "--threads", "1, 4", "--json", "--sync", "none"]).unwrap();
        assert_eq!((a.records, a.threads, a.group, a.json, a.sync), (1_000, vec![1, 4], 100, true, SyncPolicy::None));
        assert!(args(&["append", "--group", "0"]).is_err());
        assert!(args(&["append", "--threads", "1,x"]).unwrap_err().to_string().contains("--threads"));
        assert!(args(&["append", "--records"]).is_err());
        assert!(args(&["load"]).is_err());
        assert!(args(&["append", "--markdown"]).unwrap().markdown);
        assert!(args(&["append", "--json", "--markdown"]).is_err());
        assert_eq!(args(&["append"]).unwrap().repeat, 1);
        assert_eq!(args(&["append", "--repeat", "3"]).unwrap().repeat, 3);
        assert!(args(&["append", "--repeat", "0"]).unwrap_err().to_string().contains("--repeat"));
    }

    #[test]
    fn splits_round_robin() {
        assert_eq!(split(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(split(1, 3), vec![vec![0], vec![], vec![]]);
    }
}
