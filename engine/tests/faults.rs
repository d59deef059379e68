//! Injected I/O faults (`portlog_engine::io::FaultyIo`): failed writes, fsyncs and renames,
//! short writes, a full disk. Each test states what was acknowledged, what was refused and
//! what survived a restart. The power-loss test over thousands of seeds is `power_loss.rs`.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use portlog_engine::io::{FaultyIo, SharedIo};
use portlog_engine::{Error, Log, LogConfig, ManualClock, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NOW: i64 = DAY0_MS + 3_600_000;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    io: Arc<FaultyIo>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 7).unwrap());
    Fixture { _tmp: tmp, dir, io }
}

/// Without the journal: these tests cover the shard writers' own syncs (`journal.rs` covers
/// the journal's faults).
fn cfg() -> LogConfig {
    LogConfig { shards: 1, journal: false, ..small_config(1) }
}

fn open(dir: &Path, io: &Arc<FaultyIo>) -> Log {
    Log::open_with_io(dir, cfg(), Arc::new(ManualClock::new(NOW)), io.clone() as SharedIo).unwrap()
}

fn batch(from: u64, n: u64) -> Vec<Record> {
    (from..from + n).map(|i| rec(i, "1069012345601", DAY0_MS + i as i64)).collect()
}

fn all(log: &Log) -> Vec<Record> {
    collect(log.scan_shard(0, 0, i64::MAX).unwrap())
}

fn io_error_op(e: &Error) -> Option<&'static str> {
    match e {
        Error::Io { op, .. } => Some(op),
        _ => None,
    }
}

#[test]
fn a_failed_fsync_poisons_the_writer_which_never_retries_it_and_a_restart_keeps_everything_acknowledged() {
    let f = fixture();
    let log = open(&f.dir, &f.io);
    let a = batch(0, 10);
    log.append(a.clone()).unwrap();
    assert_eq!(log.poisoned(), None);

    f.io.set_fail_fsyncs(true);
    let b = batch(10, 10);
    let e = log.append(b.clone()).unwrap_err();
    assert_eq!(io_error_op(&e), Some("fdatasync"), "{e}");
    assert!(e.to_string().contains(".open"), "the error names the file: {e}");
    let (shard, cause) = log.poisoned().expect("poisoned");
    assert_eq!(shard, 0);
    assert!(cause.contains("injected fsync failure"), "{cause}");

    // Even with the disk healthy again the writer refuses, without touching the disk: a retried
    // fsync could report success over pages the kernel dropped.
    f.io.heal();
    let ops = f.io.ops();
    let e = log.append(batch(20, 5)).unwrap_err();
    assert!(matches!(e, Error::Poisoned { shard: 0, .. }), "{e}");
    assert_eq!(f.io.ops(), ops, "a poisoned writer must not write or sync again");

    // Reads keep working and never show the refused batch.
    assert_eq!(all(&log), a);
    log.close();

    let log = open(&f.dir, &f.io);
    assert_eq!(log.poisoned(), None, "a reopen clears the poison");
    let got = all(&log);
    // The refused batch may have reached the disk whole (the write succeeded, only its fsync
    // failed) or not at all (the kernel dropped the pages): never in part, never out of order.
    assert!(got == a || got == [a.clone(), b.clone()].concat(), "after restart: {} records", got.len());
    log.append(batch(30, 3)).unwrap();
}

#[test]
fn a_failed_write_is_refused_and_rolled_back_and_the_next_append_succeeds() {
    let f = fixture();
    let log = open(&f.dir, &f.io);
    let a = batch(0, 10);
    log.append(a.clone()).unwrap();
    let before = log.stats().open_bytes;
    f.io.set_fail_writes(true);
    let e = log.append(batch(10, 10)).unwrap_err();
    assert_eq!(io_error_op(&e), Some("write"), "{e}");
    assert_eq!(log.stats().open_bytes, before, "the partial frame was cut");
    assert_eq!(log.poisoned(), None, "a write that failed cleanly does not poison");
    f.io.heal();
    let c = batch(20, 10);
    log.append(c.clone()).unwrap();
    let want = [a, c].concat();
    assert_eq!(all(&log), want);
    log.close();
    let log = open(&f.dir, &f.io);
    assert_eq!(all(&log), want, "after restart");
    assert_eq!(log.recovery().bytes_cut, 0, "nothing torn was left behind");
}

#[test]
fn short_writes_are_completed_in_frames_and_in_sealed_segments() {
    let f = fixture();
    f.io.set_short_writes(true);
    let log = open(&f.dir, &f.io);
    let mut want = Vec::new();
    for b in 0..20 {
        let recs = batch(b * 50, 50);
        log.append(recs.clone()).unwrap();
        want.extend(recs);
    }
    log.seal_all().unwrap();
    let st = log.stats();
    assert_eq!((st.open_segments, st.sealed_segments), (0, 1), "{st:?}");
    assert_eq!(all(&log), want);
    log.close();
    f.io.heal();
    let log = open(&f.dir, &f.io);
    assert_eq!(all(&log), want, "after restart");
}

#[test]
fn a_failed_rename_leaves_the_open_segment_served_and_a_restart_seals_it() {
    let f = fixture();
    let log = open(&f.dir, &f.io);
    let a = batch(0, 100);
    log.append(a.clone()).unwrap();
    f.io.set_fail_renames(true);
    log.seal_all().unwrap();
    let st = log.stats();
    assert_eq!((st.open_segments, st.sealed_segments), (1, 0), "sealing failed, the open segment stays: {st:?}");
    assert_eq!(all(&log), a, "still readable");
    log.close();

    f.io.heal();
    let log = open(&f.dir, &f.io);
    assert_eq!(log.recovery().leftovers_removed, 1, "the sealed copy that was never renamed is removed");
    assert_eq!(all(&log), a);
    log.seal_all().unwrap();
    let st = log.stats();
    assert_eq!((st.open_segments, st.sealed_segments), (0, 1), "{st:?}");
    assert_eq!(all(&log), a);
}

#[test]
fn a_full_disk_refuses_appends_with_a_clear_error_while_reads_go_on_and_appends_resume_once_space_is_back() {
    let f = fixture();
    let log = open(&f.dir, &f.io);
    let a = batch(0, 10);
    log.append(a.clone()).unwrap();
    f.io.set_disk_full(true);
    for i in 0..3 {
        let e = log.append(batch(100 + i * 10, 10)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(msg.contains("write") && msg.contains(".open"), "names the operation and the file: {msg}");
    }
    // Reads of both kinds keep working.
    assert_eq!(all(&log), a);
    assert_eq!(collect(log.read_number(a[3].peer, 0, i64::MAX).unwrap()), vec![a[3].clone()]);
    assert_eq!(log.poisoned(), None, "a full disk is not a lost write: nothing to poison");

    f.io.set_disk_full(false);
    let c = batch(200, 10);
    log.append(c.clone()).unwrap();
    let want = [a, c].concat();
    assert_eq!(all(&log), want);
    log.close();
    let log = open(&f.dir, &f.io);
    assert_eq!(all(&log), want, "after restart");
}

#[test]
fn a_full_disk_while_a_new_segment_is_created_leaves_nothing_behind() {
    let f = fixture();
    let log = open(&f.dir, &f.io);
    let a = batch(0, 10);
    log.append(a.clone()).unwrap();
    f.io.set_disk_full(true);
    // A back-filled record of the day before needs a new open segment: its header cannot be
    // written.
    let day_before = vec![rec(500, "1069012345601", DAY0_MS - 60_000)];
    let e = log.append(day_before.clone()).unwrap_err();
    assert!(e.to_string().contains("No space left on device"), "{e}");
    assert_eq!(log.stats().open_segments, 1, "the half-created segment is not served");
    f.io.set_disk_full(false);
    // Once space is back the same bucket gets its segment, without a restart.
    log.append(day_before.clone()).unwrap();
    let want = [day_before, a].concat();
    assert_eq!(all(&log), want);
    log.close();
    let log = open(&f.dir, &f.io);
    assert_eq!(all(&log), want, "after restart");
    assert_eq!(log.stats().open_segments, 2);
}

#[test]
fn after_a_crash_the_power_loss_model_keeps_what_was_synced() {
    // The model itself: synced frames survive any of its crash states; the file system under
    // FaultyIo is the real one, so a reopen with the same FaultyIo sees what it left.
    for seed in 0..50 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), seed).unwrap());
        let log = open(&dir, &io);
        let a = batch(0, 10);
        log.append(a.clone()).unwrap();
        io.crash();
        assert!(log.append(batch(10, 10)).is_err(), "seed {seed}: appends fail once the power is out");
        drop(log);
        io.power_loss().unwrap();
        let log = open(&dir, &io);
        let got = all(&log);
        assert!(got == a, "seed {seed}: {} records", got.len());
    }
}

#[test]
fn a_full_disk_under_the_engine_refuses_ingest_while_checks_and_traces_are_answered() {
    use portlog_engine::registry::{AssignInput, ProviderInput};
    use portlog_engine::{Direction, Engine, EngineConfig, PhoneNumber, Reason, SubPort, TraceQuery, Usage};
    let f = fixture();
    let mut ecfg = EngineConfig { log: cfg(), ..EngineConfig::default() };
    ecfg.retention.enabled = false;
    let engine = Engine::open_with_io(&f.dir, ecfg, Arc::new(ManualClock::new(NOW)), f.io.clone() as SharedIo).unwrap();
    let reg = engine.registry();
    reg.provider_put(ProviderInput {
        id: "P1".into(),
        name: "星河银行股份有限公司".into(),
        signatures: vec!["星河银行".into()],
        blacklisted: false,
        whitelisted: false,
    })
    .unwrap();
    let sp = "1069012345601";
    reg.assign(AssignInput {
        sub_port: sp.into(),
        provider: "P1".into(),
        usage: Usage::Commercial,
        from_ms: DAY0_MS - DAY_MS,
        to_ms: DAY0_MS + 365 * DAY_MS,
        consent_required: false,
    })
    .unwrap();
    let mo = |num: &str, ts_ms: i64| Record {
        dir: Direction::Mo,
        sub_port: SubPort::parse(sp).unwrap(),
        peer: PhoneNumber::parse(num).unwrap(),
        ts_ms,
        usage: None,
        text: "R".into(),
    };
    assert_eq!(engine.ingest(vec![mo("13800138001", DAY0_MS + 1_000)]).unwrap().rejects_registered, 1);

    f.io.set_disk_full(true);
    let e = engine.ingest(vec![rec(7, sp, DAY0_MS + 2_000)]).unwrap_err();
    assert!(e.to_string().contains("No space left on device"), "{e}");
    // Checks answer from memory, traces from the segments already written.
    let deny = |num: &str| reg.check(sp, PhoneNumber::parse(num).unwrap(), Usage::Commercial, None, None).unwrap();
    assert_eq!(deny("13800138001").reason, Some(Reason::Rejected));
    assert!(deny("13800138002").allow, "{:?}", deny("13800138002"));
    let q = TraceQuery::new(PhoneNumber::parse("13800138001").unwrap());
    let traced = collect(engine.trace(&q).unwrap());
    assert_eq!(traced.len(), 1);
    // An MO "R" whose append fails is refused, but its reject, written to the registry first, is
    // honoured already (a sender retries the MO; registering is idempotent).
    assert!(engine.ingest(vec![mo("13800138003", DAY0_MS + 3_000)]).is_err());
    assert_eq!(deny("13800138003").reason, Some(Reason::Rejected));

    f.io.set_disk_full(false);
    assert_eq!(engine.ingest(vec![mo("13800138003", DAY0_MS + 3_000)]).unwrap().rejects_registered, 0);
    engine.close();
}
