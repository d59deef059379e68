//! `Log::trace`: against a brute-force scan on generated data (sealed, open and back-filled
//! segments over several shards), tie order, validation, segments without a number filter,
//! streaming, and corruption (flipped bytes) reported with the file, never a wrong answer.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use portlog_engine::{Direction, Error, Log, LogConfig, ManualClock, PhoneNumber, Record, SubPort, TraceQuery, Usage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Several shards, small blocks (many per segment), and nothing sealed by the clock: the test
/// decides what is sealed and what stays open.
fn config() -> LogConfig {
    LogConfig {
        shards: 3,
        block_bytes_max: 4096,
        segment_bytes_max: 64 << 10,
        batch_bytes_max: 64 << 10,
        seal_grace_ms: 1_000 * DAY_MS,
        seal_idle_ms: 1_000 * DAY_MS,
        open_segments_max: 256,
        ..LogConfig::default()
    }
}

const DAYS: i64 = 10;
const NOW: i64 = DAY0_MS + DAYS * DAY_MS;

fn open(dir: &Path, cfg: &LogConfig) -> Log {
    Log::open(dir, cfg.clone(), Arc::new(ManualClock::new(NOW))).unwrap()
}

struct Gen {
    rng: StdRng,
    numbers: Vec<u64>,
    sub_ports: Vec<String>,
    used_ts: HashSet<i64>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let numbers = (0..40).map(|_| rng.gen_range(13_000_000_000u64..19_999_999_999)).collect();
        let sub_ports = (0..9).map(|i| format!("10690{:03}{}", rng.gen_range(0..1000), i)).collect();
        Self { rng, numbers, sub_ports, used_ts: HashSet::new() }
    }

    /// A record on `day` with a time no other record has (so that time alone orders the
    /// brute-force answer); numbers and sub-ports skewed so that some are frequent.
    fn record(&mut self, day: i64) -> Record {
        let ts = loop {
            let t = DAY0_MS + day * DAY_MS + self.rng.gen_range(0..DAY_MS);
            if self.used_ts.insert(t) {
                break t;
            }
        };
        let ni = self.rng.gen_range(0..self.numbers.len()).min(self.rng.gen_range(0..self.numbers.len()));
        let si = self.rng.gen_range(0..self.sub_ports.len()).min(self.rng.gen_range(0..self.sub_ports.len()));
        let mo = self.rng.gen_bool(0.2);
        Record {
            dir: if mo { Direction::Mo } else { Direction::Mt },
            sub_port: SubPort::parse(&self.sub_ports[si]).unwrap(),
            peer: PhoneNumber::from_u64(self.numbers[ni]).unwrap(),
            ts_ms: ts,
            usage: if mo { None } else { Some(Usage::Service) },
            text: if mo {
                "R".into()
            } else {
                format!("【测试】验证码{}，5分钟内有效。", self.rng.gen_range(0..1_000_000))
            },
        }
    }

    /// `n` records on random days, appended in batches of random sizes.
    fn append(&mut self, log: &Log, n: usize, model: &mut Vec<Record>) {
        let mut left = n;
        while left > 0 {
            let k = self.rng.gen_range(1..=left.min(300));
            let batch: Vec<Record> = (0..k)
                .map(|_| {
                    let d = self.rng.gen_range(0..DAYS);
                    self.record(d)
                })
                .collect();
            model.extend(batch.iter().cloned());
            log.append(batch).unwrap();
            left -= k;
        }
    }

    fn query(&mut self) -> TraceQuery {
        let number = if self.rng.gen_bool(0.1) {
            13_999_999_999 // in no record
        } else {
            self.numbers[self.rng.gen_range(0..self.numbers.len())]
        };
        let mut q = TraceQuery::new(PhoneNumber::from_u64(number).unwrap());
        if self.rng.gen_bool(0.7) {
            let a = DAY0_MS - DAY_MS + self.rng.gen_range(0..(DAYS + 2) * DAY_MS);
            let b = a + self.rng.gen_range(0..4 * DAY_MS);
            q = q.window(a, b);
        }
        if self.rng.gen_bool(0.3) {
            q.sub_port = Some(if self.rng.gen_bool(0.1) {
                SubPort::parse("1069999").unwrap() // in no record
            } else {
                SubPort::parse(&self.sub_ports[self.rng.gen_range(0..self.sub_ports.len())]).unwrap()
            });
        }
        if self.rng.gen_bool(0.3) {
            q.direction = Some(if self.rng.gen_bool(0.5) { Direction::Mt } else { Direction::Mo });
        }
        if self.rng.gen_bool(0.3) {
            q.limit = Some(self.rng.gen_range(1..20));
        }
        q
    }
}

/// Every record of the log, by scanning every shard whole.
fn scan_all(log: &Log) -> Vec<Record> {
    let mut all = Vec::new();
    for s in 0..log.shard_count() {
        all.extend(collect(log.scan_shard(s, 0, i64::MAX).unwrap()));
    }
    all.sort_by_key(|r| r.ts_ms);
    all
}

/// The brute-force answer: filter the full scan, keep time order, cut at the limit.
fn brute(all: &[Record], q: &TraceQuery) -> Vec<Record> {
    all.iter()
        .filter(|r| {
            r.peer == q.number
                && r.ts_ms >= q.from_ms
                && r.ts_ms < q.to_ms
                && q.sub_port.as_ref().is_none_or(|s| *s == r.sub_port)
                && q.direction.is_none_or(|d| d == r.dir)
        })
        .take(q.limit.unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

fn check_queries(log: &Log, g: &mut Gen, model: &[Record], queries: usize) -> usize {
    let all = scan_all(log);
    let mut sorted = model.to_vec();
    sorted.sort_by_key(|r| r.ts_ms);
    assert_eq!(all, sorted, "the full scan holds exactly what was appended");
    let mut non_empty = 0;
    for _ in 0..queries {
        let q = g.query();
        let got = collect(log.trace(&q).unwrap());
        let want = brute(&all, &q);
        assert_eq!(got, want, "{q:?}");
        non_empty += usize::from(!got.is_empty());
    }
    // Full-window traces of every number, unfiltered; `read_number` (the same filter and
    // index through the older cursor) agrees.
    for &n in &g.numbers {
        let q = TraceQuery::new(PhoneNumber::from_u64(n).unwrap());
        let want = brute(&all, &q);
        assert_eq!(collect(log.trace(&q).unwrap()), want);
        assert_eq!(collect(log.read_number(q.number, 0, i64::MAX).unwrap()), want);
    }
    non_empty
}

#[test]
fn trace_matches_a_brute_force_scan() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config();
        let mut g = Gen::new(seed);
        let mut model = Vec::new();
        let log = open(dir.path(), &cfg);
        // Open segments only.
        g.append(&log, 800, &mut model);
        let mut non_empty = check_queries(&log, &mut g, &model, 60);
        // Sealed days.
        log.seal_all().unwrap();
        non_empty += check_queries(&log, &mut g, &model, 60);
        // Back-fills into sealed days: new generations, also sealed.
        g.append(&log, 1_200, &mut model);
        log.seal_all().unwrap();
        log.close();
        let log = open(dir.path(), &cfg);
        non_empty += check_queries(&log, &mut g, &model, 80);
        // More back-fills left open, beside the sealed generations; then reopened (the open
        // segments' index is rebuilt from their frames).
        g.append(&log, 700, &mut model);
        non_empty += check_queries(&log, &mut g, &model, 80);
        log.close();
        let log = open(dir.path(), &cfg);
        let st = log.stats();
        assert!(st.open_segments >= 3 && st.sealed_segments >= 4 * DAYS as u64, "{st:?}");
        non_empty += check_queries(&log, &mut g, &model, 80);
        assert!(non_empty > 150, "most queries must find something: {non_empty}");
    }
}

#[test]
fn equal_times_come_in_shard_then_segment_then_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let log = open(dir.path(), &cfg);
    // Two sub-ports in different shards.
    let sps: Vec<SubPort> = (0..50).map(|i| SubPort::parse(&format!("10690{i:03}")).unwrap()).collect();
    let a = sps.iter().find(|s| log.shard_of(s) == 0).unwrap().clone();
    let b = sps.iter().find(|s| log.shard_of(s) == 2).unwrap().clone();
    let ts = DAY0_MS + 3 * DAY_MS + 5;
    let mk = |sp: &SubPort, i: u64| {
        let mut r = rec(i, sp.as_str(), ts);
        r.peer = PhoneNumber::from_u64(13_912_345_678).unwrap();
        r
    };
    // Shard 2 first in arrival, then shard 0; generation 0 of each, then a back-fill
    // (generation 1) in shard 0, left open.
    log.append(vec![mk(&b, 1), mk(&b, 2)]).unwrap();
    log.append(vec![mk(&a, 3), mk(&a, 4)]).unwrap();
    log.seal_all().unwrap();
    log.append(vec![mk(&a, 5)]).unwrap();
    log.append(vec![mk(&b, 6)]).unwrap();
    let got = collect(log.trace(&TraceQuery::new(PhoneNumber::from_u64(13_912_345_678).unwrap())).unwrap());
    let texts: Vec<String> = got.iter().map(|r| r.text.clone()).collect();
    let want: Vec<String> =
        [mk(&a, 3), mk(&a, 4), mk(&a, 5), mk(&b, 1), mk(&b, 2), mk(&b, 6)].iter().map(|r| r.text.clone()).collect();
    assert_eq!(texts, want);
}

#[test]
fn bad_queries_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &config());
    let n = PhoneNumber::parse("13800138000").unwrap();
    let e = log.trace(&TraceQuery::new(n).window(10, 5)).err().unwrap();
    assert!(matches!(e, Error::Invalid { field: "from_ms", .. }), "{e}");
    assert!(e.to_string().contains("after its end"), "{e}");
    let e = log.trace(&TraceQuery { limit: Some(0), ..TraceQuery::new(n) }).err().unwrap();
    assert!(matches!(e, Error::Invalid { field: "limit", .. }), "{e}");
    // An empty window is not an error.
    assert!(collect(log.trace(&TraceQuery::new(n).window(5, 5)).unwrap()).is_empty());
    // A malformed number never gets as far as a query.
    assert!(matches!(PhoneNumber::parse("1380013800"), Err(Error::Invalid { .. })));
}

#[test]
fn an_unknown_sub_port_is_refused_by_the_engine_but_traffic_outside_the_ledger_is_traceable() {
    use portlog_engine::{Engine, EngineConfig};
    let dir = tempfile::tempdir().unwrap();
    let cfg = EngineConfig { log: config(), ..EngineConfig::default() };
    let e = Engine::open(dir.path(), cfg, Arc::new(ManualClock::new(NOW))).unwrap();
    let n = PhoneNumber::parse("13800138000").unwrap();
    // Traffic on a sub-port that the ledger has never assigned (an inspection finding).
    let rec = Record {
        dir: Direction::Mt,
        sub_port: SubPort::parse("10690001").unwrap(),
        peer: n,
        ts_ms: NOW - DAY_MS,
        usage: Some(Usage::Service),
        text: "验证码 424242".into(),
    };
    e.log().append(vec![rec.clone()]).unwrap();
    let q = |sp: &str| TraceQuery { sub_port: Some(SubPort::parse(sp).unwrap()), ..TraceQuery::new(n) };
    assert_eq!(collect(e.trace(&q("10690001")).unwrap()), vec![rec]);
    let err = e.trace(&q("10690002")).err().unwrap();
    assert!(matches!(err, Error::NotFound { what: "sub_port", .. }), "{err}");
    assert!(err.to_string().contains("10690002"), "{err}");
    // The engine validates the window too.
    assert!(matches!(e.trace(&TraceQuery::new(n).window(2, 1)), Err(Error::Invalid { field: "from_ms", .. })));
    e.close();
}

/// A sealed data directory: one shard, `days` days, `per_day` records a day over 30 numbers.
fn sealed_dir(dir: &Path, days: i64, per_day: u64) -> (LogConfig, Vec<Record>) {
    let cfg = LogConfig { shards: 1, ..config() };
    let log = open(dir, &cfg);
    let mut all = Vec::new();
    for d in 0..days {
        let recs: Vec<Record> = (0..per_day)
            .map(|i| {
                let mut r = rec(i, "1069012345601", DAY0_MS + d * DAY_MS + i as i64 * 1000);
                r.peer = PhoneNumber::from_u64(13_900_000_000 + (i * 13 + d as u64) % 30).unwrap();
                r
            })
            .collect();
        all.extend(recs.clone());
        log.append(recs).unwrap();
    }
    log.seal_all().unwrap();
    log.close();
    (cfg, all)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log/shard-000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// (kind, offset, length) of each footer section of a sealed file.
fn sections(bytes: &[u8]) -> Vec<(u32, u64, u64)> {
    let t0 = bytes.len() - 56;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let (so, k) = (u64_at(t0 + 24) as usize, u32_at(t0 + 32) as usize);
    (0..k).map(|i| (u32_at(so + i * 32), u64_at(so + i * 32 + 8), u64_at(so + i * 32 + 16))).collect()
}

/// Rewrites a sealed file's section table and trailer without its number filter (kind 4), as a
/// segment sealed before the filter existed; the filter's bytes stay, unreferenced.
fn strip_filter(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let t0 = bytes.len() - 56;
    let so = u64::from_le_bytes(bytes[t0 + 24..t0 + 32].try_into().unwrap()) as usize;
    let mut out = bytes[..so].to_vec();
    let mut kept = 0u32;
    for e in bytes[so..t0].chunks_exact(32) {
        if u32::from_le_bytes(e[..4].try_into().unwrap()) != 4 {
            out.extend_from_slice(e);
            kept += 1;
        }
    }
    let mut trailer = bytes[t0..t0 + 40].to_vec();
    trailer[32..36].copy_from_slice(&kept.to_le_bytes());
    out.extend_from_slice(&trailer);
    let c = xxhash_rust::xxh3::xxh3_64(&out[so..]);
    out.extend_from_slice(&c.to_le_bytes());
    out.extend_from_slice(b"PLOGEND\0");
    std::fs::write(path, out).unwrap();
}

fn all_numbers() -> Vec<PhoneNumber> {
    (0..32).map(|i| PhoneNumber::from_u64(13_900_000_000 + i).unwrap()).collect()
}

#[test]
fn segments_without_a_number_filter_are_read_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = sealed_dir(dir.path(), 4, 400);
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 4);
    for s in &segs {
        assert!(sections(&std::fs::read(s).unwrap()).iter().any(|s| s.0 == 4), "new segments have a filter");
    }
    let answers = |log: &Log| -> Vec<Vec<Record>> {
        all_numbers().into_iter().map(|n| collect(log.trace(&TraceQuery::new(n)).unwrap())).collect()
    };
    let log = open(dir.path(), &cfg);
    let before = answers(&log);
    let index_with = log.stats().index_bytes;
    log.close();
    // Two of the four segments lose their filter: old and new segments side by side.
    strip_filter(&segs[0]);
    strip_filter(&segs[2]);
    assert!(!sections(&std::fs::read(&segs[0]).unwrap()).iter().any(|s| s.0 == 4));
    let log = open(dir.path(), &cfg);
    assert!(log.recovery().damaged.is_empty(), "{:?}", log.recovery().damaged);
    assert!(log.stats().index_bytes < index_with);
    assert_eq!(answers(&log), before);
    for (n, got) in all_numbers().into_iter().zip(before) {
        let want: Vec<Record> = all.iter().filter(|r| r.peer == n).cloned().collect();
        assert_eq!(got, want);
    }
}

#[test]
fn the_first_records_come_out_before_later_segments_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, all) = sealed_dir(dir.path(), 5, 300);
    // Damage the last day's number filter: a trace reaches it only after the first four days.
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let (_, off, len) = sections(&bytes).into_iter().find(|s| s.0 == 4).unwrap();
    bytes[(off + len / 2) as usize] ^= 0x10;
    std::fs::write(&last, &bytes).unwrap();
    let log = open(dir.path(), &cfg);
    let n = PhoneNumber::from_u64(13_900_000_007).unwrap();
    let mine: Vec<Record> = all.iter().filter(|r| r.peer == n).cloned().collect();
    let early = mine.iter().filter(|r| r.ts_ms < DAY0_MS + 4 * DAY_MS).count();
    let mut it = log.trace(&TraceQuery::new(n)).unwrap();
    for want in &mine[..early] {
        assert_eq!(&it.next().unwrap().unwrap(), want);
    }
    match it.next().unwrap() {
        Err(Error::Corrupt { path, offset, detail }) => {
            assert_eq!((path, offset), (last.clone(), off));
            assert!(detail.contains("NumberFilter section checksum mismatch"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(it.next().is_none());
    // A limit that is met earlier never reaches the damaged segment.
    let q = TraceQuery { limit: Some(early), ..TraceQuery::new(n) };
    assert_eq!(collect(log.trace(&q).unwrap()), mine[..early].to_vec());
    // Nor does a window that ends before it.
    assert_eq!(collect(log.trace(&TraceQuery::new(n).window(0, DAY0_MS + 4 * DAY_MS)).unwrap()), mine[..early]);
}

/// Opens a copy of `src` with one byte of `file` flipped at `at`, and traces every number:
/// each answer must be exactly right or an `Error::Corrupt` naming the file.
fn flip_and_trace(src: &Path, cfg: &LogConfig, all: &[Record], file: &str, at: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("log/shard-000");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(src.join("MANIFEST"), dir.path().join("MANIFEST")).unwrap();
    for e in std::fs::read_dir(src.join("log/shard-000")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    let target = to.join(file);
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&target, &bytes).unwrap();
    let log = open(dir.path(), cfg);
    let mut errors = 0;
    for n in all_numbers() {
        let want: Vec<Record> = all.iter().filter(|r| r.peer == n).cloned().collect();
        let got: Result<Vec<Record>, Error> = log.trace(&TraceQuery::new(n)).and_then(|it| it.collect());
        match got {
            Ok(got) => assert_eq!(got, want, "flip at {file}:{at} changed the answer for {n}"),
            Err(Error::Corrupt { path, .. }) => {
                assert_eq!(path, target, "flip at {at}");
                errors += 1;
            }
            Err(e) => panic!("flip at {file}:{at}: {e}"),
        }
    }
    errors
}

#[test]
fn flipped_bytes_are_errors_naming_the_file_never_wrong_answers() {
    let src = tempfile::tempdir().unwrap();
    let (cfg, all) = sealed_dir(src.path(), 3, 600);
    let seg = segments(src.path())[1].clone();
    let name = seg.file_name().unwrap().to_str().unwrap().to_owned();
    let bytes = std::fs::read(&seg).unwrap();
    let secs = sections(&bytes);
    let (_, foff, flen) = *secs.iter().find(|s| s.0 == 4).unwrap();
    let (_, ioff, ilen) = *secs.iter().find(|s| s.0 == 3).unwrap();
    let (_, boff, _) = *secs.iter().find(|s| s.0 == 1).unwrap();
    // The filter is probed by every trace over the segment, so a damaged filter fails every
    // trace; the number index and the block table are read for the 30 numbers the segment holds
    // (the other two are turned away by the filter).
    for at in [foff, foff + 3, foff + flen / 2, foff + flen - 1] {
        assert_eq!(flip_and_trace(src.path(), &cfg, &all, &name, at as usize), all_numbers().len(), "at {at}");
    }
    for at in [ioff, ioff + ilen / 2, ioff + ilen - 1, boff] {
        assert_eq!(flip_and_trace(src.path(), &cfg, &all, &name, at as usize), 30, "at {at}");
    }
    // The header, the section table and the trailer are checked at open: the segment is not
    // served, and a trace of its shard says which file is damaged instead of answering without it.
    for at in [0, 20, bytes.len() - 56 - 10, bytes.len() - 30, bytes.len() - 1] {
        assert_eq!(flip_and_trace(src.path(), &cfg, &all, &name, at), all_numbers().len(), "at {at}");
    }
    // A block: the traces that need it fail, the others are exact.
    assert!(flip_and_trace(src.path(), &cfg, &all, &name, 41) > 0);
    // Anywhere at all: right or an error naming the file.
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..40 {
        flip_and_trace(src.path(), &cfg, &all, &name, rng.gen_range(0..bytes.len()));
    }
}
