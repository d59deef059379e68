//! Inputs with which the fuzz targets (fuzz/README.md) made the engine panic or abort, replayed
//! exactly: each now gives a clean error. One test per crash, named after what was wrong.
#![allow(clippy::unwrap_used)]

use portlog_engine::log::frame::{self, SegmentHeader, OPEN_MAGIC};
use portlog_engine::log::open_segment::{OpenSegment, FRAME_PAYLOAD_MAX};
use portlog_engine::log::sealed::SealedSegment;
use portlog_engine::{Direction, Error, PhoneNumber, Record, SubPort, Usage};

/// `decode`, artifact crash-a3f36be7: an open-segment header taken as a frame whose first 4
/// bytes are its row count, "PLOG" = 1 196 379 216 rows in 36 bytes. `frame_rows` reserved
/// 24 bytes per announced row (29 GB) before reading one, and the allocation aborted.
const DECODE_FRAME_COUNT: [u8; 40] = [
    0x50, 0x4c, 0x4f, 0x47, 0x4f, 0x50, 0x4e, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x34, 0x51,
    0x08, 0x9e, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0xf7, 0x32, 0x3a, 0x3d, 0xec,
    0x76, 0xed,
];

fn frame_rows_of(count: u32, rows: &[u8]) -> Result<usize, &'static str> {
    let f = frame::encode_frame(rows, count);
    let v = frame::read_frame(&f, FRAME_PAYLOAD_MAX).unwrap();
    frame::frame_rows(&v).map(|r| r.len())
}

#[test]
fn a_frame_announcing_more_rows_than_its_bytes_hold_is_an_error_not_a_huge_allocation() {
    let (count, rows) = DECODE_FRAME_COUNT.split_first_chunk::<4>().unwrap();
    assert!(frame_rows_of(u32::from_le_bytes(*count), rows).is_err());
    // The largest count (96 GiB reserved before the fix), after one real row.
    let mut row = Vec::new();
    frame::encode_row(&mut row, &record());
    assert!(frame_rows_of(u32::MAX, &row).is_err());
    assert_eq!(frame_rows_of(1, &row), Ok(1));
}

fn record() -> Record {
    Record {
        dir: Direction::Mt,
        sub_port: SubPort::parse("1069012345601").unwrap(),
        peer: PhoneNumber::parse("13800138000").unwrap(),
        ts_ms: 1_778_342_400_000,
        usage: Some(Usage::Commercial),
        text: "【星河银行】会员日满100减20。拒收请回复R".into(),
    }
}

/// The same in an open segment at recovery: a frame whose checksum is right but whose row
/// count is `u32::MAX` is corruption, reported with the file and offset.
#[test]
fn recovery_of_a_frame_with_an_impossible_row_count_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("20260510T0000-000000.open");
    let mut bytes = SegmentHeader { shard: 0, bucket_start_ms: 1_778_342_400_000, gen: 0 }.encode(OPEN_MAGIC).to_vec();
    let mut row = Vec::new();
    frame::encode_row(&mut row, &record());
    bytes.extend_from_slice(&frame::encode_frame(&row, u32::MAX));
    std::fs::write(&path, &bytes).unwrap();
    let e = OpenSegment::recover(&portlog_engine::io::OsIo, &path, 1_778_342_400_000).expect_err("corruption");
    assert!(matches!(e, Error::Corrupt { offset: 40, .. }), "{e}");
}

/// `footer`, artifact crash-d3460815 (its checksums recomputed by the target, as saved here):
/// a dictionary segment whose Dictionary section, behind a right checksum, starts with zstd's
/// dictionary magic but holds broken entropy tables. zstd refuses it (a null `ZSTD_DDict`) and
/// `DDict::create` panicked on the first read of a block.
#[test]
fn a_dictionary_zstd_refuses_is_corruption_naming_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("20260509T0000-000000.seg");
    std::fs::write(&path, include_bytes!("fuzz_regressions/footer-bad-dictionary.seg")).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    let n = seg.blocks().unwrap().len();
    assert!(n >= 8, "a dictionary segment has at least 8 blocks");
    for i in 0..n {
        let e = seg.read_block(i).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains("Dictionary"), "block {i}: {e}");
    }
    let e = seg.read_block_of_number(0, 13_800_138_000).unwrap_err();
    assert!(e.to_string().contains("Dictionary"), "{e}");
}

/// `footer`, artifact oom-42c8557d (checksums recomputed, as saved here): a block table entry,
/// behind right checksums, giving a block an uncompressed length of 2 GiB. The reader reserved
/// that much before decompressing. Now a length above `BLOCK_RAW_BYTES_MAX` is corruption of
/// that block, found before any allocation; the other blocks are read on their own merits.
#[test]
fn a_block_longer_than_any_block_can_be_is_corruption_before_any_allocation() {
    use portlog_engine::log::sealed::BLOCK_RAW_BYTES_MAX;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("20260509T0000-000000.seg");
    std::fs::write(&path, include_bytes!("fuzz_regressions/footer-block-length-2gib.seg")).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    let metas = seg.blocks().unwrap().to_vec();
    let bad: Vec<usize> = (0..metas.len()).filter(|&i| metas[i].rlen as usize > BLOCK_RAW_BYTES_MAX).collect();
    assert_eq!(bad.len(), 1, "{metas:?}");
    let e = seg.read_block(bad[0]).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }) && e.to_string().contains("uncompressed length"), "{e}");
    // The other blocks answer as their (also mutated) bytes allow: records or corruption.
    let read = (0..metas.len()).filter(|&i| seg.read_block(i).is_ok()).count();
    assert!(read > 0 && read < metas.len());
}

/// `model`, artifact crash-918d5b2d (`[0, 44, 37, 1, 4, 0, 6, 2, 5, 4, 0, 3, 61, 37]`): five
/// records over three days acknowledged (the journal holds them, the open segments are not yet
/// synced), then fsyncs fail: `seal_all`'s checkpoint fails to sync the open segments, and the
/// failed fsync drops their unsynced pages (as Linux may). A read of one number then gave
/// "row checksum mismatch" for acknowledged records, which the fuzz target counted as lost.
/// Now such rows are refused as `Poisoned` (the cause names the file and the journal), never as
/// corruption, and a reopen gives every record back.
#[test]
fn rows_of_a_segment_whose_fsync_failed_are_refused_as_poisoned_not_corrupt_and_a_reopen_has_them() {
    use portlog_engine::io::{FaultyIo, SharedIo};
    use portlog_engine::{Log, LogConfig, ManualClock, SyncPolicy};
    use std::sync::Arc;
    const NOW_MS: i64 = 1_778_342_400_000;
    const DAY_MS: i64 = 86_400_000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 1).unwrap());
    let cfg = LogConfig {
        shards: 2,
        sync: SyncPolicy::Data,
        batch_bytes_max: 64 << 10,
        segment_bytes_max: 64 << 20,
        block_bytes_max: 4096,
        zstd_level: 1,
        zstd_dict_bytes: 0,
        maintenance_interval_ms: u64::MAX / 2,
        ..LogConfig::default()
    };
    let open =
        || Log::open_with_io(&dir, cfg.clone(), Arc::new(ManualClock::new(NOW_MS)), io.clone() as SharedIo).unwrap();
    let log = open();
    let batch: Vec<Record> = (0..5u64)
        .map(|i| {
            let k = (44 + i) % 8;
            let mut r = record();
            r.sub_port = SubPort::parse(&format!("10690123456{:02}", k % 3)).unwrap();
            r.peer = PhoneNumber::from_u64(13_800_138_000 + (k % 7) * 1_111).unwrap();
            r.ts_ms = NOW_MS - ((44 + i as i64) % 3) * DAY_MS + (i as i64 + 1);
            r.text = format!("{} #{}", r.text, i + 1);
            r
        })
        .collect();
    log.append(batch.clone()).unwrap();
    io.set_fail_fsyncs(true);
    assert!(log.seal_all().is_ok(), "seal_all answers; the sealer logs what it could not seal");
    assert!(log.poisoned().is_some(), "the failed fsync poisoned a shard");
    let mut refused = 0;
    for want in &batch {
        match log.read_number(want.peer, 0, i64::MAX).unwrap().collect::<Result<Vec<Record>, Error>>() {
            Ok(got) => assert!(got.contains(want), "a read of {} misses {want:?}: {got:?}", want.peer.as_u64()),
            Err(Error::Poisoned { cause, .. }) => {
                assert!(cause.contains(".open") && cause.contains("journal"), "{cause}");
                refused += 1;
            }
            Err(e) => panic!("an acknowledged record read as {e}"),
        }
    }
    assert!(refused > 0, "the dropped pages were read back: the test no longer drops them");
    drop(log);
    io.heal();
    let log = open();
    for want in &batch {
        let got: Vec<Record> = log.read_number(want.peer, 0, i64::MAX).unwrap().map(Result::unwrap).collect();
        assert!(got.contains(want), "after a reopen, a read of {} misses {want:?}", want.peer.as_u64());
    }
}
