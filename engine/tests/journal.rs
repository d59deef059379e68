//! The journal (docs/architecture.md, "Journal"): acknowledged records survive the loss of
//! everything the shard files held past the last checkpoint; the journal's last frame torn at
//! every byte offset or flipped at every byte is cut, never returned; damage followed by a
//! later frame is refused; the two files are reused; a seal waits for a checkpoint; the journal
//! turned off and on again; its faults. The randomized power-loss test is `power_loss.rs`.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use portlog_engine::io::{FaultyIo, Io, SharedIo};
use portlog_engine::log::journal::{read_frame, Checkpoint, CHECKPOINT_FILE, FILE_NAMES, JOURNAL_DIR};
use portlog_engine::{Error, Log, LogConfig, ManualClock, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NOW: i64 = DAY0_MS + 3_600_000;
const SUB_PORTS: [&str; 3] = ["1069012345601", "10690123456", "1069099887766"];

fn cfg() -> LogConfig {
    LogConfig { shards: 2, checkpoint_bytes: 1 << 20, ..small_config(2) }
}

fn open_io(dir: &Path, cfg: LogConfig, io: &Arc<FaultyIo>) -> portlog_engine::Result<Log> {
    Log::open_with_io(dir, cfg, Arc::new(ManualClock::new(NOW)), io.clone() as SharedIo)
}

/// A temporary directory, the data directory in it, and a [`FaultyIo`] seeded with `seed`.
fn faulty_dir(seed: u64) -> (tempfile::TempDir, PathBuf, Arc<FaultyIo>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), seed).unwrap());
    (tmp, dir, io)
}

fn open(dir: &Path, cfg: LogConfig) -> portlog_engine::Result<Log> {
    Log::open(dir, cfg, Arc::new(ManualClock::new(NOW)))
}

fn batch(from: u64, n: u64) -> Vec<Record> {
    (from..from + n).map(|i| rec(i, SUB_PORTS[(i % 3) as usize], DAY0_MS + i as i64)).collect()
}

fn all(log: &Log) -> Vec<Record> {
    let mut v: Vec<Record> =
        (0..log.shard_count()).flat_map(|s| collect(log.scan_shard(s, 0, i64::MAX).unwrap())).collect();
    v.sort_by_key(|r| r.ts_ms);
    v
}

/// The process dies with everything written still in the page cache (kill -9): `settle` makes
/// it all durable, then no further operation reaches the disk (no last checkpoint at close).
fn kill(log: Log, io: &Arc<FaultyIo>) {
    io.settle();
    io.crash();
    drop(log);
    io.power_loss().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Frame starts and ends in `file` after the checkpoint's offset (the journal in one file).
fn frames(dir: &Path) -> (PathBuf, Vec<(usize, usize)>) {
    let jdir = dir.join(JOURNAL_DIR);
    let c = Checkpoint::read(&jdir).unwrap().unwrap();
    let path = jdir.join(FILE_NAMES[c.file as usize]);
    let buf = std::fs::read(&path).unwrap();
    let mut at = c.offset as usize;
    let mut out = Vec::new();
    while let Some(f) = read_frame(&buf[at..], None, &path, at as u64).unwrap() {
        out.push((at, at + f.len));
        at += f.len;
    }
    (path, out)
}

#[test]
fn acknowledged_records_survive_the_loss_of_every_unsynced_byte_of_the_shard_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for seed in 0..40 {
        let _ = std::fs::remove_dir_all(&dir);
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), seed).unwrap());
        let log = open_io(&dir, cfg(), &io).unwrap();
        let mut want = Vec::new();
        for b in 0..20 {
            let recs = batch(b * 30, 30);
            log.append(recs.clone()).unwrap();
            want.extend(recs);
        }
        // The power goes out: the shard files lose (or garble) what no checkpoint synced.
        io.crash();
        drop(log);
        let lost = io.power_loss().unwrap();
        let log = open_io(&dir, cfg(), &io).unwrap();
        assert_eq!(all(&log), want, "seed {seed}: {lost:?}");
        let r = log.recovery();
        assert_eq!(r.journal_frames, 20, "seed {seed}: every frame after the first checkpoint is replayed");
        assert_eq!(r.journal_records, 600, "seed {seed}");
        // Replayed, then checkpointed: a second restart replays nothing and finds the same.
        log.close();
        let log = open_io(&dir, cfg(), &io).unwrap();
        assert_eq!(log.recovery().journal_frames, 0, "seed {seed}");
        assert_eq!(all(&log), want, "seed {seed}");
    }
}

/// Five acknowledged batches (one frame each) after the journal's first checkpoint, the process
/// killed: the data directory, and the byte range of the last frame.
struct Fixture {
    _tmp: tempfile::TempDir,
    pristine: PathBuf,
    journal_file: PathBuf,
    last: (usize, usize),
    kept: Vec<Record>,
    all: Vec<Record>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("data");
    let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 1).unwrap());
    let log = open_io(&pristine, cfg(), &io).unwrap();
    let mut all = Vec::new();
    for b in 0..5 {
        let recs = batch(b * 3, 3);
        log.append(recs.clone()).unwrap();
        all.extend(recs);
    }
    kill(log, &io);
    let (path, fr) = frames(&pristine);
    assert_eq!(fr.len(), 5, "one frame per acknowledged batch");
    let rel = path.strip_prefix(&pristine).unwrap().to_path_buf();
    Fixture { kept: all[..12].to_vec(), all, last: fr[4], journal_file: rel, pristine, _tmp: tmp }
}

impl Fixture {
    /// A fresh copy of the killed directory, its journal file changed by `damage`.
    fn damaged(&self, into: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
        let _ = std::fs::remove_dir_all(into);
        copy_dir(&self.pristine, into);
        let p = into.join(&self.journal_file);
        let mut b = std::fs::read(&p).unwrap();
        damage(&mut b);
        std::fs::write(&p, b).unwrap();
        into.to_path_buf()
    }
}

#[test]
fn the_killed_process_loses_nothing_acknowledged() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dir = f.damaged(&tmp.path().join("d"), |_| {});
    let log = open(&dir, cfg()).unwrap();
    assert_eq!(all(&log), f.all);
    assert_eq!(log.recovery().journal_frames, 5);
}

#[test]
fn the_last_frame_torn_at_every_offset_is_cut_and_never_returned() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (start, end) = f.last;
    for cut in start..end {
        // Torn inside space written ahead: the frame's tail is the zeros it overwrote.
        let dir = f.damaged(&tmp.path().join("d"), |b| b[cut..end].fill(0));
        let log = open(&dir, cfg()).unwrap();
        assert_eq!(all(&log), f.kept, "cut at {cut}");
        assert_eq!(log.recovery().journal_frames, 4, "cut at {cut}");
        // The next append takes the torn frame's place, and survives a restart.
        let next = batch(100, 2);
        log.append(next.clone()).unwrap();
        log.close();
        let log = open(&dir, cfg()).unwrap();
        assert_eq!(all(&log), [f.kept.clone(), next].concat(), "cut at {cut}, after an append and a restart");
    }
    // The file itself cut short (a journal file whose writing ahead never reached the disk).
    for cut in [start, start + 1, (start + end) / 2, end - 1] {
        let dir = f.damaged(&tmp.path().join("d"), |b| b.truncate(cut));
        let log = open(&dir, cfg()).unwrap();
        assert_eq!(all(&log), f.kept, "file cut at {cut}");
    }
}

#[test]
fn the_last_frame_with_any_byte_flipped_is_cut_and_never_returned() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (start, end) = f.last;
    for i in start..end {
        let dir = f.damaged(&tmp.path().join("d"), |b| b[i] ^= 0x20);
        let log = open(&dir, cfg()).unwrap();
        assert_eq!(all(&log), f.kept, "flip at {i}");
    }
}

#[test]
fn damage_before_the_last_frame_is_refused_naming_the_file_never_cut() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (path, fr) = frames(&f.pristine);
    let (s, _) = fr[2];
    let dir = f.damaged(&tmp.path().join("d"), |b| b[s + 40] ^= 1);
    let e = open(&dir, cfg()).unwrap_err();
    match &e {
        Error::Corrupt { path: p, detail, .. } => {
            assert!(p.ends_with(path.file_name().unwrap()), "{e}");
            assert!(
                detail.contains("frame 3 is damaged") && detail.contains("frame 4 follows"),
                "names both frames: {e}"
            );
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn a_shard_file_shorter_than_its_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = open(&dir, cfg()).unwrap();
    log.append(batch(0, 30)).unwrap();
    log.close();
    let seg = walk(&dir).into_iter().find(|p| p.extension().is_some_and(|e| e == "open")).unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::File::options().write(true).open(&seg).unwrap().set_len(len - 1).unwrap();
    let e = open(&dir, cfg()).unwrap_err();
    assert!(matches!(&e, Error::Corrupt { path, .. } if *path == seg), "{e}");
    assert!(e.to_string().contains("checkpoint"), "{e}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_two_files_are_reused_and_a_kill_in_either_loses_nothing() {
    // 256 KiB files, a checkpoint every 64 KiB: some 3 MB of frames go round the files many times.
    let small = LogConfig { journal_file_bytes: 256 << 10, checkpoint_bytes: 64 << 10, ..cfg() };
    let tmp = tempfile::tempdir().unwrap();
    for (round, batches) in [(0u64, 97u64), (1, 160), (2, 211)] {
        let dir = tmp.path().join(format!("r{round}"));
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), round).unwrap());
        let log = open_io(&dir, small.clone(), &io).unwrap();
        let mut want = Vec::new();
        for b in 0..batches {
            if b == batches - 1 {
                // No checkpoint completes after this (its rename fails), so the last frame is
                // left for the restart to replay whatever the threads' timing: without this, a
                // checkpoint started by the last frame could finish before the kill.
                io.set_fail_renames(true);
            }
            let recs = batch(b * 100, 100);
            log.append(recs.clone()).unwrap();
            want.extend(recs);
        }
        let sizes: Vec<u64> =
            FILE_NAMES.iter().map(|n| std::fs::metadata(dir.join(JOURNAL_DIR).join(n)).unwrap().len()).collect();
        assert_eq!(sizes, vec![256 << 10; 2], "both files in use, never grown past their size");
        kill(log, &io);
        io.heal();
        let log = open_io(&dir, small.clone(), &io).unwrap();
        assert_eq!(all(&log), want, "round {round}");
        assert!(log.recovery().journal_frames > 0, "round {round}");
    }
}

#[test]
fn an_append_larger_than_a_frame_is_cut_into_frames_and_acknowledged_whole() {
    let small = LogConfig { journal_file_bytes: 256 << 10, checkpoint_bytes: 64 << 10, ..cfg() };
    let (_tmp, dir, io) = faulty_dir(3);
    let log = open_io(&dir, small.clone(), &io).unwrap();
    // About 1 MB in one append: four files' worth of the 32 KiB frames.
    let big = batch(0, 10_000);
    log.append(big.clone()).unwrap();
    kill(log, &io);
    let log = open_io(&dir, small, &io).unwrap();
    assert_eq!(all(&log), big);
}

#[test]
fn a_seal_waits_for_a_checkpoint_so_that_no_replay_duplicates_sealed_rows() {
    let (_tmp, dir, io) = faulty_dir(5);
    let log = open_io(&dir, cfg(), &io).unwrap();
    let a = batch(0, 200);
    log.append(a.clone()).unwrap();
    log.seal_all().unwrap();
    let b = batch(200, 50);
    log.append(b.clone()).unwrap();
    let before = Checkpoint::read(&dir.join(JOURNAL_DIR)).unwrap().unwrap();
    assert!(before.lsn >= 1, "the seal's checkpoint covers the sealed rows' frame: {before:?}");
    kill(log, &io);
    let log = open_io(&dir, cfg(), &io).unwrap();
    assert_eq!(all(&log), [a, b].concat(), "sealed rows once, the later batch replayed");
    assert_eq!(log.recovery().journal_frames, 1);
    assert!(log.stats().sealed_segments >= 1);
}

#[test]
fn the_journal_turned_off_is_replayed_then_removed_and_turned_on_again() {
    let (_tmp, dir, io) = faulty_dir(9);
    let log = open_io(&dir, cfg(), &io).unwrap();
    let a = batch(0, 90);
    log.append(a.clone()).unwrap();
    kill(log, &io);
    let off = LogConfig { journal: false, ..cfg() };
    let log = open_io(&dir, off.clone(), &io).unwrap();
    assert_eq!(log.recovery().journal_frames, 1);
    assert_eq!(all(&log), a);
    assert!(!dir.join(JOURNAL_DIR).join(CHECKPOINT_FILE).exists(), "the journal is gone once replayed");
    let b = batch(90, 10);
    log.append(b.clone()).unwrap();
    kill(log, &io);
    let log = open_io(&dir, cfg(), &io).unwrap();
    assert_eq!(all(&log), [a.clone(), b.clone()].concat());
    assert_eq!(log.recovery().journal_frames, 0);
    let c = batch(100, 10);
    log.append(c.clone()).unwrap();
    kill(log, &io);
    let log = open_io(&dir, cfg(), &io).unwrap();
    assert_eq!(all(&log), [a, b, c].concat());
}

#[test]
fn a_failed_journal_fsync_poisons_every_shard_and_a_restart_keeps_everything_acknowledged() {
    let (_tmp, dir, io) = faulty_dir(11);
    let log = open_io(&dir, cfg(), &io).unwrap();
    let a = batch(0, 30);
    log.append(a.clone()).unwrap();
    io.set_fail_fsyncs(true);
    let b = batch(30, 30);
    let e = log.append(b.clone()).unwrap_err();
    assert!(e.to_string().contains("journal-0.log") && e.to_string().contains("fdatasync"), "names the file: {e}");
    let (_, cause) = log.poisoned().expect("poisoned");
    assert!(cause.contains("injected fsync failure"), "{cause}");
    io.heal();
    let ops = io.ops();
    let e = log.append(batch(60, 3)).unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    assert_eq!(io.ops(), ops, "a poisoned journal never writes or syncs again");
    assert_eq!(all(&log), a, "the refused batch is never shown");
    drop(log);
    let log = open_io(&dir, cfg(), &io).unwrap();
    assert_eq!(log.poisoned(), None);
    let got = all(&log);
    // Written but not known to be synced: whole or absent, never in part.
    assert!(got == a || got == [a.clone(), b.clone()].concat(), "{} records", got.len());
    log.append(batch(60, 3)).unwrap();
}

#[test]
fn a_failed_checkpoint_postpones_a_seal_which_the_next_checkpoint_lets_through() {
    let (_tmp, dir, io) = faulty_dir(13);
    let log = open_io(&dir, cfg(), &io).unwrap();
    let a = batch(0, 100);
    log.append(a.clone()).unwrap();
    io.set_fail_renames(true);
    log.seal_all().unwrap();
    assert_eq!(log.stats().sealed_segments, 0, "no checkpoint, no seal");
    assert_eq!(log.poisoned(), None, "a failed checkpoint does not stop appends");
    io.heal();
    let b = batch(100, 10);
    log.append(b.clone()).unwrap();
    assert_eq!(all(&log), [a.clone(), b.clone()].concat());
    log.close();
    let log = open_io(&dir, cfg(), &io).unwrap();
    log.seal_all().unwrap();
    assert!(log.stats().sealed_segments >= 1);
    assert_eq!(all(&log), [a, b].concat());
}

#[test]
fn a_bucket_expired_and_written_again_never_reuses_an_identity_the_checkpoint_lists() {
    use portlog_engine::log::expire::ExpireOptions;
    let (_tmp, dir, io) = faulty_dir(17);
    let one = LogConfig { shards: 1, ..cfg() };
    let log = open_io(&dir, one.clone(), &io).unwrap();
    log.append(batch(0, 40)).unwrap();
    // A checkpoint listing the bucket's generation 0 at its length.
    drop(log);
    let log = open_io(&dir, one.clone(), &io).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let opts = ExpireOptions {
        cutoff_ms: DAY0_MS + DAY_MS,
        dry_run: false,
        pause: std::time::Duration::ZERO,
        cancel: &cancel,
    };
    let gone = log.expire(&opts).unwrap();
    assert_eq!(gone.segments.len(), 1, "{gone:?}");
    // The same bucket written again (a back-fill), then the process killed before any
    // checkpoint: the new segment must not pass for the expired one.
    let late = batch(1_000, 3);
    log.append(late.clone()).unwrap();
    kill(log, &io);
    let log = open_io(&dir, one, &io).unwrap();
    assert_eq!(all(&log), late);
}

/// Between checkpoints a writer hands its rows to the disk once `writeback_bytes` have built up
/// (0: never), and nothing of that counts as durable: after a power loss the journal still
/// brings back every acknowledged record.
#[test]
fn written_rows_go_to_the_disk_a_step_at_a_time_and_a_power_loss_still_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for step in [0, 16 << 10] {
        let dir = tmp.path().join(format!("data-{step}"));
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 11).unwrap());
        let cfg = LogConfig { writeback_bytes: step, ..cfg() };
        let log = open_io(&dir, cfg.clone(), &io).unwrap();
        let mut want = Vec::new();
        for b in 0..20 {
            let recs = batch(b * 100, 100);
            log.append(recs.clone()).unwrap();
            want.extend(recs);
        }
        let started = io.writebacks();
        if step == 0 {
            assert_eq!(started, 0, "writeback_bytes = 0 starts none");
        } else {
            // About 100 KB of rows a shard, a start every 16 KiB of them.
            assert!(started >= 4, "only {started} writebacks started for 16 KiB steps");
        }
        io.crash();
        drop(log);
        let lost = io.power_loss().unwrap();
        let log = open_io(&dir, cfg, &io).unwrap();
        assert_eq!(all(&log), want, "step {step}: {lost:?}");
    }
}

/// A writeback that cannot be started fails its batch like a failed write: the error names
/// the file, the rows are undone, the shard is not poisoned and the next append succeeds; a
/// restart has every acknowledged record, and the refused batch whole or not at all (its
/// journal frame may be replayed).
#[test]
fn a_writeback_that_cannot_start_refuses_the_batch_and_the_next_append_succeeds() {
    let (_tmp, dir, io) = faulty_dir(12);
    let cfg = LogConfig { writeback_bytes: 1, ..cfg() };
    let log = open_io(&dir, cfg.clone(), &io).unwrap();
    let first = batch(0, 30);
    log.append(first.clone()).unwrap();
    io.set_fail_writebacks(true);
    let refused = batch(30, 30);
    let e = log.append(refused.clone()).unwrap_err().to_string();
    assert!(e.contains("start writeback of") && e.contains(".open"), "{e}");
    assert_eq!(all(&log), first, "the refused rows are undone");
    io.set_fail_writebacks(false);
    assert!(log.poisoned().is_none(), "a writeback that never started loses nothing");
    let last = batch(60, 30);
    log.append(last.clone()).unwrap();
    let mut want = first.clone();
    want.extend(last.clone());
    assert_eq!(all(&log), want);
    kill(log, &io);
    let log = open_io(&dir, cfg, &io).unwrap();
    let got = all(&log);
    let mut with_refused = first;
    with_refused.extend(refused);
    with_refused.extend(last);
    with_refused.sort_by_key(|r| r.ts_ms);
    assert!(got == want || got == with_refused, "{} records after the restart", got.len());
}

/// Whether the file system of `dir` takes direct I/O (the journal falls back to the page cache
/// where it does not, and the tests below then check only what holds either way).
fn direct_io_here(dir: &Path) -> bool {
    let p = dir.join("direct-probe");
    let f = portlog_engine::io::OsIo.create(&p).unwrap();
    let ok = f.set_direct().is_ok();
    std::fs::remove_file(&p).unwrap();
    ok
}

#[test]
fn small_frames_share_a_block_and_a_frame_never_synced_takes_no_earlier_frame_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let direct = direct_io_here(tmp.path());
    for seed in 0..12u64 {
        let dir = tmp.path().join(format!("s{seed}"));
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), seed).unwrap());
        let log = open_io(&dir, cfg(), &io).unwrap();
        // One record a frame, a few hundred bytes: a dozen frames to a 4 KiB block, each
        // direct write rewriting the start of its block.
        let mut want = Vec::new();
        for i in 0..40 {
            let r = batch(i, 1);
            log.append(r.clone()).unwrap();
            want.extend(r);
        }
        if direct {
            assert!(io.direct_writes() >= 40, "seed {seed}: {} direct writes", io.direct_writes());
        }
        // The next frame is written, its fdatasync fails, and the power goes out: whatever
        // of its block the disk then holds, the frames before it in that block are intact.
        io.set_fail_fsyncs(true);
        let refused = batch(1000, 1);
        assert!(log.append(refused.clone()).is_err());
        io.crash();
        drop(log);
        io.power_loss().unwrap();
        let log = open_io(&dir, cfg(), &io).unwrap();
        let got = all(&log);
        assert!(got == want || got == [want.clone(), refused].concat(), "seed {seed}: {} records", got.len());
    }
}

#[test]
fn a_journal_written_with_direct_io_replays_without_it_and_the_other_way_round() {
    let (_tmp, dir, io) = faulty_dir(9);
    let direct = LogConfig { journal_direct_io: true, ..cfg() };
    let buffered = LogConfig { journal_direct_io: false, ..cfg() };
    let mut want = Vec::new();
    // Each restart replays frames, then appends after them into the same block: through the
    // page cache, then with direct I/O, which reads that block's start back from the file.
    for (round, c) in [&direct, &buffered, &direct, &buffered].into_iter().enumerate() {
        // What the journal holds up to its last frame stays as it is: later frames, direct or
        // not, only go after it (a direct write rewrites the start of its block unchanged).
        let kept = (round > 0).then(|| {
            let (path, f) = frames(&dir);
            let end = f.last().unwrap().1;
            (path.clone(), std::fs::read(&path).unwrap()[..end].to_vec())
        });
        let log = open_io(&dir, c.clone(), &io).unwrap();
        assert_eq!(all(&log), want, "round {round}");
        if round > 0 {
            assert!(log.recovery().journal_frames > 0, "round {round}: frames replayed");
        }
        for b in 0..7 {
            let recs = batch(round as u64 * 1000 + b * 3, 3);
            log.append(recs.clone()).unwrap();
            want.extend(recs);
        }
        // No checkpoint completes, so the frames stay to be replayed.
        io.set_fail_renames(true);
        log.append(batch(round as u64 * 1000 + 500, 2)).unwrap();
        want.extend(batch(round as u64 * 1000 + 500, 2));
        kill(log, &io);
        io.heal();
        if let Some((path, bytes)) = kept {
            assert!(std::fs::read(&path).unwrap().starts_with(&bytes), "round {round}: earlier journal bytes changed");
        }
    }
    let log = open_io(&dir, direct, &io).unwrap();
    assert_eq!(all(&log), want);
}

#[test]
fn short_direct_writes_are_completed_in_whole_blocks_and_every_frame_reads_back() {
    let (_tmp, dir, io) = faulty_dir(11);
    let log = open_io(&dir, cfg(), &io).unwrap();
    io.set_short_writes(true);
    let mut want = Vec::new();
    for b in 0..30 {
        // 1 to 120 records: frames from a few hundred bytes to several blocks.
        let recs = batch(b * 200, 1 + (b * 37) % 120);
        log.append(recs.clone()).unwrap();
        want.extend(recs);
    }
    io.heal();
    kill(log, &io);
    let log = open_io(&dir, cfg(), &io).unwrap();
    assert_eq!(all(&log), want);
}

/// Polls `f` for up to 10 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what}: not within 10 s");
}

#[test]
fn the_journal_is_written_ahead_of_its_frames_without_an_append_waiting_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = open(&dir, cfg()).unwrap();
    let file = dir.join(JOURNAL_DIR).join(FILE_NAMES[0]);
    // The first frame waits for the first step (1 MiB); past half of it, the next step (1 MiB
    // more) is written in the background, with no append asking.
    let mut n = 0;
    while frames_end(&dir) < 600 << 10 {
        log.append(batch(n, 500)).unwrap();
        n += 500;
    }
    assert!(std::fs::metadata(&file).unwrap().len() >= 1 << 20);
    eventually("the second step", || std::fs::metadata(&file).unwrap().len() >= 2 << 20);
    // And not further while nothing is appended.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 2 << 20);
    let want = all(&log);
    drop(log);
    let log = open(&dir, cfg()).unwrap();
    assert_eq!(all(&log), want);
}

/// Where the journal's frames end in its first file (the last frame found from its start).
fn frames_end(dir: &Path) -> usize {
    let path = dir.join(JOURNAL_DIR).join(FILE_NAMES[0]);
    let Ok(buf) = std::fs::read(&path) else { return 0 };
    let mut at = 0;
    while let Ok(Some(f)) = read_frame(&buf[at..], None, &path, at as u64) {
        at += f.len;
    }
    at
}

#[test]
fn the_journal_counts_its_frames_appends_records_and_bytes_as_they_lie_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = open(&dir, cfg()).unwrap();
    let start = log.stats().journal.expect("a journaled log reports its journal");
    assert_eq!((start.frames, start.appends, start.records, start.bytes), (0, 0, 0, 0));
    assert!(start.checkpoints >= 1, "the checkpoint taken at open counts: {start:?}");
    // One caller: every append is a frame of its own.
    let sizes = [1, 7, 40, 3];
    let mut from = 0;
    for n in sizes {
        log.append(batch(from, n)).unwrap();
        from += n;
    }
    let st = log.stats().journal.unwrap();
    assert_eq!((st.frames, st.appends, st.records), (4, 4, from), "{st:?}");
    let (_, on_disk) = frames(&dir);
    assert_eq!(on_disk.len(), 4);
    assert_eq!(st.bytes, on_disk.iter().map(|(a, b)| (b - a) as u64).sum::<u64>());
    assert!(st.sync_ns > 0);
    // Eight callers at once: every append is counted once, and a frame may serve several.
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for k in 0..25 {
                    log.append(batch(1_000 + (t * 25 + k) * 10, 10)).unwrap();
                }
            });
        }
    });
    let end = log.stats().journal.unwrap();
    assert_eq!((end.appends - st.appends, end.records - st.records), (200, 2_000), "{end:?}");
    assert!((1..=200).contains(&(end.frames - st.frames)), "{end:?}");
    log.close();
    // Counted since open: a reopen replays nothing new and starts again from zero.
    let log = open(&dir, cfg()).unwrap();
    assert_eq!(log.stats().journal.map(|j| (j.frames, j.records)), Some((0, 0)));
    log.close();
    let off = open(&dir, LogConfig { journal: false, ..cfg() }).unwrap();
    assert_eq!(off.stats().journal, None, "no journal, no journal figures");
}
