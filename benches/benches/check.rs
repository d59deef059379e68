//! Criterion benches of the hot-path check (medians without a per-call timer):
//!
//! * `check/decide_miss`, `check/decide_hit`: `Registry::decide` (the gateway's question at
//!   "now", answered from memory) for a number that did not / did refuse;
//! * `check/check_hit`: `Registry::check`, which also reads a hit's since-time from RocksDB;
//! * `check/set_contains`, `check/hashset_contains`: membership alone in portlog's reject set
//!   and in a `HashSet<(u32, u64)>` peer, same keys.
//!
//! 1 000 000 rejects over 10 000 assignments, Zipf 1.0 (the percentile harness
//! `portlog-check-bench` runs the full 10 M / 100 k case with a concurrent writer).
//! `cargo bench -p portlog-benches --bench check`; `cargo test --benches` runs each once.

use criterion::{criterion_main, Criterion};
use portlog_benches::disk::scratch_base;
use portlog_engine::registry::{AssignInput, ProviderInput, RejectInput, RejectSource};
use portlog_engine::{Clock, PhoneNumber, Registry, RegistryConfig, SystemClock, Usage};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::collections::HashSet;
use std::sync::Arc;

const ASSIGNMENTS: usize = 10_000;
const REJECTS: usize = 1_000_000;

fn sub_port(i: usize) -> String {
    format!("10690{i:08}")
}

fn check(c: &mut Criterion) {
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
        (0..ASSIGNMENTS)
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
    let zipf = Zipf::new(ASSIGNMENTS as u64, 1.0).expect("zipf");
    let mut keys: HashSet<(u32, u64)> = HashSet::new();
    while keys.len() < REJECTS {
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
    let sps: Vec<String> = (0..ASSIGNMENTS).map(sub_port).collect();
    let misses: Vec<(u32, PhoneNumber)> = (0..4096)
        .map(|_| {
            let a = zipf.sample(&mut rng) as u32;
            (a, PhoneNumber::from_u64(10_000_000_000 + rng.gen_range(0..1_000_000_000)).expect("valid"))
        })
        .collect();
    let hits: Vec<(u32, PhoneNumber)> = (0..4096)
        .map(|_| {
            let (a, n) = keys[rng.gen_range(0..keys.len())];
            (a, PhoneNumber::from_u64(n).expect("valid"))
        })
        .collect();
    let sets: Vec<_> = (1..=ASSIGNMENTS as u32).map(|id| reg.reject_set(id)).collect();
    let hs: HashSet<(u32, u64)> = keys.iter().copied().collect();

    let mut g = c.benchmark_group("check");
    let mut i = 0usize;
    let mut next = |v: &[(u32, PhoneNumber)]| {
        i = (i + 1) & 4095;
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
            sets[a as usize - 1].contains_number(n)
        })
    });
    g.bench_function("hashset_contains", |b| {
        b.iter(|| {
            let (a, n) = next(&misses);
            hs.contains(&(a, n.as_u64()))
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
