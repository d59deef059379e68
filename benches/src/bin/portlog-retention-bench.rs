//! `portlog-retention-bench`: the cost of expiring one month of the message log, portlog
//! (dropping whole daily segments) against RocksDB's usual ways, on the same records.
//!
//! ```text
//! portlog-retention-bench [--per-day N] [--seed N] [--dir DIR] [--json] [--only LIST] [--no-latency]
//!                         [--rocksdb-file-kib N]
//! ```
//!
//! Sixty days of generated records (June and July 2026, UTC+8; `--per-day` records a day) are
//! loaded into each engine and settled (portlog: `seal_all`; RocksDB: flush, full compaction,
//! background work finished). Then June — 30 daily segments per shard in portlog — is expired,
//! alone on the machine's I/O, and measured:
//!
//! * wall time of the expiry, until the space is freed (RocksDB: until its compaction is done);
//! * bytes written: `write_bytes` of `/proc/self/io` (bytes this process caused to be written
//!   to storage: every thread, RocksDB's compaction threads included), `wchar` (bytes handed to
//!   write calls) and the sectors written by the data directory's block device
//!   (`/sys/dev/block/M:m/stat`, after a `sync` before and after: this includes file-system
//!   metadata and journal writes, which are not charged to the process, and other processes'
//!   writes on a shared machine);
//! * bytes freed (the data directory's files before and after) and write amplification =
//!   bytes written ÷ bytes freed.
//!
//! RocksDB's SST files are cut at `--rocksdb-file-kib` (default 1 MiB, a few days of the default
//! workload) rather than its default 64 MiB: what decides how much a range expiry rewrites is
//! the size of a file against the size of a month, and in production a month is many GiB
//! against 64 MiB files. With 64 MiB files and this benchmark's few MiB a month, the whole
//! database would be one file and every method would rewrite all of it.
//!
//! Methods:
//! * `portlog`: `Engine::retention_run` at the instant June's last day is eligible.
//! * `rocksdb-range-time`: keys (time, sub-port, seq): one `DeleteRange` over June, then
//!   `CompactRange` over it with the bottommost level forced (otherwise range tombstones stay).
//! * `rocksdb-files-time`: the same keys: `DeleteFilesInRange` (drops SST files wholly inside
//!   June, no rewrite), then `DeleteRange` + `CompactRange` for the files straddling its edges.
//! * `rocksdb-range-subport`: keys (sub-port, time, seq) as in `portlog-bench` (what serves
//!   reads by sub-port): one `DeleteRange` per sub-port, then a full forced compaction.
//! * `rocksdb-ttl-subport`: the same keys; a compaction filter drops records older than the
//!   cutoff, and a full compaction applies it (a TTL filter otherwise waits for compactions to
//!   happen by themselves).
//!
//! Then, unless `--no-latency`, July is expired the same way while other threads append
//! (groups of 100, durable: portlog `SyncPolicy::Data`, RocksDB `sync=true`) and, for portlog,
//! run checks (`Registry::decide`); the latencies of the operations that overlapped the expiry
//! are compared with those of the second before it.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::disk::{dir_bytes, fs_type, scratch_base};
use portlog_benches::rocks::{encode_key, encode_value, options as rocks_options, KEY_LEN};
use portlog_benches::{Generator, Record, Templates, WorkloadConfig};
use portlog_engine::registry::{AssignInput, ProviderInput};
use portlog_engine::time::{add_months_ms, parse_time_ms, rfc3339_utc8, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{
    Engine, EngineConfig, LogConfig, ManualClock, PhoneNumber, RegistryConfig, RetentionConfig, RetentionRun, SubPort,
    Usage,
};
use rocksdb::{BottommostLevelCompaction, CompactOptions, WriteBatch, WriteOptions, DB};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: portlog-retention-bench [--per-day N] [--seed N] [--dir DIR] [--json] [--only LIST] [--no-latency]
                               [--rocksdb-file-kib N]

  --per-day N    records per day of record time (default 10000; 60 days are loaded)
  --seed N       workload seed (default 42)
  --dir DIR      where the data directories go (default: the temp dir, or the current directory
                 when the temp dir is a tmpfs); removed afterwards
  --json         one JSON object per row instead of the tables
  --only LIST    comma-separated methods (default all): portlog, rocksdb-range-time,
                 rocksdb-files-time, rocksdb-range-subport, rocksdb-ttl-subport
  --no-latency   skip the second phase (expiry of July under concurrent appends and checks)
  --rocksdb-file-kib N  RocksDB's target SST file size in KiB (default 1024; RocksDB's own is 65536)";

const METHODS: [&str; 5] =
    ["portlog", "rocksdb-range-time", "rocksdb-files-time", "rocksdb-range-subport", "rocksdb-ttl-subport"];

#[derive(Debug)]
struct Args {
    per_day: u64,
    seed: u64,
    dir: Option<PathBuf>,
    json: bool,
    only: Vec<String>,
    latency: bool,
    rocksdb_file_kib: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        per_day: 10_000,
        seed: 42,
        dir: None,
        json: false,
        only: Vec::new(),
        latency: true,
        rocksdb_file_kib: 1024,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => a.json = true,
            "--no-latency" => a.latency = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                let num =
                    |v: &str| v.replace('_', "").parse::<u64>().map_err(|_| anyhow!("{flag}: {v:?} is not a number"));
                match flag.as_str() {
                    "--per-day" => a.per_day = num(&v)?,
                    "--seed" => a.seed = num(&v)?,
                    "--dir" => a.dir = Some(PathBuf::from(v)),
                    "--rocksdb-file-kib" => a.rocksdb_file_kib = num(&v)?,
                    "--only" => a.only = v.split(',').map(|s| s.trim().to_string()).collect(),
                    _ => bail!("unknown flag {flag:?}\n{USAGE}"),
                }
            }
        }
    }
    if a.rocksdb_file_kib == 0 {
        bail!("--rocksdb-file-kib must be positive");
    }
    if a.per_day == 0 || a.per_day > 2_000_000 {
        bail!("--per-day must be 1..=2000000");
    }
    if let Some(m) = a.only.iter().find(|m| !METHODS.contains(&m.as_str())) {
        bail!("--only: unknown method {m:?}\n{USAGE}");
    }
    Ok(a)
}

/// I/O counters of this process and of the data directory's device.
#[derive(Debug, Clone, Copy, Default)]
struct Io {
    wchar: u64,
    write_bytes: u64,
    device_bytes: u64,
}

fn io_now(dev: Option<&Path>) -> Result<Io> {
    let s = std::fs::read_to_string("/proc/self/io").context("reading /proc/self/io")?;
    let field = |name: &str| -> u64 { s.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0) };
    let device_bytes = match dev {
        Some(p) => {
            let st = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            // Field 7 of the block layer's stat: sectors written, 512 bytes each.
            st.split_whitespace().nth(6).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 512
        }
        None => 0,
    };
    Ok(Io { wchar: field("wchar:"), write_bytes: field("write_bytes:"), device_bytes })
}

/// `/sys/dev/block/M:m/stat` of the device holding `dir`.
fn device_stat(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let p = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    p.exists().then_some(p)
}

fn sync_all() {
    let _ = std::process::Command::new("sync").status();
}

/// One method's expiry of June.
#[derive(Debug, Clone, Serialize)]
struct Row {
    method: String,
    records_expired: u64,
    /// Files of the data directory before and after.
    dir_bytes_before: u64,
    dir_bytes_after: u64,
    bytes_freed: u64,
    secs: f64,
    write_bytes: u64,
    wchar: u64,
    device_bytes: u64,
    /// write_bytes / bytes_freed.
    write_amp: f64,
    /// device_bytes / bytes_freed.
    device_write_amp: f64,
    /// Seconds of loading and settling (not measured further).
    load_secs: f64,
}

/// Latencies of one kind of operation, µs.
#[derive(Debug, Clone, Default, Serialize)]
struct Lat {
    n: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

fn lat(mut v: Vec<u64>) -> Lat {
    if v.is_empty() {
        return Lat::default();
    }
    v.sort_unstable();
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    Lat { n: v.len(), p50_us: q(0.5), p99_us: q(0.99), max_us: v[v.len() - 1] }
}

/// The second phase for one method.
#[derive(Debug, Clone, Serialize)]
struct LatencyRow {
    method: String,
    expiry_secs: f64,
    append_before: Lat,
    append_during: Lat,
    check_before: Lat,
    check_during: Lat,
}

/// Runs `op` on `threads` threads from now until `stop`; returns (start offset, latency) of each.
struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Vec<(Instant, u64)>>>,
}

impl Load {
    fn start(threads: usize, op: Arc<dyn Fn(u64) + Send + Sync>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..threads)
            .map(|t| {
                let (stop, op) = (stop.clone(), op.clone());
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut i = t as u64 * 1_000_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        let s = Instant::now();
                        op(i);
                        out.push((s, s.elapsed().as_micros() as u64));
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        Load { stop, handles }
    }

    fn finish(self) -> Vec<(Instant, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    }
}

/// Splits samples into those that ended in the second before `from` and those that overlapped
/// `[from, to]`.
fn windows(samples: &[(Instant, u64)], from: Instant, to: Instant) -> (Lat, Lat) {
    let before_start = from.checked_sub(Duration::from_secs(1)).unwrap_or(from);
    let mut before = Vec::new();
    let mut during = Vec::new();
    for &(s, us) in samples {
        let e = s + Duration::from_micros(us);
        if s >= before_start && e < from {
            before.push(us);
        } else if s <= to && e >= from {
            during.push(us);
        }
    }
    (lat(before), lat(during))
}

fn june() -> (i64, i64) {
    let a = parse_time_ms("2026-06-01T00:00:00+08:00").unwrap_or(0);
    (a, a + 30 * DAY_MS)
}

fn july() -> (i64, i64) {
    let (_, a) = june();
    (a, a + 30 * DAY_MS)
}

fn generate(per_day: u64, seed: u64) -> Result<Vec<Record>> {
    let templates = Arc::new(Templates::load_default()?);
    let (start, _) = june();
    let (_, end) = july();
    let cfg =
        WorkloadConfig { seed, start_ms: start, rate_per_s: per_day as f64 / 86_400.0, ..WorkloadConfig::default() };
    Ok(Generator::new(templates, cfg)?.take_while(|r| r.ts_ms < end).collect())
}

// ---------------------------------------------------------------- portlog

fn engine_config() -> EngineConfig {
    EngineConfig {
        log: LogConfig::default(),
        registry: RegistryConfig::default(),
        retention: RetentionConfig { enabled: false, ..RetentionConfig::default() },
        ..EngineConfig::default()
    }
}

/// The instant the last day of `[_, end)` is eligible under 5 months of retention.
fn month_eligible(end: i64) -> i64 {
    add_months_ms(end - 1, 5, UTC8_OFFSET_MS)
}

fn run_portlog(dir: &Path, recs: &[Record], dev: Option<&Path>, latency: bool) -> Result<(Row, Option<LatencyRow>)> {
    let (_, july_end) = july();
    let clock = Arc::new(ManualClock::new(july_end));
    let e = Arc::new(Engine::open(dir, engine_config(), clock.clone())?);
    let t = Instant::now();
    for chunk in recs.chunks(10_000) {
        e.ingest(chunk.to_vec())?;
    }
    e.log().seal_all()?;
    let load_secs = t.elapsed().as_secs_f64();
    let (_, june_end) = june();
    // Nothing has run yet, and the newest record is July's: a clock four months on is a jump
    // that retention refuses unless confirmed (crate::retention).
    let at = month_eligible(june_end);
    clock.set_ms(at);
    sync_all();
    let before = dir_bytes(dir, ".seg")?;
    let io0 = io_now(dev)?;
    let t = Instant::now();
    let report = e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(at) })?;
    let secs = t.elapsed().as_secs_f64();
    sync_all();
    let io1 = io_now(dev)?;
    let after = dir_bytes(dir, ".seg")?;
    let row = row("portlog", report.records_deleted, before.total, after.total, secs, io0, io1, load_secs);

    let lrow = if latency {
        // A ledger for the checks: one commercial sub-port with a few rejects.
        let reg = e.registry();
        reg.provider_put(ProviderInput {
            id: "P1".into(),
            name: "星河银行".into(),
            signatures: vec!["星河银行".into()],
            blacklisted: false,
            whitelisted: false,
        })?;
        let sp = "1069000000001";
        reg.assign(AssignInput {
            sub_port: sp.into(),
            provider: "P1".into(),
            usage: Usage::Commercial,
            from_ms: 0,
            to_ms: i64::MAX / 2,
            consent_required: false,
        })?;
        let (_, july_end) = july();
        let at = month_eligible(july_end);
        clock.set_ms(at);
        let appender: Arc<dyn Fn(u64) + Send + Sync> = {
            let e = e.clone();
            Arc::new(move |i: u64| {
                let batch: Vec<Record> = (0..100u64)
                    .map(|k| Record {
                        dir: portlog_engine::Direction::Mt,
                        sub_port: SubPort::parse(&format!("10690000{:05}", (i * 100 + k) % 2000)).expect("sub-port"),
                        peer: PhoneNumber::from_u64(13_800_000_000 + (i * 100 + k) % 1_000_000).expect("number"),
                        ts_ms: at - 60_000,
                        usage: Some(Usage::Commercial),
                        text: "【星河银行】会员日满100减20。拒收请回复R".into(),
                    })
                    .collect();
                if let Err(err) = e.ingest(batch) {
                    eprintln!("append failed: {err}");
                }
            })
        };
        let checker: Arc<dyn Fn(u64) + Send + Sync> = {
            let e = e.clone();
            Arc::new(move |i: u64| {
                let n = PhoneNumber::from_u64(13_800_000_000 + i % 1_000_000).expect("number");
                let _ = e.registry().decide(sp, n, Usage::Commercial, None);
            })
        };
        let appends = Load::start(2, appender);
        let checks = Load::start(1, checker);
        std::thread::sleep(Duration::from_millis(1500));
        let from = Instant::now();
        let r = e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(at) })?;
        let to = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        let (a, c) = (appends.finish(), checks.finish());
        if r.segments_deleted == 0 {
            bail!("the July expiry removed nothing");
        }
        let (append_before, append_during) = windows(&a, from, to);
        let (check_before, check_during) = windows(&c, from, to);
        Some(LatencyRow {
            method: "portlog".into(),
            expiry_secs: (to - from).as_secs_f64(),
            append_before,
            append_during,
            check_before,
            check_during,
        })
    } else {
        None
    };
    match Arc::try_unwrap(e) {
        Ok(e) => e.close(),
        Err(_) => bail!("engine still shared"),
    }
    Ok((row, lrow))
}

#[allow(clippy::too_many_arguments)]
fn row(method: &str, records: u64, before: u64, after: u64, secs: f64, io0: Io, io1: Io, load_secs: f64) -> Row {
    let freed = before.saturating_sub(after);
    let wb = io1.write_bytes - io0.write_bytes;
    let dev = io1.device_bytes.saturating_sub(io0.device_bytes);
    Row {
        method: method.into(),
        records_expired: records,
        dir_bytes_before: before,
        dir_bytes_after: after,
        bytes_freed: freed,
        secs,
        write_bytes: wb,
        wchar: io1.wchar - io0.wchar,
        device_bytes: dev,
        write_amp: wb as f64 / freed.max(1) as f64,
        device_write_amp: dev as f64 / freed.max(1) as f64,
        load_secs,
    }
}

// ---------------------------------------------------------------- RocksDB

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// (time, sub-port, seq)
    Time,
    /// (sub-port, time, seq): `rocks::encode_key`
    SubPort,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Range,
    Files,
    Ttl,
}

fn time_key(r: &Record, seq: u64) -> [u8; KEY_LEN] {
    let sp = encode_key(r, seq);
    let mut k = [0u8; KEY_LEN];
    k[..8].copy_from_slice(&(r.ts_ms as u64).to_be_bytes());
    k[8..28].copy_from_slice(&sp[..20]);
    k[28..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn ts_of(layout: Layout, key: &[u8]) -> i64 {
    let at = if layout == Layout::Time { 0 } else { 20 };
    key.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(i64::MAX, |b| u64::from_be_bytes(b) as i64)
}

fn settle(db: &DB) -> Result<()> {
    loop {
        let running = db.property_int_value("rocksdb.num-running-compactions")?.unwrap_or(0);
        let pending = db.property_int_value("rocksdb.compaction-pending")?.unwrap_or(0);
        let flushes = db.property_int_value("rocksdb.num-running-flushes")?.unwrap_or(0);
        if running + pending + flushes == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn forced() -> CompactOptions {
    let mut o = CompactOptions::default();
    o.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    o.set_exclusive_manual_compaction(true);
    o
}

/// Expires `[from, to)` of `db` by `way`; `cutoff` drives the TTL filter.
fn rocks_expire(
    db: &DB,
    layout: Layout,
    way: Way,
    from: i64,
    to: i64,
    cutoff: &AtomicI64,
    sub_ports: &[SubPort],
) -> Result<()> {
    let probe = |ts: i64| Record {
        dir: portlog_engine::Direction::Mo,
        sub_port: SubPort::parse("1").expect("sub-port"),
        peer: PhoneNumber::from_u64(13_800_000_000).expect("number"),
        ts_ms: ts,
        usage: None,
        text: String::new(),
    };
    match (layout, way) {
        (Layout::Time, Way::Range | Way::Files) => {
            let lo = (from as u64).to_be_bytes();
            let hi = (to as u64).to_be_bytes();
            if way == Way::Files {
                db.delete_file_in_range(lo, hi)?;
            }
            let mut b = WriteBatch::default();
            b.delete_range(lo, hi);
            db.write(b)?;
            db.compact_range_opt(Some(lo), Some(hi), &forced());
        }
        (Layout::SubPort, Way::Range) => {
            let mut b = WriteBatch::default();
            for sp in sub_ports {
                let mut p = probe(from);
                p.sub_port = sp.clone();
                let lo = encode_key(&p, 0);
                p.ts_ms = to;
                let hi = encode_key(&p, 0);
                b.delete_range(lo, hi);
            }
            db.write(b)?;
            db.compact_range_opt(None::<&[u8]>, None::<&[u8]>, &forced());
        }
        (_, Way::Ttl) => {
            cutoff.store(to, Ordering::Release);
            db.compact_range_opt(None::<&[u8]>, None::<&[u8]>, &forced());
        }
        (Layout::SubPort, Way::Files) => bail!("DeleteFilesInRange needs time-first keys"),
    }
    settle(db)
}

fn open_rocks(dir: &Path, layout: Layout, ttl: bool, file_kib: u64) -> Result<(DB, Arc<AtomicI64>)> {
    let mut o = rocks_options(9, 4 << 10);
    o.set_target_file_size_base(file_kib << 10);
    let cutoff = Arc::new(AtomicI64::new(i64::MIN));
    if ttl {
        let c = cutoff.clone();
        o.set_compaction_filter("portlog-ttl", move |_level: u32, key: &[u8], _value: &[u8]| {
            if ts_of(layout, key) < c.load(Ordering::Acquire) {
                rocksdb::compaction_filter::Decision::Remove
            } else {
                rocksdb::compaction_filter::Decision::Keep
            }
        });
    }
    Ok((DB::open(&o, dir)?, cutoff))
}

fn run_rocks(
    method: &str,
    dir: &Path,
    recs: &[Record],
    dev: Option<&Path>,
    latency: bool,
    file_kib: u64,
) -> Result<(Row, Option<LatencyRow>)> {
    let (layout, way) = match method {
        "rocksdb-range-time" => (Layout::Time, Way::Range),
        "rocksdb-files-time" => (Layout::Time, Way::Files),
        "rocksdb-range-subport" => (Layout::SubPort, Way::Range),
        "rocksdb-ttl-subport" => (Layout::SubPort, Way::Ttl),
        _ => bail!("unknown method {method}"),
    };
    let mut sub_ports: Vec<SubPort> = recs.iter().map(|r| r.sub_port.clone()).collect();
    sub_ports.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    sub_ports.dedup();
    let (db, cutoff) = open_rocks(dir, layout, way == Way::Ttl, file_kib)?;
    let db = Arc::new(db);
    let t = Instant::now();
    let key = |r: &Record, seq: u64| if layout == Layout::Time { time_key(r, seq) } else { encode_key(r, seq) };
    let mut wo = WriteOptions::default();
    wo.set_sync(false);
    let mut v = Vec::new();
    for (c, chunk) in recs.chunks(1000).enumerate() {
        let mut b = WriteBatch::default();
        for (i, r) in chunk.iter().enumerate() {
            v.clear();
            encode_value(r, &mut v);
            b.put(key(r, (c * 1000 + i) as u64), &v);
        }
        db.write_opt(b, &wo)?;
    }
    db.flush()?;
    db.compact_range_opt(None::<&[u8]>, None::<&[u8]>, &forced());
    settle(&db)?;
    let load_secs = t.elapsed().as_secs_f64();
    let (june_start, june_end) = june();
    let records = recs.iter().filter(|r| r.ts_ms < june_end).count() as u64;
    sync_all();
    let before = dir_bytes(dir, ".sst")?;
    let io0 = io_now(dev)?;
    let t = Instant::now();
    rocks_expire(&db, layout, way, june_start, june_end, &cutoff, &sub_ports)?;
    let secs = t.elapsed().as_secs_f64();
    sync_all();
    let io1 = io_now(dev)?;
    let after = dir_bytes(dir, ".sst")?;
    let row = row(method, records, before.total, after.total, secs, io0, io1, load_secs);
    // The expiry must have removed June and only June.
    let mut left_june = 0u64;
    let mut left = 0u64;
    for item in db.iterator(rocksdb::IteratorMode::Start) {
        let (k, _) = item?;
        left += 1;
        left_june += u64::from(ts_of(layout, &k) < june_end);
    }
    if left_june != 0 || left != recs.len() as u64 - records {
        bail!("{method}: {left_june} June records left, {left} in all");
    }

    let lrow = if latency {
        let (july_start, july_end) = july();
        let seq = Arc::new(AtomicI64::new(10_000_000_000));
        let appender: Arc<dyn Fn(u64) + Send + Sync> = {
            let db = db.clone();
            Arc::new(move |i: u64| {
                let mut b = WriteBatch::default();
                let mut v = Vec::new();
                for k in 0..100u64 {
                    let r = Record {
                        dir: portlog_engine::Direction::Mt,
                        sub_port: SubPort::parse(&format!("10690000{:05}", (i * 100 + k) % 2000)).expect("sub-port"),
                        peer: PhoneNumber::from_u64(13_800_000_000 + (i * 100 + k) % 1_000_000).expect("number"),
                        ts_ms: month_eligible(july_end) - 60_000,
                        usage: Some(Usage::Commercial),
                        text: "【星河银行】会员日满100减20。拒收请回复R".into(),
                    };
                    v.clear();
                    encode_value(&r, &mut v);
                    let s = seq.fetch_add(1, Ordering::Relaxed) as u64;
                    b.put(if layout == Layout::Time { time_key(&r, s) } else { encode_key(&r, s) }, &v);
                }
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                if let Err(err) = db.write_opt(b, &wo) {
                    eprintln!("append failed: {err}");
                }
            })
        };
        let appends = Load::start(2, appender);
        std::thread::sleep(Duration::from_millis(1500));
        let from = Instant::now();
        rocks_expire(&db, layout, way, july_start, july_end, &cutoff, &sub_ports)?;
        let to = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        let a = appends.finish();
        let (append_before, append_during) = windows(&a, from, to);
        Some(LatencyRow {
            method: method.into(),
            expiry_secs: (to - from).as_secs_f64(),
            append_before,
            append_during,
            check_before: Lat::default(),
            check_during: Lat::default(),
        })
    } else {
        None
    };
    Ok((row, lrow))
}

// ---------------------------------------------------------------- main

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    kernel: String,
    date: String,
    dir: String,
    fs: String,
    device_stat: Option<String>,
}

fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => scratch_base()?,
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let scratch = tempfile::Builder::new().prefix("portlog-retention-bench-").tempdir_in(&base)?;
    let dev = device_stat(scratch.path());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: portlog_benches::host::kernel_release().unwrap_or_else(|| "?".into()),
        date: rfc3339_utc8(now_ms),
        dir: scratch.path().display().to_string(),
        fs: fs_type(scratch.path()).unwrap_or_else(|| "?".into()),
        device_stat: dev.as_ref().map(|p| p.display().to_string()),
    };
    let t = Instant::now();
    let recs = generate(args.per_day, args.seed)?;
    let (_, june_end) = june();
    let june_n = recs.iter().filter(|r| r.ts_ms < june_end).count();
    if !args.json {
        println!(
            "portlog-retention-bench: {} records over 60 days ({june_n} in June), generated in {:.1} s; data in {} ({}), device {}",
            recs.len(),
            t.elapsed().as_secs_f64(),
            machine.dir,
            machine.fs,
            machine.device_stat.as_deref().unwrap_or("unknown")
        );
    }
    let methods: Vec<&str> =
        METHODS.iter().copied().filter(|m| args.only.is_empty() || args.only.iter().any(|o| o == m)).collect();
    let mut rows = Vec::new();
    let mut lrows = Vec::new();
    for m in methods {
        let d = scratch.path().join(m);
        std::fs::create_dir_all(&d)?;
        let (r, l) = if m == "portlog" {
            run_portlog(&d, &recs, dev.as_deref(), args.latency)?
        } else {
            run_rocks(m, &d, &recs, dev.as_deref(), args.latency, args.rocksdb_file_kib)?
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({"machine": &machine, "expiry": &r, "latency": &l}))?
            );
        } else {
            eprintln!("{m}: done ({:.1} s load, {:.3} s expiry)", r.load_secs, r.secs);
        }
        rows.push(r);
        lrows.extend(l);
        std::fs::remove_dir_all(&d).ok();
    }
    if args.json {
        return Ok(());
    }
    println!();
    println!("Expiry of June ({june_n} records, 30 days), alone:");
    println!();
    println!("| method | time | bytes freed | write_bytes (/proc) | device bytes written | write amp (/proc) | write amp (device) | wchar |");
    println!("|---|---|---|---|---|---|---|---|");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    for r in &rows {
        println!(
            "| {} | {:.3} s | {:.1} MiB | {:.2} MiB | {:.2} MiB | {:.4} | {:.4} | {:.2} MiB |",
            r.method,
            r.secs,
            mib(r.bytes_freed),
            mib(r.write_bytes),
            mib(r.device_bytes),
            r.write_amp,
            r.device_write_amp,
            mib(r.wchar)
        );
    }
    if !lrows.is_empty() {
        println!();
        println!("Expiry of July while 2 threads append groups of 100 (durable) and, for portlog, 1 thread checks:");
        println!();
        println!("| method | expiry | appends before: n, p50 / p99 / max µs | appends during | checks before | checks during |");
        println!("|---|---|---|---|---|---|");
        let f = |l: &Lat| {
            if l.n == 0 {
                "—".to_string()
            } else {
                format!("{}, {} / {} / {}", l.n, l.p50_us, l.p99_us, l.max_us)
            }
        };
        for l in &lrows {
            println!(
                "| {} | {:.3} s | {} | {} | {} | {} |",
                l.method,
                l.expiry_secs,
                f(&l.append_before),
                f(&l.append_during),
                f(&l.check_before),
                f(&l.check_during)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_by_time_and_carry_it() {
        let recs: Vec<Record> = generate(2_000, 7).unwrap().into_iter().take(500).collect();
        let mut keys: Vec<[u8; KEY_LEN]> = recs.iter().enumerate().map(|(i, r)| time_key(r, i as u64)).collect();
        for (k, r) in keys.iter().zip(&recs) {
            assert_eq!(ts_of(Layout::Time, k), r.ts_ms);
        }
        let k = encode_key(&recs[0], 3);
        assert_eq!(ts_of(Layout::SubPort, &k), recs[0].ts_ms);
        keys.sort_unstable();
        assert!(keys.windows(2).all(|w| ts_of(Layout::Time, &w[0]) <= ts_of(Layout::Time, &w[1])));
    }

    #[test]
    fn latency_windows() {
        let t = Instant::now();
        let s = |ms: u64, us: u64| (t + Duration::from_millis(ms), us);
        let samples = vec![s(0, 10), s(1_500, 20), s(1_990, 30_000), s(2_100, 40), s(2_600, 50)];
        let (b, d) = windows(&samples, t + Duration::from_millis(2_000), t + Duration::from_millis(2_500));
        assert_eq!((b.n, d.n), (1, 2));
        assert_eq!(d.max_us, 30_000);
    }
}
