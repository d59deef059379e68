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
