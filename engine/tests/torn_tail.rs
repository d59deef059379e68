//! The last frame of an open segment truncated at every byte offset and flipped at every byte:
//! reopening succeeds, every earlier record is intact, and the damaged frame is never returned.
//! Damage *before* the last frame is not a torn tail: it is reported, never cut. Without the
//! journal, whose own last frame is torn the same way in `journal.rs` (with it, an open segment
//! shorter than its checkpoint is refused, and past it the journal's frames are replayed).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use portlog_engine::{Error, Log, LogConfig, ManualClock, Record};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NOW: i64 = DAY0_MS + 3_600_000;

fn cfg() -> LogConfig {
    LogConfig { shards: 1, journal: false, ..LogConfig::default() }
}

fn open(dir: &Path) -> portlog_engine::Result<Log> {
    Log::open(dir, cfg(), Arc::new(ManualClock::new(NOW)))
}

fn all(log: &Log) -> Vec<Record> {
    collect(log.scan_shard(0, 0, i64::MAX).unwrap())
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    file: PathBuf,
    pristine: Vec<u8>,
    kept: Vec<Record>,
    last_start: usize,
    prev_start: usize,
}

/// Five acknowledged batches, one frame each; the last frame's byte range is known.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let log = open(&dir).unwrap();
    let mut kept = Vec::new();
    let mut starts = Vec::new();
    for b in 0..5u64 {
        starts.push(log.stats().open_bytes as usize);
        let batch: Vec<Record> =
            (0..3).map(|i| rec(b * 3 + i, "1069012345601", DAY0_MS + (b * 3 + i) as i64)).collect();
        if b < 4 {
            kept.extend(batch.clone());
        }
        log.append(batch).unwrap();
    }
    log.close();
    let shard = dir.join("log/shard-000");
    let file = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "open"))
        .unwrap();
    let pristine = std::fs::read(&file).unwrap();
    Fixture { _tmp: tmp, dir, file, pristine, kept, last_start: starts[4], prev_start: starts[3] }
}

#[test]
fn last_frame_truncated_at_every_offset() {
    let f = fixture();
    assert!(f.pristine.len() > f.last_start + 100);
    for cut in f.last_start..f.pristine.len() {
        std::fs::write(&f.file, &f.pristine[..cut]).unwrap();
        let log = open(&f.dir).unwrap();
        assert_eq!(all(&log), f.kept, "cut at {cut}");
        assert_eq!(log.recovery().bytes_cut, (cut - f.last_start) as u64, "cut at {cut}");
        log.close();
        assert_eq!(std::fs::metadata(&f.file).unwrap().len() as usize, f.last_start, "the torn tail is cut on disk");
    }
}

#[test]
fn last_frame_with_any_byte_flipped() {
    let f = fixture();
    for i in f.last_start..f.pristine.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bytes = f.pristine.clone();
            bytes[i] ^= mask;
            std::fs::write(&f.file, &bytes).unwrap();
            let log = open(&f.dir).unwrap();
            assert_eq!(all(&log), f.kept, "byte {i} ^ {mask:#x}");
            log.close();
        }
    }
    // After the cut, appending continues cleanly and the new record is read back.
    std::fs::write(&f.file, &f.pristine[..f.pristine.len() - 1]).unwrap();
    let log = open(&f.dir).unwrap();
    let extra = rec(99, "1069012345601", DAY0_MS + 99);
    log.append(vec![extra.clone()]).unwrap();
    let mut want = f.kept.clone();
    want.push(extra);
    assert_eq!(all(&log), want);
}

#[test]
fn damage_before_the_last_frame_is_reported_not_cut() {
    let f = fixture();
    let mut bytes = f.pristine.clone();
    let at = f.prev_start + 20;
    bytes[at] ^= 0x10;
    std::fs::write(&f.file, &bytes).unwrap();
    let e = open(&f.dir).unwrap_err();
    match &e {
        Error::Corrupt { path, offset, detail } => {
            assert_eq!(path, &f.file);
            assert_eq!(*offset as usize, f.prev_start);
            assert!(detail.contains("refusing to cut acknowledged data"), "{detail}");
        }
        other => panic!("expected corruption, got {other}"),
    }
    assert!(e.to_string().contains(&f.file.display().to_string()));
    // Nothing was cut.
    assert_eq!(std::fs::read(&f.file).unwrap(), bytes);
}

#[test]
fn a_file_whose_creation_never_completed_is_removed() {
    let f = fixture();
    // A crash between creating a segment file and syncing its header leaves a short or zeroed
    // file in which nothing was ever acknowledged.
    let extra = f.file.with_file_name("20260502T0000-000000.open");
    for content in [&b""[..], &[0u8; 40][..], &f.pristine[..17]] {
        std::fs::write(&extra, content).unwrap();
        let log = open(&f.dir).unwrap();
        let mut want = f.kept.clone();
        want.extend((12..15).map(|i| rec(i, "1069012345601", DAY0_MS + i as i64)));
        assert_eq!(all(&log), want);
        log.close();
        assert!(!extra.exists());
    }
}
