//! Criterion benches of portlog's write path on generated records:
//!
//! * `append/group100`: one `Log::append` of 100 records with `SyncPolicy::Data` (default
//!   config, 4 shards), i.e. the latency of a durable group;
//! * `seal/50k`: `Log::seal_all` of 50 000 records held in open segments (the appends that fill
//!   them, with `SyncPolicy::None`, are set-up and not timed);
//! * `append/bulk1k_nosync`: one `Log::append` of 1 000 records with `SyncPolicy::None` (the
//!   CPU cost of encoding and writing, without the fsync that hides it);
//! * each again with `_encrypted`: encryption at rest on (a key ring of one key).
//!
//! `cargo bench -p portlog-benches --bench append`; `cargo test --benches` runs each once.

use criterion::{criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use portlog_benches::disk::scratch_base;
use portlog_benches::{Generator, Record, Templates, WorkloadConfig};
use portlog_engine::{KeyRing, Log, LogConfig, LogEnv, ManualClock, SyncPolicy};
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

/// The environment of a bench run: plaintext, or encrypted with one key.
fn env(encrypted: bool) -> LogEnv {
    let keys = encrypted.then(|| {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
        Arc::new(KeyRing::from_keys([(1, key)].into(), std::path::Path::new("bench")).expect("key ring"))
    });
    LogEnv { keys, ..LogEnv::default() }
}

fn suffix(encrypted: bool) -> &'static str {
    if encrypted {
        "_encrypted"
    } else {
        ""
    }
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    for encrypted in [false, true] {
        for (name, n, sync) in [("group100", GROUP, SyncPolicy::Data), ("bulk1k_nosync", 1_000, SyncPolicy::None)] {
            let dir = scratch();
            let mut gen = generator();
            let clock = ManualClock::new(gen.last_ts_ms());
            let cfg = LogConfig { sync, ..LogConfig::default() };
            let log = Log::open_with(dir.path(), cfg, Arc::new(clock.clone()), env(encrypted)).expect("open log");
            g.sample_size(20).measurement_time(Duration::from_secs(4)).throughput(Throughput::Elements(n as u64));
            g.bench_function(format!("{name}{}", suffix(encrypted)), |b| {
                b.iter_batched(
                    || {
                        let recs: Vec<Record> = gen.by_ref().take(n).collect();
                        clock.set_ms(gen.last_ts_ms());
                        recs
                    },
                    |recs| log.append(recs).expect("append"),
                    BatchSize::SmallInput,
                );
            });
            log.close();
        }
    }
    g.finish();
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
    for encrypted in [false, true] {
        g.bench_function(format!("50k{}", suffix(encrypted)), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = scratch();
                    let cfg = LogConfig { sync: SyncPolicy::None, ..LogConfig::default() };
                    let log = Log::open_with(dir.path(), cfg, Arc::new(ManualClock::new(now)), env(encrypted))
                        .expect("open log");
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
    }
    g.finish();
}

/// The bench group; a module of its own because `criterion_group!` defines an undocumented
/// public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::append, super::seal);
}
criterion_main!(group::benches);
