//! `portlog-check-bench`: the hot-path check under load, side by side with peers.
//!
//! ```text
//! portlog-check-bench [--rejects N] [--assignments N] [--zipf S] [--checks N] [--hit-percent P]
//!                     [--writer-rate N] [--repeat N] [--dir DIR] [--json] [--seed N]
//! ```
//!
//! Setup: one provider, `--assignments` commercial sub-ports, `--rejects` rejects spread over
//! them Zipf-like (exponent `--zipf`), registered through `Registry::register_rejects` (sync off
//! for the setup only). The registry is then reopened with the default configuration (sync on),
//! which measures the load time. While a writer thread registers `--writer-rate` new rejects/s
//! (synced batches of 100 every 10 ms), one thread runs `--checks` checks, each timed on its own
//! with `Instant` (the timer's own cost is measured and reported, and NOT subtracted). Each
//! call's input is made before its timer starts, as a caller holds it: integers for the peers,
//! the number and the sub-port in a fresh `String` for portlog (a batch: its sub-ports in one
//! buffer, as a decoded `CheckBatch`).
//! `--repeat N` runs the in-memory rows (portlog's four and the `HashSet` peer, all while the
//! writer runs) N times over the same questions, round after round, and reports each figure as
//! the median of the rounds with the range of the p50s: one round on a shared host can fall in
//! a noisy spell (the peer's p50 was seen to double between runs an hour apart).
//!
//! Rows: `portlog check` is the whole `Registry::check` (sub-port lookup, assignment in force,
//! provider flags, usage, reject set, consent; `at` = now from the system clock; a hit also
//! reads the since-time from RocksDB). `portlog decide_batch` answers the same questions 1,000
//! per call (`Registry::decide_batch`, which overlaps the questions' cache misses); each batch
//! is timed and divided by its questions. `portlog table` is the reject table's membership alone.
//! Peers get the assignment id for free and answer membership only: a `HashSet<(u32, u64)>`,
//! one `RoaringTreemap` per assignment, and RocksDB point lookups of the same keys
//! (12-byte keys, bloom filter, 64 MiB cache).
//!
//! Memory per reject: the Rust heap (a counting global allocator) held by the structure,
//! divided by the rejects: for portlog, the heap growth of `Registry::open` on the data
//! directory with the rejects minus the same open on a copy of the ledger without them, plus
//! the reject table's anonymous mapping (`RegistryStats::reject_set_bytes`: not heap, so the
//! allocator does not see it); for the peers, the heap growth while building them. RocksDB's
//! own C++ memory is not counted.
//!
//! Memory floor: last, the latency of one dependent random load from buffers of 1 to 256 MiB,
//! timed like the checks (`load_latency`): what one cache miss costs on this host in this run.

use anyhow::{anyhow, bail, Result};
use portlog_benches::stats::median;
use portlog_engine::registry::{AssignInput, ProviderInput, RejectInput, RejectSource};
use portlog_engine::{PhoneNumber, Question, Registry, RegistryConfig, SystemClock, Usage};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const USAGE: &str = "usage: portlog-check-bench [--rejects N] [--assignments N] [--zipf S] [--checks N]
                          [--hit-percent P] [--writer-rate N] [--repeat N] [--dir DIR] [--json]
                          [--seed N]
  defaults: --rejects 10000000 --assignments 100000 --zipf 1.0 --checks 2000000 --hit-percent 1
            --writer-rate 10000 --repeat 1 --seed 42";

#[derive(Debug)]
struct Args {
    rejects: usize,
    assignments: usize,
    zipf: f64,
    checks: usize,
    hit_percent: f64,
    writer_rate: u64,
    repeat: usize,
    dir: Option<std::path::PathBuf>,
    json: bool,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        rejects: 10_000_000,
        assignments: 100_000,
        zipf: 1.0,
        checks: 2_000_000,
        hit_percent: 1.0,
        writer_rate: 10_000,
        repeat: 1,
        dir: None,
        json: false,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{f} needs a value\n{USAGE}"));
        let num =
            |v: String| -> Result<f64> { v.replace('_', "").parse().map_err(|_| anyhow!("{v:?} is not a number")) };
        match f.as_str() {
            "--rejects" => a.rejects = num(val()?)? as usize,
            "--assignments" => a.assignments = num(val()?)? as usize,
            "--zipf" => a.zipf = num(val()?)?,
            "--checks" => a.checks = num(val()?)? as usize,
            "--hit-percent" => a.hit_percent = num(val()?)?,
            "--writer-rate" => a.writer_rate = num(val()?)? as u64,
            "--seed" => a.seed = num(val()?)? as u64,
            "--repeat" => a.repeat = num(val()?)? as usize,
            "--dir" => a.dir = Some(val()?.into()),
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if a.assignments == 0 || a.rejects == 0 || a.checks == 0 || a.repeat == 0 {
        bail!("--rejects, --assignments, --checks and --repeat must be positive");
    }
    Ok(a)
}

fn sub_port(i: usize) -> String {
    format!("10690{i:08}")
}

fn random_number(rng: &mut impl Rng) -> u64 {
    // 13x..19x mobile numbers.
    13_000_000_000 + rng.gen_range(0..7_000_000_000u64)
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    name: &'static str,
    p50_ns: f64,
    p99_ns: f64,
    p999_ns: f64,
    max_ns: f64,
    hit_p50_ns: f64,
    hit_p99_ns: f64,
    bytes_per_reject: Option<f64>,
    /// The lowest and highest p50 of the rounds (`--repeat`); equal to `p50_ns` for one round.
    p50_min_ns: f64,
    p50_max_ns: f64,
    /// Rounds behind the figures.
    rounds: usize,
}

/// One row from the same row's rounds: each figure the median over the rounds, and the range
/// of the p50s.
fn over_rounds(rounds: Vec<Row>) -> Row {
    let f = |get: fn(&Row) -> f64| median(rounds.iter().map(get).collect());
    let p50s = rounds.iter().map(|r| r.p50_ns);
    Row {
        name: rounds[0].name,
        p50_ns: f(|r| r.p50_ns),
        p99_ns: f(|r| r.p99_ns),
        p999_ns: f(|r| r.p999_ns),
        max_ns: f(|r| r.max_ns),
        hit_p50_ns: f(|r| r.hit_p50_ns),
        hit_p99_ns: f(|r| r.hit_p99_ns),
        bytes_per_reject: rounds[0].bytes_per_reject,
        p50_min_ns: p50s.clone().fold(f64::INFINITY, f64::min),
        p50_max_ns: p50s.fold(f64::NEG_INFINITY, f64::max),
        rounds: rounds.len(),
    }
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    f64::from(v[i])
}

/// Times `f` on every query (is_hit, assignment, number), returning (all, hits) in ns. `prep`
/// makes the call's input before the timer starts: what a caller holds when it asks. The peers
/// get the assignment id and the number as integers; portlog gets the number and the sub-port as
/// a fresh `String` (`request` in `main`), as a gateway holds a request it has just decoded.
fn time_queries<I>(
    queries: &[(bool, u32, u64)],
    mut prep: impl FnMut(u32, u64) -> I,
    mut f: impl FnMut(&I) -> bool,
) -> (Vec<u32>, Vec<u32>) {
    let mut all = Vec::with_capacity(queries.len());
    let mut hits = Vec::new();
    for &(hit, a, n) in queries {
        let input = prep(a, n);
        let t = Instant::now();
        let got = f(&input);
        let ns = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
        drop(input);
        assert_eq!(got, hit, "wrong answer for assignment {a} number {n}");
        all.push(ns);
        if hit {
            hits.push(ns);
        }
    }
    (all, hits)
}

/// Questions per `decide_batch` call in the batch row.
const BATCH: usize = 1_000;
/// The batch row's name.
const BATCH_ROW: &str = "portlog decide_batch of 1,000 (batch time / 1,000)";

/// Buffer sizes of the memory-latency ladder, in MiB: the L2 of one core, parts of the L3, the
/// reject filter's size at 10 M rejects (10 MiB), beyond the L3.
const LADDER_MIB: [usize; 7] = [1, 2, 4, 8, 16, 64, 256];
/// Loads timed per size.
const LADDER_LOADS: usize = 1_000_000;

/// The latency of one dependent random load from a buffer of `mib` MiB, timed per load with
/// `Instant` exactly as the checks are (the timer's cost included): the floor of any structure
/// whose lookup needs one random access into that much memory. The buffer is one random cycle
/// over its cache lines (Sattolo's algorithm), so every load depends on the one before and the
/// prefetchers cannot guess it; huge pages are asked for (`MADV_HUGEPAGE`), as the reject
/// table does. Returns (p50, p99) in ns.
fn load_latency(mib: usize, rng: &mut impl Rng) -> (f64, f64) {
    const LINE: usize = 8; // u64s per 64-byte line
    let lines = (mib << 20) / 64;
    let mut buf = vec![0u64; lines * LINE];
    // SAFETY: advice on memory this function owns; no effect on its contents.
    unsafe {
        libc::madvise(buf.as_mut_ptr().cast(), buf.len() * 8, libc::MADV_HUGEPAGE);
    }
    let mut perm: Vec<u64> = (0..lines as u64).collect();
    for i in (1..lines).rev() {
        let j = rng.gen_range(0..i);
        perm.swap(i, j);
    }
    // perm is now a single cycle: line perm[i] points to line perm[i + 1].
    for i in 0..lines {
        buf[perm[i] as usize * LINE] = perm[(i + 1) % lines];
    }
    drop(perm);
    let mut at = 0u64;
    for _ in 0..lines.min(LADDER_LOADS) {
        at = buf[at as usize * LINE]; // warm-up: pages and TLB as a running process has them
    }
    let mut ns = Vec::with_capacity(LADDER_LOADS);
    for _ in 0..LADDER_LOADS {
        let t = Instant::now();
        at = std::hint::black_box(buf[at as usize * LINE]);
        ns.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    std::hint::black_box(at);
    (pct(&mut ns, 0.5), pct(&mut ns, 0.99))
}

fn row(name: &'static str, (mut all, mut hits): (Vec<u32>, Vec<u32>), bytes: Option<f64>) -> Row {
    let p50 = pct(&mut all, 0.5);
    Row {
        name,
        p50_ns: p50,
        p50_min_ns: p50,
        p50_max_ns: p50,
        rounds: 1,
        p99_ns: pct(&mut all, 0.99),
        p999_ns: pct(&mut all, 0.999),
        max_ns: pct(&mut all, 1.0),
        hit_p50_ns: pct(&mut hits, 0.5),
        hit_p99_ns: pct(&mut hits, 0.99),
        bytes_per_reject: bytes,
    }
}

fn setup(dir: &Path, a: &Args, keys: &[(u32, u64)]) -> Result<()> {
    let cfg = RegistryConfig { sync: false, ..RegistryConfig::default() };
    let reg = Registry::open(dir, cfg, Arc::new(SystemClock))?;
    reg.provider_put(ProviderInput {
        id: "P".into(),
        name: "星河银行".into(),
        signatures: vec!["星河".into()],
        ..ProviderInput::default()
    })?;
    let now = portlog_engine::Clock::now_ms(&SystemClock);
    let year = 365 * 86_400_000;
    let inputs: Vec<AssignInput> = (0..a.assignments)
        .map(|i| AssignInput {
            sub_port: sub_port(i),
            provider: "P".into(),
            usage: Usage::Commercial,
            from_ms: now - year,
            to_ms: now + year,
            consent_required: false,
        })
        .collect();
    reg.assign_many(inputs)?;
    for chunk in keys.chunks(200_000) {
        let batch: Vec<RejectInput> = chunk
            .iter()
            .map(|&(asg, n)| RejectInput {
                sub_port: sub_port(asg as usize - 1),
                number: PhoneNumber::from_u64(n).expect("generated numbers are valid"),
                at_ms: Some(now - 86_400_000),
                source: RejectSource::Import,
                text: "R".into(),
                assignment: Some(asg),
            })
            .collect();
        reg.register_rejects(&batch)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => portlog_benches::disk::scratch_base()?,
    };
    let tmp = tempfile::Builder::new().prefix("portlog-check-bench").tempdir_in(&base)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let zipf = Zipf::new(a.assignments as u64, a.zipf).map_err(|e| anyhow!("zipf: {e}"))?;
    let mut set: HashSet<(u32, u64)> = HashSet::with_capacity(a.rejects);
    while set.len() < a.rejects {
        let asg = zipf.sample(&mut rng) as u32;
        set.insert((asg, random_number(&mut rng)));
    }
    let mut keys: Vec<(u32, u64)> = set.iter().copied().collect();
    keys.sort_unstable();
    let t = Instant::now();
    let full = tmp.path().join("full");
    let ledger_only = tmp.path().join("ledger");
    setup(&full, &a, &keys)?;
    setup(&ledger_only, &Args { rejects: 0, ..a_clone(&a) }, &[])?;
    eprintln!("setup: {} rejects over {} assignments in {:.1?}", a.rejects, a.assignments, t.elapsed());

    // Memory: portlog (open with rejects minus open without).
    let before = live();
    let empty = Registry::open(&ledger_only, RegistryConfig::default(), Arc::new(SystemClock))?;
    let ledger_heap = live() - before;
    drop(empty);
    let before = live();
    let t = Instant::now();
    let reg = Arc::new(Registry::open(&full, RegistryConfig::default(), Arc::new(SystemClock))?);
    let load = t.elapsed();
    let st = reg.stats();
    // The reject table is an anonymous mapping, not heap: add its size (every page of it is
    // touched at this load, so its size is its resident memory).
    let portlog_bytes = (live() - before - ledger_heap + st.reject_set_bytes as isize) as f64 / a.rejects as f64;
    eprintln!("open with {} rejects: {load:.2?}; reject sets {} bytes", st.rejects, st.reject_set_bytes);

    // Queries: Zipf assignments, hit_percent of them rejected numbers.
    let queries: Vec<(bool, u32, u64)> = (0..a.checks)
        .map(|_| {
            if rng.gen_bool((a.hit_percent / 100.0).clamp(0.0, 1.0)) {
                let (asg, n) = keys[rng.gen_range(0..keys.len())];
                (true, asg, n)
            } else {
                loop {
                    let asg = zipf.sample(&mut rng) as u32;
                    let n = random_number(&mut rng);
                    if !set.contains(&(asg, n)) {
                        break (false, asg, n);
                    }
                }
            }
        })
        .collect();
    // The sub-ports' names, the source each request's sub-port is copied from before its timer
    // starts (`request` below). The first runs passed the names straight from 100,000 separate
    // `String`s, then from this buffer through a table: either way the timed call began with
    // two or three reads of the benchmark's own tables (a third of `decide`'s samples in one
    // perf profile, 25 ns of its p50 on 2026-12-03), which a gateway holding a just-decoded
    // request does not pay.
    let sp_buf: String = (0..a.assignments).map(sub_port).collect();
    let sp_len = sub_port(0).len();
    let sub_ports: Vec<&str> = (0..a.assignments).map(|i| &sp_buf[i * sp_len..(i + 1) * sp_len]).collect();

    // The HashSet peer, built before the writer starts so that its rounds run beside the
    // others, under the same writer.
    let before = live();
    let mut hs: HashSet<(u32, u64)> = HashSet::new();
    for &k in &keys {
        hs.insert(k);
    }
    let hs_bytes = (live() - before) as f64 / a.rejects as f64;

    // The writer: new rejects at writer_rate/s, in synced batches every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (reg, stop, written) = (reg.clone(), stop.clone(), written.clone());
        let per_tick = (a.writer_rate / 100).max(1) as usize;
        let (n_asg, s) = (a.assignments, a.zipf);
        let seed = a.seed ^ 0xABCD;
        std::thread::spawn(move || -> Result<()> {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let zipf = Zipf::new(n_asg as u64, s).map_err(|e| anyhow!("zipf: {e}"))?;
            let start = Instant::now();
            let mut tick = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Numbers from a range the queries never use (10x...), so answers stay known.
                let batch: Vec<RejectInput> = (0..per_tick)
                    .map(|_| {
                        let asg = zipf.sample(&mut rng) as usize;
                        RejectInput {
                            sub_port: sub_port(asg - 1),
                            number: PhoneNumber::from_u64(10_000_000_000 + rng.gen_range(0..1_000_000_000))
                                .expect("valid"),
                            at_ms: None,
                            source: RejectSource::Api,
                            text: "R".into(),
                            assignment: Some(asg as u32),
                        }
                    })
                    .collect();
                reg.register_rejects(&batch)?;
                written.fetch_add(per_tick as u64, Ordering::Relaxed);
                tick += 1;
                let next = Duration::from_millis(10) * tick;
                if let Some(d) = next.checked_sub(start.elapsed()) {
                    std::thread::sleep(d);
                }
            }
            Ok(())
        })
    };

    let timer = {
        let mut v: Vec<u32> = (0..100_000)
            .map(|_| {
                let t = Instant::now();
                t.elapsed().as_nanos() as u32
            })
            .collect();
        pct(&mut v, 0.5)
    };
    let clock_ns = {
        let t = Instant::now();
        let mut x = 0i64;
        for _ in 0..1_000_000 {
            x = x.wrapping_add(portlog_engine::Clock::now_ms(&SystemClock));
        }
        std::hint::black_box(x);
        t.elapsed().as_nanos() as f64 / 1e6
    };
    eprintln!("system clock read: {clock_ns:.1} ns");
    // What portlog's single calls get: the sub-port in a `String` of its own, made before the
    // timer starts (allocated where the last one was freed, so in cache), as a gateway holds a
    // request it has just decoded. The timed call reads no benchmark table.
    let request = |a: u32, n: u64| (sub_ports[a as usize - 1].to_string(), PhoneNumber::from_u64(n).expect("valid"));
    let t = Instant::now();
    // Rows by round: [decide, batch, check, table, HashSet].
    let mut rounds: Vec<Vec<Row>> = vec![Vec::new(); 5];
    for _ in 0..a.repeat {
        let check_row = row(
            "portlog check (with since read)",
            time_queries(&queries, request, |(sp, number)| {
                !reg.check(sp, *number, Usage::Commercial, None, None).expect("check").allow
            }),
            Some(portlog_bytes),
        );
        let decide_row = row(
            "portlog decide (check at now, no since read)",
            time_queries(&queries, request, |(sp, number)| {
                !reg.decide(sp, *number, Usage::Commercial, None).expect("decide").allow
            }),
            Some(portlog_bytes),
        );
        // The same questions through `decide_batch`, 1,000 per call (a `CheckBatch`'s size): the
        // value per batch is its time divided by its questions; p50 and p99 are over the batches.
        // As for single calls, the request is decoded before the timer starts: its sub-ports in
        // one buffer, as a decoded `CheckBatch` holds them.
        let batch_row = {
            let mut per_check = Vec::with_capacity(queries.len() / BATCH + 1);
            let mut out = Vec::with_capacity(BATCH);
            let mut decoded = String::with_capacity(BATCH * 24);
            for chunk in queries.chunks(BATCH) {
                out.clear();
                decoded.clear();
                for &(_, asg, _) in chunk {
                    decoded.push_str(sub_ports[asg as usize - 1]);
                }
                let mut at = 0;
                let qs: Vec<Question<'_>> = chunk
                    .iter()
                    .map(|&(_, asg, n)| {
                        let len = sub_ports[asg as usize - 1].len();
                        at += len;
                        Question {
                            sub_port: &decoded[at - len..at],
                            number: PhoneNumber::from_u64(n).expect("valid"),
                            usage: Usage::Commercial,
                            text: None,
                        }
                    })
                    .collect();
                let t = Instant::now();
                reg.decide_batch(&qs, &mut out);
                let ns = t.elapsed().as_nanos() as f64 / chunk.len() as f64;
                for (v, &(hit, asg, n)) in out.iter().zip(chunk) {
                    let denied = !v.as_ref().expect("decide_batch").allow;
                    assert_eq!(denied, hit, "decide_batch: wrong answer for assignment {asg} number {n}");
                }
                per_check.push(ns.round() as u32);
            }
            row(BATCH_ROW, (per_check, Vec::new()), Some(portlog_bytes))
        };
        // Membership alone, straight on the reject table.
        let set_row = row(
            "portlog table (membership only)",
            time_queries(
                &queries,
                |a, n| (a, PhoneNumber::from_u64(n).expect("valid")),
                |&(a, n)| reg.in_reject_set(a, n),
            ),
            Some(st.reject_set_bytes as f64 / a.rejects as f64),
        );
        let hs_row =
            row("HashSet<(u32, u64)>", time_queries(&queries, |a, n| (a, n), |k| hs.contains(k)), Some(hs_bytes));
        for (i, r) in [decide_row, batch_row, check_row, set_row, hs_row].into_iter().enumerate() {
            rounds[i].push(r);
        }
    }
    let during = t.elapsed();
    let w_before = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().map_err(|_| anyhow!("writer panicked"))??;
    let rate = w_before as f64 / during.as_secs_f64();

    drop(hs);

    let before = live();
    let mut trees: Vec<roaring::RoaringTreemap> = vec![roaring::RoaringTreemap::new(); a.assignments + 1];
    for &(asg, n) in &keys {
        trees[asg as usize].insert(n);
    }
    let rt_bytes = (live() - before) as f64 / a.rejects as f64;
    let rt_row = row(
        "RoaringTreemap per assignment",
        time_queries(&queries, |a, n| (a, n), |&(a, n)| trees[a as usize].contains(n)),
        Some(rt_bytes),
    );
    drop(trees);

    let rdir = tmp.path().join("rocks");
    let rdb = {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.set_compression_type(rocksdb::DBCompressionType::Zstd);
        let mut bb = rocksdb::BlockBasedOptions::default();
        bb.set_bloom_filter(10.0, false);
        bb.set_block_cache(&rocksdb::Cache::new_lru_cache(64 << 20));
        o.set_block_based_table_factory(&bb);
        let db = rocksdb::DB::open(&o, &rdir)?;
        for chunk in keys.chunks(100_000) {
            let mut wb = rocksdb::WriteBatch::default();
            for &(asg, n) in chunk {
                let mut k = [0u8; 12];
                k[..4].copy_from_slice(&asg.to_be_bytes());
                k[4..].copy_from_slice(&n.to_be_bytes());
                wb.put(k, []);
            }
            db.write(wb)?;
        }
        db.flush()?;
        db.compact_range::<&[u8], &[u8]>(None, None);
        db
    };
    let rocks_row = row(
        "RocksDB point lookup",
        time_queries(
            &queries,
            |a, n| {
                let mut k = [0u8; 12];
                k[..4].copy_from_slice(&a.to_be_bytes());
                k[4..].copy_from_slice(&n.to_be_bytes());
                k
            },
            |k| rdb.get_pinned(k).expect("rocksdb get").is_some(),
        ),
        None,
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed ^ 0x1add);
    let ladder: Vec<(usize, (f64, f64))> = LADDER_MIB.iter().map(|&m| (m, load_latency(m, &mut rng))).collect();

    let mut rows: Vec<Row> = rounds.into_iter().map(over_rounds).collect();
    rows.extend([rt_row, rocks_row]);
    if a.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        for (m, (p50, p99)) in &ladder {
            println!("{}", serde_json::json!({ "memory_floor_mib": m, "p50_ns": p50, "p99_ns": p99 }));
        }
    } else {
        println!(
            "{} rejects, {} assignments (Zipf {}), {} checks ({}% hits), writer {:.0} rejects/s during the check run, timer cost {timer:.0} ns (included), open {load:.2?}",
            a.rejects, a.assignments, a.zipf, a.checks, a.hit_percent, rate
        );
        let repeated = a.repeat > 1;
        if repeated {
            println!();
            println!(
                "{} rounds of the first five rows, one after the other: each figure is the median of the rounds, with the range of the rounds' p50s; the last two rows ran once, after the writer stopped",
                a.repeat
            );
            println!();
        }
        let range_head = if repeated { " p50 range ns |" } else { "" };
        let range_rule = if repeated { "---:|" } else { "" };
        println!(
            "| structure | p50 ns |{range_head} p99 ns | p99.9 ns | max ns | hit p50 ns | hit p99 ns | bytes/reject |"
        );
        println!("|---|---:|{range_rule}---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let range = match (repeated, r.rounds > 1) {
                (false, _) => String::new(),
                (true, true) => format!(" {:.0}–{:.0} |", r.p50_min_ns, r.p50_max_ns),
                (true, false) => " — |".to_string(),
            };
            println!(
                "| {} | {:.0} |{range} {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                r.name,
                r.p50_ns,
                r.p99_ns,
                r.p999_ns,
                r.max_ns,
                ns_or_dash(r.hit_p50_ns),
                ns_or_dash(r.hit_p99_ns),
                r.bytes_per_reject.map_or("n/a".to_string(), |b| format!("{b:.2}"))
            );
        }
        println!();
        println!("memory floor, same run: one dependent random load from a buffer of each size, timed like a check (timer included), {LADDER_LOADS} loads each");
        println!();
        println!("| buffer MiB | p50 ns | p99 ns |");
        println!("|---:|---:|---:|");
        for (m, (p50, p99)) in &ladder {
            println!("| {m} | {p50:.0} | {p99:.0} |");
        }
    }
    Ok(())
}

/// A latency in whole ns, or a dash where the row has none (the batch row has no hit column).
fn ns_or_dash(ns: f64) -> String {
    if ns.is_nan() {
        "—".to_string()
    } else {
        format!("{ns:.0}")
    }
}

fn a_clone(a: &Args) -> Args {
    Args { dir: a.dir.clone(), ..*a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_over_rounds_takes_each_figure_s_median_and_the_p50_range() {
        let r =
            |p50: u32, p99: u32| row("x", ((0..100).map(|i| if i < 98 { p50 } else { p99 }).collect(), vec![]), None);
        let got = over_rounds(vec![r(90, 400), r(120, 500), r(100, 450)]);
        assert_eq!(
            (got.p50_ns, got.p99_ns, got.p50_min_ns, got.p50_max_ns, got.rounds),
            (100.0, 450.0, 90.0, 120.0, 3)
        );
        assert!(got.hit_p50_ns.is_nan());
    }
}
