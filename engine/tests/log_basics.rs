//! Appends, reads by sub-port / number / shard, sealing, reopening, validation.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use portlog_engine::{Error, Log, LogConfig, ManualClock, PhoneNumber, Record, SubPort};
use std::sync::Arc;

fn open(dir: &std::path::Path, cfg: LogConfig, now: i64) -> Log {
    Log::open(dir, cfg, Arc::new(ManualClock::new(now))).unwrap()
}

fn sorted_by_ts(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| r.ts_ms);
    v
}

#[test]
fn backfilled_records_land_in_their_day_and_read_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let now = DAY0_MS + 10 * DAY_MS;
    let log = open(dir.path(), small_config(1), now);
    // Distinct times, appended out of order across ten days, in several batches.
    let mut all = Vec::new();
    for (k, day) in [9i64, 2, 7, 0, 5, 2, 9, 1].iter().enumerate() {
        let batch: Vec<Record> = (0..20u64)
            .map(|i| {
                rec(
                    k as u64 * 100 + i,
                    "1069012345601",
                    DAY0_MS + day * DAY_MS + ((37 * (i as i64) + 11 * k as i64) % 1000) * 60_000 + k as i64,
                )
            })
            .collect();
        all.extend(batch.clone());
        log.append(batch).unwrap();
    }
    let check = |log: &Log, all: &[Record]| {
        let got = collect(log.read_sub_port(&SubPort::parse("1069012345601").unwrap(), 0, i64::MAX).unwrap());
        assert_eq!(got, sorted_by_ts(all.to_vec()));
        // A one-day window returns exactly that day.
        let day2 = collect(log.scan_shard(0, DAY0_MS + 2 * DAY_MS, DAY0_MS + 3 * DAY_MS).unwrap());
        let want: Vec<Record> =
            sorted_by_ts(all.iter().filter(|r| (r.ts_ms - DAY0_MS) / DAY_MS == 2).cloned().collect());
        assert_eq!(day2, want);
    };
    check(&log, &all);
    log.seal_all().unwrap();
    check(&log, &all);
    // Every sealed segment holds exactly one day, and its file name says which.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("log/shard-000"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for day in [0, 1, 2, 5, 7, 9] {
        let stem = format!("202605{:02}T0000-", day + 1);
        assert!(names.iter().any(|n| n.starts_with(&stem) && n.ends_with(".seg")), "{stem} missing in {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with(".open")), "{names:?}");
    log.close();
    let log = open(dir.path(), small_config(1), now);
    check(&log, &all);
    // A back-fill into an already sealed day opens a new generation and merges on read.
    let late = rec(9_999, "1069012345601", DAY0_MS + 2 * DAY_MS + 1);
    all.push(late.clone());
    log.append(vec![late]).unwrap();
    check(&log, &all);
    log.seal_all().unwrap();
    check(&log, &all);
}

#[test]
fn reads_by_number_span_shards_and_sub_ports() {
    let dir = tempfile::tempdir().unwrap();
    let now = DAY0_MS + 3 * DAY_MS;
    let log = open(dir.path(), small_config(4), now);
    let peer = PhoneNumber::parse("13912345678").unwrap();
    let mut mine = Vec::new();
    let mut batch = Vec::new();
    for i in 0..2000u64 {
        let sp = format!("10690{}", i % 17);
        let mut r = rec(i, &sp, DAY0_MS + (i as i64) * 100_000);
        if i % 7 == 0 {
            r.peer = peer;
            mine.push(r.clone());
        }
        batch.push(r);
    }
    log.append(batch).unwrap();
    let got = collect(log.read_number(peer, 0, i64::MAX).unwrap());
    assert_eq!(got, mine);
    log.seal_all().unwrap();
    assert_eq!(collect(log.read_number(peer, 0, i64::MAX).unwrap()), mine);
    let st = log.stats();
    assert_eq!(st.records, 2000);
    assert_eq!(st.open_segments, 0);
    assert!(st.sealed_segments >= 4, "{st:?}");
    // Window bounds are half-open.
    let w = collect(log.read_number(peer, mine[1].ts_ms, mine[3].ts_ms).unwrap());
    assert_eq!(w, mine[1..3].to_vec());
    assert!(matches!(log.read_number(peer, 10, 5), Err(Error::Invalid { field: "window", .. })));
}

#[test]
fn bad_records_are_refused_whole_batch_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let now = DAY0_MS;
    let log = open(dir.path(), LogConfig::default(), now);
    let good = rec(1, "106901", now);
    let mut future = rec(2, "106901", now + 3_600_001);
    let e = log.append(vec![good.clone(), future.clone()]).unwrap_err();
    assert!(matches!(e, Error::FutureRecord { .. }), "{e}");
    assert!(e.to_string().contains("ahead of the engine clock"), "{e}");
    future.ts_ms = now + 3_600_000; // exactly at the skew limit is fine
    let mut no_usage = rec(1, "106901", now);
    no_usage.usage = None;
    let e = log.append(vec![good.clone(), no_usage]).unwrap_err();
    assert_eq!(e.to_string(), "invalid usage: record 1: an mt record needs a usage (commercial, service or public)");
    let mut long = rec(1, "106901", now);
    long.text = "长".repeat(6000);
    assert!(log.append(vec![long]).unwrap_err().to_string().starts_with("invalid text: record 0"));
    // Nothing of the refused batches was written.
    assert_eq!(log.stats().records, 0);
    log.append(vec![good.clone(), future.clone()]).unwrap();
    assert_eq!(collect(log.scan_shard(log.shard_of(&good.sub_port), 0, i64::MAX).unwrap()).len(), 2);
}

#[test]
fn a_second_instance_is_locked_out_and_manifest_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(2), DAY0_MS);
    let e = Log::open(dir.path(), small_config(2), Arc::new(ManualClock::new(DAY0_MS))).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    log.close();
    let e = Log::open(dir.path(), small_config(3), Arc::new(ManualClock::new(DAY0_MS))).unwrap_err();
    assert!(matches!(e, Error::ConfigMismatch { .. }), "{e}");
}

#[test]
fn finished_days_are_sealed_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(DAY0_MS + 3_600_000);
    let cfg = LogConfig { shards: 1, maintenance_interval_ms: 1, seal_idle_ms: 0, ..LogConfig::default() };
    let log = Log::open(dir.path(), cfg, Arc::new(clock.clone())).unwrap();
    log.append(vec![rec(1, "106901", DAY0_MS + 1000)]).unwrap();
    // Still the same day: stays open.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(log.stats().open_segments, 1);
    // Past the end of the day plus the 2 h grace: the writer retires it and the sealer seals it.
    clock.set_ms(DAY0_MS + DAY_MS + 2 * 3_600_000 + 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.stats().sealed_segments == 0 {
        assert!(std::time::Instant::now() < deadline, "the finished day was never sealed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(log.stats().open_segments, 0);
    assert_eq!(log.stats().records, 1);
}

#[test]
fn long_texts_and_full_segments_roll_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(1), DAY0_MS + DAY_MS);
    let mut all = Vec::new();
    for b in 0..30u64 {
        let batch: Vec<Record> = (0..40u64)
            .map(|i| {
                let mut r = rec(b * 40 + i, "10691", DAY0_MS + (b * 40 + i) as i64);
                r.text = format!("{}{}", "【乐游旅行】长短信拼接。".repeat(1 + ((b * 40 + i) as usize % 90)), i);
                r
            })
            .collect();
        all.extend(batch.clone());
        log.append(batch).unwrap();
    }
    log.seal_all().unwrap();
    let st = log.stats();
    assert!(st.sealed_segments >= 2, "1 MiB segments must roll over: {st:?}");
    assert_eq!(collect(log.scan_shard(0, 0, i64::MAX).unwrap()), all);
}

#[test]
fn a_batch_spanning_more_days_than_open_segments_max_loses_nothing() {
    // Regression: the open-segment limit once retired a segment that the same batch had
    // routed rows to; the sealer sealed it without them and unlinked the open file.
    let dir = tempfile::tempdir().unwrap();
    let now = DAY0_MS + 20 * DAY_MS;
    let cfg = LogConfig { open_segments_max: 2, ..small_config(1) };
    let log = Log::open(dir.path(), cfg.clone(), Arc::new(ManualClock::new(now))).unwrap();
    let mut all = Vec::new();
    for round in 0..3u64 {
        let batch: Vec<Record> =
            (0..12u64).map(|d| rec(round * 100 + d, "106901", DAY0_MS + d as i64 * DAY_MS + round as i64)).collect();
        all.extend(batch.clone());
        log.append(batch).unwrap();
    }
    log.seal_all().unwrap();
    log.close();
    let log = Log::open(dir.path(), cfg, Arc::new(ManualClock::new(now))).unwrap();
    assert_eq!(collect(log.scan_shard(0, 0, i64::MAX).unwrap()), sorted_by_ts(all));
}

#[test]
fn reopening_reads_no_sealed_block_and_a_damaged_block_is_named_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let now = DAY0_MS + 5 * DAY_MS;
    let log = open(dir.path(), small_config(1), now);
    let day =
        |d: i64| -> Vec<Record> { (0..300u64).map(|i| rec(i, "106901", DAY0_MS + d * DAY_MS + i as i64)).collect() };
    log.append(day(1)).unwrap();
    log.append(day(2)).unwrap();
    log.seal_all().unwrap();
    log.close();
    let seg = dir.path().join("log/shard-000/20260502T0000-000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0x04; // inside the first block
    std::fs::write(&seg, &bytes).unwrap();
    // Open verifies headers and footers only, so it succeeds.
    let log = open(dir.path(), small_config(1), now);
    assert!(log.recovery().damaged.is_empty());
    // A read that needs the damaged block fails with the file and the block's offset...
    let err = log.scan_shard(0, 0, i64::MAX).unwrap().find_map(Result::err).unwrap();
    match err {
        Error::Corrupt { path, offset, detail } => {
            assert_eq!(path, seg);
            assert_eq!(offset, 40);
            assert!(detail.contains("block 0 checksum mismatch"), "{detail}");
        }
        other => panic!("{other}"),
    }
    // ...while the other day's segment reads in full.
    assert_eq!(collect(log.scan_shard(0, DAY0_MS + 2 * DAY_MS, DAY0_MS + 3 * DAY_MS).unwrap()), day(2));
}
