//! Model-based: random operations on a log over a failing file system, with reboots and power
//! losses, compared with a simple model (in the style of redb's `fuzz_redb`).
//!
//! The input is a program of 2-byte instructions run against a log opened on
//! `portlog_engine::io::FaultyIo`: append a batch, seal, read one number, set an I/O failure
//! countdown, turn a fault on (failed writes, failed fsyncs, failed renames, short writes, a
//! full disk) or heal, restart the process (clean), or lose power (`FaultyIo::power_loss`).
//! The model is two maps of records: acknowledged, and refused with an error (a refused batch
//! may have reached the disk whole). After every restart and power loss the log reopens
//! without faults and must hold every acknowledged record byte-identical, exactly once, and
//! nothing that was never appended, in time order; a read of one number while running must
//! give every acknowledged record of that number, or refuse as `Poisoned` after a failed fsync.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::io::{FaultyIo, SharedIo};
use portlog_engine::{Error, Log, LogConfig, ManualClock, Record, SyncPolicy};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Most instructions run per input, and most reopens (bounds on the time of one input).
const STEPS_MAX: usize = 96;
const REOPENS_MAX: usize = 8;

fn cfg() -> LogConfig {
    LogConfig {
        shards: 2,
        sync: SyncPolicy::Data,
        batch_bytes_max: 64 << 10,
        segment_bytes_max: 64 << 20,
        block_bytes_max: 4096,
        zstd_level: 1,
        zstd_dict_bytes: 0,
        maintenance_interval_ms: u64::MAX / 2,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, io: &Arc<FaultyIo>) -> portlog_engine::Result<Log> {
    Log::open_with_io(dir, cfg(), Arc::new(ManualClock::new(portlog_fuzz::NOW_MS)), io.clone() as SharedIo)
}

#[derive(Default)]
struct Model {
    acked: HashMap<String, Record>,
    refused: HashMap<String, Record>,
}

/// Reopens without faults and checks the model; refused records found are durable from now on.
fn verify(dir: &Path, io: &Arc<FaultyIo>, m: &mut Model) -> Log {
    io.heal();
    let log = match open(dir, io) {
        Ok(l) => l,
        Err(e) => panic!("reopen without faults failed: {e}"),
    };
    let mut seen: HashSet<String> = HashSet::new();
    for shard in 0..2 {
        let mut last = i64::MIN;
        for r in log.scan_shard(shard, 0, i64::MAX).expect("scan") {
            let r = r.expect("a record reads back after a reopen");
            assert!(r.ts_ms >= last, "shard {shard} out of time order");
            last = r.ts_ms;
            let want = m.acked.get(&r.text).or_else(|| m.refused.get(&r.text));
            assert_eq!(want, Some(&r), "a record never appended, or altered");
            assert!(seen.insert(r.text.clone()), "a record present twice: {}", r.text);
        }
    }
    for t in m.acked.keys() {
        assert!(seen.contains(t), "an acknowledged record was lost: {t}");
    }
    for (t, r) in std::mem::take(&mut m.refused) {
        if seen.contains(&t) {
            m.acked.insert(t, r);
        }
    }
    log
}

fuzz_target!(|data: &[u8]| {
    let root = portlog_fuzz::scratch("model");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("data");
    let seed = data.iter().fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64));
    let io = Arc::new(FaultyIo::new(root.join("trash"), seed).expect("scratch directory"));
    let mut m = Model::default();
    let mut log = Some(open(&dir, &io).expect("a fresh log opens"));
    let mut next = 0u64;
    let mut reopens = 0;
    let base = portlog_fuzz::records(8, portlog_fuzz::NOW_MS - portlog_fuzz::DAY_MS, 1);
    for ins in data.chunks_exact(2).take(STEPS_MAX) {
        let (op, arg) = (ins[0], ins[1]);
        match op % 10 {
            0..=3 => {
                let Some(l) = log.as_ref() else { continue };
                let n = 1 + (arg % 8) as usize;
                let batch: Vec<Record> = (0..n)
                    .map(|i| {
                        next += 1;
                        let mut r = base[(arg as usize + i) % base.len()].clone();
                        // Three days: today, yesterday and the day before (back-filled).
                        r.ts_ms = portlog_fuzz::NOW_MS - ((arg as i64 + i as i64) % 3) * portlog_fuzz::DAY_MS
                            + (next as i64 % 3_000_000);
                        r.text = format!("{} #{next}", r.text);
                        r
                    })
                    .collect();
                let ok = l.append(batch.clone()).is_ok();
                let into = if ok { &mut m.acked } else { &mut m.refused };
                into.extend(batch.into_iter().map(|r| (r.text.clone(), r)));
            }
            4 => {
                if let Some(l) = log.as_ref() {
                    let _ = l.seal_all();
                }
            }
            5 => {
                let Some(l) = log.as_ref() else { continue };
                let peer = base[arg as usize % base.len()].peer;
                if let Ok(it) = l.read_number(peer, 0, i64::MAX) {
                    // Reads do not go through FaultyIo's faults, but a failed fsync may have
                    // dropped a file's unsynced pages: the rows there are refused as `Poisoned`
                    // (the journal holds them until a reopen), never read as corruption or
                    // skipped. Whatever a read gives is right.
                    let got: Vec<Record> = match it.collect::<Result<Vec<Record>, Error>>() {
                        Ok(got) => got,
                        Err(Error::Poisoned { .. }) => continue,
                        Err(e) => panic!("a read of {} failed with {e}", peer.as_u64()),
                    };
                    let want = m.acked.values().filter(|r| r.peer == peer).count();
                    let known = got.iter().filter(|r| r.peer == peer && m.acked.contains_key(&r.text)).count();
                    assert_eq!(known, want, "a read of {} misses acknowledged records", peer.as_u64());
                    assert!(got.iter().all(|r| r.peer == peer), "a read of one number gave another");
                }
            }
            6 => io.set_fail_after(Some(arg as u64 % 64)),
            7 => match arg % 6 {
                0 => io.set_fail_writes(true),
                1 => io.set_fail_fsyncs(true),
                2 => io.set_fail_renames(true),
                3 => io.set_short_writes(true),
                4 => io.set_disk_full(true),
                _ => io.heal(),
            },
            8 | 9 => {
                if reopens >= REOPENS_MAX {
                    continue;
                }
                reopens += 1;
                if op % 10 == 8 {
                    // A clean restart of the process: close, the page cache reaches the disk.
                    if let Some(l) = log.take() {
                        l.close();
                    }
                    io.settle();
                } else {
                    io.crash();
                    drop(log.take());
                    io.power_loss().expect("simulate the power loss");
                }
                log = Some(verify(&dir, &io, &mut m));
            }
            _ => unreachable!(),
        }
    }
    io.crash();
    drop(log.take());
    io.power_loss().expect("simulate the power loss");
    verify(&dir, &io, &mut m).close();
    let _ = std::fs::remove_dir_all(&root);
});
