//! Criterion benches of portlog's write path on generated records:
//!
//! * `append/group100`: one `Log::append` of 100 records with `SyncPolicy::Data` (default
//!   config, 4 shards), i.e. the latency of a durable group;
//! * `seal/50k`: `Log::seal_all` of 50 000 records held in open segments (the appends that fill
//!   them, with `SyncPolicy::None`, are set-up and not timed).
//!
//! `cargo bench -p portlog-benches --bench append`; `cargo test --benches` runs each once.

use criterion::{criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use portlog_benches::disk::scratch_base;
use portlog_benches::{Generator, Record, Templates, WorkloadConfig};
use portlog_engine::{Log, LogConfig, ManualClock, SyncPolicy};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUP: usize = 100;
const SEAL_RECORDS: usize = 50_000;

fn generator() -> Generator {
    let templates = Arc::new(Templates::load_default().expect("templates file (set PORTLOG_TEMPLATES)"));
    Generator::new(templates, WorkloadConfig::default()).expect("default workload")
}

fn scratch() -> tempfile::TempDir {
    let base = scratch_base().expect("a scratch directory");
    tempfile::Builder::new().prefix("portlog-criterion-").tempdir_in(base).expect("temp dir")
}

fn append(c: &mut Criterion) {
    let dir = scratch();
    let mut gen = generator();
    let clock = ManualClock::new(gen.last_ts_ms());
    let log = Log::open(dir.path(), LogConfig::default(), Arc::new(clock.clone())).expect("open log");
    let mut g = c.benchmark_group("append");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).throughput(Throughput::Elements(GROUP as u64));
    g.bench_function("group100", |b| {
        b.iter_batched(
            || {
                let recs: Vec<Record> = gen.by_ref().take(GROUP).collect();
                clock.set_ms(gen.last_ts_ms());
                recs
            },
            |recs| log.append(recs).expect("append"),
            BatchSize::SmallInput,
        );
    });
    g.finish();
    log.close();
}

fn seal(c: &mut Criterion) {
    let mut gen = generator();
    let records: Vec<Record> = gen.by_ref().take(SEAL_RECORDS).collect();
    let now = gen.last_ts_ms();
    let mut g = c.benchmark_group("seal");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(SEAL_RECORDS as u64));
    g.bench_function("50k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let cfg = LogConfig { sync: SyncPolicy::None, ..LogConfig::default() };
                let log = Log::open(dir.path(), cfg, Arc::new(ManualClock::new(now))).expect("open log");
                for chunk in records.chunks(1_000) {
                    log.append(chunk.to_vec()).expect("append");
                }
                let t = Instant::now();
                log.seal_all().expect("seal");
                total += t.elapsed();
                log.close();
            }
            total
        });
    });
    g.finish();
}

/// The bench group; a module of its own because `criterion_group!` defines an undocumented
/// public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::append, super::seal);
}
criterion_main!(group::benches);
