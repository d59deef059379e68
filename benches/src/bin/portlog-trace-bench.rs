//! `portlog-trace-bench`: `Log::trace` of one number over the whole window, against a full scan,
//! on generated data spread over daily segments (issue 5, must-show 2).
//!
//! ```text
//! portlog-trace-bench [--records N] [--days 150] [--shards 4] [--queries 1000] [--cold-queries N]
//!                     [--scan-numbers 3] [--reopen-queries 3] [--numbers N] [--seed 42] [--block-kib 256]
//!                     [--dir DIR | --data DIR] [--json | --markdown]
//! ```
//!
//! Load: `--records` records from the benches' generator (`portlog_benches::Generator`, seed
//! `--seed`, `--numbers` distinct numbers with its default Zipf 0.8 popularity), their times
//! spread evenly over `--days` days starting 2026-05-01 09:00 (UTC+8), appended in groups of
//! 10,000 with `SyncPolicy::None` (the load is set-up, not measured; sealed files are fsynced by
//! the sealer whatever the policy) on an engine whose `ManualClock` stands just after the last
//! day, so that every record is back-dated and each shard ends with one sealed segment a day.
//!
//! Queries: `--queries` numbers drawn uniformly (seeded) from the distinct numbers that occur
//! in the data; each is traced over the whole window and its records counted.
//! * warm: after one untimed pass over the same numbers (page cache and the engine's parsed
//!   footers warm), one timed pass;
//! * cold: before each of `--cold-queries` traces, every sealed segment's pages are dropped:
//!   `Log::release_sealed_pages` (`madvise(MADV_DONTNEED)` on the engine's maps) then
//!   `posix_fadvise(POSIX_FADV_DONTNEED)` on every `.seg` file. The process keeps its parsed
//!   footers (block tables, verified checksums), as a running server would; the bytes come
//!   from the disk. The remaining page-cache residency is measured with `fincore` after one
//!   such eviction.
//! * full scan: for `--scan-numbers` of the numbers, `Log::scan_shard` of every shard over the
//!   window, keeping that number's records, timed the same way (warm page cache) and checked
//!   to give exactly the trace's records.
//! * first trace after open: for `--reopen-queries` of the numbers, the log is closed, the
//!   files' pages dropped, the log reopened and one trace timed: nothing is cached, and every
//!   overlapping segment's number filter is read and verified on the way.
//!
//! `--data DIR` keeps the data directory (and the list of its numbers) in DIR and reuses it
//! when DIR already holds one made with the same `--records`, `--days`, `--shards`, `--numbers`
//! and `--seed`; otherwise the data goes to a temporary directory under `--dir` (default: the
//! temp dir, or the current directory when that is a tmpfs) removed at the end.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::args::parse_num;
use portlog_benches::disk::{dir_bytes, fs_type, scratch_base};
use portlog_benches::{Generator, Record, Templates, WorkloadConfig, DEFAULT_START_MS};
use portlog_engine::time::DAY_MS;
use portlog_engine::{Log, LogConfig, ManualClock, PendingAppend, PhoneNumber, SyncPolicy, TraceQuery};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: portlog-trace-bench [--records N] [--days 150] [--shards 4] [--queries 1000]
                          [--cold-queries N] [--scan-numbers 3] [--reopen-queries 3] [--numbers N] [--seed 42]
                          [--block-kib 256] [--dict-kib 64] [--whole-texts] [--zstd-blocks] [--block-records N] [--dir DIR | --data DIR] [--json | --markdown]

  --records N        records to generate (default 10000000)
  --days N           daily segments per shard the records are spread over (default 150)
  --shards N         shards (default 4)
  --queries N        numbers traced warm (default 1000)
  --cold-queries N   of those, how many are also traced cold (default: all)
  --scan-numbers N   of those, how many are also found by a full scan (default 3)
  --reopen-queries N of those, how many are traced right after reopening the log on an
                     emptied page cache (default 3)
  --numbers N        distinct numbers of the workload (default 1000000, the generator's)
  --seed N           workload and sampling seed (default 42)
  --block-kib N      block_bytes_max of the sealed segments in KiB (default: LogConfig's)
  --dict-kib N       zstd_dict_bytes of the sealed segments in KiB, 0 for none (default: LogConfig's)
  --whole-texts      text_templates off: sealed texts stored whole (the layout before format 4)
  --zstd-blocks      packed_blocks off: templated blocks compressed by zstd (format 4)
  --block-records N  block_records_max of the sealed segments (default: LogConfig's)
  --dir DIR          where the temporary data directory goes; removed afterwards
  --data DIR         keep the data directory in DIR, reusing it if it matches
  --json             one JSON object instead of the text report
  --markdown         the report with its table as markdown (docs/benchmarks.md, `./x bench-docs`)";

/// Records per append call during the load.
const GROUP: usize = 10_000;
/// Append calls in flight during the load.
const IN_FLIGHT: usize = 4;

#[derive(Debug)]
struct Args {
    records: u64,
    days: i64,
    shards: u32,
    queries: usize,
    cold_queries: Option<usize>,
    scan_numbers: usize,
    reopen_queries: usize,
    numbers: u64,
    seed: u64,
    block_kib: usize,
    dict_kib: usize,
    whole_texts: bool,
    zstd_blocks: bool,
    block_records: usize,
    dir: Option<PathBuf>,
    data: Option<PathBuf>,
    json: bool,
    markdown: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        records: 10_000_000,
        days: 150,
        shards: 4,
        queries: 1_000,
        cold_queries: None,
        scan_numbers: 3,
        reopen_queries: 3,
        numbers: 1_000_000,
        seed: 42,
        block_kib: LogConfig::default().block_bytes_max >> 10,
        dict_kib: LogConfig::default().zstd_dict_bytes >> 10,
        whole_texts: false,
        zstd_blocks: false,
        block_records: LogConfig::default().block_records_max,
        dir: None,
        data: None,
        json: false,
        markdown: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => {
                a.json = true;
                continue;
            }
            "--markdown" => {
                a.markdown = true;
                continue;
            }
            "--whole-texts" => {
                a.whole_texts = true;
                continue;
            }
            "--zstd-blocks" => {
                a.zstd_blocks = true;
                continue;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--records" => a.records = parse_num(&flag, &v)?,
            "--days" => a.days = parse_num(&flag, &v)?,
            "--shards" => a.shards = parse_num(&flag, &v)?,
            "--queries" => a.queries = parse_num(&flag, &v)?,
            "--cold-queries" => a.cold_queries = Some(parse_num(&flag, &v)?),
            "--scan-numbers" => a.scan_numbers = parse_num(&flag, &v)?,
            "--reopen-queries" => a.reopen_queries = parse_num(&flag, &v)?,
            "--numbers" => a.numbers = parse_num(&flag, &v)?,
            "--seed" => a.seed = parse_num(&flag, &v)?,
            "--block-kib" => a.block_kib = parse_num(&flag, &v)?,
            "--dict-kib" => a.dict_kib = parse_num(&flag, &v)?,
            "--block-records" => a.block_records = parse_num(&flag, &v)?,
            "--dir" => a.dir = Some(PathBuf::from(v)),
            "--data" => a.data = Some(PathBuf::from(v)),
            _ => bail!("unknown flag {flag:?}\n{USAGE}"),
        }
    }
    if a.records == 0 || a.days <= 0 || a.days > 3_650 || a.queries == 0 || a.numbers == 0 {
        bail!("--records, --days, --queries and --numbers must be positive (--days at most 3650)");
    }
    if !(4..=16_384).contains(&a.block_kib) {
        bail!("--block-kib must be 4..=16384");
    }
    if a.shards == 0 || a.shards > 1024 {
        bail!("--shards must be 1..=1024");
    }
    if a.dir.is_some() && a.data.is_some() {
        bail!("--dir and --data exclude each other");
    }
    if a.json && a.markdown {
        bail!("--json and --markdown exclude each other");
    }
    Ok(a)
}

/// What identifies a data set, stored beside it for `--data` reuse.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct DataSet {
    records: u64,
    days: i64,
    shards: u32,
    numbers: u64,
    seed: u64,
    #[serde(default = "default_block_kib")]
    block_kib: usize,
    #[serde(default)]
    dict_kib: usize,
    /// Texts stored whole (no templates; data sets written before format 4 are).
    #[serde(default = "default_whole_texts")]
    whole_texts: bool,
    /// Templated blocks compressed by zstd rather than packed (data sets written before
    /// format 5 are).
    #[serde(default = "default_zstd_blocks")]
    zstd_blocks: bool,
    /// Most records per block (0: data sets written before the knob, 96 or no bound).
    #[serde(default)]
    block_records: usize,
    /// Seconds the load took (generation, appends and sealing).
    load_secs: f64,
}

fn default_block_kib() -> usize {
    256
}

fn default_whole_texts() -> bool {
    true
}

fn default_zstd_blocks() -> bool {
    true
}

const SET_FILE: &str = "trace-bench-set.json";
const NUMBERS_FILE: &str = "trace-bench-numbers.bin";

fn config(a: &Args) -> LogConfig {
    LogConfig {
        shards: a.shards,
        sync: SyncPolicy::None,
        block_bytes_max: a.block_kib << 10,
        zstd_dict_bytes: a.dict_kib << 10,
        text_templates: !a.whole_texts,
        packed_blocks: !a.zstd_blocks,
        block_records_max: a.block_records,
        ..LogConfig::default()
    }
}

/// Time after the last record: the engine clock of the whole benchmark.
fn clock_ms(days: i64) -> i64 {
    let day0 = DEFAULT_START_MS - 9 * 3_600_000;
    day0 + days * DAY_MS + 3 * 3_600_000
}

/// Generates and appends the records, seals everything; returns the distinct numbers.
fn load(dir: &Path, a: &Args) -> Result<(Vec<u64>, f64)> {
    let t0 = Instant::now();
    let templates = Arc::new(Templates::load_default()?);
    // Records from 09:00 on the first day until before the end of the last one. Poisson
    // arrivals end about sqrt(N) gaps off their expected end: keep six of those and 3 h of
    // margin so that no record falls after the last day.
    let full_s = (a.days * DAY_MS - 9 * 3_600_000) as f64 / 1000.0;
    let sigma_s = full_s / (a.records as f64).sqrt();
    let span_s = (full_s - 3.0 * 3600.0 - 6.0 * sigma_s).max(full_s / 2.0);
    let wl = WorkloadConfig {
        seed: a.seed,
        numbers: a.numbers,
        start_ms: DEFAULT_START_MS,
        rate_per_s: a.records as f64 / span_s,
        ..WorkloadConfig::default()
    };
    let log = Log::open(dir, config(a), Arc::new(ManualClock::new(clock_ms(a.days))))?;
    let mut gen = Generator::new(templates, wl)?;
    let mut numbers: HashSet<u64> = HashSet::new();
    let mut pending: VecDeque<PendingAppend> = VecDeque::new();
    let mut done = 0u64;
    let mut next_report = 10_000_000u64;
    while done < a.records {
        let n = (a.records - done).min(GROUP as u64) as usize;
        let batch: Vec<Record> = gen.by_ref().take(n).collect();
        numbers.extend(batch.iter().map(|r| r.peer.as_u64()));
        if pending.len() >= IN_FLIGHT {
            pending.pop_front().map_or(Ok(()), PendingAppend::wait)?;
        }
        pending.push_back(log.submit(batch)?);
        done += n as u64;
        if done >= next_report {
            eprintln!(
                "  {done} records in {:.0} s ({:.0}/s)",
                t0.elapsed().as_secs_f64(),
                done as f64 / t0.elapsed().as_secs_f64()
            );
            next_report += 10_000_000;
        }
    }
    for p in pending {
        p.wait()?;
    }
    log.seal_all()?;
    let st = log.stats();
    if st.records != a.records || st.open_segments != 0 {
        bail!("the log holds {} records, {} open segments after seal_all", st.records, st.open_segments);
    }
    log.close();
    let mut numbers: Vec<u64> = numbers.into_iter().collect();
    numbers.sort_unstable();
    Ok((numbers, t0.elapsed().as_secs_f64()))
}

/// The data directory, loaded or reused; its distinct numbers; the load time.
fn prepare(a: &Args, data: &Path) -> Result<(Vec<u64>, f64, bool)> {
    let want = |load_secs| DataSet {
        records: a.records,
        days: a.days,
        shards: a.shards,
        numbers: a.numbers,
        seed: a.seed,
        block_kib: a.block_kib,
        dict_kib: a.dict_kib,
        whole_texts: a.whole_texts,
        zstd_blocks: a.zstd_blocks,
        block_records: a.block_records,
        load_secs,
    };
    if let Ok(s) = std::fs::read_to_string(data.join(SET_FILE)) {
        let have: DataSet = serde_json::from_str(&s).context("reading the data set description")?;
        if have == want(have.load_secs) {
            let raw = std::fs::read(data.join(NUMBERS_FILE)).context("reading the numbers list")?;
            let numbers = raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
            return Ok((numbers, have.load_secs, true));
        }
        bail!("{} holds a different data set ({have:?}); remove it or choose another --data", data.display());
    }
    if data.join("MANIFEST").exists() {
        bail!("{} holds a data directory without {SET_FILE}; remove it or choose another --data", data.display());
    }
    let (numbers, secs) = load(data, a)?;
    let raw: Vec<u8> = numbers.iter().flat_map(|n| n.to_le_bytes()).collect();
    std::fs::write(data.join(NUMBERS_FILE), raw)?;
    std::fs::write(data.join(SET_FILE), serde_json::to_string(&want(secs))?)?;
    Ok((numbers, secs, false))
}

/// Bytes of each footer section kind over every sealed segment, read from the files' section
/// tables (docs/format.md).
#[derive(Debug, Default, Clone, Serialize)]
struct Footers {
    segments: u64,
    seg_bytes: u64,
    block_table: u64,
    sub_port_index: u64,
    number_index: u64,
    number_filter: u64,
    /// Section tables and trailers.
    tables: u64,
}

fn seg_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir.join("log"))? {
        for e in std::fs::read_dir(shard?.path())? {
            let p = e?.path();
            if p.extension().is_some_and(|e| e == "seg") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn footers(files: &[PathBuf]) -> Result<Footers> {
    let mut f = Footers::default();
    for p in files {
        let file = std::fs::File::open(p)?;
        let len = file.metadata()?.len();
        let mut t = [0u8; 56];
        file.read_exact_at(&mut t, len - 56)?;
        let so = u64::from_le_bytes(t[24..32].try_into()?);
        let k = u32::from_le_bytes(t[32..36].try_into()?) as usize;
        let mut table = vec![0u8; k * 32];
        file.read_exact_at(&mut table, so)?;
        for e in table.chunks_exact(32) {
            let kind = u32::from_le_bytes(e[..4].try_into()?);
            let l = u64::from_le_bytes(e[16..24].try_into()?);
            match kind {
                1 => f.block_table += l,
                2 => f.sub_port_index += l,
                3 => f.number_index += l,
                4 => f.number_filter += l,
                _ => {}
            }
        }
        f.tables += (k * 32 + 56) as u64;
        f.segments += 1;
        f.seg_bytes += len;
    }
    Ok(f)
}

/// Drops the segment files' pages: the engine's mappings, then the page cache.
fn evict(log: &Log, files: &[std::fs::File]) -> Result<()> {
    log.release_sealed_pages()?;
    drop_page_cache(files)
}

/// `posix_fadvise(DONTNEED)` on each file: its unmapped pages leave the page cache.
fn drop_page_cache(files: &[std::fs::File]) -> Result<()> {
    for f in files {
        // SAFETY: posix_fadvise only reads its arguments; the descriptor is open.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            bail!("posix_fadvise: error {rc}");
        }
    }
    Ok(())
}

/// Page-cache bytes of `files` according to `fincore`, if it is installed.
fn resident_bytes(files: &[PathBuf]) -> Option<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .args(files)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.lines().map(|l| l.trim().parse::<u64>().ok()).sum()
}

/// One trace: (total time, time to the first record, records).
fn trace_one(log: &Log, n: u64, from: i64, to: i64) -> Result<(Duration, Duration, u64)> {
    let q = TraceQuery::new(PhoneNumber::from_u64(n).ok_or_else(|| anyhow!("{n} is not a number"))?).window(from, to);
    let t = Instant::now();
    let mut it = log.trace(&q)?;
    let mut count = 0u64;
    let mut first = None;
    for r in it.by_ref() {
        r?;
        count += 1;
        if first.is_none() {
            first = Some(t.elapsed());
        }
    }
    let total = t.elapsed();
    Ok((total, first.unwrap_or(total), count))
}

#[derive(Debug, Clone, Serialize)]
struct Dist {
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

fn dist(mut v: Vec<Duration>) -> Dist {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = v.len();
    let at = |p: f64| ms(v[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]);
    Dist {
        n,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: ms(v[n - 1]),
        mean_ms: v.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
    }
}

fn percentile_u64(mut v: Vec<u64>, p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    data_dir: String,
    fs: String,
    records: u64,
    days: i64,
    shards: u32,
    block_kib: usize,
    dict_kib: usize,
    whole_texts: bool,
    zstd_blocks: bool,
    block_records: usize,
    distinct_numbers: usize,
    load_secs: f64,
    reused: bool,
    disk_bytes: u64,
    footers: Footers,
    /// Number index + number filter over the .seg bytes.
    number_index_and_filter_fraction: f64,
    /// Every footer section over the .seg bytes.
    footer_fraction: f64,
    queries: usize,
    records_per_trace_p50: u64,
    records_per_trace_p99: u64,
    records_per_trace_max: u64,
    warm: Dist,
    warm_first_record: Dist,
    cold: Dist,
    cold_first_record: Dist,
    resident_after_evict_bytes: Option<u64>,
    scan: Dist,
    scan_records: Vec<u64>,
    first_trace_after_open: Option<Dist>,
    speedup_scan_p50_over_warm_p50: f64,
    speedup_scan_p50_over_warm_p99: f64,
    speedup_scan_p50_over_cold_p99: f64,
}

fn machine() -> String {
    let cpu = portlog_benches::host::cpu_model().unwrap_or_else(|| "unknown cpu".into());
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = portlog_benches::host::kernel_release().unwrap_or_else(|| "?".into());
    format!("{nproc} cpus, {cpu}, kernel {kernel}")
}

fn main() -> Result<()> {
    let a = parse_args(std::env::args().skip(1))?;
    let (tmp, data) = match &a.data {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let base = match &a.dir {
                Some(d) => d.clone(),
                None => scratch_base()?,
            };
            std::fs::create_dir_all(&base)?;
            let t = tempfile::Builder::new().prefix("portlog-trace-bench-").tempdir_in(&base)?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    eprintln!("data in {} ({})", data.display(), fs_type(&data).unwrap_or_else(|| "?".into()));
    let (numbers, load_secs, reused) = prepare(&a, &data)?;
    eprintln!(
        "{} {} records over {} days, {} distinct numbers, in {:.0} s",
        if reused { "reused" } else { "loaded" },
        a.records,
        a.days,
        numbers.len(),
        load_secs
    );
    let disk = dir_bytes(&data, ".seg")?;
    let files = seg_files(&data)?;
    let foot = footers(&files)?;

    let mut log = Log::open(&data, config(&a), Arc::new(ManualClock::new(clock_ms(a.days))))?;
    let st = log.stats();
    let (from, to) = (st.oldest_ts_ms.unwrap_or(0), st.newest_ts_ms.unwrap_or(0) + 1);

    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed ^ 0x0074_7261_6365);
    let sample: Vec<u64> = numbers.choose_multiple(&mut rng, a.queries.min(numbers.len())).copied().collect();

    // Warm-up pass, then the timed warm pass.
    let t = Instant::now();
    for &n in &sample {
        trace_one(&log, n, from, to)?;
    }
    eprintln!("warm-up pass: {:.1} s", t.elapsed().as_secs_f64());
    let (mut warm, mut warm_first, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for &n in &sample {
        let (d, f, c) = trace_one(&log, n, from, to)?;
        warm.push(d);
        warm_first.push(f);
        counts.push(c);
    }
    eprintln!("warm pass done: p50 {:.2} ms", dist(warm.clone()).p50_ms);

    // Cold.
    let handles: Vec<std::fs::File> = files.iter().map(std::fs::File::open).collect::<std::io::Result<_>>()?;
    evict(&log, &handles)?;
    let resident = resident_bytes(&files);
    let cold_n = a.cold_queries.unwrap_or(sample.len()).min(sample.len()).max(1);
    let (mut cold, mut cold_first) = (Vec::new(), Vec::new());
    for (i, &n) in sample.iter().take(cold_n).enumerate() {
        evict(&log, &handles)?;
        let (d, f, c) = trace_one(&log, n, from, to)?;
        if c != counts[i] {
            bail!("cold trace of {n} gave {c} records, warm gave {}", counts[i]);
        }
        cold.push(d);
        cold_first.push(f);
    }
    eprintln!("cold pass done: p50 {:.2} ms", dist(cold.clone()).p50_ms);

    // Full scans of a few of the numbers, checked against the trace.
    let mut scans = Vec::new();
    let mut scan_records = Vec::new();
    for &n in sample.iter().take(a.scan_numbers.max(1)) {
        let t = Instant::now();
        let mut found: Vec<Record> = Vec::new();
        for s in 0..log.shard_count() {
            for r in log.scan_shard(s, from, to)? {
                let r = r?;
                if r.peer.as_u64() == n {
                    found.push(r);
                }
            }
        }
        found.sort_by_key(|r| r.ts_ms);
        scans.push(t.elapsed());
        let q = TraceQuery::new(PhoneNumber::from_u64(n).ok_or_else(|| anyhow!("bad number"))?).window(from, to);
        let traced: Vec<Record> = log.trace(&q)?.collect::<Result<_, _>>()?;
        let key = |v: &[Record]| {
            let mut k: Vec<(i64, String, String)> =
                v.iter().map(|r| (r.ts_ms, r.sub_port.to_string(), r.text.clone())).collect();
            k.sort();
            k
        };
        if key(&found) != key(&traced) {
            bail!("the full scan found {} records of {n}, the trace {}", found.len(), traced.len());
        }
        eprintln!("full scan for {n}: {:.1} s, {} records", t.elapsed().as_secs_f64(), found.len());
        scan_records.push(found.len() as u64);
    }

    // The first trace after opening, nothing cached anywhere: every overlapping segment's
    // filter is read and verified once.
    let mut first_after_open = Vec::new();
    for &n in sample.iter().take(a.reopen_queries) {
        log.close();
        drop_page_cache(&handles)?;
        log = Log::open(&data, config(&a), Arc::new(ManualClock::new(clock_ms(a.days))))?;
        first_after_open.push(trace_one(&log, n, from, to)?.0);
    }
    log.close();

    let index_and_filter = foot.number_index + foot.number_filter;
    let footer_total = foot.block_table + foot.sub_port_index + foot.number_index + foot.number_filter + foot.tables;
    let (warm_d, cold_d, scan_d) = (dist(warm), dist(cold), dist(scans));
    let report = Report {
        machine: machine(),
        data_dir: data.display().to_string(),
        fs: fs_type(&data).unwrap_or_else(|| "?".into()),
        records: a.records,
        days: a.days,
        shards: a.shards,
        block_kib: a.block_kib,
        dict_kib: a.dict_kib,
        whole_texts: a.whole_texts,
        zstd_blocks: a.zstd_blocks,
        block_records: a.block_records,
        distinct_numbers: numbers.len(),
        load_secs,
        reused,
        disk_bytes: disk.total,
        number_index_and_filter_fraction: index_and_filter as f64 / foot.seg_bytes as f64,
        footer_fraction: footer_total as f64 / foot.seg_bytes as f64,
        footers: foot,
        queries: sample.len(),
        records_per_trace_p50: percentile_u64(counts.clone(), 0.5),
        records_per_trace_p99: percentile_u64(counts.clone(), 0.99),
        records_per_trace_max: counts.iter().copied().max().unwrap_or(0),
        speedup_scan_p50_over_warm_p50: scan_d.p50_ms / warm_d.p50_ms,
        speedup_scan_p50_over_warm_p99: scan_d.p50_ms / warm_d.p99_ms,
        speedup_scan_p50_over_cold_p99: scan_d.p50_ms / cold_d.p99_ms,
        warm: warm_d,
        warm_first_record: dist(warm_first),
        cold: cold_d,
        cold_first_record: dist(cold_first),
        resident_after_evict_bytes: resident,
        scan: scan_d,
        scan_records,
        first_trace_after_open: (!first_after_open.is_empty()).then(|| dist(first_after_open)),
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, a.markdown);
    }
    drop(tmp);
    Ok(())
}

/// The text report; with `markdown`, its table as a markdown table (one statement per line
/// either way).
fn print_report(r: &Report, markdown: bool) {
    let f = &r.footers;
    let mb = |b: u64| b as f64 / 1e6;
    println!("machine: {}; data in {} ({})", r.machine, r.data_dir, r.fs);
    println!(
        "data: {} records, {} days x {} shards = {} sealed segments ({} KiB or {} records blocks, {} KiB dictionary, texts {}), {} distinct numbers; load {:.0} s{}",
        r.records,
        r.days,
        r.shards,
        f.segments,
        r.block_kib,
        r.block_records,
        r.dict_kib,
        match (r.whole_texts, r.zstd_blocks) {
            (true, _) => "whole",
            (false, true) => "as templates, zstd blocks",
            (false, false) => "as templates, packed blocks",
        },
        r.distinct_numbers,
        r.load_secs,
        if r.reused { " (reused)" } else { "" }
    );
    println!(
        "disk: {:.1} MB in the data directory, {:.1} MB of .seg ({:.1} B/record)",
        mb(r.disk_bytes),
        mb(f.seg_bytes),
        f.seg_bytes as f64 / r.records as f64
    );
    println!(
        "footers: number index {:.1} MB, number filter {:.1} MB, block tables {:.1} MB, sub-port index {:.1} MB, tables {:.2} MB",
        mb(f.number_index),
        mb(f.number_filter),
        mb(f.block_table),
        mb(f.sub_port_index),
        mb(f.tables)
    );
    println!(
        "number index + filter = {:.2} % of the .seg bytes (all footers {:.2} %)",
        100.0 * r.number_index_and_filter_fraction,
        100.0 * r.footer_fraction
    );
    println!(
        "records per trace over the {} numbers: p50 {}, p99 {}, max {}",
        r.queries, r.records_per_trace_p50, r.records_per_trace_p99, r.records_per_trace_max
    );
    let rows = [
        ("warm", Some(&r.warm)),
        ("warm, first record", Some(&r.warm_first_record)),
        ("cold", Some(&r.cold)),
        ("cold, first record", Some(&r.cold_first_record)),
        ("full scan (warm)", Some(&r.scan)),
        ("first trace after open", r.first_trace_after_open.as_ref()),
    ];
    if markdown {
        println!("| whole-window trace | n | p50 ms | p99 ms | max ms | mean ms |");
        println!("|---|---:|---:|---:|---:|---:|");
    } else {
        println!(
            "{:<26} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "whole-window trace", "n", "p50 ms", "p99 ms", "max ms", "mean ms"
        );
    }
    for (name, d) in rows.iter().filter_map(|(n, d)| Some((n, (*d)?))) {
        if markdown {
            println!("| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |", d.n, d.p50_ms, d.p99_ms, d.max_ms, d.mean_ms);
        } else {
            println!(
                "{:<26} {:>6} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                name, d.n, d.p50_ms, d.p99_ms, d.max_ms, d.mean_ms
            );
        }
    }
    println!(
        "full scan p50 / trace: {:.0}x warm p50, {:.0}x warm p99, {:.0}x cold p99; scans found {:?} records",
        r.speedup_scan_p50_over_warm_p50,
        r.speedup_scan_p50_over_warm_p99,
        r.speedup_scan_p50_over_cold_p99,
        r.scan_records
    );
    match r.resident_after_evict_bytes {
        Some(b) => println!("cold: page-cache bytes of the .seg files right after an eviction (fincore): {b}"),
        None => println!("cold: fincore not available to confirm the eviction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_percentiles() {
        let a = parse_args(["--records", "1_000", "--days", "3", "--json"].iter().map(|s| (*s).to_owned())).unwrap();
        assert_eq!((a.records, a.days, a.queries, a.json), (1_000, 3, 1_000, true));
        assert!(parse_args(["--days", "0"].iter().map(|s| (*s).to_owned())).is_err());
        assert!(parse_args(["--dir", "a", "--data", "b"].iter().map(|s| (*s).to_owned())).is_err());
        assert!(parse_args(["--json", "--markdown"].iter().map(|s| (*s).to_owned())).is_err());
        let d = dist((1..=100).map(Duration::from_millis).collect());
        assert_eq!((d.p50_ms, d.p99_ms, d.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(percentile_u64(vec![5, 1, 3], 0.5), 3);
    }
}
