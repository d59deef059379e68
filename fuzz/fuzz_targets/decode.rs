//! Every on-disk decoder of the message log fed arbitrary bytes: the segment header, frames,
//! rows, columnar blocks (texts whole, templated and packed), the template and shape tables, sub-port and number
//! indexes and the number filter. None may panic, loop or allocate without bound; a malformed
//! input is an error. A row or block that decodes re-encodes to the same bytes' meaning (its
//! records decode again unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlog_engine::log::open_segment::FRAME_PAYLOAD_MAX;
use portlog_engine::log::template::{TemplateBuilder, Templates};
use portlog_engine::log::{block, filter, frame, index, packed};
use std::sync::OnceLock;

/// A fixed table for the templated layout: a template with two holes, one with none.
fn table() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let mut b = TemplateBuilder::new();
        b.id("【星河银行】验证码\u{1}，\u{1}分钟内有效".as_bytes());
        b.id(b"R");
        Templates::decode(&b.encode().expect("zstd compresses")).expect("a table just encoded decodes")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = frame::SegmentHeader::decode(data, frame::OPEN_MAGIC);
    let _ = frame::SegmentHeader::decode(data, frame::SEALED_MAGIC);
    if let Ok(f) = frame::read_frame(data, 1 << 20) {
        if let Ok(rows) = frame::frame_rows(&f) {
            for (_, body) in rows {
                if let Ok(r) = frame::decode_row_body(body) {
                    let mut again = Vec::new();
                    frame::encode_row(&mut again, &r);
                    let (body2, _) = frame::split_row(&again).expect("a row just encoded splits");
                    assert_eq!(frame::decode_row_body(body2).as_ref(), Ok(&r), "row round trip");
                }
            }
        }
    }
    let _ = frame::split_row(data);
    // The same bytes as the rows of a frame whose checksum is right (the first 4 bytes its row
    // count), so that the row parser is reached without forging a checksum.
    if let Some((count, rows)) = data.split_first_chunk::<4>() {
        let f = frame::encode_frame(rows, u32::from_le_bytes(*count));
        let v = frame::read_frame(&f, FRAME_PAYLOAD_MAX).expect("a frame just encoded reads back");
        if let Ok(rows) = frame::frame_rows(&v) {
            for (_, body) in rows {
                let _ = frame::decode_row_body(body);
            }
        }
    }
    if let Ok(recs) = block::decode(data) {
        let refs: Vec<_> = recs.iter().collect();
        assert_eq!(block::decode(&block::encode(&refs)).as_ref(), Ok(&recs), "block round trip");
        if let Some(r) = recs.first() {
            let (sum, mine) = block::decode_peer(data, r.peer.as_u64()).expect("decode_peer agrees with decode");
            assert_eq!(sum.count, recs.len());
            assert!(mine.iter().all(|m| m.peer == r.peer) && !mine.is_empty());
        }
    }
    let _ = block::decode_peer(data, 13_800_138_000);
    // The templated layout, with a fixed table: what decodes re-encodes (with a new table of
    // its own) to the same records.
    if let Ok(recs) = block::decode_with(data, Some(table())) {
        let refs: Vec<_> = recs.iter().collect();
        let mut b = TemplateBuilder::new();
        let raw = block::encode_templated(&refs, &mut b);
        let t = Templates::decode(&b.encode().expect("zstd compresses")).expect("a table just encoded decodes");
        assert_eq!(block::decode_with(&raw, Some(&t)).as_ref(), Ok(&recs), "templated block round trip");
    }
    let _ = block::decode_peer_with(data, Some(table()), 13_800_138_000);
    let _ = block::decode_sub_port_with(data, Some(table()), "10690");
    let _ = Templates::decode(data);
    // The packed layout, against fixed tables: what decodes re-encodes (with tables of its
    // own) to the same records.
    let fx = portlog_fuzz::packed_fixture();
    if let Ok(recs) = fx.decode(data, fx.tables()) {
        let (raw, t, s) = fx.encode(&recs);
        let tables = packed::Tables { templates: &t, shapes: &s, ..fx.tables() };
        assert_eq!(fx.decode(&raw, tables).as_ref(), Ok(&recs), "packed block round trip");
    }
    let _ = packed::Shapes::decode(data, table());
    let _ = index::decode_sub_ports(data, 64);
    if let Ok(ix) = index::NumberIndex::open(data, 64) {
        for probe in [0u64, 13_800_138_000, u64::MAX] {
            let _ = ix.lookup(probe);
        }
        let _ = ix.numbers_at(&[0, 63, 64, 1, 200]);
    }
    if let Ok(ix) = index::NumberIndex::open_ranked(data, 64) {
        for probe in [0u64, 13_800_138_000, 13_800_139_111, u64::MAX] {
            if let Ok(Some((rank, _))) = ix.find(probe) {
                assert_eq!(ix.numbers_at(&[rank]), Ok(vec![probe]), "a found number's rank gives it back");
            }
        }
        let _ = ix.numbers_at(&[0, 63, 64, 1, 200]);
    }
    if let Ok(f) = filter::NumberFilter::open(data) {
        for probe in [0u64, 13_800_138_000, u64::MAX] {
            let _ = f.may_contain(probe);
        }
    }
});
