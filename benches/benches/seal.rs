//! Criterion benches of the seal path: `log::sealed::write_sealed`, the sealer's work for one
//! retired open segment, on 50,000 generated records sorted by time (a shard's day at about
//! 2.3 messages/s over 4 shards): columnar encoding into blocks, the dictionary training, zstd,
//! the sub-port and number indexes, the number filter, the footer and the file's fsync.
//!
//! * `seal/segment_50k`: the default layout (8 KiB blocks, a 64 KiB dictionary, zstd 9);
//! * `seal/segment_50k_no_dict`: the same without a dictionary (`zstd_dict_bytes = 0`).
//!
//! The catalogue swap and the unlink of the `.open` file around it (`log::sealer::seal`) are a
//! rename and two directory fsyncs, measured with everything else by `append`'s `seal/50k`
//! (`Log::seal_all`). `cargo bench -p portlog-benches --bench seal`; `cargo test --benches` runs
//! each once.

use criterion::{criterion_main, Criterion, SamplingMode, Throughput};
use portlog_benches::disk::scratch_base;
use portlog_benches::{Generator, Record, Templates, WorkloadConfig};
use portlog_engine::log::frame::SegmentHeader;
use portlog_engine::log::sealed::write_sealed;
use portlog_engine::time::{bucket_start_ms, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::LogConfig;
use std::sync::Arc;
use std::time::Duration;

const RECORDS: usize = 50_000;

fn records() -> Vec<Record> {
    let templates = Arc::new(Templates::load_default().expect("templates file (set PORTLOG_TEMPLATES)"));
    let mut recs: Vec<Record> =
        Generator::new(templates, WorkloadConfig::default()).expect("default workload").take(RECORDS).collect();
    // The sealer's order: by time, ties in arrival order (the generator's times never decrease).
    recs.sort_by_key(|r| r.ts_ms);
    recs
}

fn seal(c: &mut Criterion) {
    let recs = records();
    let base = scratch_base().expect("a scratch directory");
    let dir = tempfile::Builder::new().prefix("portlog-criterion-seal-").tempdir_in(base).expect("temp dir");
    let path = dir.path().join("20260501T0000-000001.seg");
    let header =
        SegmentHeader { shard: 0, bucket_start_ms: bucket_start_ms(recs[0].ts_ms, DAY_MS, UTC8_OFFSET_MS), gen: 1 };
    let cfg = LogConfig::default();
    let mut g = c.benchmark_group("seal");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(RECORDS as u64));
    for (name, dict_bytes) in [("segment_50k", cfg.zstd_dict_bytes), ("segment_50k_no_dict", 0)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                write_sealed(
                    &portlog_engine::io::OsIo,
                    &path,
                    header,
                    recs.iter().cloned().map(Ok),
                    cfg.block_bytes_max,
                    cfg.zstd_level,
                    dict_bytes,
                )
                .expect("seal")
            });
        });
    }
    g.finish();
}

/// The bench group; a module of its own because `criterion_group!` defines an undocumented
/// public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::seal);
}
criterion_main!(group::benches);
