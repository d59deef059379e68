//! Criterion benches of the read paths on generated records, sealed with the default layout
//! (8 KiB blocks, a dictionary per segment):
//!
//! * `trace/whole_window`: `Log::trace` of one number over every day and shard, records
//!   counted; the numbers rotate over 64 drawn from the data (warm page cache);
//! * `trace/first_record`: the same query, until its first record;
//! * `trace/sub_port_day`: `Log::read_sub_port` of one sub-port over one day.
//!
//! The set-up (300,000 records over 30 days, 4 shards, appended without fsync and sealed) is
//! not timed. `cargo bench -p portlog-benches --bench trace`; `cargo test --benches` runs each
//! once. The 100-million-record figures come from `portlog-trace-bench` (docs/benchmarks.md).

use criterion::{criterion_main, Criterion};
use portlog_benches::disk::scratch_base;
use portlog_benches::{Generator, Record, Templates, WorkloadConfig, DEFAULT_START_MS};
use portlog_engine::time::DAY_MS;
use portlog_engine::{Log, LogConfig, ManualClock, PhoneNumber, SyncPolicy, TraceQuery};
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 300_000;
const DAYS: i64 = 30;

struct Data {
    _dir: tempfile::TempDir,
    log: Log,
    numbers: Vec<PhoneNumber>,
    sub_port: Record,
}

fn load() -> Data {
    let base = scratch_base().expect("a scratch directory");
    let dir = tempfile::Builder::new().prefix("portlog-criterion-trace-").tempdir_in(base).expect("temp dir");
    let templates = Arc::new(Templates::load_default().expect("templates file (set PORTLOG_TEMPLATES)"));
    // Records from 09:00 on the first day to well before the end of the last one.
    let span_s = ((DAYS - 1) * DAY_MS) as f64 / 1000.0;
    let wl = WorkloadConfig { rate_per_s: RECORDS as f64 / span_s, ..WorkloadConfig::default() };
    let mut gen = Generator::new(templates, wl).expect("workload");
    let now = DEFAULT_START_MS + DAYS * DAY_MS;
    let cfg = LogConfig { sync: SyncPolicy::None, ..LogConfig::default() };
    let log = Log::open(dir.path(), cfg, Arc::new(ManualClock::new(now))).expect("open log");
    let mut all: Vec<Record> = Vec::with_capacity(RECORDS);
    while all.len() < RECORDS {
        let batch: Vec<Record> = gen.by_ref().take(10_000).collect();
        all.extend(batch.iter().cloned());
        log.append(batch).expect("append");
    }
    log.seal_all().expect("seal");
    let numbers = (0..64).map(|i| all[i * (RECORDS / 64)].peer).collect();
    let sub_port = all[RECORDS / 2].clone();
    Data { _dir: dir, log, numbers, sub_port }
}

fn trace(c: &mut Criterion) {
    let d = load();
    let mut g = c.benchmark_group("trace");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    let mut i = 0usize;
    g.bench_function("whole_window", |b| {
        b.iter(|| {
            i = (i + 1) % d.numbers.len();
            d.log
                .trace(&TraceQuery::new(d.numbers[i]))
                .expect("trace")
                .try_fold(0usize, |n, r| r.map(|_| n + 1))
                .expect("records")
        })
    });
    g.bench_function("first_record", |b| {
        b.iter(|| {
            i = (i + 1) % d.numbers.len();
            d.log.trace(&TraceQuery::new(d.numbers[i])).expect("trace").next().map(|r| r.expect("record").ts_ms)
        })
    });
    let r = &d.sub_port;
    let day = r.ts_ms - r.ts_ms.rem_euclid(DAY_MS);
    g.bench_function("sub_port_day", |b| {
        b.iter(|| {
            d.log
                .read_sub_port(&r.sub_port, day, day + DAY_MS)
                .expect("read")
                .try_fold(0usize, |n, r| r.map(|_| n + 1))
                .expect("records")
        })
    });
    g.finish();
    d.log.close();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::trace);
}
criterion_main!(group::benches);
