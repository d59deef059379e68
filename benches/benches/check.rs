//! Criterion benches of the hot-path check (medians without a per-call timer):
//!
//! * `check/decide_miss`, `check/decide_hit`: `Registry::decide` (the gateway's question at
//!   "now", answered from memory) for a number that did not / did refuse;
//! * `check/check_hit`: `Registry::check`, which also reads a hit's since-time from RocksDB;
//! * `check/set_contains`, `check/hashset_contains`: membership alone in portlog's reject set
//!   and in a `HashSet<(u32, u64)>` peer, same keys;
//! * `check/decide_batch_miss_1000`: `Registry::decide_batch` of 1,000 of `decide_miss`'s
//!   questions per call (throughput: time per question).
//!
//! 1 000 000 rejects over 10 000 assignments, Zipf 1.0; `PORTLOG_BENCH_REJECTS=10000000` for
//! the 10 M over 100 k (one assignment per 100 rejects; the percentile harness
//! `portlog-check-bench` runs that case with a concurrent writer). Each bench cycles through
//! 2^20 (hits: 2^16) random questions, so that the reject table is read from memory as a
//! gateway's random numbers would, not from the cache a handful of repeated probes would warm.
//! `cargo bench -p portlog-benches --bench check`; `cargo test --benches` runs each once.

use criterion::{criterion_main, Criterion};
use portlog_benches::disk::scratch_base;
use portlog_engine::registry::{AssignInput, ProviderInput, RejectInput, RejectSource};
use portlog_engine::{Clock, PhoneNumber, Question, Registry, RegistryConfig, SystemClock, Usage};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::collections::HashSet;
use std::sync::Arc;

/// Rejects registered (`PORTLOG_BENCH_REJECTS`, default 1 M).
fn rejects() -> usize {
    std::env::var("PORTLOG_BENCH_REJECTS").ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(1_000_000)
}

fn sub_port(i: usize) -> String {
    format!("10690{i:08}")
}

fn check(c: &mut Criterion) {
    let rejects = rejects();
    let assignments = (rejects / 100).max(1);
    let dir = tempfile::Builder::new()
        .prefix("portlog-criterion-check-")
        .tempdir_in(scratch_base().expect("scratch dir"))
        .expect("temp dir");
    let cfg = RegistryConfig { sync: false, ..RegistryConfig::default() };
    let reg = Registry::open(dir.path(), cfg, Arc::new(SystemClock)).expect("open");
    reg.provider_put(ProviderInput { id: "P".into(), name: "星河".into(), ..ProviderInput::default() }).expect("p");
    let now = SystemClock.now_ms();
    let year = 365 * 86_400_000;
    reg.assign_many(
        (0..assignments)
            .map(|i| AssignInput {
                sub_port: sub_port(i),
                provider: "P".into(),
                usage: Usage::Commercial,
                from_ms: now - year,
                to_ms: now + year,
                consent_required: false,
            })
            .collect(),
    )
    .expect("assign");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let zipf = Zipf::new(assignments as u64, 1.0).expect("zipf");
    let mut keys: HashSet<(u32, u64)> = HashSet::new();
    while keys.len() < rejects {
        keys.insert((zipf.sample(&mut rng) as u32, 13_000_000_000 + rng.gen_range(0..7_000_000_000u64)));
    }
    let keys: Vec<(u32, u64)> = keys.into_iter().collect();
    for chunk in keys.chunks(100_000) {
        let batch: Vec<RejectInput> = chunk
            .iter()
            .map(|&(a, n)| RejectInput {
                sub_port: sub_port(a as usize - 1),
                number: PhoneNumber::from_u64(n).expect("valid"),
                at_ms: Some(now - 1000),
                source: RejectSource::Import,
                text: "R".into(),
                assignment: Some(a),
            })
            .collect();
        reg.register_rejects(&batch).expect("register");
    }
    let sps: Vec<String> = (0..assignments).map(sub_port).collect();
    let misses: Vec<(u32, PhoneNumber)> = (0..1 << 20)
        .map(|_| {
            let a = zipf.sample(&mut rng) as u32;
            (a, PhoneNumber::from_u64(10_000_000_000 + rng.gen_range(0..1_000_000_000)).expect("valid"))
        })
        .collect();
    let hits: Vec<(u32, PhoneNumber)> = (0..1 << 16)
        .map(|_| {
            let (a, n) = keys[rng.gen_range(0..keys.len())];
            (a, PhoneNumber::from_u64(n).expect("valid"))
        })
        .collect();
    let hs: HashSet<(u32, u64)> = keys.iter().copied().collect();

    let mut g = c.benchmark_group("check");
    let mut i = 0usize;
    let mut next = |v: &[(u32, PhoneNumber)]| {
        // Lengths are powers of two.
        i = (i + 1) & (v.len() - 1);
        v[i]
    };
    g.bench_function("decide_miss", |b| {
        b.iter(|| {
            let (a, n) = next(&misses);
            reg.decide(&sps[a as usize - 1], n, Usage::Commercial, None).expect("decide").allow
        })
    });
    g.bench_function("decide_hit", |b| {
        b.iter(|| {
            let (a, n) = next(&hits);
            reg.decide(&sps[a as usize - 1], n, Usage::Commercial, None).expect("decide").allow
        })
    });
    g.bench_function("check_hit", |b| {
        b.iter(|| {
            let (a, n) = next(&hits);
            reg.check(&sps[a as usize - 1], n, Usage::Commercial, None, None).expect("check").allow
        })
    });
    g.bench_function("set_contains", |b| {
        b.iter(|| {
            let (a, n) = next(&misses);
            reg.in_reject_set(a, n)
        })
    });
    g.bench_function("hashset_contains", |b| {
        b.iter(|| {
            let (a, n) = next(&misses);
            hs.contains(&(a, n.as_u64()))
        })
    });
    // 1,000 questions per call, as a `CheckBatch`; criterion's throughput gives the time per
    // question (compare with `decide_miss`: the same questions, one call each). Last, because
    // a group's throughput applies to every bench after it is set.
    let miss_questions: Vec<Question<'_>> = misses
        .iter()
        .map(|&(a, n)| Question { sub_port: &sps[a as usize - 1], number: n, usage: Usage::Commercial, text: None })
        .collect();
    let mut out = Vec::with_capacity(1000);
    let mut at = 0usize;
    g.throughput(criterion::Throughput::Elements(1000));
    g.bench_function("decide_batch_miss_1000", |b| {
        b.iter(|| {
            at = (at + 1000) % (miss_questions.len() - 1000);
            out.clear();
            reg.decide_batch(&miss_questions[at..at + 1000], &mut out);
            out.len()
        })
    });
    g.finish();
}

/// The bench group; a module of its own because `criterion_group!` defines an undocumented
/// function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::check);
}
criterion_main!(group::benches);
